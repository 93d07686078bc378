"""Trigger_Connect under moto: who gets called, once, in order, and what is retried.

moto does not implement StartOutboundVoiceContact, so a fake Connect answers
through botocore's before-call hook on the handler's own client.
"""

import copy
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from feedback_loop.dial import backoff_seconds
from feedback_loop.messages import EngagementMessage, decode
from feedback_loop.observability import metrics
from tests.integration.conftest import SendFaults
from tests.moto_tables import create_tables
from trigger_connect import app

EVENT = json.loads(
    (Path(__file__).parents[1] / "events" / "sqs_fifo_engagement_trigger.json").read_text()
)
REGION = "eu-west-2"
OPERATION = "connect.StartOutboundVoiceContact"


@dataclass
class LambdaContext:
    function_name: str = "Trigger_Connect"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:Trigger_Connect"
    aws_request_id: str = "6f2a4b1e-2f0c-4f57-9c1a-3f1f4d3b2a10"
    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class FakeConnect:
    """Records every StartOutboundVoiceContact attempt; fails the numbers told to.

    Also records the dialler's ChangeMessageVisibility calls (the event's receipt handles
    are not moto's, so they are answered here): receipt handle → seconds hidden.
    """

    def __init__(self, client, sqs):
        self.attempts: list[dict] = []
        self.started: list[dict] = []
        self.fail_with: dict[str, str] = {}
        self.hidden: dict[str, int] = {}
        sqs.meta.events.register("before-call.sqs.ChangeMessageVisibility", self._change_visibility)
        client.meta.events.register(f"before-parameter-build.{OPERATION}", self._capture)
        client.meta.events.register(f"before-call.{OPERATION}", self._respond)

    def _change_visibility(self, params, **kwargs):
        body = json.loads(params["body"])
        self.hidden[body["ReceiptHandle"]] = body["VisibilityTimeout"]
        return AWSResponse(None, 200, {}, None), {}

    def _capture(self, params, **kwargs):
        self.attempts.append(copy.deepcopy(params))

    def _respond(self, **kwargs):
        request = self.attempts[-1]
        code = self.fail_with.get(request["DestinationPhoneNumber"])
        if code:
            error = {"Error": {"Code": code, "Message": "fake"}, "ResponseMetadata": {}}
            return AWSResponse(None, 400, {}, None), error
        self.started.append(request)
        return AWSResponse(None, 200, {}, None), {"ContactId": str(uuid.uuid4())}


@pytest.fixture
def env(monkeypatch):
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "Trigger_Connect",
        "POWERTOOLS_METRICS_NAMESPACE": "SubscriberFeedbackLoop",
        "AWS_LAMBDA_FUNCTION_NAME": "Trigger_Connect",
        "CONNECT_INSTANCE_ID": "9308c2a1-9bc6-4cea-8290-6c0b4a6d38fa",
        "CONTACT_FLOW_ID": "c1f3a7e2-5b4d-4e8f-9a0b-1c2d3e4f5a6b",
        "SOURCE_PHONE_NUMBER": "+442079460000",
        "IDEMPOTENCY_TABLE": "Idempotency_table",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(metrics, "namespace", "SubscriberFeedbackLoop")


@pytest.fixture
def connect(env, monkeypatch):
    with mock_aws():
        create_tables(boto3.client("dynamodb"), "Idempotency_table")
        sqs = boto3.client("sqs")
        for name, variable in (
            ("engagement_trigger_queue.fifo", "ENGAGEMENT_TRIGGER_QUEUE_URL"),
            ("engagement_update_queue", "ENGAGEMENT_UPDATE_QUEUE_URL"),
        ):
            attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            monkeypatch.setenv(variable, url)
        app._dependencies.cache_clear()
        deps = app._dependencies()
        yield FakeConnect(deps.calls._connect, deps.triggers._sqs)
        app._dependencies.cache_clear()


def _event(*records):
    return {"Records": [copy.deepcopy(record) for record in records]}


def _invoke(event, remaining_ms: int = 30_000):
    return app.handler(event, LambdaContext(remaining_ms=remaining_ms))


def _failed_engagements() -> list[EngagementMessage]:
    url = app._dependencies().ports.updates.url
    messages = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [decode(m["Body"], EngagementMessage) for m in messages.get("Messages", [])]


def _failed_ids(response):
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def _message(record) -> EngagementMessage:
    return decode(record["body"], EngagementMessage)


RECORDS = EVENT["Records"]


def test_each_engagement_calls_its_subscriber_with_token_and_attributes(connect):
    response = _invoke(_event(*RECORDS))

    assert _failed_ids(response) == []
    messages = [_message(record) for record in RECORDS]
    assert [call["DestinationPhoneNumber"] for call in connect.started] == [
        m.phone_number for m in messages
    ]
    for call, message in zip(connect.started, messages, strict=True):
        assert call["ClientToken"] == message.engagement_id
        assert call["Attributes"] == {
            "engagement_id": message.engagement_id,
            "incident_type": message.incident_type,
            "incident_time": message.incident_time,
            "incident_id": message.incident_id,
            "cell": message.cell,
        }
        centre = app._dependencies().ports.centre
        assert call["InstanceId"] == centre.instance_id
        assert call["ContactFlowId"] == centre.contact_flow_id
        assert call["SourcePhoneNumber"] == centre.source_phone_number


def test_redelivery_in_a_later_invocation_places_one_call(connect):
    record = RECORDS[0]
    redelivered = copy.deepcopy(record)
    redelivered["attributes"]["ApproximateReceiveCount"] = "2"

    first = _invoke(_event(record))
    second = _invoke(_event(redelivered))

    assert _failed_ids(first) == _failed_ids(second) == []
    assert len(connect.attempts) == 1
    assert connect.started[0]["ClientToken"] == _message(record).engagement_id


def test_idempotency_record_outlives_any_redrive_of_the_message(connect):
    before = time.time()

    _invoke(_event(RECORDS[0]))

    [item] = boto3.client("dynamodb").scan(TableName="Idempotency_table")["Items"]
    assert item["status"]["S"] == "COMPLETED"
    ttl = int(item["expiration"]["N"]) - before
    assert app.IDEMPOTENCY_TTL_SECONDS - 5 <= ttl <= app.IDEMPOTENCY_TTL_SECONDS + 5


def test_same_engagement_twice_in_one_batch_places_one_call(connect):
    duplicate = copy.deepcopy(RECORDS[0])
    duplicate["messageId"] = str(uuid.uuid4())

    response = _invoke(_event(RECORDS[0], duplicate))

    assert _failed_ids(response) == []
    assert [call["ClientToken"] for call in connect.attempts] == [
        _message(RECORDS[0]).engagement_id
    ]


def test_throttling_holds_back_that_subscribers_group_only(connect, capsys):
    throttled_phone = _message(RECORDS[0]).phone_number
    connect.fail_with[throttled_phone] = "ThrottlingException"

    response = _invoke(_event(*RECORDS))

    same_group = [r["messageId"] for r in RECORDS if _message(r).phone_number == throttled_phone]
    assert len(same_group) == 2
    assert _failed_ids(response) == same_group
    assert [call["DestinationPhoneNumber"] for call in connect.started] == [
        _message(r).phone_number for r in RECORDS if r["messageId"] not in same_group
    ]
    assert [call["DestinationPhoneNumber"] for call in connect.attempts].count(throttled_phone) == 1
    assert '"CallsThrottled"' in capsys.readouterr().out
    # The throttled message waits out its back-off; the one behind it waits behind it.
    head, behind = (r for r in RECORDS if r["messageId"] in same_group)
    assert connect.hidden == {
        head["receiptHandle"]: backoff_seconds(1, _message(head).engagement_id)
    }
    assert behind["receiptHandle"] not in connect.hidden


def test_the_back_off_grows_with_each_refusal_up_to_fifteen_minutes(connect):
    record = copy.deepcopy(RECORDS[2])
    connect.fail_with[_message(record).phone_number] = "LimitExceededException"
    waits = []
    for attempt in range(1, 9):
        record["attributes"]["ApproximateReceiveCount"] = str(attempt)
        _invoke(_event(record))
        waits.append(connect.hidden[record["receiptHandle"]])

    assert waits == sorted(waits[:6]) + waits[6:]
    assert 24 <= waits[0] <= 36
    assert all(720 <= wait <= 900 for wait in waits[5:])
    assert connect.started == []


def test_throttled_messages_are_called_in_order_when_retried(connect):
    throttled_phone = _message(RECORDS[0]).phone_number
    connect.fail_with[throttled_phone] = "ThrottlingException"
    first = _invoke(_event(*RECORDS))
    connect.fail_with.clear()

    retried = [r for r in RECORDS if r["messageId"] in _failed_ids(first)]
    second = _invoke(_event(*retried))

    assert _failed_ids(second) == []
    assert [call["ClientToken"] for call in connect.started[-2:]] == [
        _message(r).engagement_id for r in retried
    ]
    assert len(connect.started) == len(RECORDS)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"schema": "engagement", "version": 3}),
        json.dumps({"schema": "engagement", "version": 2, "phone_number": "+447700900999"}),
    ],
)
def test_malformed_message_is_reported_alone(connect, capsys, caplog, body):
    bad = copy.deepcopy(RECORDS[2])
    bad.update(messageId=str(uuid.uuid4()), body=body)
    bad["attributes"]["MessageGroupId"] = "+447700900999"

    response = _invoke(_event(RECORDS[0], bad, RECORDS[2]))

    assert _failed_ids(response) == [bad["messageId"]]
    assert len(connect.started) == 2
    assert [r.message for r in caplog.records if r.levelname == "ERROR"] == [
        "Engagement message rejected"
    ]
    assert '"CallsFailed"' in capsys.readouterr().out


def test_suppressed_decision_on_the_trigger_queue_is_not_called(connect):
    message = json.loads(RECORDS[0]["body"])
    suppressed = copy.deepcopy(RECORDS[0])
    suppressed["body"] = json.dumps({**message, "decision": "suppress", "reason": "cooldown"})

    response = _invoke(_event(suppressed))

    assert _failed_ids(response) == [suppressed["messageId"]]
    assert connect.attempts == []


@pytest.mark.parametrize(
    "code",
    [
        "DestinationNotAllowedException",
        "OutboundContactNotPermittedException",
        "AccessDeniedException",
    ],
)
def test_a_permanent_refusal_is_recorded_once_as_a_failed_engagement_and_not_retried(
    connect, capsys, caplog, code
):
    refused = _message(RECORDS[2]).phone_number
    connect.fail_with[refused] = code

    response = _invoke(_event(*RECORDS))

    assert _failed_ids(response) == []
    assert connect.hidden == {}
    [failed] = _failed_engagements()
    assert (failed.engagement_id, failed.decision, failed.reason) == (
        _message(RECORDS[2]).engagement_id,
        "failed",
        code,
    )
    assert [getattr(r, "reason", None) for r in caplog.records if r.levelname == "ERROR"] == [code]
    assert '"CallsFailed"' in capsys.readouterr().out


def test_a_refusal_that_cannot_be_recorded_is_retried(connect):
    connect.fail_with[_message(RECORDS[2]).phone_number] = "DestinationNotAllowedException"
    SendFaults(app._dependencies().ports.updates._sqs).failing_calls = 1

    response = _invoke(_event(RECORDS[2]))

    assert _failed_ids(response) == [RECORDS[2]["messageId"]]
    assert _failed_engagements() == []


def test_an_unknown_error_is_treated_as_one_that_may_pass(connect):
    connect.fail_with[_message(RECORDS[2]).phone_number] = "SomethingNewException"

    response = _invoke(_event(RECORDS[2]))

    assert _failed_ids(response) == [RECORDS[2]["messageId"]]
    assert RECORDS[2]["receiptHandle"] in connect.hidden
    assert _failed_engagements() == []


def test_the_batch_stops_before_the_function_could_time_out(connect):
    response = _invoke(_event(*RECORDS), remaining_ms=5_000)

    assert sorted(_failed_ids(response)) == sorted(r["messageId"] for r in RECORDS)
    assert connect.attempts == []
    assert set(connect.hidden.values()) == {0}


def test_failed_call_is_not_remembered_as_done(connect):
    phone = _message(RECORDS[2]).phone_number
    connect.fail_with[phone] = "InternalServiceException"
    _invoke(_event(RECORDS[2]))
    connect.fail_with.clear()

    response = _invoke(_event(RECORDS[2]))

    assert _failed_ids(response) == []
    assert [call["DestinationPhoneNumber"] for call in connect.started] == [phone]


def test_a_batch_where_everything_fails_still_answers_with_item_failures(connect):
    for record in RECORDS:
        connect.fail_with[_message(record).phone_number] = "LimitExceededException"

    response = _invoke(_event(*RECORDS))

    assert sorted(_failed_ids(response)) == sorted(r["messageId"] for r in RECORDS)
