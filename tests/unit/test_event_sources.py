"""The event-source emulator against moto, with stand-in functions.

Each test wires one poller to a tiny moto estate and a handler written here, then
checks what Lambda's pollers guarantee: filtering, batching windows, partial batch
failure → redelivery → DLQ, FIFO group order, and bisection of failing stream batches.
"""

import base64
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from simulator.api_calls import ApiError
from simulator.clock import SimClock
from simulator.event_filter import FilterError, matches
from simulator.moto_internals import moto_kinesis_latest, moto_kinesis_trim, moto_queue_depth
from simulator.provision import ACCOUNT_ID, EventSourceSpec, QueueInfo
from simulator.runtime import Invocation
from simulator.sqs_poller import SqsPoller, VisibilityChanges
from simulator.stream_pollers import KinesisPoller

REGION = "eu-west-2"
DDB_PATTERN = {
    "eventName": ["INSERT", "MODIFY"],
    "dynamodb": {"NewImage": {"LastChange": {"S": ["incident"]}}},
}


def _ddb_record(event_name: str, last_change: str | None) -> dict[str, Any]:
    image = {"PhoneNumber": {"S": "+447700900123"}}
    if last_change is not None:
        image["LastChange"] = {"S": last_change}
    return {"eventName": event_name, "dynamodb": {"NewImage": image}}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (_ddb_record("INSERT", "incident"), True),
        (_ddb_record("MODIFY", "incident"), True),
        (_ddb_record("MODIFY", "feedback"), False),
        (_ddb_record("REMOVE", "incident"), False),
        (_ddb_record("MODIFY", None), False),
    ],
)
def test_the_stream_filter_of_read_after_incident(record: dict[str, Any], expected: bool) -> None:
    assert matches(DDB_PATTERN, record) is expected


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"body": {"kpi": [{"prefix": "CALL_"}]}}, {"body": {"kpi": "CALL_DROP"}}, True),
        ({"body": {"kpi": [{"prefix": "CALL_"}]}}, {"body": {"kpi": "LOW_BITRATE"}}, False),
        ({"body": {"rate": [{"numeric": [">", 0.16, "<=", 1]}]}}, {"body": {"rate": 0.2}}, True),
        ({"body": {"rate": [{"numeric": [">", 0.16]}]}}, {"body": {"rate": 0.16}}, False),
        ({"body": {"rate": [{"numeric": [">", 0]}]}}, {"body": {"rate": "1"}}, False),
        ({"body": {"device": [{"exists": False}]}}, {"body": {"cell": "LDN-1"}}, True),
        ({"body": {"device": [{"exists": True}]}}, {"body": {"cell": "LDN-1"}}, False),
        ({"body": {"cell": [{"anything-but": ["LDN-1"]}]}}, {"body": {"cell": "LDN-2"}}, True),
        ({"body": {"cells": ["LDN-2"]}}, {"body": {"cells": ["LDN-1", "LDN-2"]}}, True),
        ({"body": {"ok": [True]}}, {"body": {"ok": 1}}, False),
        ({"body": {"n": [1]}}, {"body": {"n": 1.0}}, True),
        ({"body": {"x": [None]}}, {"body": {"x": None}}, True),
    ],
)
def test_filter_rules(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, event) is expected


def test_an_unknown_filter_operator_is_an_error_not_a_silent_match() -> None:
    with pytest.raises(FilterError, match="wildcard"):
        matches({"body": {"kpi": [{"wildcard": "CALL_*"}]}}, {"body": {"kpi": "CALL_DROP"}})


# --- stand-ins ------------------------------------------------------------------------------


@dataclass
class _Spec:
    name: str = "stand_in"
    arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:stand_in"


@dataclass
class _Function:
    spec: _Spec = field(default_factory=_Spec)


class StandInRuntime:
    """The runtime's interface for pollers, around a plain function; it records every event."""

    region = REGION

    def __init__(self, handler: Callable[[dict[str, Any]], Any]) -> None:
        self.handler = handler
        self.events: list[dict[str, Any]] = []

    def function(self, name: str) -> _Function:
        return _Function()

    def invoke(self, name: str, event: dict[str, Any]) -> Invocation:
        self.events.append(event)
        try:
            return Invocation(self.handler(event), None)
        except Exception as error:
            return Invocation(None, str(error))


def _spec(source_arn: str, **settings: Any) -> EventSourceSpec:
    defaults: dict[str, Any] = {
        "logical_id": "Mapping",
        "function_name": "stand_in",
        "source_arn": source_arn,
        "batch_size": 10,
        "window_seconds": 0,
        "filter_patterns": (),
        "report_item_failures": True,
        "bisect_on_error": False,
        "maximum_retry_attempts": -1,
        "on_failure_arn": None,
        "starting_position": "TRIM_HORIZON",
    }
    return EventSourceSpec(**{**defaults, **settings})


@pytest.fixture
def aws() -> Iterator[None]:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with mock_aws():
        yield


def _queue(sqs: Any, name: str, *, visibility: int = 30, dlq: QueueInfo | None = None,
           max_receive: int = 3) -> QueueInfo:  # fmt: skip
    fifo = name.endswith(".fifo")
    attributes = {"VisibilityTimeout": str(visibility)}
    if fifo:
        attributes.update(FifoQueue="true", ContentBasedDeduplication="true")
    if dlq is not None:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq.arn, "maxReceiveCount": max_receive}
        )
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"
    return QueueInfo("Queue", name, url, arn, fifo, visibility, dlq.arn if dlq else None)


def _bodies(event: dict[str, Any]) -> list[str]:
    return [record["body"] for record in event["Records"]]


def _drain(poller: Any, clock: SimClock, until: float) -> None:
    """Pump, moving the clock through the poller's deadlines up to ``until``."""
    while True:
        while poller.pump():
            pass
        deadline = poller.next_deadline()
        if deadline is None or deadline > until:
            return
        clock.advance_to(deadline)


def test_a_failed_message_comes_back_after_the_visibility_timeout_then_goes_to_the_dlq(
    aws: None,
) -> None:
    # Given a queue (visibility 30 s, maxReceiveCount 3) and a function that fails "bad"
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = _queue(sqs, "work_dlq")
    queue = _queue(sqs, "work", dlq=dlq)
    for body in ("good", "bad"):
        sqs.send_message(QueueUrl=queue.url, MessageBody=body)

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "bad"]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}

    runtime = StandInRuntime(handler)
    clock = SimClock(1_000)
    poller = SqsPoller(_spec(queue.arn), queue, runtime, clock, sqs, moto_queue_depth)

    # When the poller runs before and after the visibility timeout
    _drain(poller, clock, until=1_000 + 29)
    before_timeout = list(runtime.events)
    _drain(poller, clock, until=10_000)

    # Then "bad" is redelivered once per timeout, three receives in all, then dead-lettered
    assert [_bodies(e) for e in before_timeout] == [["good", "bad"]]
    bad_receives = [
        r["attributes"]["ApproximateReceiveCount"]
        for e in runtime.events
        for r in e["Records"]
        if r["body"] == "bad"
    ]
    assert bad_receives == ["1", "2", "3"]
    dead = sqs.receive_message(QueueUrl=dlq.url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == ["bad"]
    assert moto_queue_depth(queue) == 0


def test_a_message_whose_handler_extended_its_visibility_comes_back_when_it_asked(
    aws: None,
) -> None:
    """Back-off by ChangeMessageVisibility: the handler's time wins over the queue's 30 s,
    on the simulated clock."""
    sqs = boto3.client("sqs", region_name=REGION)
    queue = _queue(sqs, "work")
    sqs.send_message(QueueUrl=queue.url, MessageBody="throttled")
    clock = SimClock(1_000)
    visibility = VisibilityChanges(lambda: clock.now)

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        (record,) = event["Records"]
        if len(runtime.events) == 1:
            visibility.change({"ReceiptHandle": record["receiptHandle"], "VisibilityTimeout": 600})
            return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
        return {"batchItemFailures": []}

    runtime = StandInRuntime(handler)
    poller = SqsPoller(
        _spec(queue.arn), queue, runtime, clock, sqs, moto_queue_depth, visibility=visibility
    )

    _drain(poller, clock, until=1_000 + 599)
    assert len(runtime.events) == 1, "not back after the queue's 30 s"
    _drain(poller, clock, until=10_000)

    assert len(runtime.events) == 2
    assert clock.now == 1_600
    assert moto_queue_depth(queue) == 0


def test_a_hold_beyond_twelve_hours_from_the_receive_is_refused_as_sqs_refuses_it(
    aws: None,
) -> None:
    """SQS counts a message's 12 hours of visibility from its receive: a handler asking for
    more gets InvalidParameterValue (and the message comes back on the queue's timeout)."""
    sqs = boto3.client("sqs", region_name=REGION)
    queue = _queue(sqs, "held")
    sqs.send_message(QueueUrl=queue.url, MessageBody="waiting")
    clock = SimClock(1_000)
    visibility = VisibilityChanges(lambda: clock.now)
    answers: list[Any] = []

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        (record,) = event["Records"]
        if answers:
            return {"batchItemFailures": []}
        clock.advance_to(clock.now + 60)  # the handler asks a minute after the receive
        handle = record["receiptHandle"]
        for seconds in (43_200 - 60 + 1, 43_201, -1, 43_200 - 60):
            try:
                answers.append(
                    visibility.change({"ReceiptHandle": handle, "VisibilityTimeout": seconds})
                )
            except ApiError as error:
                answers.append((error.code, error.message))
        answers.append(
            visibility.change_batch(
                {"Entries": [{"Id": "a", "ReceiptHandle": handle, "VisibilityTimeout": 43_200}]}
            )
        )
        return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}

    runtime = StandInRuntime(handler)
    poller = SqsPoller(
        _spec(queue.arn), queue, runtime, clock, sqs, moto_queue_depth, visibility=visibility
    )
    _drain(poller, clock, until=100_000)

    beyond = "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]."
    assert answers[0] == (
        "InvalidParameterValue",
        f"Value 43141 for parameter VisibilityTimeout is invalid. Reason: {beyond}",
    )
    assert answers[1][0] == answers[2][0] == "InvalidParameterValue"
    assert "Must be between 0 and 43200" in answers[1][1]
    assert answers[3] == {}  # exactly the 12 hours: accepted
    assert answers[4]["Successful"] == []
    assert [(f["Id"], f["Code"]) for f in answers[4]["Failed"]] == [("a", "InvalidParameterValue")]
    # Back when the accepted hold asked: 12 hours after the receive.
    assert len(runtime.events) == 2
    assert clock.now == 1_000 + 43_200


def test_sqs_event_records_have_the_lambda_shape(aws: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    queue = _queue(sqs, "shape")
    sqs.send_message(QueueUrl=queue.url, MessageBody='{"a": 1}')
    runtime = StandInRuntime(lambda event: None)
    poller = SqsPoller(_spec(queue.arn), queue, runtime, SimClock(0), sqs, moto_queue_depth)

    poller.pump()

    (record,) = runtime.events[0]["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue.arn
    assert record["awsRegion"] == REGION
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId"} <= set(record["attributes"])
    assert set(record) >= {"messageId", "receiptHandle", "body", "md5OfBody", "messageAttributes"}


def test_the_batching_window_holds_a_small_batch_until_it_closes(aws: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    queue = _queue(sqs, "windowed", visibility=60)
    for n in range(3):
        sqs.send_message(QueueUrl=queue.url, MessageBody=str(n))
    runtime = StandInRuntime(lambda event: None)
    clock = SimClock(500)
    spec = _spec(queue.arn, batch_size=100, window_seconds=10)
    poller = SqsPoller(spec, queue, runtime, clock, sqs, moto_queue_depth)

    poller.pump()
    clock.advance_to(509)
    poller.pump()
    held = len(runtime.events)
    clock.advance_to(510)
    poller.pump()

    assert held == 0
    assert [sorted(_bodies(e)) for e in runtime.events] == [["0", "1", "2"]]


def test_fifo_groups_are_delivered_in_order_and_a_failed_group_waits(aws: None) -> None:
    # Given two message groups and a function that fails g1's first message once
    sqs = boto3.client("sqs", region_name=REGION)
    queue = _queue(sqs, "calls.fifo", visibility=30)
    for group, body in [("g1", "a1"), ("g2", "b1"), ("g1", "a2"), ("g2", "b2"), ("g1", "a3")]:
        sqs.send_message(QueueUrl=queue.url, MessageBody=body, MessageGroupId=group)
    processed: list[str] = []
    failed_once: set[str] = set()

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        failures: list[str] = []
        for record in event["Records"]:
            body = record["body"]
            group_failed = any(
                r["attributes"]["MessageGroupId"] == record["attributes"]["MessageGroupId"]
                and r["messageId"] in failures
                for r in event["Records"]
            )
            if group_failed or (body == "a1" and body not in failed_once):
                failed_once.add(body)
                failures.append(record["messageId"])
            else:
                processed.append(body)
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}

    runtime = StandInRuntime(handler)
    clock = SimClock(0)
    poller = SqsPoller(_spec(queue.arn), queue, runtime, clock, sqs, moto_queue_depth)

    # When the poller runs up to just before the visibility timeout, then past it
    _drain(poller, clock, until=29)
    before = list(processed)
    _drain(poller, clock, until=1_000)

    # Then g2 went on while g1 waited, and every group was processed in send order
    assert before == ["b1", "b2"]
    assert [b for b in processed if b.startswith("a")] == ["a1", "a2", "a3"]
    delivered_a = [b for e in runtime.events for b in _bodies(e) if b.startswith("a")]
    assert delivered_a == ["a1", "a2", "a3", "a1", "a2", "a3"]


def test_a_duplicate_delivery_fault_delivers_a_message_twice(aws: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    queue = _queue(sqs, "dup")
    sqs.send_message(QueueUrl=queue.url, MessageBody="once")
    runtime = StandInRuntime(lambda event: None)
    poller = SqsPoller(
        _spec(queue.arn), queue, runtime, SimClock(0), sqs, moto_queue_depth, lambda: True
    )

    poller.pump()

    assert [_bodies(e) for e in runtime.events] == [["once"], ["once"]]
    assert (
        runtime.events[0]["Records"][0]["messageId"] == runtime.events[1]["Records"][0]["messageId"]
    )


# --- Kinesis ---------------------------------------------------------------------------------


def _stream(kinesis: Any, name: str) -> str:
    kinesis.create_stream(StreamName=name, ShardCount=1)
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/{name}"


def _kinesis_poller(runtime: StandInRuntime, clock: SimClock, spec: EventSourceSpec,
                    name: str) -> KinesisPoller:  # fmt: skip
    return KinesisPoller(
        spec,
        runtime,  # type: ignore[arg-type]
        clock,
        boto3.client("sqs", region_name=REGION),
        boto3.client("kinesis", region_name=REGION),
        name,
        moto_kinesis_latest(REGION),
        moto_kinesis_trim(REGION),
    )


def _datas(event: dict[str, Any]) -> list[str]:
    return [base64.b64decode(r["kinesis"]["data"]).decode() for r in event["Records"]]


def test_a_poison_record_is_bisected_out_retried_then_sent_to_the_on_failure_queue(
    aws: None,
) -> None:
    # Given a stream of eight records, one of which always crashes the function
    kinesis = boto3.client("kinesis", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    arn = _stream(kinesis, "probes")
    on_failure = _queue(sqs, "ingest_failures")
    for n in range(8):
        kinesis.put_record(StreamName="probes", Data=f"r{n}".encode(), PartitionKey="k")
    handled: list[str] = []

    def handler(event: dict[str, Any]) -> None:
        datas = _datas(event)
        if "r5" in datas:
            raise ValueError("poison")
        handled.extend(datas)

    runtime = StandInRuntime(handler)
    spec = _spec(
        arn, batch_size=100, bisect_on_error=True, maximum_retry_attempts=2,
        on_failure_arn=on_failure.arn, report_item_failures=False,
    )  # fmt: skip
    poller = _kinesis_poller(runtime, SimClock(0), spec, "probes")

    # When the poller runs
    poller.pump()

    # Then the neighbours were handled, and the poison record alone went to the destination
    assert sorted(handled) == sorted(f"r{n}" for n in range(8) if n != 5)
    poison_attempts = [e for e in runtime.events if _datas(e) == ["r5"]]
    assert len(poison_attempts) == 1 + 2
    (message,) = sqs.receive_message(QueueUrl=on_failure.url).get("Messages", [])
    info = json.loads(message["Body"])["KinesisBatchInfo"]
    assert info["batchSize"] == 1
    assert info["streamArn"] == arn
    assert json.loads(message["Body"])["requestContext"]["condition"] == "RetryAttemptsExhausted"


def test_a_partial_stream_failure_retries_from_the_failed_record(aws: None) -> None:
    kinesis = boto3.client("kinesis", region_name=REGION)
    arn = _stream(kinesis, "probes")
    for n in range(5):
        kinesis.put_record(StreamName="probes", Data=f"r{n}".encode(), PartitionKey="k")
    failed_once: set[str] = set()

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        for record in event["Records"]:
            data = base64.b64decode(record["kinesis"]["data"]).decode()
            if data == "r2" and data not in failed_once:
                failed_once.add(data)
                sequence = record["kinesis"]["sequenceNumber"]
                return {"batchItemFailures": [{"itemIdentifier": sequence}]}
        return {"batchItemFailures": []}

    runtime = StandInRuntime(handler)
    poller = _kinesis_poller(runtime, SimClock(0), _spec(arn, batch_size=100), "probes")

    poller.pump()

    assert [_datas(e) for e in runtime.events] == [
        ["r0", "r1", "r2", "r3", "r4"],
        ["r2", "r3", "r4"],
    ]
    record = runtime.events[0]["Records"][0]
    assert record["eventSource"] == "aws:kinesis"
    assert record["eventName"] == "aws:kinesis:record"
    assert record["eventID"].endswith(record["kinesis"]["sequenceNumber"])


def _put_at(kinesis: Any, poller: KinesisPoller, arrivals: list[float]) -> None:
    """Put ``r0``, ``r1``... ahead of time, each arriving (as the twin notes it) at its moment."""
    for n, moment in enumerate(arrivals):
        result = kinesis.put_record(StreamName="probes", Data=f"r{n}".encode(), PartitionKey="k")
        poller.note_arrival(result["ShardId"], result["SequenceNumber"], moment)


def test_records_put_ahead_are_batched_on_their_own_arrival_times(aws: None) -> None:
    # Given records put before they arrive: 100, 101 and 103, then 110 and 111 (window 5 s)
    kinesis = boto3.client("kinesis", region_name=REGION)
    arn = _stream(kinesis, "probes")
    clock = SimClock(90)
    delivered_at: list[float] = []
    runtime = StandInRuntime(lambda event: delivered_at.append(clock.now))
    poller = _kinesis_poller(runtime, clock, _spec(arn, batch_size=100, window_seconds=5), "probes")
    _put_at(kinesis, poller, [100, 101, 103, 110, 111])

    # When the poller runs before the first arrival, then through every deadline
    poller.pump()
    early = list(runtime.events)
    _drain(poller, clock, until=1_000)

    # Then nothing went early, and each window opened at its first record's arrival
    assert early == []
    assert [_datas(e) for e in runtime.events] == [["r0", "r1", "r2"], ["r3", "r4"]]
    assert delivered_at == [105, 115]
    arrivals = [r["kinesis"]["approximateArrivalTimestamp"] for r in runtime.events[0]["Records"]]
    assert arrivals == [100, 101, 103]


def test_a_full_batch_goes_when_its_last_record_arrives_and_the_rest_waits(aws: None) -> None:
    kinesis = boto3.client("kinesis", region_name=REGION)
    arn = _stream(kinesis, "probes")
    clock = SimClock(0)
    delivered_at: list[float] = []
    runtime = StandInRuntime(lambda event: delivered_at.append(clock.now))
    poller = _kinesis_poller(runtime, clock, _spec(arn, batch_size=2, window_seconds=60), "probes")
    _put_at(kinesis, poller, [100, 101, 102])

    _drain(poller, clock, until=1_000)

    assert [_datas(e) for e in runtime.events] == [["r0", "r1"], ["r2"]]
    assert delivered_at == [101, 162]


def test_records_left_over_from_a_closed_window_go_at_once(aws: None) -> None:
    kinesis = boto3.client("kinesis", region_name=REGION)
    arn = _stream(kinesis, "probes")
    clock = SimClock(0)
    delivered_at: list[float] = []
    runtime = StandInRuntime(lambda event: delivered_at.append(clock.now))
    poller = _kinesis_poller(runtime, clock, _spec(arn, batch_size=2, window_seconds=5), "probes")
    clock.advance_to(200)  # the poller comes late: every record has long arrived
    _put_at(kinesis, poller, [100, 100, 100, 130])

    _drain(poller, clock, until=1_000)

    assert [_datas(e) for e in runtime.events] == [["r0", "r1"], ["r2"], ["r3"]]
    assert delivered_at == [200, 200, 200]


def test_a_fifo_queue_counts_no_message_behind_an_in_flight_one_of_its_group(aws: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    queue = _queue(sqs, "calls.fifo")
    for group, body in [("g1", "a1"), ("g1", "a2"), ("g2", "b1")]:
        sqs.send_message(QueueUrl=queue.url, MessageBody=body, MessageGroupId=group)
    before = moto_queue_depth(queue)

    (message,) = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=1)["Messages"]

    assert (before, message["Body"], moto_queue_depth(queue)) == (3, "a1", 1)
