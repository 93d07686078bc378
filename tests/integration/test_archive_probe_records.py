"""Archive_probe_records under moto with Firehose's data-transformation event (Kinesis source)."""

import base64
import json

import pytest
from archive_probe_records import app

from feedback_loop.contract import LAKE_TABLES, PROBE_ARCHIVE
from feedback_loop.pseudonym import subscriber_id


@pytest.fixture
def archive(aws):
    app._pseudonym_key.cache_clear()
    yield aws
    app._pseudonym_key.cache_clear()


def _rows(response):
    return {
        r["recordId"]: json.loads(base64.b64decode(r["data"])) if r["result"] == "Ok" else None
        for r in response["records"]
    }


def test_each_valid_record_becomes_a_pseudonymised_archive_row(archive, event, lambda_context):
    # Given a Firehose batch: a record, a later user record of a KPL aggregate, a bad number
    batch = event("firehose_probe_batch.json")
    ids = [r["recordId"] for r in batch["records"]]
    # When Firehose invokes the transformation
    response = app.handler(batch, lambda_context)
    # Then every record is answered, in order, valid ones Ok with their day as partition key
    assert [r["recordId"] for r in response["records"]] == ids
    assert [r["result"] for r in response["records"]] == ["Ok", "Ok", "Dropped"]
    assert [r["metadata"]["partitionKeys"] for r in response["records"][:2]] == [
        {"dt": "2026-11-25"},
        {"dt": "2026-11-25"},
    ]
    first, second, dropped = _rows(response).values()
    assert dropped is None
    assert list(first) == list(LAKE_TABLES[PROBE_ARCHIVE].column_names)
    sequence = "49590338271490256608559692538361571095921575989136588800"
    assert first == {
        "record_id": f"shardId-000000000000:{sequence}",
        "arrival": "2026-11-25T10:21:10.125Z",
        "subscriber_id": subscriber_id(archive.pseudonym_key, "+447700900123"),
        "timestamp": "2026-11-25T10:01:10Z",
        "timestamp_epoch": 1795600870,
        "cell": "LDN-0042",
        "event_type": "CALL_DROP",
        "success": False,
        "device": "Pixel 8",
        "vendor": "VendorA",
    }
    # the ingest handler's normalisation: UTC timestamp, stripped cell; sub-sequence kept
    assert second["record_id"].endswith(
        ":49590338271490256608559692538361571095921575989136588817:2"
    )
    assert (second["timestamp"], second["cell"]) == ("2026-11-25T09:04:55Z", "LDN-0107")


def test_no_phone_number_reaches_the_archive(archive, event, lambda_context):
    response = app.handler(event("firehose_probe_batch.json"), lambda_context)
    text = json.dumps(_rows(response))
    assert "+4477009" not in text and "7700" not in text.replace("447700", "")


def test_a_timestamp_too_far_from_the_batch_arrival_is_dropped_as_the_ingest_drops_it(
    archive, event, lambda_context
):
    batch = event("firehose_probe_batch.json")
    record = batch["records"][0]
    payload = json.loads(base64.b64decode(record["data"]))
    payload["timestamp"] = "2026-11-27T10:00:00Z"  # more than a day after the arrival
    record["data"] = base64.b64encode(json.dumps(payload).encode()).decode()
    response = app.handler(batch, lambda_context)
    assert response["records"][0]["result"] == "Dropped"


def test_a_missing_secret_fails_the_invocation_so_firehose_retries(
    archive, event, lambda_context, monkeypatch
):
    monkeypatch.setenv(
        "PSEUDONYM_SECRET_ARN", "arn:aws:secretsmanager:eu-west-2:123456789012:secret:gone"
    )
    with pytest.raises(Exception, match="ResourceNotFound"):
        app.handler(event("firehose_probe_batch.json"), lambda_context)
