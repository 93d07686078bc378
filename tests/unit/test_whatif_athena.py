"""The what-if over the archive in the account: the named query through Athena (Stubber)."""

import io
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from feedback_loop.policy import load_policy
from simulator import whatif
from simulator.whatif import Candidate, WhatIfError, detection_sql, run_whatif
from simulator.whatif_athena import AthenaProbes, literal

PREFIX = "s3://lake-bucket/probes/"
WORKGROUP = "subscriber_feedback_loop_whatif"
NAMED = {
    "NamedQueryId": "nq-2",
    "Name": "detect_incidents",
    "Database": "sentimentdb",
    "QueryString": detection_sql() + ";\n",
    "WorkGroup": WORKGROUP,
}


def _execution(state: str, scanned: int = 0, reason: str = "") -> dict:
    status = {"State": state, **({"StateChangeReason": reason} if reason else {})}
    return {
        "QueryExecution": {
            "QueryExecutionId": "q",
            "Status": status,
            "Statistics": {"DataScannedInBytes": scanned},
        }
    }


def _results(header: list[str], rows: list[list[str | None]]) -> dict:
    def row(values):
        return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}

    return {"ResultSet": {"Rows": [row(header), *[row(r) for r in rows]]}}


INCIDENT = ["sub-1", "CALL_DROP", "2026-11-25T10:00:00Z", "shard:7", "LDN-0042", None, "VendorA",
            "0.5", "4", "2"]  # fmt: skip


def _stub_setup(stub: Stubber, location: str = PREFIX) -> None:
    stub.add_response(
        "get_table_metadata",
        {"TableMetadata": {"Name": "probes", "Parameters": {"location": location}}},
        {"CatalogName": "AwsDataCatalog", "DatabaseName": "sentimentdb", "TableName": "probes"},
    )
    if location != PREFIX:
        return
    stub.add_response(
        "list_named_queries", {"NamedQueryIds": ["nq-1", "nq-2"]}, {"WorkGroup": WORKGROUP}
    )
    other = {**NAMED, "NamedQueryId": "nq-1", "Name": "cell_priority", "QueryString": "SELECT 1"}
    stub.add_response(
        "batch_get_named_query",
        {"NamedQueries": [other, NAMED], "UnprocessedNamedQueryIds": []},
        {"NamedQueryIds": ["nq-1", "nq-2"]},
    )


def test_every_query_is_the_named_query_with_execution_parameters_as_literals() -> None:
    athena = boto3.client("athena", region_name="eu-west-2")
    stub = Stubber(athena)
    _stub_setup(stub)
    policy = load_policy({"thresholds": {"CALL_DROP": 0.3}})
    expected_count = ["'2026-11-18'", "'2026-11-30'", "60", "60", "360", "360", "'2026-11-25'",
                      "0", "0", "0", "0"]  # fmt: skip
    expected_rows = [*expected_count[:7], "0.3", "0.18", "0.09", "0.11"]
    for execution_id, parameters in (("count", expected_count), ("config-1", expected_rows)):
        stub.add_response(
            "start_query_execution",
            {"QueryExecutionId": execution_id},
            {
                "QueryString": ANY,
                "QueryExecutionContext": {"Catalog": "AwsDataCatalog", "Database": "sentimentdb"},
                "WorkGroup": WORKGROUP,
                "ExecutionParameters": parameters,
            },
        )
    # the count is still running at the first poll, then both have succeeded
    stub.add_response(
        "get_query_execution", _execution("RUNNING", 10**9), {"QueryExecutionId": "count"}
    )
    stub.add_response(
        "get_query_execution", _execution("SUCCEEDED", 3 * 10**9), {"QueryExecutionId": "config-1"}
    )
    stub.add_response(
        "get_query_execution", _execution("SUCCEEDED", 4 * 10**9), {"QueryExecutionId": "count"}
    )
    stub.add_response(
        "get_query_results", _results(["incidents"], [["12"]]), {"QueryExecutionId": "count"}
    )
    stub.add_response(
        "get_query_results",
        _results(list(whatif.INCIDENT_COLUMNS), [INCIDENT]),
        {"QueryExecutionId": "config-1"},
    )  # fmt: skip
    progress = io.StringIO()
    sleeps: list[float] = []
    sent: list[str] = []
    athena.meta.events.register(
        "provide-client-params.athena.StartQueryExecution",
        lambda params, **_: sent.append(params["QueryString"]),
    )
    with stub:
        source = AthenaProbes(
            athena, PREFIX, "2026-11-25", "2026-11-30", WORKGROUP, progress=progress,
            sleep=sleeps.append,
        )  # fmt: skip
        (result,) = run_whatif(source, [Candidate("strict.json", {}, policy)])
        stub.assert_no_pending_responses()
    assert sleeps == [2.0]
    # both queries wrap the named query's text as installed, nothing retyped
    assert sent[0] == f"SELECT COUNT(*) AS incidents FROM (\n{detection_sql()}\n) AS found"
    assert sent[1].startswith("SELECT subscriber_id, event_type,") and detection_sql() in sent[1]
    assert "incidents running | config 1 succeeded | 4.00 GB scanned" in progress.getvalue()
    assert "incidents succeeded | config 1 succeeded | 7.00 GB scanned" in progress.getvalue()
    assert result["incidents"] == 12 and result["calls"] == 1
    assert result["top_cells"] == ["LDN-0042"]
    assert result["athena_query_execution_ids"] == {"incidents": "count", "config 1": "config-1"}
    assert result["athena_data_scanned_bytes"] == 7 * 10**9


def test_queries_sent_to_athena_contain_the_installed_named_query() -> None:
    athena = boto3.client("athena", region_name="eu-west-2")
    stub = Stubber(athena)
    _stub_setup(stub)
    with stub:
        source = AthenaProbes(athena, PREFIX, "2026-11-25", "2026-11-25", WORKGROUP)
    assert source.sql == detection_sql()


def test_a_prefix_that_is_not_the_tables_location_is_refused() -> None:
    athena = boto3.client("athena", region_name="eu-west-2")
    stub = Stubber(athena)
    _stub_setup(stub, location="s3://another-bucket/probes/")
    with stub, pytest.raises(WhatIfError, match=r"is not the archive of sentimentdb\.probes"):
        AthenaProbes(athena, PREFIX, "2026-11-25", "2026-11-25", WORKGROUP)


def test_a_failed_query_names_its_reason() -> None:
    athena = boto3.client("athena", region_name="eu-west-2")
    stub = Stubber(athena)
    _stub_setup(stub)
    for execution_id in ("count", "config-1"):
        stub.add_response("start_query_execution", {"QueryExecutionId": execution_id})
    stub.add_response("get_query_execution", _execution("SUCCEEDED"), {"QueryExecutionId": "count"})
    stub.add_response(
        "get_query_execution",
        _execution("FAILED", reason="Query exhausted resources at this scale factor"),
        {"QueryExecutionId": "config-1"},
    )
    with stub:
        source = AthenaProbes(
            athena, PREFIX, "2026-11-25", "2026-11-25", WORKGROUP, progress=io.StringIO()
        )
        with pytest.raises(WhatIfError, match=r"config 1 .* FAILED: Query exhausted resources"):
            run_whatif(source, [Candidate("a.json", {}, load_policy({}))])


def test_literals_quote_text_and_keep_numbers() -> None:
    from decimal import Decimal

    assert [literal("2026-11-25"), literal(60), literal(Decimal("0.16"))] == [
        "'2026-11-25'",
        "60",
        "0.16",
    ]
    with pytest.raises(TypeError):
        literal(0.16)


def test_the_command_needs_the_period_for_the_archive(tmp_path: Path, capsys) -> None:
    from simulator.cli import main as cli

    code = cli(["whatif", "--probe-export", PREFIX, "--out", str(tmp_path)])
    assert code == 2
    assert "--from YYYY-MM-DD is required" in capsys.readouterr().err
    assert not (tmp_path / "whatif.json").exists()
