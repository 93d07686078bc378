"""Glue catalog over the lake, crawler that cannot clobber it, Athena, QuickSight tree map."""

import json
import re

import pytest
from infra_lookup import of_type, referenced_id

from stacks.analytics import sql_files
from stacks.config import REPO_ROOT

pytestmark = pytest.mark.xdist_group("synth")


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
    assert set(tables) == {"incidents", "engagement", "feedback", "sentiment", "probes"}
    assert {t["DatabaseName"] for t in tables.values()} == {"sentimentdb"}


@pytest.mark.parametrize("name", ["incidents", "engagement", "feedback", "sentiment"])
def test_table_columns_are_the_lake_contract(default, name) -> None:
    table = _tables(default.resources)[name]["TableInput"]
    columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert columns == _architecture_lake_columns()[name]


@pytest.mark.parametrize("name", ["incidents", "engagement", "feedback", "sentiment"])
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


def test_crawler_never_changes_the_code_defined_schema(default) -> None:
    (crawler,) = of_type(default.resources, "AWS::Glue::Crawler").values()
    props = crawler["Properties"]
    assert props["Name"] == "Sentiment_Crawler"
    assert props["SchemaChangePolicy"] == {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}
    configuration = json.loads(props["Configuration"])
    assert configuration["CrawlerOutput"]["Partitions"]["AddOrUpdateBehavior"] == "InheritFromTable"
    (target,) = props["Targets"]["CatalogTargets"]
    assert set(target["Tables"]) == set(_tables(default.resources)) - {"probes"}
    (security,) = of_type(default.resources, "AWS::Glue::SecurityConfiguration").values()
    assert props["CrawlerSecurityConfiguration"] == security["Properties"]["Name"]


def test_glue_security_configuration_encrypts_everything_with_the_key(default) -> None:
    (security,) = of_type(default.resources, "AWS::Glue::SecurityConfiguration").values()
    (key_id,) = of_type(default.resources, "AWS::KMS::Key")
    encryption = security["Properties"]["EncryptionConfiguration"]
    assert encryption["S3Encryptions"][0]["S3EncryptionMode"] == "SSE-KMS"
    assert encryption["CloudWatchEncryption"]["CloudWatchEncryptionMode"] == "SSE-KMS"
    assert encryption["JobBookmarksEncryption"]["JobBookmarksEncryptionMode"] == "CSE-KMS"
    for arn in (
        encryption["S3Encryptions"][0]["KmsKeyArn"],
        encryption["CloudWatchEncryption"]["KmsKeyArn"],
        encryption["JobBookmarksEncryption"]["KmsKeyArn"],
    ):
        assert referenced_id(arn) == key_id


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


def test_workgroup_encrypts_results_caps_scans_and_is_enforced(default) -> None:
    workgroup = default.resources[_analytics_workgroup(default.resources)]
    configuration = workgroup["Properties"]["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] > 0
    results = configuration["ResultConfiguration"]
    assert results["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    assert "athena-results/" in json.dumps(results["OutputLocation"])


def test_one_named_query_per_sql_file(default) -> None:
    files = sql_files()
    assert files, "the repo ships analytics SQL under sql/"
    queries = {q["Name"]: q for q in _named_queries(default.resources)}
    assert set(queries) == {path.stem for path in files}
    for path in files:
        assert queries[path.stem]["QueryString"] == path.read_text()
        assert queries[path.stem]["Database"] == "sentimentdb"


def test_named_queries_follow_the_sql_directory(tmp_path, default) -> None:
    from stacks.application import synth_template

    (tmp_path / "only_one.sql").write_text("-- A single query\nSELECT 1\n")
    template = synth_template(outdir=str(tmp_path / "out"), checks=False, sql_dir=tmp_path)
    names = [q["Name"] for q in _named_queries(template["Resources"])]
    assert names == ["only_one"]


def test_quicksight_only_when_a_principal_is_configured(default, configured) -> None:
    for kind in (
        "AWS::QuickSight::DataSource",
        "AWS::QuickSight::DataSet",
        "AWS::QuickSight::Analysis",
    ):
        assert not of_type(default.resources, kind)
        assert len(of_type(configured.resources, kind)) == 1


def test_tree_map_groups_by_cell_sized_by_subscribers_coloured_by_sentiment(configured) -> None:
    (analysis,) = of_type(configured.resources, "AWS::QuickSight::Analysis").values()
    (sheet,) = analysis["Properties"]["Definition"]["Sheets"]
    (visual,) = sheet["Visuals"]
    wells = visual["TreeMapVisual"]["ChartConfiguration"]["FieldWells"][
        "TreeMapAggregatedFieldWells"
    ]
    (group,) = wells["Groups"]
    (size,) = wells["Sizes"]
    (colour,) = wells["Colors"]
    assert group["CategoricalDimensionField"]["Column"]["ColumnName"] == "cell"
    assert size["CategoricalMeasureField"]["Column"]["ColumnName"] == "subscriber_id"
    assert size["CategoricalMeasureField"]["AggregationFunction"] == "DISTINCT_COUNT"
    assert colour["NumericalMeasureField"]["Column"]["ColumnName"] == "change_sentiment"
    principal = configured.config.quicksight_principal_arn
    assert analysis["Properties"]["Permissions"][0]["Principal"] == principal
