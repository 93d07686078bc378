"""Bad-input corpus: every case is sent in a batch between good neighbours.

For each case (``corpus/*.json``) the real handler runs under moto with the
real event shape, and the test checks what an operator relies on: the bad
item is rejected with the reason the corpus names (logged and counted as a
metric), it can be found afterwards (``rejected/`` in the lake, or reported in
``batchItemFailures`` so SQS moves it to the DLQ), and its neighbours were
processed. Nothing is dropped silently.
"""

import base64
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from reliability_harness import (
    PSEUDONYM_KEY,
    connect_event,
    dynamodb_stream_record,
    kinesis_event,
    sqs_event,
    sqs_record,
)

from feedback_loop import ids
from feedback_loop.messages import EngagementMessage, IncidentMessage, encode
from feedback_loop.pseudonym import subscriber_id
from feedback_loop.timeutil import parse_utc
from tests.moto_tables import TableStream

CORPUS = Path(__file__).parent / "corpus"


def _load(name: str) -> tuple[dict[str, Any], list[Any]]:
    data = json.loads((CORPUS / name).read_text(encoding="utf-8"))
    return data, [pytest.param(case, id=case["id"]) for case in data["cases"]]


def _assert_no_phone_numbers_logged(output, *phones: str) -> None:
    """Logs go to CloudWatch with their own retention: they must carry pseudonyms only."""
    text = json.dumps(output.logs, ensure_ascii=False)
    assert not [phone for phone in phones if phone.lstrip("+") in text]


def _record(figures, expect: dict[str, Any], neighbours: int) -> None:
    figures.inputs_tried += 1 + neighbours
    figures.processed += neighbours
    if expect["outcome"] == "rejected":
        figures.rejected_with_reason += 1
        figures.reasons[expect["reason"]] += 1
    else:
        figures.processed += 1


def test_the_corpus_is_large_and_covers_every_entry_point():
    cases = [case for path in CORPUS.glob("*.json") for case in _load(path.name)[0]["cases"]]
    ids = [case["id"] for case in cases]
    assert len(cases) >= 60
    assert len(ids) == len(set(ids))
    assert {case["entry_point"] for case in cases} == {
        "Ingest_probe_events",
        "write_incident_to_S3",
        "Read_after_incident",
        "write_engagement_to_S3",
        "Trigger_Connect",
        "Collect_feedback_from_Connect",
    }
    for case in cases:
        assert case["expect"]["outcome"] in ("rejected", "processed")
        assert case["expect"]["outcome"] == "processed" or case["expect"]["reason"]


# --- Ingest_probe_events (Kinesis) -----------------------------------------------------------

PROBE, PROBE_CASES = _load("probe_events.json")
ARRIVAL = parse_utc(PROBE["reference_time"])
CASE_PHONE = "+447700900123"
RECORD_ID = "shardId-000000000000:49590338271490256608559692538361571095921575989136580000"
NEIGHBOURS = ("+447700900901", "+447700900902")


def _probe_bytes(case: dict[str, Any]) -> bytes:
    if "raw_base64" in case:
        return base64.b64decode(case["raw_base64"])
    if "raw" in case:
        return case["raw"].encode("utf-8")
    value = case["input"]
    if "pad_bytes" in case:
        value = {**value, "padding": "x" * case["pad_bytes"]}
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _failed_session(phone: str) -> bytes:
    record = {
        "timestamp": "2026-11-25T11:30:00Z",
        "phone_number": phone,
        "cell": "LDN-0001",
        "event_type": "CALL_DROP",
        "success": False,
    }
    return json.dumps(record).encode("utf-8")


@pytest.mark.parametrize("case", PROBE_CASES)
def test_probe_record_between_good_neighbours(case, estate, invoke, figures):
    before, after = NEIGHBOURS
    event = kinesis_event(
        [_failed_session(before), _probe_bytes(case), _failed_session(after)], ARRIVAL
    )

    response, output = invoke("ingest_probe_events", event)

    # Nothing is retried: the neighbours went through, a bad record is kept in rejected/.
    assert response["batchItemFailures"] == []
    incidents = [json.loads(m["Body"]) for m in estate.drain("incident_update_queue")]
    assert {before, after} <= {incident["phone_number"] for incident in incidents}
    rejected = estate.lake_records("rejected")
    expect = case["expect"]
    if expect["outcome"] == "rejected":
        kept = [(r["source"], r["reason"]) for r in rejected]
        assert kept == [("probe_events", expect["reason"])]
        assert expect["reason"] in output.reasons()
        assert output.metric("RejectedRecords", reason=expect["reason"]) == 1
        assert CASE_PHONE.lstrip("+") not in json.dumps(rejected, ensure_ascii=False)
    else:
        assert rejected == []
        assert output.reasons() == []
        counters = estate.dynamodb.query(
            TableName="Subscriber_counters",
            KeyConditionExpression="PhoneNumber = :p",
            ExpressionAttributeValues={":p": {"S": CASE_PHONE}},
        )["Items"]
        assert counters, "a processed record must be counted for its subscriber"
    _assert_no_phone_numbers_logged(output, CASE_PHONE, *NEIGHBOURS)
    _record(figures, expect, neighbours=2)


# --- write_incident_to_S3 / write_engagement_to_S3 (SQS standard) -----------------------------


@dataclass(frozen=True)
class LakeQueue:
    corpus: str
    queue: str
    package: str
    prefix: str


LAKE_QUEUES = (
    LakeQueue(
        "incident_update_queue.json", "incident_update_queue", "write_incident_to_s3", "incidents"
    ),
    LakeQueue(
        "engagement_update_queue.json",
        "engagement_update_queue",
        "write_engagement_to_s3",
        "engagement",
    ),
)
LAKE_QUEUE_CASES = [
    pytest.param(spec, case, id=case["id"])
    for spec in LAKE_QUEUES
    for case in _load(spec.corpus)[0]["cases"]
]


def _body(case: dict[str, Any]) -> str:
    return case["raw"] if "raw" in case else json.dumps(case["body"], ensure_ascii=False)


def _neighbour_body(spec: LakeQueue, phone: str) -> str:
    moment = "2026-11-25T11:30:00Z"
    if spec.prefix == "incidents":
        message: Any = IncidentMessage(
            incident_id=ids.incident_id(phone, "CALL_DROP", moment, RECORD_ID),
            phone_number=phone,
            event_type="CALL_DROP",
            timestamp=moment,
            cell="LDN-0001",
            device=None,
            vendor=None,
            failure_rate=0.5,
            sessions=4,
            failures=2,
            window_minutes=60,
            record_id=RECORD_ID,
        )
    else:
        message = _engagement(phone, moment)
    return encode(message)


def _engagement(phone: str, moment: str, decision: str = "engage") -> EngagementMessage:
    incident_id = ids.incident_id(phone, "CALL_DROP", moment, RECORD_ID)
    return EngagementMessage(
        engagement_id=ids.engagement_id(phone, "CALL_DROP", moment, incident_id),
        incident_id=incident_id,
        phone_number=phone,
        incident_type="CALL_DROP",
        incident_time=moment,
        cell="LDN-0001",
        device=None,
        vendor=None,
        failure_rate=0.5,
        threshold=0.16,
        decision=decision,
        reason="above_threshold",
        decided_at=moment,
    )


def _sid(phone: str) -> str:
    return subscriber_id(PSEUDONYM_KEY.encode("utf-8"), phone)


@pytest.mark.parametrize(("spec", "case"), LAKE_QUEUE_CASES)
def test_lake_queue_message_between_good_neighbours(spec, case, estate, invoke, figures):
    arn = estate.queue_arn(spec.queue)
    records = [
        sqs_record(_neighbour_body(spec, NEIGHBOURS[0]), arn),
        sqs_record(_body(case), arn),
        sqs_record(_neighbour_body(spec, NEIGHBOURS[1]), arn),
    ]
    bad_id = records[1]["messageId"]

    response, output = invoke(spec.package, sqs_event(records))

    failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    written = estate.lake_records(spec.prefix)
    assert {_sid(phone) for phone in NEIGHBOURS} <= {r["subscriber_id"] for r in written}
    expect = case["expect"]
    if expect["outcome"] == "rejected":
        # Reported as failed: SQS retries it, then moves it to the queue's DLQ.
        assert failed == [bad_id]
        assert expect["reason"] in output.reasons()
        assert output.metric("RejectedMessages") == 1
        assert len(written) == len(NEIGHBOURS)
    else:
        assert failed == []
        assert output.reasons() == []
        assert _sid(CASE_PHONE) in {r["subscriber_id"] for r in written}
    assert CASE_PHONE not in json.dumps(written)
    _assert_no_phone_numbers_logged(output, CASE_PHONE, *NEIGHBOURS)
    _record(figures, expect, neighbours=2)


# --- Trigger_Connect (SQS FIFO) ------------------------------------------------------------------

TRIGGER, TRIGGER_CASES = _load("engagement_trigger_queue.json")


@pytest.mark.parametrize("case", TRIGGER_CASES)
def test_trigger_message_between_good_neighbours(case, estate, connect_calls, invoke, figures):
    arn = estate.queue_arn("engagement_trigger_queue.fifo")
    neighbours = [_engagement(phone, "2026-11-25T11:30:00Z") for phone in NEIGHBOURS]
    records = [
        sqs_record(encode(m), arn, group_id=m.phone_number, deduplication_id=m.engagement_id)
        for m in neighbours
    ]
    bad = sqs_record(_body(case), arn, group_id=CASE_PHONE)
    records.insert(1, bad)

    response, output = invoke("trigger_connect", sqs_event(records))

    assert [item["itemIdentifier"] for item in response["batchItemFailures"]] == [bad["messageId"]]
    assert sorted(connect_calls.engagement_ids()) == sorted(m.engagement_id for m in neighbours)
    assert case["expect"]["reason"] in output.reasons()
    assert output.metric("CallsFailed") == 1
    _assert_no_phone_numbers_logged(output, CASE_PHONE, *NEIGHBOURS)
    _record(figures, case["expect"], neighbours=2)


# --- Read_after_incident (DynamoDB stream) -------------------------------------------------------

STREAM, STREAM_CASES = _load("subscriber_table_stream.json")


def _neighbour_image(phone: str) -> dict[str, Any]:
    moment = "2026-11-25T11:30:00Z"
    incident = {
        "IncidentId": ids.incident_id(phone, "CALL_DROP", moment, RECORD_ID),
        "RecordId": RECORD_ID,
        "WindowMinutes": 60,
        "EventType": "CALL_DROP",
        "Timestamp": moment,
        "Cell": "LDN-0001",
        "FailureRate": Decimal("0.5"),
        "Sessions": 4,
        "Failures": 2,
    }
    return {"PhoneNumber": phone, "LastChange": "incident", "NewIncidents": [incident]}


def _as_dynamodb_item(item: Any) -> Any:
    """Floats as Decimals, as the DynamoDB serializer requires."""
    return json.loads(json.dumps(item), parse_float=Decimal)


@pytest.mark.parametrize("case", STREAM_CASES)
def test_stream_record_between_good_neighbours(case, estate, invoke, figures):
    if "raw_new_image" in case:
        bad = dynamodb_stream_record(case["raw_new_image"], raw=True, sequence=2)
    else:
        new, old = (case.get(key) for key in ("new_image", "old_image"))
        bad = dynamodb_stream_record(
            _as_dynamodb_item(new) if new is not None else None,
            _as_dynamodb_item(old) if old is not None else None,
            event_name=case.get("event_name", "MODIFY"),
            sequence=2,
        )
    records = [
        dynamodb_stream_record(_neighbour_image(NEIGHBOURS[0]), event_name="INSERT", sequence=1),
        bad,
        dynamodb_stream_record(_neighbour_image(NEIGHBOURS[1]), event_name="INSERT", sequence=3),
    ]

    response, output = invoke("read_after_incident", {"Records": records})

    assert response["batchItemFailures"] == []
    decided = [json.loads(m["Body"]) for m in estate.drain("engagement_update_queue")]
    assert set(NEIGHBOURS) <= {message["phone_number"] for message in decided}
    expect = case["expect"]
    if expect["outcome"] == "rejected":
        # Findable: the log line names the stream record; the item stays in the table.
        logged = [line for line in output.logs if line.get("reason") == expect["reason"]]
        assert [line["sequence"] for line in logged] == [bad["dynamodb"]["SequenceNumber"]]
        assert output.metric("MalformedStreamRecords") == 1
    else:
        assert output.reasons() == []
        own = [m for m in decided if m["phone_number"] == CASE_PHONE]
        assert len(own) == expect.get("decisions", 0)
    _assert_no_phone_numbers_logged(output, CASE_PHONE, *NEIGHBOURS)
    _record(figures, expect, neighbours=2)


# --- Collect_feedback_from_Connect (contact flow) ------------------------------------------------

FEEDBACK, FEEDBACK_CASES = _load("connect_feedback.json")


@pytest.mark.parametrize("case", FEEDBACK_CASES)
def test_contact_flow_invocation_between_good_neighbours(case, estate, invoke, figures):
    """Connect invokes once per contact: the neighbours are the contacts before and after."""
    for phone in (*NEIGHBOURS, CASE_PHONE):
        estate.dynamodb.put_item(
            TableName="Subscriber_table",
            Item={"PhoneNumber": {"S": phone}, "LastChange": {"S": "engagement"}},
        )
    phone = case.get("phone_number", CASE_PHONE)
    neighbour_events = [connect_event(_flow_parameters(p, "2"), phone_number=p) for p in NEIGHBOURS]
    bad = connect_event(case["parameters"], phone_number=phone)
    stream = TableStream(estate.dynamodb)

    responses = []
    for event in (neighbour_events[0], bad, neighbour_events[1]):
        responses.append(invoke("collect_feedback_from_connect", event))
    # The recorded answers reach the lake through the table's stream.
    written, _ = invoke("write_feedback_to_s3", stream.changes("feedback"))
    assert written == {"batchItemFailures": []}

    assert [r["result"] for r, _ in (responses[0], responses[2])] == ["recorded", "recorded"]
    feedback = estate.lake_records("feedback")
    assert {_sid(p) for p in NEIGHBOURS} <= {r["subscriber_id"] for r in feedback}
    response, output = responses[1]
    contact_id = bad["Details"]["ContactData"]["ContactId"]
    own = [r for r in feedback if r["contact_id"] == contact_id]
    expect = case["expect"]
    if expect["outcome"] == "rejected":
        assert response["result"] == "rejected"
        logged = [line for line in output.logs if line.get("reason") == expect["reason"]]
        assert logged and all(line.get("contact_id", contact_id) == contact_id for line in logged)
        assert output.metric("FeedbackRejected") == 1
        assert own == []
    else:
        assert response["result"] == expect["flow_result"]
        assert [r["outcome"] for r in own] == [expect["lake_outcome"]]
        assert [r["rating"] for r in own] == [None]
    assert all(phone_number not in json.dumps(feedback) for phone_number in NEIGHBOURS)
    for _, each in responses:
        _assert_no_phone_numbers_logged(each, CASE_PHONE, *NEIGHBOURS)
    _record(figures, expect, neighbours=2)


def _flow_parameters(phone: str, digits: str) -> dict[str, str]:
    moment = "2026-11-25T11:30:00Z"
    incident_id = ids.incident_id(phone, "CALL_DROP", moment, RECORD_ID)
    return {
        "engagement_id": ids.engagement_id(phone, "CALL_DROP", moment, incident_id),
        "incident_type": "CALL_DROP",
        "incident_time": moment,
        "incident_id": incident_id,
        "cell": "LDN-0001",
        "input": digits,
    }
