"""Ingest_probe_events with KPL-aggregated Kinesis records (docs/PRODUCERS.md), under moto.

The aggregates are made by ``aws_kinesis_agg``'s own aggregator, the format the KPL writes,
and delivered in the Kinesis event shape Lambda uses (one record per aggregate).
"""

import base64
import copy
import dataclasses
import hashlib
import json

import pytest
from aws_kinesis_agg import MAGIC
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.messages_pb2 import AggregatedRecord

from feedback_loop.lake import decode_jsonl_gz
from feedback_loop.messages import IncidentMessage, decode
from ingest_probe_events import app
from tests.integration.conftest import kinesis_retry
from tests.integration.test_ingest_probe_events import (
    A,
    B,
    CallCounter,
    counters,
    expected_counters,
    kinesis_event,
    profile,
)
from write_incident_to_s3 import app as incident_writer

SHARD = "shardId-000000000000"
FIRST_SEQUENCE = 49590338271490256608559692538361571095921575989136580000
# The same subscribers again, for the aggregated copy of a batch in the same account.
TWIN = {A: "+447700900223", B: "+447700900556"}
BACK = {twin: phone for phone, twin in TWIN.items()}


@pytest.fixture
def one_batch_per_shard(aws, monkeypatch):
    """Ingest deployed with ``ingest_parallelization_factor: 1``, as KPL aggregation needs
    (docs/PRODUCERS.md): the aggregates below mix partition keys."""
    monkeypatch.setenv("PARALLELIZATION_FACTOR", "1")
    app._dependencies.cache_clear()


def _rows(template) -> list:
    """The fixture batch's records (one with a bad phone number) and a few incidents."""
    rows: list = [
        json.loads(base64.b64decode(record["kinesis"]["data"])) for record in template["Records"]
    ]
    for phone, minute in ((A, 20), (B, 21)):
        rows += [
            {"timestamp": f"2026-11-25T10:{minute:02d}:{second:02d}Z", "phone_number": phone,
             "cell": "LDN-0042", "event_type": "CALL_DROP", "success": second % 20 != 0,
             "device": "Pixel 8", "vendor": "VendorA"}
            for second in range(0, 60, 5)
        ]  # fmt: skip
    return rows


def _kinesis_record(template, offset: int, data: bytes, partition_key: str) -> dict:
    record = copy.deepcopy(template["Records"][0])
    sequence = str(FIRST_SEQUENCE + offset)
    record["kinesis"].update(
        sequenceNumber=sequence,
        partitionKey=partition_key,
        data=base64.b64encode(data).decode(),
        approximateArrivalTimestamp=record["kinesis"]["approximateArrivalTimestamp"] + offset,
    )
    record["eventID"] = f"{SHARD}:{sequence}"
    return record


def _aggregate(rows: list) -> bytes:
    """``rows`` packed into one Kinesis record by the library's aggregator (the KPL format)."""
    packer = RecordAggregator()
    for row in rows:
        data = row if isinstance(row, str) else json.dumps(row)
        key = row["phone_number"] if isinstance(row, dict) else "unknown"
        assert packer.add_user_record(key, data.encode()) is None
    _, _, data = packer.clear_and_get().get_contents()
    return bytes(data)


def aggregated_event(template, groups: list[list], first_offset: int = 100) -> dict:
    """One Kinesis record per group of rows, each a KPL aggregate."""
    return {
        "Records": [
            _kinesis_record(template, first_offset + n, _aggregate(rows), "aggregate")
            for n, rows in enumerate(groups)
        ]
    }


def _twin(row):
    if isinstance(row, dict) and row["phone_number"] in TWIN:
        return {**row, "phone_number": TWIN[row["phone_number"]]}
    return row


def _snapshot(aws, lambda_context, event, phones) -> dict:
    """What one batch left: counters, profiles, queue messages and incidents/ lake records
    (ids and pseudonyms aside, which name the stream position and the subscriber)."""
    messages = aws.messages("incident_update_queue")
    before = set(aws.lake_objects("incidents/"))
    sqs_batch = event("sqs_incident_batch.json")
    template = sqs_batch["Records"][0]
    sqs_batch["Records"] = [
        {**copy.deepcopy(template), "messageId": f"m{n}", "body": m["Body"]}
        for n, m in enumerate(messages)
    ]
    assert incident_writer.handler(sqs_batch, lambda_context) == {"batchItemFailures": []}
    lake = [
        record
        for key, body in aws.lake_objects("incidents/").items()
        if key not in before
        for record in decode_jsonl_gz(body)
    ]
    queued = [decode(m["Body"], IncidentMessage) for m in messages]
    profiles = {}
    for phone in phones:
        item = profile(aws, phone)
        incidents = [
            {k: v for k, v in i["M"].items() if k not in ("IncidentId", "RecordId")}
            for i in item["NewIncidents"]["L"]
        ]
        profiles[BACK.get(phone, phone)] = (incidents, len(item["SeenIncidents"]["L"]))
    unique = {"incident_id", "record_id", "subscriber_id"}
    return {
        "counters": {
            (BACK.get(phone, phone), kpi): value
            for (phone, kpi), value in counters(aws).items()
            if phone in phones
        },
        "profiles": profiles,
        "messages": sorted(
            json.dumps(
                {
                    **dataclasses.asdict(m),
                    "phone_number": BACK.get(m.phone_number, m.phone_number),
                    "incident_id": None,
                    "record_id": None,
                },
                sort_keys=True,
            )
            for m in queued
        ),
        "lake": sorted(
            json.dumps({k: v for k, v in r.items() if k not in unique}, sort_keys=True)
            for r in lake
        ),
        "record_ids": [m.record_id for m in queued],
    }


def test_an_aggregated_batch_is_ingested_exactly_like_the_same_records_sent_plain(
    aws, event, lambda_context, one_batch_per_shard
):
    # Given the same probe records, once one per Kinesis record and once packed by a
    # producer into aggregates of up to 10 (the subscribers renamed, same account)
    template = event("kinesis_probe_batch.json")
    rows = _rows(template)
    plain = kinesis_event(template, rows)
    twins = [_twin(row) for row in rows]
    packed = aggregated_event(template, [twins[i : i + 10] for i in range(0, len(twins), 10)])
    assert len(packed["Records"]) == 4

    # When ingest takes each batch
    assert app.handler(plain, lambda_context) == {"batchItemFailures": []}
    first = _snapshot(aws, lambda_context, event, {A, B})
    rejects_before = set(aws.lake_objects("rejected/"))
    assert app.handler(packed, lambda_context) == {"batchItemFailures": []}
    second = _snapshot(aws, lambda_context, event, set(BACK))

    # Then counters, incidents on the profiles, incident messages and lake records agree
    assert (
        first["counters"]
        == second["counters"]
        == expected_counters([r for r in rows if isinstance(r, dict) and r["phone_number"] in TWIN])
    )
    assert first["profiles"] == second["profiles"]
    assert first["messages"] == second["messages"]
    assert first["lake"] == second["lake"]
    assert len(first["messages"]) >= 4
    # And each probe record of an aggregate has its own id: shard, sequence, sub-sequence
    ids = second["record_ids"]
    assert len(set(ids)) == len(ids)
    positions = {r["eventID"] for r in packed["Records"]}
    assert all(i in positions or i.rsplit(":", 1)[0] in positions for i in ids)
    assert any(i.count(":") == 2 for i in ids)
    # And the bad phone number inside an aggregate is rejected like the plain one
    [body] = [v for k, v in aws.lake_objects("rejected/").items() if k not in rejects_before]
    [reject] = decode_jsonl_gz(body)
    assert reject["reason"] == "bad_phone_number"
    assert reject["record_id"].rsplit(":", 1)[0] in positions


def _framed(body: bytes) -> bytes:
    return MAGIC + body + hashlib.md5(body).digest()


def _bad_index(rows: list) -> bytes:
    """Parses, checksum right, but the second record names a partition key not in the table."""
    packed = AggregatedRecord()
    packed.partition_key_table.append(rows[0]["phone_number"])
    for index, row in enumerate(rows):
        packed.records.add(partition_key_index=index * 7, data=json.dumps(row).encode())
    return _framed(packed.SerializeToString())


MALFORMED = {
    "bad checksum": lambda rows: _aggregate(rows)[:-1] + b"\x00",
    "truncated": lambda rows: _aggregate(rows)[:-40],
    "not protobuf": lambda rows: _framed(b"\x1a\xff\xff\xff\xff\x0f not a protobuf message"),
    "partition key out of range": _bad_index,
}


@pytest.mark.parametrize("damage", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_aggregate_is_one_rejected_record_and_its_neighbours_are_ingested(
    aws, event, lambda_context, damage, one_batch_per_shard
):
    # Given a plain record, a malformed aggregate, and a good aggregate
    template = event("kinesis_probe_batch.json")
    rows = _rows(template)
    good = [r for r in rows if r["phone_number"] in (A, B)]
    lost = [{**r, "phone_number": "+447700900999"} for r in good[:3]]
    batch = {
        "Records": [
            _kinesis_record(template, 1, json.dumps(good[0]).encode(), A),
            _kinesis_record(template, 2, damage(lost), "aggregate"),
            _kinesis_record(template, 3, _aggregate(good[1:]), "aggregate"),
        ]
    }

    # When
    response = app.handler(batch, lambda_context)

    # Then nothing is retried, the neighbours are counted, nothing of the damaged one is
    assert response == {"batchItemFailures": []}
    assert counters(aws) == expected_counters(good)
    # And the damaged Kinesis record is one reject, named by its stream position
    [body] = aws.lake_objects("rejected/").values()
    [reject] = decode_jsonl_gz(body)
    assert reject["record_id"] == batch["Records"][1]["eventID"]
    assert reject["reason"] == "not_json"


def test_a_failure_reports_the_aggregate_once_and_the_retry_counts_each_record_once(
    aws, event, lambda_context, one_batch_per_shard
):
    # Given aggregates mixing both subscribers (more than ten of B's records in one)
    template = event("kinesis_probe_batch.json")
    good = [r for r in _rows(template) if r["phone_number"] in (A, B)]
    groups = [good[:3], good[3:19], good[19:]]
    batch = aggregated_event(template, groups)
    with_b = [
        record["kinesis"]["sequenceNumber"]
        for record, rows in zip(batch["Records"], groups, strict=True)
        if any(r["phone_number"] == B for r in rows)
    ]
    assert len(with_b) == 3
    # And B's profile write fails
    calls = CallCounter()
    calls.fail_when = lambda op, params: (
        op == "UpdateItem"
        and params["TableName"] == "Subscriber_table"
        and params["Key"]["PhoneNumber"]["S"] == B
    )

    # When
    response = app.handler(batch, lambda_context)

    # Then every aggregate holding B's records is reported, once, by its sequence number
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == with_b
    assert profile(aws, B) is None

    # When Lambda retries from the lowest reported sequence number, whole aggregates again
    calls.fail_when = None
    retry = kinesis_retry(batch, with_b)
    assert app.handler(retry, lambda_context) == {"batchItemFailures": []}

    # Then no probe record was counted twice and B's incidents are recorded
    assert counters(aws) == expected_counters(good)
    assert profile(aws, B)["LastChange"]["S"] == "incident"


# --- aggregates carrying other partition keys than their own, with parallel batches -------------


def _kpl_record(template, offset: int, rows: list) -> dict:
    """``rows`` in one Kinesis record as the KPL packs them: each user record keeps its own
    partition key (the phone number), the Kinesis record gets the first one's."""
    packer = RecordAggregator()
    for row in rows:
        assert packer.add_user_record(row["phone_number"], json.dumps(row).encode()) is None
    key, _, data = packer.clear_and_get().get_contents()
    return _kinesis_record(template, offset, bytes(data), key)


def _group_key(phone_number: str) -> str:
    """docs/PRODUCERS.md's key group: derived from the phone number alone."""
    return "g" + hashlib.md5(phone_number.encode()).hexdigest()[:2]


def _group_records(template, rows: list) -> list[dict]:
    """``rows`` as docs/PRODUCERS.md's producer sends them: one aggregator per key group,
    every user record and its aggregate under the group's key."""
    groups: dict[str, RecordAggregator] = {}
    for row in rows:
        key = _group_key(row["phone_number"])
        packer = groups.setdefault(key, RecordAggregator())
        assert packer.add_user_record(key, json.dumps(row).encode()) is None
    records = []
    for offset, packer in enumerate(groups.values(), start=1):
        key, _, data = packer.clear_and_get().get_contents()
        records.append(_kinesis_record(template, offset, bytes(data), key))
    return records


def _unordered_reports(capsys, caplog) -> tuple[list, list]:
    """The batch's ``UnorderedAggregateRecords`` values (EMF on stdout) and its error logs."""
    blobs = [
        blob
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{")
        for blob in (json.loads(line),)
        if "_aws" in blob
    ]
    assert any("ProbeRecords" in blob for blob in blobs), "the batch's metrics were not seen"
    values = [
        blob["UnorderedAggregateRecords"] for blob in blobs if "UnorderedAggregateRecords" in blob
    ]
    return values, [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize(("factor", "reported"), [("10", True), ("1", False)])
def test_kpl_aggregates_mixing_subscribers_are_held_back_when_batches_run_in_parallel(
    aws, event, lambda_context, monkeypatch, capsys, caplog, factor, reported
):
    # Given ingest deployed with this parallelization factor
    monkeypatch.setenv("PARALLELIZATION_FACTOR", factor)
    app._dependencies.cache_clear()
    # And three KPL aggregates: A's first records with B's first ones under A's key, then
    # B's other records under B's key, then A's other records under A's key
    template = event("kinesis_probe_batch.json")
    good = [r for r in _rows(template) if r["phone_number"] in (A, B)]
    a_rows, b_rows = (
        [r for r in good if r["phone_number"] == A],
        [r for r in good if r["phone_number"] == B],
    )
    groups = [a_rows[:4] + b_rows[:5], b_rows[5:], a_rows[4:]]
    batch = {"Records": [_kpl_record(template, n, rows) for n, rows in enumerate(groups, start=1)]}
    assert [r["kinesis"]["partitionKey"] for r in batch["Records"]] == [A, B, A]
    sequences = [r["kinesis"]["sequenceNumber"] for r in batch["Records"]]

    # When
    response = app.handler(batch, lambda_context)

    values, errors = _unordered_reports(capsys, caplog)
    if not reported:
        # Then with one batch per shard in flight the shard's order is kept: every probe
        # record is ingested and nothing is reported
        assert response == {"batchItemFailures": []}
        assert counters(aws) == expected_counters(good)
        assert values == []
        assert errors == []
        return
    # Then B, one of whose records travelled under A's key, is not counted at all: the
    # aggregates holding B's records are reported failed, A's records are counted
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == sequences[:2]
    assert counters(aws) == expected_counters(a_rows)
    assert profile(aws, B) is None
    # And the batch reports the records carried under another subscriber's key, once,
    # naming the fix
    assert values == [[5]]
    [error] = errors
    assert "ingest_parallelization_factor: 1" in error.message
    assert "aggregate per key group" in error.message
    assert (error.records, error.held, error.aggregates) == (5, len(b_rows), 1)
    assert error.first_aggregate == sequences[0]

    # When the operator deploys factor 1 and the parked range is replayed from its first
    # sequence number
    monkeypatch.setenv("PARALLELIZATION_FACTOR", "1")
    app._dependencies.cache_clear()
    assert app.handler(batch, lambda_context) == {"batchItemFailures": []}

    # Then every probe record is counted exactly once and B's incidents are recorded
    assert counters(aws) == expected_counters(good)
    assert profile(aws, B)["LastChange"]["S"] == "incident"


def test_aggregates_per_key_group_are_not_reported_with_parallel_batches(
    aws, event, lambda_context, capsys, caplog
):
    # Given ingest with ten batches per shard (the integration environment's factor)
    # And the probe records aggregated per key group as docs/PRODUCERS.md shows
    template = event("kinesis_probe_batch.json")
    good = [r for r in _rows(template) if r["phone_number"] in (A, B)]
    batch = {"Records": _group_records(template, good)}
    assert len(batch["Records"]) == 2

    # When
    response = app.handler(batch, lambda_context)

    # Then the records are ingested and nothing is reported
    assert response == {"batchItemFailures": []}
    assert counters(aws) == expected_counters(good)
    assert _unordered_reports(capsys, caplog) == ([], [])


# --- a batch larger than one invocation's time ---------------------------------------------------


class ShortContext:
    """A Lambda context whose time runs short after ``calls`` answers of plenty."""

    function_name = "test-function"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-2:123456789012:function:test-function"
    aws_request_id = "0b0a4d1e-5c2a-4e0f-9a57-8d1b2c3d4e5f"

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def get_remaining_time_in_millis(self) -> int:
        self.calls -= 1
        return 250_000 if self.calls >= 0 else 4_000


def test_subscribers_not_reached_in_time_are_retried_and_counted_once(
    aws, event, lambda_context, caplog
):
    # Given a batch of two subscribers' records, interleaved
    template = event("kinesis_probe_batch.json")
    rows = _rows(template)
    a_rows, b_rows = (
        [r for r in rows if r["phone_number"] == A],
        [r for r in rows if r["phone_number"] == B],
    )
    good = [row for pair in zip(a_rows, b_rows, strict=False) for row in pair]
    good += a_rows[len(b_rows) :] + b_rows[len(a_rows) :]
    batch = kinesis_event(template, good)
    first, second = A, B

    # When the invocation's time runs short after the first subscriber
    response = app.handler(batch, ShortContext(calls=1))

    # Then the second subscriber's records are reported failed, the first's counted
    late = [
        r["kinesis"]["sequenceNumber"]
        for r, row in zip(batch["Records"], good, strict=True)
        if row["phone_number"] == second
    ]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == late
    assert counters(aws) == expected_counters([r for r in good if r["phone_number"] == first])
    assert profile(aws, second) is None
    [warning] = [r for r in caplog.records if r.levelname == "WARNING" and "Time" in r.message]
    assert warning.deferred == len(late)

    # When Lambda retries from the lowest failed sequence number
    retry = kinesis_retry(batch, late)
    assert app.handler(retry, lambda_context) == {"batchItemFailures": []}

    # Then every probe record is counted exactly once and the second subscriber's
    # incidents are recorded
    assert counters(aws) == expected_counters(good)
    assert profile(aws, second)["LastChange"]["S"] == "incident"
