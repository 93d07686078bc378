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
from pathlib import Path
from typing import Any

import pytest
from reliability_harness import kinesis_event

from feedback_loop.timeutil import parse_utc

CORPUS = Path(__file__).parent / "corpus"


def _load(name: str) -> tuple[dict[str, Any], list[Any]]:
    data = json.loads((CORPUS / name).read_text(encoding="utf-8"))
    return data, [pytest.param(case, id=case["id"]) for case in data["cases"]]


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
    assert {case["entry_point"] for case in cases} >= {"Ingest_probe_events"}
    for case in cases:
        assert case["expect"]["outcome"] in ("rejected", "processed")
        assert case["expect"]["outcome"] == "processed" or case["expect"]["reason"]


# --- Ingest_probe_events (Kinesis) -----------------------------------------------------------

PROBE, PROBE_CASES = _load("probe_events.json")
ARRIVAL = parse_utc(PROBE["reference_time"])
CASE_PHONE = "+447700900123"


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
    before, after = "+447700900901", "+447700900902"
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
    _record(figures, expect, neighbours=2)
