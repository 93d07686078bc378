"""Analytics: Glue catalog over the lake (schema defined here, not crawled), the crawler kept
for parity with the reference design, Athena workgroup and named queries from ``sql/``,
and (when a QuickSight principal is configured) the cell tree map."""

import json
from pathlib import Path

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_quicksight as quicksight
from constructs import Construct

from feedback_loop.contract import ANALYTICS_TABLES
from feedback_loop.contract import LAKE_TABLES as CONTRACT_TABLES
from stacks.config import REPO_ROOT, FeedbackLoopConfig
from stacks.data_lake import ATHENA_RESULTS_PREFIX, DataLake
from stacks.nag import acknowledge

DATABASE = "sentimentdb"
WORKGROUP = "subscriber_feedback_loop"
CRAWLER = "Sentiment_Crawler"
SECURITY_CONFIGURATION = "subscriber-feedback-loop"
SQL_DIR = REPO_ROOT / "sql"
WHATIF_SQL = "detect_incidents.sql"
BYTES_SCANNED_CUTOFF = 10 * 1024**3
PROJECTION_START = "2025-01-01"

# The Glue tables: one per analytics prefix, columns generated from the contract.
LAKE_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    name: CONTRACT_TABLES[name].engine_columns("glue") for name in ANALYTICS_TABLES
}

# The QuickSight map reads the sentiment records directly: one row per feedback call.
QUICKSIGHT_TABLE = "sentiment"
QUICKSIGHT_COLUMNS = (
    ("cell", "STRING"),
    ("subscriber_id", "STRING"),
    ("change_sentiment", "DECIMAL"),
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


def sql_files(sql_dir: Path = SQL_DIR) -> list[Path]:
    """Every analytics query shipped with the repo, in a stable order.

    ``WHATIF_SQL`` is not one: the probe archive installs it in the what-if's workgroup.
    """
    return sorted(path for path in sql_dir.glob("*.sql") if path.name != WHATIF_SQL)


class Analytics(Construct):
    """Catalog, crawler, workgroup, named queries and the optional QuickSight analysis."""

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
        self.security_configuration = self._build_security_configuration()
        self.crawler = self._build_crawler()
        self.workgroup = self._build_workgroup()
        self.named_queries = [self._build_named_query(path) for path in sql_files(sql_dir)]
        if config.quicksight_principal_arn:
            self._build_quicksight(config.quicksight_principal_arn)

    def _build_table(self, name: str, columns: tuple[tuple[str, str], ...]) -> glue.CfnTable:
        location = f"s3://{self._lake.bucket.bucket_name}/{name}/"
        table = glue.CfnTable(
            self,
            f"{name.title()}Table",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=DATABASE,
            table_input=glue.CfnTable.TableInputProperty(
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
        table.node.add_dependency(self.database)
        return table

    def _build_security_configuration(self) -> glue.CfnSecurityConfiguration:
        key_arn = self._lake.key.key_arn
        return glue.CfnSecurityConfiguration(
            self,
            "SecurityConfiguration",
            name=SECURITY_CONFIGURATION,
            encryption_configuration=glue.CfnSecurityConfiguration.EncryptionConfigurationProperty(
                s3_encryptions=[
                    glue.CfnSecurityConfiguration.S3EncryptionProperty(
                        s3_encryption_mode="SSE-KMS", kms_key_arn=key_arn
                    )
                ],
                cloud_watch_encryption=glue.CfnSecurityConfiguration.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=key_arn
                ),
                job_bookmarks_encryption=glue.CfnSecurityConfiguration.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=key_arn
                ),
            ),
        )

    def _build_crawler(self) -> glue.CfnCrawler:
        lake, stack = self._lake, Stack.of(self)
        role = iam.Role(
            self,
            "CrawlerRole",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description="Sentiment_Crawler: reads the lake, adds partitions to its own tables.",
        )
        table_arns = [
            stack.format_arn(service="glue", resource="table", resource_name=f"{DATABASE}/{name}")
            for name in LAKE_TABLES
        ]
        iam.Grant.add_to_principal(
            grantee=role,
            actions=[
                "glue:GetDatabase",
                "glue:GetTable",
                "glue:GetTables",
                "glue:GetPartition",
                "glue:GetPartitions",
                "glue:BatchGetPartition",
                "glue:CreatePartition",
                "glue:BatchCreatePartition",
                "glue:UpdatePartition",
            ],
            resource_arns=[
                stack.format_arn(service="glue", resource="catalog"),
                stack.format_arn(service="glue", resource="database", resource_name=DATABASE),
                *table_arns,
            ],
        )
        iam.Grant.add_to_principal(
            grantee=role, actions=["s3:ListBucket"], resource_arns=[lake.bucket.bucket_arn]
        )
        iam.Grant.add_to_principal(
            grantee=role,
            actions=["s3:GetObject"],
            resource_arns=[lake.object_arn(name) for name in LAKE_TABLES],
        )
        lake.key.grant(role, "kms:Decrypt")
        crawler_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws-glue/crawlers*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        iam.Grant.add_to_principal(
            grantee=role,
            actions=[
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:AssociateKmsKey",
            ],
            resource_arns=[crawler_logs, f"{crawler_logs}:*"],
        )
        crawler = glue.CfnCrawler(
            self,
            "Crawler",
            name=CRAWLER,
            role=role.role_arn,
            description="Kept for parity with the reference design: adds partitions only; the "
            "schema is defined in code and never changed by the crawler.",
            targets=glue.CfnCrawler.TargetsProperty(
                catalog_targets=[
                    glue.CfnCrawler.CatalogTargetProperty(
                        database_name=DATABASE, tables=list(LAKE_TABLES)
                    )
                ]
            ),
            schema_change_policy=glue.CfnCrawler.SchemaChangePolicyProperty(
                update_behavior="LOG", delete_behavior="LOG"
            ),
            configuration=json.dumps(
                {
                    "Version": 1.0,
                    "CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}},
                }
            ),
            crawler_security_configuration=SECURITY_CONFIGURATION,
        )
        crawler.node.add_dependency(self.security_configuration)
        for table in self.tables.values():
            crawler.node.add_dependency(table)
        for suffix in ("", ":*"):
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
                f"<AWS::AccountId>:log-group:/aws-glue/crawlers*{suffix}]",
                "Glue names the crawler's log group /aws-glue/crawlers-role/<role>-<security "
                "configuration> and its streams at run time.",
            )
        lake.acknowledge_prefixes(role, list(LAKE_TABLES))
        return crawler

    def _build_workgroup(self) -> athena.CfnWorkGroup:
        return athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=WORKGROUP,
            description="Cell, device and vendor priority queries over the feedback lake.",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=BYTES_SCANNED_CUTOFF,
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
        query = athena.CfnNamedQuery(
            self,
            f"Query{path.stem.title().replace('_', '')}",
            name=path.stem,
            database=DATABASE,
            work_group=self.workgroup.ref,
            description=(first_line.removeprefix("--").strip() or path.stem)[:1024],
            query_string=text,
        )
        query.node.add_dependency(self.database)
        return query

    def _build_quicksight(self, principal: str) -> None:
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
        data_set = quicksight.CfnDataSet(
            self,
            "QuickSightDataSet",
            aws_account_id=account,
            data_set_id="subscriber-feedback-loop-sentiment",
            name="Sentiment change by cell",
            import_mode="DIRECT_QUERY",
            physical_table_map={
                "sentiment": quicksight.CfnDataSet.PhysicalTableProperty(
                    relational_table=quicksight.CfnDataSet.RelationalTableProperty(
                        data_source_arn=source.attr_arn,
                        catalog="AwsDataCatalog",
                        schema=DATABASE,
                        name=QUICKSIGHT_TABLE,
                        input_columns=[
                            quicksight.CfnDataSet.InputColumnProperty(name=name, type=kind)
                            for name, kind in QUICKSIGHT_COLUMNS
                        ],
                    )
                )
            },
            permissions=[
                quicksight.CfnDataSet.ResourcePermissionProperty(
                    principal=principal, actions=_DATA_SET_ACTIONS
                )
            ],
        )
        analysis = quicksight.CfnAnalysis(
            self,
            "QuickSightAnalysis",
            aws_account_id=account,
            analysis_id="subscriber-feedback-loop-cells",
            name="Cells to fix first",
            permissions=[
                quicksight.CfnAnalysis.ResourcePermissionProperty(
                    principal=principal, actions=_ANALYSIS_ACTIONS
                )
            ],
        )
        analysis.add_property_override("Definition", _tree_map_definition(data_set.attr_arn))


def _tree_map_definition(data_set_arn: str) -> dict:
    """Group by cell, size = distinct subscribers, colour = summed change in sentiment."""

    def column(name: str) -> dict:
        return {"DataSetIdentifier": QUICKSIGHT_TABLE, "ColumnName": name}

    return {
        "DataSetIdentifierDeclarations": [
            {"Identifier": QUICKSIGHT_TABLE, "DataSetArn": data_set_arn}
        ],
        "Sheets": [
            {
                "SheetId": "cell-priority",
                "Name": "Cell priority",
                "Visuals": [
                    {
                        "TreeMapVisual": {
                            "VisualId": "cell-tree-map",
                            "Title": {
                                "Visibility": "VISIBLE",
                                "FormatText": {"PlainText": "Cells to fix first"},
                            },
                            "ChartConfiguration": {
                                "FieldWells": {
                                    "TreeMapAggregatedFieldWells": {
                                        "Groups": [
                                            {
                                                "CategoricalDimensionField": {
                                                    "FieldId": "cell",
                                                    "Column": column("cell"),
                                                }
                                            }
                                        ],
                                        "Sizes": [
                                            {
                                                "CategoricalMeasureField": {
                                                    "FieldId": "subscribers",
                                                    "Column": column("subscriber_id"),
                                                    "AggregationFunction": "DISTINCT_COUNT",
                                                }
                                            }
                                        ],
                                        "Colors": [
                                            {
                                                "NumericalMeasureField": {
                                                    "FieldId": "change_sentiment",
                                                    "Column": column("change_sentiment"),
                                                    "AggregationFunction": {
                                                        "SimpleNumericalAggregation": "SUM"
                                                    },
                                                }
                                            }
                                        ],
                                    }
                                },
                                "ColorScale": {
                                    "ColorFillType": "GRADIENT",
                                    "Colors": [{"Color": "#C0392B"}, {"Color": "#27AE60"}],
                                },
                            },
                        }
                    }
                ],
            }
        ],
    }
