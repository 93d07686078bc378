"""Ingest_probe_events under moto with a real Kinesis event shape."""

import base64
import copy
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from feedback_loop.lake import decode_jsonl_gz
from feedback_loop.messages import IncidentMessage, decode
from feedback_loop.policy import Policy
from feedback_loop.rates import STALE_BUCKETS_BEFORE_PRUNE
from ingest_probe_events import app
from tests.integration.conftest import SendFaults, kinesis_retry
from write_incident_to_s3 import app as incident_writer

A, B = "+447700900123", "+447700900456"


def payloads(event) -> list:
    """The decoded probe records of a Kinesis event (None for non-JSON data)."""
    found = []
    for record in event["Records"]:
        try:
            found.append(json.loads(base64.b64decode(record["kinesis"]["data"])))
        except ValueError:
            found.append(None)
    return found


def good_payloads(event) -> list[dict]:
    return [p for p in payloads(event) if p and p["phone_number"].startswith("+44")]


def kinesis_event(template, rows, first_sequence=100):
    """A Kinesis event with ``rows`` as data, shaped like ``template``'s records."""
    base = template["Records"][0]
    records = []
    for index, row in enumerate(rows):
        record = copy.deepcopy(base)
        sequence = str(
            49590338271490256608559692538361571095921575989136580000 + first_sequence + index
        )
        data = row if isinstance(row, str) else json.dumps(row)
        record["kinesis"].update(
            sequenceNumber=sequence,
            partitionKey=row["phone_number"] if isinstance(row, dict) else "x",
            data=base64.b64encode(data.encode()).decode(),
            approximateArrivalTimestamp=base["kinesis"]["approximateArrivalTimestamp"] + index,
        )
        record["eventID"] = f"shardId-000000000000:{sequence}"
        records.append(record)
    return {"Records": records}


class CallCounter:
    """Counts the handler's AWS calls by operation; can fail chosen calls."""

    def __init__(self):
        self.calls: Counter[str] = Counter()
        self.fail_when = None
        deps = app._dependencies()
        for client in (deps.counters._dynamodb, deps.incident_queue._sqs, deps.lake._s3):
            client.meta.events.register("before-parameter-build.*.*", self._before_call)

    def _before_call(self, model, params, **kwargs):
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1
        if self.fail_when and self.fail_when(model.name, params):
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}},
                model.name,
            )


def counters(aws):
    items = aws.dynamodb.scan(TableName="Subscriber_counters")["Items"]
    totals = {}
    for item in items:
        key = (item["PhoneNumber"]["S"], item["Kpi"]["S"])
        sessions = sum(int(v["N"]) for k, v in item.items() if k[0] == "S" and k[1:].isdigit())
        failures = sum(int(v["N"]) for k, v in item.items() if k[0] == "F" and k[1:].isdigit())
        totals[key] = (sessions, failures)
    return totals


def expected_counters(rows):
    totals = defaultdict(lambda: (0, 0))
    for row in rows:
        sessions, failures = totals[(row["phone_number"], row["event_type"])]
        totals[(row["phone_number"], row["event_type"])] = (
            sessions + 1,
            failures + (not row["success"]),
        )
    return dict(totals)


def profile(aws, phone):
    item = aws.dynamodb.get_item(TableName="Subscriber_table", Key={"PhoneNumber": {"S": phone}})
    return item.get("Item")


def test_a_batch_updates_counters_records_incidents_and_rejects_the_bad_record(
    aws, event, lambda_context
):
    # Given a batch of good records for two subscribers and one bad phone number
    batch = event("kinesis_probe_batch.json")
    good = good_payloads(batch)
    calls = CallCounter()

    # When
    response = app.handler(batch, lambda_context)

    # Then the bad record is processed, not failed
    assert response == {"batchItemFailures": []}
    assert counters(aws) == expected_counters(good)

    failed = [row for row in good if not row["success"]]
    for phone in {row["phone_number"] for row in failed}:
        item = profile(aws, phone)
        mine = sorted(row["timestamp"] for row in failed if row["phone_number"] == phone)
        stored = [i["M"]["Timestamp"]["S"] for i in item["NewIncidents"]["L"]]
        assert stored == mine
        assert len(item["SeenIncidents"]["L"]) == len(mine)
        assert item["LastChange"]["S"] == "incident"

    messages = [decode(m["Body"], IncidentMessage) for m in aws.messages("incident_update_queue")]
    assert sorted((m.phone_number, m.timestamp) for m in messages) == sorted(
        (row["phone_number"], row["timestamp"]) for row in failed
    )
    assert all(0 < m.failure_rate <= 1 and m.failures <= m.sessions for m in messages)

    rejected = aws.lake_objects("rejected/")
    assert len(rejected) == 1
    [(key, body)] = rejected.items()
    assert key.startswith("rejected/dt=")
    [line] = decode_jsonl_gz(body)
    assert line["reason"] == "bad_phone_number"
    assert "900789" not in json.dumps(line)

    # DynamoDB writes are per subscriber and KPI (counters) and per subscriber (profile)
    kpis = {(row["phone_number"], row["event_type"]) for row in good}
    subscribers_with_incidents = {row["phone_number"] for row in failed}
    assert calls.calls["dynamodb.UpdateItem"] == len(kpis) + len(subscribers_with_incidents)
    assert calls.calls["dynamodb.UpdateItem"] < len(good)
    assert calls.calls["dynamodb.BatchGetItem"] == 1
    assert calls.calls["sqs.SendMessageBatch"] == 1
    assert calls.calls["s3.PutObject"] == 1


def test_the_failure_rate_of_each_incident_counts_sessions_up_to_it(aws, event, lambda_context):
    batch = event("kinesis_probe_batch.json")
    good = good_payloads(batch)

    app.handler(batch, lambda_context)

    messages = [decode(m["Body"], IncidentMessage) for m in aws.messages("incident_update_queue")]
    for message in messages:
        earlier = [
            row
            for row in good
            if row["phone_number"] == message.phone_number
            and row["event_type"] == message.event_type
            and row["timestamp"] <= message.timestamp
        ]
        assert message.sessions == len(earlier)
        assert message.failures == sum(not row["success"] for row in earlier)


def test_a_replayed_batch_does_not_count_twice(aws, event, lambda_context):
    batch = event("kinesis_probe_batch.json")
    app.handler(batch, lambda_context)
    first_counters = counters(aws)
    first_profile = profile(aws, A)

    response = app.handler(event("kinesis_probe_batch.json"), lambda_context)

    assert response == {"batchItemFailures": []}
    assert counters(aws) == first_counters
    assert profile(aws, A) == first_profile


def test_the_profile_holds_only_the_new_incidents_and_a_capped_memory(
    aws, event, lambda_context, monkeypatch
):
    monkeypatch.setenv("POLICY_JSON", Policy(max_recent_incidents=3).to_json())
    app._dependencies.cache_clear()
    template = event("kinesis_probe_batch.json")
    rows = [
        {
            "timestamp": f"2026-11-25T10:{minute:02d}:00Z",
            "phone_number": A,
            "cell": "LDN-0042",
            "event_type": "CALL_DROP",
            "success": False,
        }
        for minute in range(10)
    ]

    for index in range(0, len(rows), 2):
        app.handler(kinesis_event(template, rows[index : index + 2], index), lambda_context)
        item = profile(aws, A)
        new = [i["M"]["Timestamp"]["S"] for i in item["NewIncidents"]["L"]]
        assert new == [row["timestamp"] for row in rows[index : index + 2]]
        assert len(item["SeenIncidents"]["L"]) == min(3, index + 2)


def test_a_transient_failure_fails_only_that_subscribers_records_and_the_retry_is_exact(
    aws, event, lambda_context
):
    batch = event("kinesis_probe_batch.json")
    good = good_payloads(batch)
    calls = CallCounter()
    calls.fail_when = lambda op, params: (
        op == "UpdateItem"
        and params["TableName"] == "Subscriber_table"
        and params["Key"]["PhoneNumber"]["S"] == B
    )

    response = app.handler(batch, lambda_context)

    b_sequences = [
        r["kinesis"]["sequenceNumber"]
        for r, p in zip(batch["Records"], payloads(batch), strict=True)
        if p and p.get("phone_number") == B
    ]
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(b_sequences)
    assert profile(aws, A) is not None
    assert profile(aws, B) is None
    assert {
        m.phone_number
        for m in map(
            lambda m: decode(m["Body"], IncidentMessage), aws.messages("incident_update_queue")
        )
    } == {A}

    # When Kinesis retries from the lowest failed sequence number
    calls.fail_when = None
    retry = kinesis_retry(batch, b_sequences)
    assert app.handler(retry, lambda_context) == {"batchItemFailures": []}

    # Then nobody's sessions were counted twice and B's incident is recorded
    assert counters(aws) == expected_counters(good)
    assert profile(aws, B)["LastChange"]["S"] == "incident"


def test_rejected_records_are_retried_when_the_lake_is_unavailable(aws, event, lambda_context):
    batch = event("kinesis_probe_batch.json")
    calls = CallCounter()
    calls.fail_when = lambda op, params: op == "PutObject"

    response = app.handler(batch, lambda_context)

    bad = [
        r["kinesis"]["sequenceNumber"]
        for r, p in zip(batch["Records"], payloads(batch), strict=True)
        if not (p and p["phone_number"].startswith("+44"))
    ]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == bad


@pytest.mark.parametrize("data", ["not json", json.dumps({"phone_number": A})])
def test_a_batch_of_only_bad_records_never_fails(aws, event, lambda_context, data):
    batch = kinesis_event(event("kinesis_probe_batch.json"), [data])

    assert app.handler(batch, lambda_context) == {"batchItemFailures": []}
    assert len(aws.lake_objects("rejected/")) == 1


def test_a_retried_batch_overwrites_its_rejects_and_each_names_its_stream_record(
    aws, event, lambda_context
):
    batch = kinesis_event(event("kinesis_probe_batch.json"), ["not json", "{}"])
    expected = {
        f"{r['eventID'].split(':', 1)[0]}:{r['kinesis']['sequenceNumber']}"
        for r in batch["Records"]
    }

    app.handler(batch, lambda_context)
    app.handler(batch, lambda_context)

    objects = aws.lake_objects("rejected/")
    assert len(objects) == 1
    (body,) = objects.values()
    assert {record["record_id"] for record in decode_jsonl_gz(body)} == expected


def _row(moment, success=True, phone=A, kpi="CALL_DROP"):
    return {
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "phone_number": phone,
        "cell": "LDN-0042",
        "event_type": kpi,
        "success": success,
    }


def _counter_item(aws, phone=A, kpi="CALL_DROP"):
    key = {"PhoneNumber": {"S": phone}, "Kpi": {"S": kpi}}
    return aws.dynamodb.get_item(TableName="Subscriber_counters", Key=key)["Item"]


def test_a_batch_spanning_many_buckets_keeps_each_update_expression_small(
    aws, event, lambda_context
):
    template = event("kinesis_probe_batch.json")
    start = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    rows = [_row(start + timedelta(minutes=5 * i), success=i % 3 != 0) for i in range(120)]
    batch = kinesis_event(template, rows)
    for record in batch["Records"]:
        record["kinesis"]["approximateArrivalTimestamp"] = (start + timedelta(hours=10)).timestamp()
    expressions = []
    client = app._dependencies().counters._dynamodb
    client.meta.events.register(
        "before-parameter-build.dynamodb.UpdateItem",
        lambda params, **kwargs: expressions.append(params.get("UpdateExpression", "")),
    )

    assert app.handler(batch, lambda_context) == {"batchItemFailures": []}

    assert max(len(expression) for expression in expressions) < 4096
    # Every session was counted once, and only the last window's buckets are kept.
    messages = [decode(m["Body"], IncidentMessage) for m in aws.messages("incident_update_queue")]
    assert len(messages) == sum(not row["success"] for row in rows)
    assert all(m.sessions <= 12 for m in messages)
    item = _counter_item(aws)
    buckets = [name for name in item if name[0] == "S" and name[1:].isdigit()]
    assert len(buckets) <= 12 + 12 + 1


def test_a_sparse_subscribers_counter_item_stays_bounded(aws, event, lambda_context):
    # Given one session every two hours for four days (never two in one window)
    template = event("kinesis_probe_batch.json")
    start = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    sizes = []
    for index in range(48):
        moment = start + timedelta(hours=2 * index)
        batch = kinesis_event(template, [_row(moment)], first_sequence=index)
        batch["Records"][0]["kinesis"]["approximateArrivalTimestamp"] = moment.timestamp()
        assert app.handler(batch, lambda_context) == {"batchItemFailures": []}
        sizes.append(sum(1 for name in _counter_item(aws) if name[1:].isdigit()))

    # Then leftovers are pruned once more than the tolerated number has built up:
    # without pruning the item would hold one bucket per session (48).
    assert max(sizes) <= STALE_BUCKETS_BEFORE_PRUNE + 1


def _incident_rows(phone: str, minute: int) -> list[dict]:
    """Three sessions of ``phone``, the last one failed: one incident."""
    return [
        {
            "timestamp": f"2026-11-25T10:{minute:02d}:{second:02d}Z",
            "phone_number": phone,
            "cell": "LDN-0042",
            "event_type": "CALL_DROP",
            "success": second != 20,
        }
        for second in (0, 10, 20)
    ]


def test_a_refused_incident_message_fails_only_its_subscribers_records_and_the_retry_sends_it(
    aws, event, lambda_context
):
    # Given SQS refuses the incident message of subscriber A (SendMessageBatch "Failed")
    batch = kinesis_event(
        event("kinesis_probe_batch.json"), _incident_rows(A, 1) + _incident_rows(B, 2)
    )
    faults = SendFaults(app._dependencies().incident_queue._sqs)
    faults.refuse = lambda entry: json.loads(entry["MessageBody"])["phone_number"] == A

    # When
    response = app.handler(batch, lambda_context)

    # Then only A's records are retried; B's incident is on the queue
    a_sequences = [r["kinesis"]["sequenceNumber"] for r in batch["Records"][:3]]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == a_sequences
    sent = [decode(m["Body"], IncidentMessage) for m in aws.messages("incident_update_queue")]
    assert [m.phone_number for m in sent] == [B]

    # When Lambda retries from A's first record with SQS healthy again
    faults.refuse = lambda entry: False
    retry = {"Records": batch["Records"][:3]}
    assert app.handler(retry, lambda_context) == {"batchItemFailures": []}

    # Then A's incident is sent once and A's sessions were counted once
    resent = [decode(m["Body"], IncidentMessage) for m in aws.messages("incident_update_queue")]
    assert [m.phone_number for m in resent] == [A]
    assert counters(aws)[(A, "CALL_DROP")] == (3, 1)


def test_a_failed_send_call_fails_the_subscribers_of_that_call_not_the_rejects(
    aws, event, lambda_context
):
    rows = [*_incident_rows(A, 1), "not json", *_incident_rows(B, 2)]
    batch = kinesis_event(event("kinesis_probe_batch.json"), rows)
    faults = SendFaults(app._dependencies().incident_queue._sqs)
    faults.failing_calls = 1

    response = app.handler(batch, lambda_context)

    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    sequences = [r["kinesis"]["sequenceNumber"] for r in batch["Records"]]
    assert failed == set(sequences) - {sequences[3]}
    assert aws.messages("incident_update_queue") == []
    assert len(aws.lake_objects("rejected/")) == 1


def test_two_failed_sessions_in_one_second_are_two_incidents_in_profile_queue_and_lake(
    aws, event, lambda_context
):
    # Given a redial: two failed CALL_DROP sessions of A in the same second
    rows = [
        {"timestamp": "2026-11-25T10:00:00Z", "phone_number": A, "cell": "LDN-0042",
         "event_type": "CALL_DROP", "success": True},
        {"timestamp": "2026-11-25T10:00:07Z", "phone_number": A, "cell": "LDN-0042",
         "event_type": "CALL_DROP", "success": False},
        {"timestamp": "2026-11-25T10:00:07Z", "phone_number": A, "cell": "LDN-0042",
         "event_type": "CALL_DROP", "success": False},
    ]  # fmt: skip
    batch = kinesis_event(event("kinesis_probe_batch.json"), rows)

    # When ingest runs, and Lambda retries the same batch (redelivery)
    assert app.handler(batch, lambda_context) == {"batchItemFailures": []}
    assert app.handler(copy.deepcopy(batch), lambda_context) == {"batchItemFailures": []}

    # Then the profile has two distinct incidents, recorded once
    item = profile(aws, A)
    profile_ids = [i["M"]["IncidentId"]["S"] for i in item["NewIncidents"]["L"]]
    assert len(profile_ids) == len(set(profile_ids)) == 2
    assert len(item["SeenIncidents"]["L"]) == 2
    # And the queue carries those two (the retry resends them, at least once, identical)
    messages = [m["Body"] for m in aws.messages("incident_update_queue")]
    queued = [decode(body, IncidentMessage) for body in messages]
    assert {m.incident_id for m in queued} == set(profile_ids)
    assert len(set(messages)) == 2
    assert {m.record_id for m in queued} == {r["eventID"] for r in batch["Records"][1:]}
    # And the lake gets both, with the same ids
    sqs_batch = event("sqs_incident_batch.json")
    template = sqs_batch["Records"][0]
    sqs_batch["Records"] = [
        {**copy.deepcopy(template), "messageId": f"m{n}", "body": body}
        for n, body in enumerate(messages)
    ]
    assert incident_writer.handler(sqs_batch, lambda_context) == {"batchItemFailures": []}
    lake = [r for body in aws.lake_objects("incidents/").values() for r in decode_jsonl_gz(body)]
    assert {r["incident_id"] for r in lake} == set(profile_ids)
    assert len({r["record_id"] for r in lake}) == 2
