"""Nobody called twice, no rating counted twice, nothing lost: duplicates, retries, DLQ, redrive.

SQS delivers at least once and Lambda retries, so every test here delivers
the same message more than once (separate invocations, as after a visibility
timeout or a producer retry) and checks what the outside world saw.
"""

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reliability_harness import (
    Estate,
    connect_event,
    handler_module,
    sqs_event,
    sqs_event_from_queue,
    sqs_record,
)

from feedback_loop import calls, ids
from feedback_loop.messages import EngagementMessage, encode
from feedback_loop.policy import Policy
from feedback_loop.sentiment import update_sentiment
from ops.redrive import redrive
from tests.moto_tables import TableStream
from tests.profiles import open_episode_item

TRIGGER = "engagement_trigger_queue.fifo"
DIAL_TIME = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
TRIGGER_DLQ = "engagement_trigger_dlq.fifo"


def _engagement(phone: str, minute: int) -> EngagementMessage:
    incident_time = f"2026-11-25T10:{minute:02d}:03Z"
    incident_id = ids.incident_id(
        phone, "CALL_DROP", incident_time, f"shardId-000000000000:{minute}"
    )
    return EngagementMessage(
        engagement_id=ids.engagement_id(phone, "CALL_DROP", incident_time, incident_id),
        incident_id=incident_id,
        phone_number=phone,
        incident_type="CALL_DROP",
        incident_time=incident_time,
        cell="LDN-0042",
        device="Pixel 8",
        vendor="VendorA",
        failure_rate=0.5,
        threshold=0.16,
        decision="engage",
        reason="above_threshold",
        decided_at=incident_time,
    )


@pytest.fixture
def dialler(estate, monkeypatch):
    """The dialler's clock, in calling hours after every test engagement's gathering delay
    and a minute later at each invocation (so the per-minute pacing budget renews as it
    would between retries), and ``open(message)`` to put the message's episode on its
    subscriber's profile."""
    ticks: Iterator[datetime] = (DIAL_TIME + timedelta(minutes=n) for n in range(10_000))
    monkeypatch.setattr(handler_module("trigger_connect"), "clock", lambda: next(ticks))

    def open_episode(message: EngagementMessage) -> None:
        estate.dynamodb.put_item(TableName="Subscriber_table", Item=open_episode_item(message))

    return open_episode


def _trigger_record(estate: Estate, message: EngagementMessage, receive_count: int = 1) -> dict:
    return sqs_record(
        encode(message),
        estate.queue_arn(TRIGGER),
        group_id=message.phone_number,
        deduplication_id=message.engagement_id,
        receive_count=receive_count,
    )


def _failed_ids(response: dict[str, Any]) -> set[str]:
    return {item["itemIdentifier"] for item in response["batchItemFailures"]}


def _record_duplicates(figures, delivered: list[str], called: list[str], expected: set[str]):
    calls = Counter(called)
    figures.duplicates_injected += len(delivered) - len(set(delivered))
    figures.duplicate_calls_placed += sum(count - 1 for count in calls.values())
    figures.engagements_lost += len(expected - set(calls))


def test_duplicate_deliveries_place_one_call_per_engagement(
    estate, connect_calls, invoke, figures, dialler
):
    engagements = [_engagement(f"+4477009001{n:02d}", n) for n in range(6)]
    for message in engagements:
        dialler(message)
    expected = {message.engagement_id for message in engagements}
    deliveries = [
        engagements,  # first delivery
        engagements[::-1],  # all redelivered, other order (visibility timeout)
        engagements[:3],  # some a third time (producer retry)
    ]
    delivered = []

    for batch in deliveries:
        invoke("trigger_connect", sqs_event([_trigger_record(estate, m) for m in batch]))
        delivered.extend(message.engagement_id for message in batch)

    called = connect_calls.engagement_ids()
    _record_duplicates(figures, delivered, called, expected)
    assert sorted(called) == sorted(expected)
    first_attempts = {calls.client_token(engagement_id, 1) for engagement_id in expected}
    assert {request["ClientToken"] for request in connect_calls.requests} == first_attempts


def test_a_throttled_call_is_retried_and_then_placed_once(
    estate, connect_calls, invoke, figures, dialler
):
    engagements = [_engagement(f"+4477009002{n:02d}", n) for n in range(3)]
    for message in engagements:
        dialler(message)
    expected = {message.engagement_id for message in engagements}
    connect_calls.throttle = True
    first = [_trigger_record(estate, m) for m in engagements]

    response, output = invoke("trigger_connect", sqs_event(first))

    assert _failed_ids(response) == {record["messageId"] for record in first}
    assert output.metric("CallsThrottled") == len(first)
    assert connect_calls.requests == []

    connect_calls.throttle = False
    delivered = [m.engagement_id for m in engagements]
    for attempt in (2, 3):  # after the back-off, and once more (a redelivery)
        retry = [_trigger_record(estate, m, receive_count=attempt) for m in engagements]
        invoke("trigger_connect", sqs_event(retry))
        delivered.extend(m.engagement_id for m in engagements)

    # Only the redelivery is a duplicate; the throttled attempt was not a delivery that called.
    _record_duplicates(
        figures, delivered[len(engagements) :], connect_calls.engagement_ids(), expected
    )
    assert sorted(connect_calls.engagement_ids()) == sorted(expected)


def test_idempotency_records_expire(estate, connect_calls, invoke, dialler):
    message = _engagement("+447700900301", 1)
    dialler(message)
    before = time.time()

    invoke("trigger_connect", sqs_event([_trigger_record(estate, message)]))

    items = estate.dynamodb.scan(TableName="Idempotency_table")["Items"]
    assert len(items) == 1
    expiration = int(items[0]["expiration"]["N"])
    # Longer than a message can wait: 14 days on the FIFO queue plus 14 in its DLQ, whose
    # retention starts again when the message moves there.
    assert before + 28 * 24 * 3600 < expiration <= time.time() + 29 * 24 * 3600
    assert items[0]["status"]["S"] == "COMPLETED"


def _emulate_lambda_on_queue(estate: Estate, invoke, name: str, rounds: int) -> int:
    """Poll ``name`` like the event source mapping; returns the invocations made.

    Failed items are made visible again at once (as if their back-off had passed), so each
    round is one receive; SQS (moto) moves a message to the DLQ once ``maxReceiveCount``
    is exceeded.
    """
    invocations = 0
    for _ in range(rounds):
        messages = estate.sqs.receive_message(
            QueueUrl=estate.queues[name],
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            continue
        event = sqs_event_from_queue(messages, estate.queue_arn(name))
        response, _ = invoke("trigger_connect", event)
        invocations += 1
        failed = _failed_ids(response)
        for message in messages:
            if message["MessageId"] not in failed:
                estate.sqs.delete_message(
                    QueueUrl=estate.queues[name], ReceiptHandle=message["ReceiptHandle"]
                )
            else:
                estate.sqs.change_message_visibility(
                    QueueUrl=estate.queues[name],
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )
    return invocations


def test_dead_lettered_engagements_are_redriven_and_called_exactly_once(
    estate, connect_calls, invoke, figures, dialler
):
    engagements = [_engagement(f"+4477009004{n:02d}", n) for n in range(4)]
    for message in engagements:
        dialler(message)
    expected = {message.engagement_id for message in engagements}
    for message in engagements:
        estate.sqs.send_message(
            QueueUrl=estate.queues[TRIGGER],
            MessageBody=encode(message),
            MessageGroupId=message.phone_number,
            MessageDeduplicationId=message.engagement_id,
        )
    connect_calls.throttle = True

    _emulate_lambda_on_queue(estate, invoke, TRIGGER, rounds=12)

    dead_lettered = estate.depth(TRIGGER_DLQ)
    assert dead_lettered == len(engagements)
    assert estate.depth(TRIGGER) == 0
    figures.dead_lettered += dead_lettered

    connect_calls.throttle = False
    result = redrive(estate.sqs, estate.queues[TRIGGER_DLQ], estate.queues[TRIGGER], wait_seconds=0)
    assert (result.moved, result.failed) == (len(engagements), 0)
    _emulate_lambda_on_queue(estate, invoke, TRIGGER, rounds=3)

    called = connect_calls.engagement_ids()
    figures.redriven += len(set(called) & expected)
    _record_duplicates(figures, [], called, expected)
    assert sorted(called) == sorted(expected)
    # The called engagements wait on the queue for their answers; nothing is dead-lettered.
    assert estate.depth(TRIGGER_DLQ) == 0
    assert estate.depth(TRIGGER) == len(engagements)


def _subscriber(estate: Estate, phone: str) -> None:
    estate.dynamodb.put_item(
        TableName="Subscriber_table",
        Item={
            "PhoneNumber": {"S": phone},
            "LastChange": {"S": "engagement"},
            "Cell": {"S": "LDN-0042"},
            "Device": {"S": "Pixel 8"},
            "Vendor": {"S": "VendorA"},
        },
    )


def _feedback_event(contact_id: str, phone: str, digits: str) -> dict:
    incident_time = "2026-11-25T10:15:03Z"
    incident_id = ids.incident_id(phone, "CALL_DROP", incident_time, "shardId-000000000000:15")
    parameters = {
        "engagement_id": ids.engagement_id(phone, "CALL_DROP", incident_time, incident_id),
        "incident_type": "CALL_DROP",
        "incident_time": incident_time,
        "incident_id": incident_id,
        "cell": "LDN-0042",
        "input": digits,
    }
    return connect_event(parameters, phone_number=phone, contact_id=contact_id)


def test_a_replayed_contact_updates_sentiment_once(estate, invoke, figures):
    phone = "+447700900501"
    _subscriber(estate, phone)
    first_contact, second_contact = str(uuid.uuid4()), str(uuid.uuid4())
    deliveries = [first_contact, first_contact, second_contact, first_contact, second_contact]
    stream = TableStream(estate.dynamodb)
    responses = [
        invoke("collect_feedback_from_connect", _feedback_event(contact, phone, "1"))[0]
        for contact in deliveries
    ]
    invoke("write_feedback_to_s3", stream.changes("feedback"))

    alpha = Policy().sentiment_alpha
    once = update_sentiment(None, 1, alpha)
    twice = update_sentiment(once.sentiment, 1, alpha)
    stored = estate.dynamodb.get_item(
        TableName="Subscriber_table", Key={"PhoneNumber": {"S": phone}}
    )["Item"]
    sentiment_rows = Counter(r["contact_id"] for r in estate.lake_records("sentiment"))
    feedback_rows = Counter(r["contact_id"] for r in estate.lake_records("feedback"))
    # The figures first, so a regression shows in what make test prints, not only here.
    figures.duplicates_injected += len(deliveries) - len(set(deliveries))
    figures.duplicate_updates += sum(count - 1 for count in sentiment_rows.values())
    assert float(stored["Sentiment"]["N"]) == twice.sentiment
    assert {r["result"] for r in responses} == {"recorded"}
    assert sentiment_rows == feedback_rows == Counter({first_contact: 1, second_contact: 1})
