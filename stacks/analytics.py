"""Analytics: the Glue catalog over the lake (schemas from the contract, partitions projected,
so no crawler), the Athena workgroup and one named query per ``sql/*.sql``, and (when a
QuickSight principal is configured) data sets over those queries and the operations dashboard.
"""

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Aws
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_quicksight as quicksight
from constructs import Construct

from feedback_loop.contract import ANALYTICS_TABLES, REMEDIATION_TABLE, WHATIF_SQL
from feedback_loop.contract import LAKE_TABLES as CONTRACT_TABLES
from stacks.config import REPO_ROOT, FeedbackLoopConfig
from stacks.data_lake import ATHENA_RESULTS_PREFIX, DataLake

DATABASE = "sentimentdb"
WORKGROUP = "subscriber_feedback_loop"
SQL_DIR = REPO_ROOT / "sql"
PROJECTION_START = "2025-01-01"

# The Glue tables: one per analytics prefix, columns generated from the contract.
LAKE_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    name: CONTRACT_TABLES[name].engine_columns("glue") for name in ANALYTICS_TABLES
}
REMEDIATION_COLUMNS = CONTRACT_TABLES[REMEDIATION_TABLE].engine_columns("glue")

# Every query takes the period as ``dt BETWEEN ? AND ?`` (Athena execution parameters). A
# QuickSight data set gets the same SQL with its date parameters there instead: custom SQL
# takes dataset parameters as <<$Name>>; SUBSTR(CAST(...)) turns the date-time into 'YYYY-MM-DD'.
PERIOD = re.compile(r"\bBETWEEN \? AND \?")
START_PARAMETER, END_PARAMETER = "StartDate", "EndDate"
_QUICKSIGHT_PERIOD = (
    f"BETWEEN SUBSTR(CAST(<<${START_PARAMETER}>> AS VARCHAR), 1, 10) "
    f"AND SUBSTR(CAST(<<${END_PARAMETER}>> AS VARCHAR), 1, 10)"
)
# Dashboard default: the last seven days (QuickSight's rolling-date expressions).
ROLLING_DEFAULTS = {
    START_PARAMETER: "addDateTime(-6, 'DD', truncDate('DD', now()))",
    END_PARAMETER: "truncDate('DD', now())",
}
# Map colours: red = sentiment lost, yellow = no change, green = gained; grey = not ranked.
LOSS_RED, NO_CHANGE_YELLOW, GAIN_GREEN, NOT_RANKED_GREY = "#C0392B", "#F4D03F", "#27AE60", "#C9CCD1"


def _columns(spec: str) -> tuple[tuple[str, str], ...]:
    """``"name:TYPE name ..."`` (QuickSight input column types; default DECIMAL)."""
    return tuple(
        (column.partition(":")[0], column.partition(":")[2] or "DECIMAL") for column in spec.split()
    )


_PRIORITY_COLUMNS = _columns(
    "breakdown:STRING item:STRING kpi:STRING ranked:BOOLEAN subscribers:INTEGER "
    "incidents:INTEGER engagements:INTEGER answers:INTEGER observed_change change_sentiment "
    "change_low change_high estimated_loss estimated_loss_low estimated_loss_high "
    "compared:INTEGER net_change net_change_low net_change_high net_loss net_loss_low "
    "net_loss_high ranked_change"
)


@dataclass(frozen=True)
class DataSet:
    """A QuickSight data set: one query of ``sql/`` (one breakdown of priority.sql)."""

    key: str
    name: str
    sql_file: str
    columns: tuple[tuple[str, str], ...]
    breakdown: str | None = None

    @property
    def data_set_id(self) -> str:
        return f"subscriber-feedback-loop-{self.key}"

    def sql(self, sql_dir: Path) -> str:
        """The file's SQL with the dashboard's period (and breakdown) applied."""
        text = (sql_dir / self.sql_file).read_text(encoding="utf-8")
        query, count = PERIOD.subn(_QUICKSIGHT_PERIOD, text)
        if count != 1:
            raise ValueError(f"{self.sql_file}: expected one 'BETWEEN ? AND ?', found {count}")
        if self.breakdown is None:
            return query
        return f"SELECT * FROM (\n{query}\n) AS q\nWHERE q.breakdown = '{self.breakdown}'"


DATA_SETS = (
    DataSet("cells", "Cell priority", "priority.sql", _PRIORITY_COLUMNS, "cell"),
    DataSet("devices", "Device priority, net of cell", "priority.sql", _PRIORITY_COLUMNS, "device"),
    DataSet("vendors", "Vendor priority, net of cell", "priority.sql", _PRIORITY_COLUMNS, "vendor"),
    DataSet(
        "trends",
        "Cell trends per day",
        "cell_trends.sql",
        _columns(
            "cell:STRING dt:STRING subscribers:INTEGER incidents:INTEGER answers:INTEGER "
            "mean_change"
        ),
    ),
    DataSet(
        "fixes",
        "Fix effectiveness",
        "fix_effectiveness.sql",
        _columns(
            "cell:STRING fixed_at:STRING note:STRING control_cells:INTEGER "
            "incidents_before:INTEGER incidents_after:INTEGER incidents_per_day_before "
            "incidents_per_day_after control_incidents_per_cell_day_before "
            "control_incidents_per_cell_day_after incident_ratio incident_ratio_low "
            "incident_ratio_high answers_before:INTEGER answers_after:INTEGER score_before "
            "score_after control_answers_before:INTEGER control_answers_after:INTEGER "
            "control_score_before control_score_after score_effect score_effect_low "
            "score_effect_high"
        ),
    ),
)

_DATA_SOURCE_ACTIONS = [
    "quicksight:DescribeDataSource",
    "quicksight:DescribeDataSourcePermissions",
    "quicksight:PassDataSource",
    "quicksight:UpdateDataSource",
    "quicksight:DeleteDataSource",
    "quicksight:UpdateDataSourcePermissions",
]
_DATA_SET_ACTIONS = [
    "quicksight:DescribeDataSet",
    "quicksight:DescribeDataSetPermissions",
    "quicksight:PassDataSet",
    "quicksight:DescribeIngestion",
    "quicksight:ListIngestions",
    "quicksight:UpdateDataSet",
    "quicksight:DeleteDataSet",
    "quicksight:CreateIngestion",
    "quicksight:CancelIngestion",
    "quicksight:UpdateDataSetPermissions",
]
_ANALYSIS_ACTIONS = [
    "quicksight:RestoreAnalysis",
    "quicksight:UpdateAnalysisPermissions",
    "quicksight:DeleteAnalysis",
    "quicksight:DescribeAnalysisPermissions",
    "quicksight:QueryAnalysis",
    "quicksight:DescribeAnalysis",
    "quicksight:UpdateAnalysis",
]
_DASHBOARD_ACTIONS = [
    "quicksight:DescribeDashboard",
    "quicksight:ListDashboardVersions",
    "quicksight:UpdateDashboardPermissions",
    "quicksight:QueryDashboard",
    "quicksight:UpdateDashboard",
    "quicksight:DeleteDashboard",
    "quicksight:DescribeDashboardPermissions",
    "quicksight:UpdateDashboardPublishedVersion",
]


def sql_files(sql_dir: Path = SQL_DIR) -> list[Path]:
    """Every analytics query shipped with the repo, in a stable order.

    ``WHATIF_SQL`` is not one: the probe archive installs it in the what-if's workgroup.
    """
    return sorted(path for path in sql_dir.glob("*.sql") if path.name != WHATIF_SQL)


class Analytics(Construct):
    """Catalog, workgroup, named queries and the optional QuickSight dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FeedbackLoopConfig,
        lake: DataLake,
        sql_dir: Path = SQL_DIR,
    ) -> None:
        super().__init__(scope, construct_id)
        self._lake = lake
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=DATABASE, description="Subscriber Feedback Loop data lake."
            ),
        )
        self.tables = {
            name: self._build_table(name, columns) for name, columns in LAKE_TABLES.items()
        }
        self.tables[REMEDIATION_TABLE] = self._build_remediation_table()
        # Athena cancels a query of the workgroup once it has scanned this many bytes (Athena
        # API reference, WorkGroupConfiguration.BytesScannedCutoffPerQuery, at least
        # 10,000,000); a cancelled query is billed for what it scanned (Athena pricing).
        self.workgroup = self._build_workgroup(config.athena_scan_cutoff_gib * 1024**3)
        self.named_queries = [self._build_named_query(path) for path in sql_files(sql_dir)]
        if config.quicksight_principal_arn:
            self._build_quicksight(config.quicksight_principal_arn, sql_dir)

    def _location(self, name: str) -> str:
        return f"s3://{self._lake.bucket.bucket_name}/{name}/"

    def _glue_table(
        self, name: str, table_input: glue.CfnTable.TableInputProperty
    ) -> glue.CfnTable:
        table = glue.CfnTable(
            self,
            f"{name.title()}Table",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=DATABASE,
            table_input=table_input,
        )
        table.node.add_dependency(self.database)
        return table

    def _build_table(self, name: str, columns: tuple[tuple[str, str], ...]) -> glue.CfnTable:
        """A handler-written prefix: gzip JSON Lines, one partition per day, projected."""
        location = self._location(name)
        return self._glue_table(
            name,
            glue.CfnTable.TableInputProperty(
                name=name,
                description=f"Lake records under {name}/ (gzip JSON Lines), one partition per day.",
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": "json",
                    "compressionType": "gzip",
                    "projection.enabled": "true",
                    "projection.dt.type": "date",
                    "projection.dt.format": "yyyy-MM-dd",
                    "projection.dt.range": f"{PROJECTION_START},NOW",
                    "projection.dt.interval": "1",
                    "projection.dt.interval.unit": "DAYS",
                    "storage.location.template": location + "dt=${dt}/",
                },
                partition_keys=[glue.CfnTable.ColumnProperty(name="dt", type="string")],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    compressed=True,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.openx.data.jsonserde.JsonSerDe",
                        parameters={"ignore.malformed.json": "true"},
                    ),
                    columns=[
                        glue.CfnTable.ColumnProperty(name=column, type=kind)
                        for column, kind in columns
                    ],
                ),
            ),
        )

    def _build_remediation_table(self) -> glue.CfnTable:
        """Operators' remediation events: CSV objects with a header row under remediation/."""
        return self._glue_table(
            REMEDIATION_TABLE,
            glue.CfnTable.TableInputProperty(
                name=REMEDIATION_TABLE,
                description="Fixes on cells uploaded by operators: CSV with the header "
                "cell,fixed_at,note (fixed_at in UTC, YYYY-MM-DDTHH:MM:SSZ).",
                table_type="EXTERNAL_TABLE",
                parameters={"classification": "csv", "skip.header.line.count": "1"},
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=self._location(REMEDIATION_TABLE),
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.apache.hadoop.hive.serde2.OpenCSVSerde",
                        parameters={"separatorChar": ",", "quoteChar": '"', "escapeChar": "\\"},
                    ),
                    columns=[
                        glue.CfnTable.ColumnProperty(name=column, type=kind)
                        for column, kind in REMEDIATION_COLUMNS
                    ],
                ),
            ),
        )

    def _build_workgroup(self, bytes_scanned_cutoff: int) -> athena.CfnWorkGroup:
        return athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=WORKGROUP,
            description="Cell, device and vendor priority queries over the feedback lake.",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=bytes_scanned_cutoff,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self._lake.bucket.bucket_name}/{ATHENA_RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=self._lake.key.key_arn
                    ),
                ),
            ),
        )

    def _build_named_query(self, path: Path) -> athena.CfnNamedQuery:
        text = path.read_text(encoding="utf-8")
        first_line = text.lstrip().splitlines()[0] if text.strip() else ""
        summary = first_line.removeprefix("--").strip() or path.stem
        query = athena.CfnNamedQuery(
            self,
            f"Query{path.stem.title().replace('_', '')}",
            name=path.stem,
            database=DATABASE,
            work_group=self.workgroup.ref,
            description=f"{summary} Parameters: first day, last day ('YYYY-MM-DD')."[:1024],
            query_string=text,
        )
        query.node.add_dependency(self.database)
        return query

    def _build_quicksight(self, principal: str, sql_dir: Path) -> None:
        account = Aws.ACCOUNT_ID
        source = quicksight.CfnDataSource(
            self,
            "QuickSightSource",
            aws_account_id=account,
            data_source_id="subscriber-feedback-loop-athena",
            name="Subscriber Feedback Loop (Athena)",
            type="ATHENA",
            data_source_parameters=quicksight.CfnDataSource.DataSourceParametersProperty(
                athena_parameters=quicksight.CfnDataSource.AthenaParametersProperty(
                    work_group=self.workgroup.ref
                )
            ),
            permissions=[
                quicksight.CfnDataSource.ResourcePermissionProperty(
                    principal=principal, actions=_DATA_SOURCE_ACTIONS
                )
            ],
        )
        arns = {
            spec.key: self._build_data_set(spec, source, principal, sql_dir).attr_arn
            for spec in DATA_SETS
        }
        definition = dashboard_definition(arns)
        analysis = quicksight.CfnAnalysis(
            self,
            "QuickSightAnalysis",
            aws_account_id=account,
            analysis_id="subscriber-feedback-loop-analysis",
            name="Subscriber Feedback Loop (editable)",
            permissions=[
                quicksight.CfnAnalysis.ResourcePermissionProperty(
                    principal=principal, actions=_ANALYSIS_ACTIONS
                )
            ],
        )
        analysis.add_property_override("Definition", definition)
        dashboard = quicksight.CfnDashboard(
            self,
            "QuickSightDashboard",
            aws_account_id=account,
            dashboard_id="subscriber-feedback-loop",
            name="Subscriber Feedback Loop: cells to fix first",
            permissions=[
                quicksight.CfnDashboard.ResourcePermissionProperty(
                    principal=principal, actions=_DASHBOARD_ACTIONS
                )
            ],
            version_description="Defined in stacks/analytics.py",
        )
        dashboard.add_property_override("Definition", definition)
        dashboard.add_property_override(
            "DashboardPublishOptions",
            {
                "AdHocFilteringOption": {"AvailabilityStatus": "ENABLED"},
                "ExportToCSVOption": {"AvailabilityStatus": "ENABLED"},
                "SheetControlsOption": {"VisibilityState": "EXPANDED"},
            },
        )

    def _build_data_set(
        self, spec: DataSet, source: quicksight.CfnDataSource, principal: str, sql_dir: Path
    ) -> quicksight.CfnDataSet:
        parameters = [
            quicksight.CfnDataSet.DatasetParameterProperty(
                date_time_dataset_parameter=quicksight.CfnDataSet.DateTimeDatasetParameterProperty(
                    id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{spec.data_set_id}/{name}")),
                    name=name,
                    value_type="SINGLE_VALUED",
                    time_granularity="DAY",
                    # One day, so validating the data set scans next to nothing; the
                    # dashboard's own parameters (last seven days) override it.
                    default_values=quicksight.CfnDataSet.DateTimeDatasetParameterDefaultValuesProperty(
                        static_values=[f"{PROJECTION_START}T00:00:00.000Z"]
                    ),
                )
            )
            for name in (START_PARAMETER, END_PARAMETER)
        ]
        return quicksight.CfnDataSet(
            self,
            f"QuickSightDataSet{spec.key.title()}",
            aws_account_id=Aws.ACCOUNT_ID,
            data_set_id=spec.data_set_id,
            name=spec.name,
            import_mode="DIRECT_QUERY",
            physical_table_map={
                spec.key: quicksight.CfnDataSet.PhysicalTableProperty(
                    custom_sql=quicksight.CfnDataSet.CustomSqlProperty(
                        data_source_arn=source.attr_arn,
                        name=spec.key,
                        sql_query=spec.sql(sql_dir),
                        columns=[
                            quicksight.CfnDataSet.InputColumnProperty(name=name, type=kind)
                            for name, kind in spec.columns
                        ],
                    )
                )
            },
            dataset_parameters=parameters,
            permissions=[
                quicksight.CfnDataSet.ResourcePermissionProperty(
                    principal=principal, actions=_DATA_SET_ACTIONS
                )
            ],
        )


# --- the dashboard definition (the QuickSight analysis and dashboard share it) -----------------

SHEET = "network-priority"


def _column(data_set: str, name: str) -> dict[str, str]:
    return {"DataSetIdentifier": data_set, "ColumnName": name}


def _title(text: str) -> dict[str, Any]:
    return {"Visibility": "VISIBLE", "FormatText": {"PlainText": text}}


def _measure(data_set: str, name: str, aggregation: str) -> dict[str, Any]:
    return {
        "NumericalMeasureField": {
            "FieldId": f"{data_set}.{name}",
            "Column": _column(data_set, name),
            "AggregationFunction": {"SimpleNumericalAggregation": aggregation},
        }
    }


def _dimension(data_set: str, name: str) -> dict[str, Any]:
    return {
        "CategoricalDimensionField": {
            "FieldId": f"{data_set}.{name}",
            "Column": _column(data_set, name),
        }
    }


def _cell_tree_map() -> dict[str, Any]:
    """Group by cell, size = subscribers affected, colour = estimated mean change (grey when the
    cell is not ranked: ranked_change is null)."""
    return {
        "TreeMapVisual": {
            "VisualId": "cell-tree-map",
            "Title": _title("Cells to fix first: size = subscribers affected, colour = change"),
            "ChartConfiguration": {
                "FieldWells": {
                    "TreeMapAggregatedFieldWells": {
                        "Groups": [_dimension("cells", "item")],
                        "Sizes": [_measure("cells", "subscribers", "SUM")],
                        "Colors": [_measure("cells", "ranked_change", "AVERAGE")],
                    }
                },
                "ColorScale": {
                    "ColorFillType": "GRADIENT",
                    "Colors": [
                        {"Color": LOSS_RED, "DataValue": -0.5},
                        {"Color": NO_CHANGE_YELLOW, "DataValue": 0},
                        {"Color": GAIN_GREEN, "DataValue": 0.5},
                    ],
                    "NullValueColor": {"Color": NOT_RANKED_GREY},
                },
            },
        }
    }


def _table(
    visual_id: str, title: str, data_set: str, columns: list[str], sort: list[str]
) -> dict[str, Any]:
    """Rows as the query returns them (no aggregation), sorted descending on ``sort``."""
    return {
        "TableVisual": {
            "VisualId": visual_id,
            "Title": _title(title),
            "ChartConfiguration": {
                "FieldWells": {
                    "TableUnaggregatedFieldWells": {
                        "Values": [
                            {"FieldId": f"{data_set}.{name}", "Column": _column(data_set, name)}
                            for name in columns
                        ]
                    }
                },
                "SortConfiguration": {
                    "RowSort": [
                        {"FieldSort": {"FieldId": f"{data_set}.{name}", "Direction": "DESC"}}
                        for name in sort
                    ]
                },
            },
        }
    }


def _trend(visual_id: str, title: str, measure: str, aggregation: str) -> dict[str, Any]:
    return {
        "LineChartVisual": {
            "VisualId": visual_id,
            "Title": _title(title),
            "ChartConfiguration": {
                "FieldWells": {
                    "LineChartAggregatedFieldWells": {
                        "Category": [_dimension("trends", "dt")],
                        "Values": [_measure("trends", measure, aggregation)],
                        "Colors": [_dimension("trends", "cell")],
                    }
                }
            },
        }
    }


_CELL_TERMS = [
    "item",
    "ranked",
    "subscribers",
    "answers",
    "change_sentiment",
    "change_low",
    "change_high",
    "estimated_loss",
    "estimated_loss_low",
    "estimated_loss_high",
]
_NET_TERMS = [
    "item",
    "ranked",
    "subscribers",
    "change_sentiment",
    "compared",
    "net_change",
    "net_change_low",
    "net_change_high",
    "net_loss",
    "net_loss_low",
    "net_loss_high",
]
_FIX_TERMS = [name for name, _ in DATA_SETS[-1].columns]
TREND_VISUALS = ("trend-affected", "trend-change")
TOP_TREND_CELLS = 5


def _visuals() -> list[dict[str, Any]]:
    return [
        _cell_tree_map(),
        _table(
            "cell-terms",
            "Cells: estimated loss and its terms (ranked first, by the loss we are 95% sure of)",
            "cells",
            _CELL_TERMS,
            ["ranked", "estimated_loss_low"],
        ),
        _table(
            "devices-net-of-cell",
            "Devices, net of cell",
            "devices",
            _NET_TERMS,
            ["ranked", "net_loss_low"],
        ),
        _table(
            "vendors-net-of-cell",
            "Vendors, net of cell",
            "vendors",
            _NET_TERMS,
            ["ranked", "net_loss_low"],
        ),
        _trend(TREND_VISUALS[0], "Subscribers affected per day", "subscribers", "SUM"),
        _trend(TREND_VISUALS[1], "Mean change in sentiment per day", "mean_change", "AVERAGE"),
        _table("fixes", "Did the fixes work?", "fixes", _FIX_TERMS, ["fixed_at"]),
    ]


def _layout(visuals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Full-width map and tables; device/vendor and the two trends side by side."""
    spans = {
        "cell-tree-map": (36, 14),
        "cell-terms": (36, 10),
        "devices-net-of-cell": (18, 10),
        "vendors-net-of-cell": (18, 10),
        TREND_VISUALS[0]: (18, 9),
        TREND_VISUALS[1]: (18, 9),
        "fixes": (36, 8),
    }
    ids = [next(iter(visual.values()))["VisualId"] for visual in visuals]
    return [
        {
            "Configuration": {
                "GridLayout": {
                    "Elements": [
                        {
                            "ElementId": visual_id,
                            "ElementType": "VISUAL",
                            "ColumnSpan": spans[visual_id][0],
                            "RowSpan": spans[visual_id][1],
                        }
                        for visual_id in ids
                    ]
                }
            }
        }
    ]


def dashboard_definition(data_set_arns: dict[str, str]) -> dict[str, Any]:
    """One sheet: the cell map, the cells' terms, devices and vendors net of cell, trends of the
    cells with most subscribers affected, and fix effectiveness, all over one chosen period."""
    visuals = _visuals()
    return {
        "DataSetIdentifierDeclarations": [
            {"Identifier": key, "DataSetArn": arn} for key, arn in data_set_arns.items()
        ],
        "ParameterDeclarations": [
            {
                "DateTimeParameterDeclaration": {
                    "Name": name,
                    "TimeGranularity": "DAY",
                    "DefaultValues": {"RollingDate": {"Expression": ROLLING_DEFAULTS[name]}},
                    "MappedDataSetParameters": [
                        {"DataSetIdentifier": key, "DataSetParameterName": name}
                        for key in data_set_arns
                    ],
                }
            }
            for name in (START_PARAMETER, END_PARAMETER)
        ],
        "FilterGroups": [
            {
                "FilterGroupId": "top-trend-cells",
                "CrossDataset": "SINGLE_DATASET",
                "Status": "ENABLED",
                "ScopeConfiguration": {
                    "SelectedSheets": {
                        "SheetVisualScopingConfigurations": [
                            {
                                "SheetId": SHEET,
                                "Scope": "SELECTED_VISUALS",
                                "VisualIds": list(TREND_VISUALS),
                            }
                        ]
                    }
                },
                "Filters": [
                    {
                        "TopBottomFilter": {
                            "FilterId": "cells-with-most-subscribers-affected",
                            "Column": _column("trends", "cell"),
                            "Limit": TOP_TREND_CELLS,
                            "AggregationSortConfigurations": [
                                {
                                    "Column": _column("trends", "subscribers"),
                                    "SortDirection": "DESC",
                                    "AggregationFunction": {
                                        "NumericalAggregationFunction": {
                                            "SimpleNumericalAggregation": "SUM"
                                        }
                                    },
                                }
                            ],
                        }
                    }
                ],
            }
        ],
        "Sheets": [
            {
                "SheetId": SHEET,
                "Name": "Network priority",
                "ParameterControls": [
                    {
                        "DateTimePicker": {
                            "ParameterControlId": f"{name}-control",
                            "Title": title,
                            "SourceParameterName": name,
                        }
                    }
                    for name, title in ((START_PARAMETER, "First day"), (END_PARAMETER, "Last day"))
                ],
                "Visuals": visuals,
                "Layouts": _layout(visuals),
            }
        ],
    }
