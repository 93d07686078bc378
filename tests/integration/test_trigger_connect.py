"""Trigger_Connect under moto: who gets called, once, in order, and what waits.

moto does not implement StartOutboundVoiceContact, so a fake Connect answers through
botocore's before-call hook on the handler's own client. Each subscriber of the event
fixture has an open episode on its profile (as Read_after_incident leaves it), and the
clock stands after the gathering delay, in calling hours.
"""

import copy
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from feedback_loop.adapters.dynamodb import from_item
from feedback_loop.dial import Done, backoff_seconds
from feedback_loop.episodes import Episode
from feedback_loop.messages import EngagementMessage, decode
from feedback_loop.observability import metrics
from tests.integration.conftest import SendFaults
from tests.moto_tables import create_tables
from tests.profiles import open_episode_item
from trigger_connect import app

EVENT = json.loads(
    (Path(__file__).parents[1] / "events" / "sqs_fifo_engagement_trigger.json").read_text()
)
REGION = "eu-west-2"
NOW = datetime(2026, 11, 25, 10, 40, tzinfo=UTC)  # after every fixture incident's gathering
ANSWER_WAIT = 15 * 60
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
        "SUBSCRIBER_TABLE": "Subscriber_table",
        "CONTACT_STATE_TABLE": "Contact_state",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(metrics, "namespace", "SubscriberFeedbackLoop")


@pytest.fixture
def connect(env, monkeypatch):
    with mock_aws():
        create_tables(
            boto3.client("dynamodb"), "Idempotency_table", "Subscriber_table", "Contact_state"
        )
        sqs = boto3.client("sqs")
        for name, variable in (
            ("engagement_trigger_queue.fifo", "ENGAGEMENT_TRIGGER_QUEUE_URL"),
            ("engagement_update_queue", "ENGAGEMENT_UPDATE_QUEUE_URL"),
        ):
            attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            monkeypatch.setenv(variable, url)
        monkeypatch.setattr(app, "clock", lambda: NOW)
        app._dependencies.cache_clear()
        deps = app._dependencies()
        for record in RECORDS[:1] + RECORDS[2:]:  # the first message of each subscriber
            _open_episode(decode(record["body"], EngagementMessage))
        yield FakeConnect(deps.calls._connect, deps.triggers._sqs)
        app._dependencies.cache_clear()


def _event(*records):
    return {"Records": [copy.deepcopy(record) for record in records]}


def _invoke(event, remaining_ms: int = 30_000):
    return app.handler(event, LambdaContext(remaining_ms=remaining_ms))


def _lake_steps() -> list[EngagementMessage]:
    url = app._dependencies().ports.updates.url
    messages = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [decode(m["Body"], EngagementMessage) for m in messages.get("Messages", [])]


def _open_episode(message: EngagementMessage, **profile) -> None:
    """The subscriber's profile with the episode the message belongs to, still open."""
    item = open_episode_item(message, **profile)
    boto3.client("dynamodb").put_item(TableName="Subscriber_table", Item=item)


def _episode(phone: str) -> dict:
    item = boto3.client("dynamodb").get_item(
        TableName="Subscriber_table", Key={"PhoneNumber": {"S": phone}}
    )["Item"]
    episode = Episode.from_item(from_item(item)["Episode"], phone)
    return {"Status": episode.status}


def _failed_ids(response):
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def _message(record) -> EngagementMessage:
    return decode(record["body"], EngagementMessage)


RECORDS = EVENT["Records"]


def test_each_subscriber_is_called_once_with_token_and_attributes_and_waits_for_the_answer(
    connect,
):
    response = _invoke(_event(*RECORDS))

    # The two subscribers' first messages are called; the same group's second one waits
    messages = [_message(record) for record in RECORDS]
    called = [messages[0], messages[2]]
    assert [call["DestinationPhoneNumber"] for call in connect.started] == [
        m.phone_number for m in called
    ]
    for call, message in zip(connect.started, called, strict=True):
        assert call["ClientToken"] == f"{message.engagement_id}-1"
        assert call["Attributes"] == {
            "engagement_id": message.engagement_id,
            "incident_type": message.incident_type,
            "incident_time": message.incident_time,
            "incident_id": message.incident_id,
            "incident_types": message.incident_type,
            "cell": message.cell,
            "attempt": "1",
        }
        centre = app._dependencies().ports.centre
        assert call["InstanceId"] == centre.instance_id
        assert call["ContactFlowId"] == centre.contact_flow_id
        assert call["SourcePhoneNumber"] == centre.source_phone_number
        assert _episode(message.phone_number)["Status"] == "contacted"
    # Each called message stays on the queue, hidden while the subscriber answers
    assert sorted(_failed_ids(response)) == sorted(r["messageId"] for r in RECORDS)
    assert connect.hidden == {
        RECORDS[0]["receiptHandle"]: ANSWER_WAIT,
        RECORDS[2]["receiptHandle"]: ANSWER_WAIT,
    }
    assert [(s.decision, s.reason) for s in _lake_steps()] == [("contacted", "voice")] * 2


def test_a_redelivered_message_after_the_call_does_not_call_again(connect):
    record = RECORDS[0]
    redelivered = copy.deepcopy(record)
    redelivered["attributes"]["ApproximateReceiveCount"] = "2"

    _invoke(_event(record))
    _invoke(_event(redelivered))

    assert len(connect.attempts) == 1
    assert connect.started[0]["ClientToken"] == f"{_message(record).engagement_id}-1"


def test_the_answer_closes_the_episode_and_the_message_is_done(connect):
    record = RECORDS[0]
    message = _message(record)
    _invoke(_event(record))
    boto3.client("dynamodb").update_item(
        TableName="Subscriber_table",
        Key={"PhoneNumber": {"S": message.phone_number}},
        UpdateExpression="SET AnsweredEngagement = :e",
        ExpressionAttributeValues={":e": {"S": message.engagement_id}},
    )

    response = _invoke(_event(record))

    assert _failed_ids(response) == []
    assert _episode(message.phone_number)["Status"] == "closed"
    assert [(s.decision, s.reason) for s in _lake_steps()][-1] == ("closed", "answered")


def test_idempotency_records_outlive_any_redrive_of_the_message(connect):
    before = time.time()

    _invoke(_event(RECORDS[0]))

    [item] = boto3.client("dynamodb").scan(TableName="Idempotency_table")["Items"]
    assert item["status"]["S"] == "COMPLETED"
    ttl = int(item["expiration"]["N"]) - before
    assert app.IDEMPOTENCY_TTL_SECONDS - 5 <= ttl <= app.IDEMPOTENCY_TTL_SECONDS + 5


def test_the_same_message_twice_in_one_batch_places_one_call(connect):
    duplicate = copy.deepcopy(RECORDS[0])
    duplicate["messageId"] = str(uuid.uuid4())

    _invoke(_event(RECORDS[0], duplicate))

    assert [call["ClientToken"] for call in connect.attempts] == [
        f"{_message(RECORDS[0]).engagement_id}-1"
    ]


def test_throttling_holds_back_that_subscribers_group_only(connect, capsys):
    throttled_phone = _message(RECORDS[0]).phone_number
    connect.fail_with[throttled_phone] = "ThrottlingException"

    _invoke(_event(*RECORDS))

    assert [call["DestinationPhoneNumber"] for call in connect.started] == [
        _message(RECORDS[2]).phone_number
    ]
    assert [call["DestinationPhoneNumber"] for call in connect.attempts].count(throttled_phone) == 1
    assert '"CallsThrottled"' in capsys.readouterr().out
    # The throttled message waits out its back-off; the one behind it waits behind it.
    head = RECORDS[0]
    assert connect.hidden[head["receiptHandle"]] == backoff_seconds(1, _message(head).engagement_id)
    assert RECORDS[1]["receiptHandle"] not in connect.hidden
    assert _episode(throttled_phone)["Status"] == "open"


def test_the_back_off_grows_with_each_refusal_up_to_fifteen_minutes(connect, monkeypatch):
    record = copy.deepcopy(RECORDS[2])
    connect.fail_with[_message(record).phone_number] = "LimitExceededException"
    waits = []
    for attempt in range(1, 9):
        record["attributes"]["ApproximateReceiveCount"] = str(attempt)
        monkeypatch.setattr(app, "clock", lambda a=attempt: NOW + timedelta(minutes=a))
        _invoke(_event(record))
        waits.append(connect.hidden[record["receiptHandle"]])

    assert waits == sorted(waits[:6]) + waits[6:]
    assert 24 <= waits[0] <= 36
    assert all(720 <= wait <= 900 for wait in waits[5:])
    assert connect.started == []


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
    bad.update(messageId=str(uuid.uuid4()), body=body, receiptHandle="bad-receipt-handle")
    bad["attributes"]["MessageGroupId"] = "+447700900999"

    response = _invoke(_event(RECORDS[0], bad, RECORDS[2]))

    assert bad["messageId"] in _failed_ids(response)
    assert bad["receiptHandle"] not in connect.hidden
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


def test_an_opt_out_pressed_since_the_decision_stops_the_call(connect):
    message = _message(RECORDS[0])
    _open_episode(message, OptedOut=True)

    response = _invoke(_event(RECORDS[0]))

    assert _failed_ids(response) == []
    assert connect.attempts == []
    assert [(s.decision, s.reason) for s in _lake_steps()] == [("suppress", "opted_out")]


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

    response = _invoke(_event(RECORDS[2]))

    assert _failed_ids(response) == []
    assert connect.hidden == {}
    [failed] = _lake_steps()
    assert (failed.engagement_id, failed.decision, failed.reason) == (
        _message(RECORDS[2]).engagement_id,
        "failed",
        code,
    )
    assert _episode(refused)["Status"] == "closed"
    assert [getattr(r, "reason", None) for r in caplog.records if r.levelname == "ERROR"] == [code]
    assert '"CallsFailed"' in capsys.readouterr().out


def test_a_text_refused_for_good_counts_as_a_failed_contact_like_a_call(
    connect, capsys, caplog, monkeypatch
):
    """The dialler closed the episode as failed with the SMS service's code: the handler
    counts it by the recorded verdict, not by a list of Connect's codes."""
    engagement = _message(RECORDS[2]).engagement_id
    refused = Done(engagement, "ConflictException", ("failed", "ConflictException"))
    monkeypatch.setattr(app, "dial", lambda *args: refused)

    response = _invoke(_event(RECORDS[2]))

    assert _failed_ids(response) == []
    errors = [getattr(r, "reason", None) for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["ConflictException"]
    assert '"CallsFailed"' in capsys.readouterr().out


def test_a_step_that_cannot_be_recorded_is_retried(connect):
    connect.fail_with[_message(RECORDS[2]).phone_number] = "DestinationNotAllowedException"
    SendFaults(app._dependencies().ports.updates._sqs).failing_calls = 1

    response = _invoke(_event(RECORDS[2]))

    assert _failed_ids(response) == [RECORDS[2]["messageId"]]
    assert _lake_steps() == []
    assert _episode(_message(RECORDS[2]).phone_number)["Status"] == "open"


def test_an_unknown_error_is_treated_as_one_that_may_pass(connect):
    connect.fail_with[_message(RECORDS[2]).phone_number] = "SomethingNewException"

    response = _invoke(_event(RECORDS[2]))

    assert _failed_ids(response) == [RECORDS[2]["messageId"]]
    assert RECORDS[2]["receiptHandle"] in connect.hidden
    assert _lake_steps() == []


def test_the_batch_stops_before_the_function_could_time_out(connect):
    response = _invoke(_event(*RECORDS), remaining_ms=5_000)

    assert sorted(_failed_ids(response)) == sorted(r["messageId"] for r in RECORDS)
    assert connect.attempts == []
    assert set(connect.hidden.values()) == {0}


def test_a_night_time_message_is_held_until_the_morning(connect, monkeypatch):
    monkeypatch.setattr(app, "clock", lambda: NOW.replace(hour=22, minute=0))

    _invoke(_event(RECORDS[2]))

    assert connect.attempts == []
    assert connect.hidden[RECORDS[2]["receiptHandle"]] == 10 * 3600  # 22:00 → 08:00 UTC
