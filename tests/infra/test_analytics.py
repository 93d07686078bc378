"""Glue catalog over the lake (projected, no crawler), Athena, QuickSight data sets over the
repo's SQL and the operations dashboard."""

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from infra_lookup import of_type

from stacks.analytics import (
    DATA_SETS,
    END_PARAMETER,
    NOT_RANKED_GREY,
    SQL_DIR,
    START_PARAMETER,
    sql_files,
)
from stacks.config import REPO_ROOT

pytestmark = [pytest.mark.xdist_group("synth"), pytest.mark.slow]

PARTITIONED = ["incidents", "engagement", "feedback", "sentiment", "outages", "decision_counts"]


def _architecture_lake_columns() -> dict[str, list[str]]:
    """Columns per prefix from docs/ARCHITECTURE.md "Lake records" (the contract)."""
    text = (REPO_ROOT / "docs" / "ARCHITECTURE.md").read_text()
    columns = {}
    for prefix, listing in re.findall(r"^- `(\w+)/`: `([^`]+)`", text, flags=re.MULTILINE):
        columns[prefix] = [field.strip().split(" ")[0] for field in listing.split(",")]
    return columns


def _tables(resources: dict) -> dict[str, dict]:
    return {
        t["Properties"]["TableInput"]["Name"]: t["Properties"]
        for t in of_type(resources, "AWS::Glue::Table").values()
    }


def test_database_and_one_table_per_analysed_prefix(default) -> None:
    (database,) = of_type(default.resources, "AWS::Glue::Database").values()
    assert database["Properties"]["DatabaseInput"]["Name"] == "sentimentdb"
    tables = _tables(default.resources)
    # plus the probe archive's Parquet table (tests/infra/test_probe_archive.py)
    assert set(tables) == {*PARTITIONED, "remediation", "probes"}
    assert {t["DatabaseName"] for t in tables.values()} == {"sentimentdb"}


@pytest.mark.parametrize("name", [*PARTITIONED, "remediation"])
def test_table_columns_are_the_lake_contract(default, name) -> None:
    table = _tables(default.resources)[name]["TableInput"]
    columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert columns == _architecture_lake_columns()[name]


@pytest.mark.parametrize("name", PARTITIONED)
def test_table_reads_gzip_json_lines_with_date_projection(default, name) -> None:
    table = _tables(default.resources)[name]["TableInput"]
    descriptor = table["StorageDescriptor"]
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    location = json.dumps(descriptor["Location"])
    assert f"/{name}/" in location
    assert table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    parameters = table["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.dt.type"] == "date"
    assert parameters["projection.dt.format"] == "yyyy-MM-dd"
    assert f"/{name}/dt=${{dt}}/" in json.dumps(parameters["storage.location.template"])


def test_remediation_table_reads_operators_csv_with_its_header(default) -> None:
    table = _tables(default.resources)["remediation"]["TableInput"]
    descriptor = table["StorageDescriptor"]

    assert descriptor["SerdeInfo"]["SerializationLibrary"] == (
        "org.apache.hadoop.hive.serde2.OpenCSVSerde"
    )
    assert table["Parameters"]["skip.header.line.count"] == "1"
    assert "/remediation/" in json.dumps(descriptor["Location"])
    assert "PartitionKeys" not in table


def test_no_crawler_partitions_are_projected(variant) -> None:
    """Every partitioned table projects its days, so nothing is left for a crawler to do."""
    assert not of_type(variant.resources, "AWS::Glue::Crawler")
    assert not of_type(variant.resources, "AWS::Glue::SecurityConfiguration")
    roles = of_type(variant.resources, "AWS::IAM::Role").values()
    assert not [r for r in roles if "glue.amazonaws.com" in json.dumps(r)]


def _analytics_workgroup(resources: dict) -> str:
    """The dashboards' workgroup (the what-if has its own: tests/infra/test_probe_archive.py)."""
    (workgroup,) = [
        lid
        for lid, r in of_type(resources, "AWS::Athena::WorkGroup").items()
        if r["Properties"]["Name"] == "subscriber_feedback_loop"
    ]
    return workgroup


def _named_queries(resources: dict) -> list[dict]:
    group = _analytics_workgroup(resources)
    return [
        q["Properties"]
        for q in of_type(resources, "AWS::Athena::NamedQuery").values()
        if q["Properties"]["WorkGroup"] == {"Ref": group}
    ]


def test_workgroup_encrypts_results_caps_scans_and_is_enforced(variant) -> None:
    workgroup = variant.resources[_analytics_workgroup(variant.resources)]
    configuration = workgroup["Properties"]["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    # the configured cut-off, in bytes (100 GiB by default, 25 in the configured variant)
    cutoff = variant.config.athena_scan_cutoff_gib * 1024**3
    assert configuration["BytesScannedCutoffPerQuery"] == cutoff
    results = configuration["ResultConfiguration"]
    assert results["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    assert "athena-results/" in json.dumps(results["OutputLocation"])


def test_one_named_query_per_sql_file_naming_its_parameters(default) -> None:
    files = sql_files()
    assert {path.stem for path in files} == {"priority", "cell_trends", "fix_effectiveness"}
    queries = {q["Name"]: q for q in _named_queries(default.resources)}
    assert set(queries) == {path.stem for path in files}
    for path in files:
        assert queries[path.stem]["QueryString"] == path.read_text()
        assert queries[path.stem]["Database"] == "sentimentdb"
        assert "first day, last day" in queries[path.stem]["Description"]


def test_named_queries_follow_the_sql_directory(tmp_path, default) -> None:
    from stacks.application import synth_template

    (tmp_path / "only_one.sql").write_text("-- A single query\nSELECT 1\n")
    template = synth_template(outdir=str(tmp_path / "out"), checks=False, sql_dir=tmp_path)
    names = [q["Name"] for q in _named_queries(template["Resources"])]
    assert names == ["only_one"]


# --- QuickSight --------------------------------------------------------------------------------


def test_quicksight_only_when_a_principal_is_configured(default, configured) -> None:
    for kind, count in (
        ("AWS::QuickSight::DataSource", 1),
        ("AWS::QuickSight::DataSet", len(DATA_SETS)),
        ("AWS::QuickSight::Analysis", 1),
        ("AWS::QuickSight::Dashboard", 1),
    ):
        assert not of_type(default.resources, kind)
        assert len(of_type(configured.resources, kind)) == count
    principal = configured.config.quicksight_principal_arn
    for kind in ("DataSource", "DataSet", "Analysis", "Dashboard"):
        for resource in of_type(configured.resources, f"AWS::QuickSight::{kind}").values():
            assert resource["Properties"]["Permissions"][0]["Principal"] == principal


def _data_sets(configured) -> dict[str, dict[str, Any]]:
    """DataSetId -> properties."""
    return {
        d["Properties"]["DataSetId"]: d["Properties"]
        for d in of_type(configured.resources, "AWS::QuickSight::DataSet").values()
    }


def _duckdb_columns(sql: str) -> list[tuple[str, str]]:
    """The columns DuckDB returns for ``sql`` over an empty lake, as QuickSight types."""
    from simulator.analytics import LAKE_COLUMNS, _create_view

    kinds = {"VARCHAR": "STRING", "BIGINT": "INTEGER", "DOUBLE": "DECIMAL", "BOOLEAN": "BOOLEAN"}
    con = duckdb.connect()
    for table in LAKE_COLUMNS:
        _create_view(con, Path("/nonexistent"), table)
    cursor = con.execute(sql, ["2026-01-01", "2026-01-01"])
    return [(column[0], kinds[str(column[1])]) for column in cursor.description]


@pytest.mark.parametrize("spec", DATA_SETS, ids=lambda spec: spec.key)
def test_each_data_set_is_a_repo_query_over_the_dashboards_period(configured, spec) -> None:
    props = _data_sets(configured)[spec.data_set_id]
    (table,) = props["PhysicalTableMap"].values()
    query = table["CustomSql"]["SqlQuery"]
    text = (SQL_DIR / spec.sql_file).read_text()

    assert props["ImportMode"] == "DIRECT_QUERY"
    # The file's SQL, with QuickSight's date parameters where Athena gets its two ?
    placeholder = re.compile(r"SUBSTR\(CAST\(<<\$(\w+)>> AS VARCHAR\), 1, 10\)")
    assert placeholder.findall(query) == [START_PARAMETER, END_PARAMETER]
    assert placeholder.sub("?", query).endswith(
        text
        if spec.breakdown is None
        else f"{text}\n) AS q\nWHERE q.breakdown = '{spec.breakdown}'"
    )
    parameters = [p["DateTimeDatasetParameter"] for p in props["DatasetParameters"]]
    assert [(p["Name"], p["TimeGranularity"]) for p in parameters] == [
        (START_PARAMETER, "DAY"),
        (END_PARAMETER, "DAY"),
    ]
    # Columns and types are what the query really returns (DuckDB runs the same file)
    declared = [(c["Name"], c["Type"]) for c in table["CustomSql"]["Columns"]]
    assert declared == _duckdb_columns(text)


def _definition(configured, kind: str) -> dict[str, Any]:
    (resource,) = of_type(configured.resources, f"AWS::QuickSight::{kind}").values()
    return resource["Properties"]["Definition"]


def _visuals(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (sheet,) = definition["Sheets"]
    return {
        body["VisualId"]: {"type": kind, **body}
        for visual in sheet["Visuals"]
        for kind, body in visual.items()
    }


def _columns_used(node: Any) -> list[tuple[str, str]]:
    if isinstance(node, dict):
        if set(node) == {"DataSetIdentifier", "ColumnName"}:
            return [(node["DataSetIdentifier"], node["ColumnName"])]
        return [c for value in node.values() for c in _columns_used(value)]
    if isinstance(node, list):
        return [c for value in node for c in _columns_used(value)]
    return []


def test_dashboard_and_analysis_share_one_definition_over_every_data_set(configured) -> None:
    dashboard, analysis = _definition(configured, "Dashboard"), _definition(configured, "Analysis")
    assert dashboard == analysis
    declared = {d["Identifier"] for d in dashboard["DataSetIdentifierDeclarations"]}
    assert declared == {spec.key for spec in DATA_SETS}
    columns = {spec.key: {name for name, _ in spec.columns} for spec in DATA_SETS}
    used = _columns_used(dashboard["Sheets"]) + _columns_used(dashboard["FilterGroups"])
    assert used
    assert [(d, c) for d, c in used if c not in columns[d]] == []


def test_period_parameters_default_to_the_last_week_and_drive_every_data_set(configured) -> None:
    definition = _definition(configured, "Dashboard")
    declarations = [d["DateTimeParameterDeclaration"] for d in definition["ParameterDeclarations"]]
    (sheet,) = definition["Sheets"]

    assert [d["Name"] for d in declarations] == [START_PARAMETER, END_PARAMETER]
    for declaration in declarations:
        mapped = {m["DataSetIdentifier"] for m in declaration["MappedDataSetParameters"]}
        assert mapped == {spec.key for spec in DATA_SETS}
        assert {m["DataSetParameterName"] for m in declaration["MappedDataSetParameters"]} == {
            declaration["Name"]
        }
    expressions = [d["DefaultValues"]["RollingDate"]["Expression"] for d in declarations]
    assert expressions == [
        "addDateTime(-6, 'DD', truncDate('DD', now()))",
        "truncDate('DD', now())",
    ]
    controls = [c["DateTimePicker"]["SourceParameterName"] for c in sheet["ParameterControls"]]
    assert controls == [START_PARAMETER, END_PARAMETER]


def test_tree_map_sizes_by_affected_colours_by_change_and_greys_unranked_cells(configured) -> None:
    tree = _visuals(_definition(configured, "Dashboard"))["cell-tree-map"]
    configuration = tree["ChartConfiguration"]
    wells = configuration["FieldWells"]["TreeMapAggregatedFieldWells"]
    (group,) = wells["Groups"]
    (size,) = wells["Sizes"]
    (colour,) = wells["Colors"]

    assert tree["type"] == "TreeMapVisual"
    assert group["CategoricalDimensionField"]["Column"] == {
        "DataSetIdentifier": "cells",
        "ColumnName": "item",
    }
    assert size["NumericalMeasureField"]["Column"]["ColumnName"] == "subscribers"
    # ranked_change is null where a cell has too few answers: QuickSight's null colour
    assert colour["NumericalMeasureField"]["Column"]["ColumnName"] == "ranked_change"
    assert configuration["ColorScale"]["NullValueColor"] == {"Color": NOT_RANKED_GREY}


def test_dashboard_has_the_net_of_cell_tables_trends_and_fixes(configured) -> None:
    definition = _definition(configured, "Dashboard")
    visuals = _visuals(definition)

    for visual_id, data_set in (
        ("devices-net-of-cell", "devices"),
        ("vendors-net-of-cell", "vendors"),
    ):
        table = visuals[visual_id]
        values = table["ChartConfiguration"]["FieldWells"]["TableUnaggregatedFieldWells"]["Values"]
        assert {v["Column"]["DataSetIdentifier"] for v in values} == {data_set}
        assert {"net_change", "net_change_low", "net_change_high", "compared"} <= {
            v["Column"]["ColumnName"] for v in values
        }
        sort = table["ChartConfiguration"]["SortConfiguration"]["RowSort"]
        assert [s["FieldSort"]["FieldId"] for s in sort] == [
            f"{data_set}.ranked",
            f"{data_set}.net_loss_low",
        ]
    trends = [v for v in visuals.values() if v["type"] == "LineChartVisual"]
    wells = [v["ChartConfiguration"]["FieldWells"]["LineChartAggregatedFieldWells"] for v in trends]
    assert len(trends) == 2
    assert {
        w["Category"][0]["CategoricalDimensionField"]["Column"]["ColumnName"] for w in wells
    } == {"dt"}
    assert {w["Colors"][0]["CategoricalDimensionField"]["Column"]["ColumnName"] for w in wells} == {
        "cell"
    }
    (top_cells,) = definition["FilterGroups"]
    (scope,) = top_cells["ScopeConfiguration"]["SelectedSheets"]["SheetVisualScopingConfigurations"]
    assert set(scope["VisualIds"]) == {v["VisualId"] for v in trends}
    fixes = visuals["fixes"]["ChartConfiguration"]["FieldWells"]["TableUnaggregatedFieldWells"]
    assert {"score_effect", "incident_ratio", "score_before", "score_after"} <= {
        v["Column"]["ColumnName"] for v in fixes["Values"]
    }
