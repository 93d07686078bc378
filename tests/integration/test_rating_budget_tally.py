"""The rating budget under moto: answers recorded by Collect_feedback_from_Connect reach the
cell's tally through the table's stream (write_feedback_to_S3), once each however often the
stream delivers them, and the next incident on the measured cell is suppressed."""

import copy
import json
from datetime import UTC, datetime

import pytest
from write_feedback_to_s3 import app as writer

from collect_feedback_from_connect import app as collect
from feedback_loop.ids import engagement_id, incident_id
from feedback_loop.messages import EngagementMessage, decode
from read_after_incident import app as read_after
from tests.integration.conftest import load_event
from tests.integration.test_read_after_incident import (
    put_profile,
    stored_incident,
    with_new_incidents,
)
from tests.moto_tables import TableStream

CELL = "LDN-0042"
INCIDENT_TIME = "2026-11-25T09:05:00Z"
# Three ratings measure a cell: at three identical answers the interval's half-width is
# 1.645 * sqrt(2 / 4 / 5) = 0.52 (two give 0.67, but are fewer than min_ratings).
POLICY = {"rating_budget": {"enabled": True, "min_ratings": 3, "half_width": 0.6}}
PHONES = ("+447700900201", "+447700900202", "+447700900203")


@pytest.fixture
def budget(aws, monkeypatch):
    monkeypatch.setenv("POLICY_JSON", json.dumps(POLICY))
    monkeypatch.setattr(collect, "clock", lambda: datetime(2026, 11, 25, 9, 30, tzinfo=UTC))
    for module in (collect, writer, read_after):
        module._dependencies.cache_clear()
    yield aws
    for module in (collect, writer, read_after):
        module._dependencies.cache_clear()


def answer(phone: str, digits: str, lambda_context) -> dict:
    """The contact flow's invocation for the call about the subscriber's incident."""
    event = copy.deepcopy(load_event("connect_contact_flow_event.json"))
    incident = incident_id(phone, "CALL_DROP", INCIDENT_TIME, f"record-{phone}")
    event["Details"]["ContactData"]["ContactId"] = f"contact-{phone}"
    event["Details"]["ContactData"]["CustomerEndpoint"]["Address"] = phone
    event["Details"]["Parameters"].update(
        engagement_id=engagement_id(phone, "CALL_DROP", INCIDENT_TIME, incident),
        incident_type="CALL_DROP",
        incident_time=INCIDENT_TIME,
        incident_id=incident,
        cell=CELL,
        input=digits,
    )
    return collect.handler(event, lambda_context)


def tally(aws) -> dict:
    item = aws.dynamodb.get_item(
        TableName="Contact_state",
        Key={"Key": {"S": f"ratings#{CELL}"}, "Window": {"S": "2026-11-25T00:00:00Z"}},
        ConsistentRead=True,
    ).get("Item", {})
    return {
        name: float(item[name]["N"]) for name in ("Ratings", "Total", "Squares") if name in item
    }


def decide_incident(aws, lambda_context, phone: str, time: str) -> list[tuple[str, str]]:
    """An above-threshold incident of ``phone`` on the cell, decided; the steps sent to the
    lake's queue and the number of contacts queued (each queue's new messages)."""
    template = copy.deepcopy(load_event("dynamodb_stream_incident.json")["Records"][0])
    template["dynamodb"]["Keys"]["PhoneNumber"]["S"] = phone
    template["dynamodb"]["NewImage"]["PhoneNumber"]["S"] = phone
    record = with_new_incidents(template, stored_incident(phone, "CALL_DROP", time, 8, 4))
    put_profile(aws, record)
    assert read_after.handler({"Records": [record]}, lambda_context) == {"batchItemFailures": []}
    steps = [
        (message.decision, message.reason)
        for message in (
            decode(m["Body"], EngagementMessage) for m in aws.messages("engagement_update_queue")
        )
    ]
    return [*steps, ("queued", str(len(aws.messages("engagement_trigger_queue.fifo"))))]


def test_ratings_from_the_feedback_path_measure_the_cell_once_each(budget, lambda_context):
    aws = budget
    for phone in PHONES:
        aws.dynamodb.put_item(
            TableName="Subscriber_table",
            Item={"PhoneNumber": {"S": phone}, "LastChange": {"S": "incident"}},
        )
    stream = TableStream(aws.dynamodb)
    for phone in PHONES[:2]:
        assert answer(phone, "2", lambda_context)["result"] == "recorded"
    first = stream.changes("feedback")
    assert writer.handler(first, lambda_context) == {"batchItemFailures": []}
    # Lambda delivers the same records again (a retry after a timeout, a replay)
    assert writer.handler(first, lambda_context) == {"batchItemFailures": []}
    # a rating 2 from neutral: 0.5 * (-0.5 - 0) = -0.25 each
    assert tally(aws) == {"Ratings": 2, "Total": -0.5, "Squares": 0.125}
    engaged = decide_incident(aws, lambda_context, "+447700900298", "2026-11-25T10:05:00Z")
    assert engaged == [("engage", "above_threshold"), ("queued", "1")]

    # the third answer measures the cell; a retried call of the same contact adds nothing
    assert answer(PHONES[2], "2", lambda_context)["result"] == "recorded"
    assert answer(PHONES[2], "2", lambda_context)["result"] == "recorded"
    assert writer.handler(stream.changes("feedback"), lambda_context) == {"batchItemFailures": []}
    assert tally(aws) == {"Ratings": 3, "Total": -0.75, "Squares": 0.1875}

    # the next incident on the cell: its subscriber is not called, the incident is recorded
    measured = decide_incident(aws, lambda_context, "+447700900299", "2026-11-25T10:06:00Z")
    assert measured == [("suppress", "cell_measured"), ("queued", "0")]


def test_a_batch_reads_the_cells_tally_once_for_all_its_records(budget, lambda_context):
    aws = budget
    cells = read_after._dependencies().cells
    reads: list[tuple[str, datetime]] = []
    original = cells.ratings

    def ratings(cell: str, period: datetime):
        reads.append((cell, period))
        return original(cell, period)

    cells.ratings = ratings
    # Given one batch of three subscribers' first incidents on the same cell and day
    template = load_event("dynamodb_stream_incident.json")["Records"][0]
    records = []
    for n, phone in enumerate(PHONES):
        record = copy.deepcopy(template)
        record["dynamodb"]["Keys"]["PhoneNumber"]["S"] = phone
        record["dynamodb"]["NewImage"]["PhoneNumber"]["S"] = phone
        incident = stored_incident(phone, "CALL_DROP", f"2026-11-25T10:0{n}:00Z", 8, 4)
        records.append(with_new_incidents(record, incident, sequence=f"44440000000000{n:06d}"))
        put_profile(aws, records[-1])

    # When they are decided
    assert read_after.handler({"Records": records}, lambda_context) == {"batchItemFailures": []}

    # Then every one opened an episode, asking the rating budget from a single read
    assert len(aws.messages("engagement_trigger_queue.fifo")) == 3
    assert reads == [(CELL, datetime(2026, 11, 25, tzinfo=UTC))]
