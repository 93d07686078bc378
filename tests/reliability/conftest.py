"""Reliability fixtures: the account under moto, handler invocation, a fake Connect.

Every test here records what it actually saw in ``FIGURES`` (inputs tried,
rejections with their reasons, duplicate deliveries and the calls they caused,
dead-lettered messages and redrives). ``tests/conftest.py`` prints the table at
the end of the session (also in ``make test``); under pytest-xdist each worker
hands its figures to the controller through ``workeroutput``, set here.
"""

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from reliability_harness import (
    CONNECT_INSTANCE_ID,
    CONTACT_FLOW_ID,
    FIGURES,
    PSEUDONYM_KEY,
    REGION,
    SOURCE_PHONE_NUMBER,
    ConnectCalls,
    Estate,
    FakeContext,
    Figures,
    HttpResponse,
    Output,
    fresh_handler_modules,
    handler_of,
    parse_output,
    queue_with_dlq,
)

from tests.moto_tables import create_tables


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["reliability_figures"] = json.dumps(FIGURES.as_dict())


@pytest.fixture
def figures() -> Figures:
    """The session's figures; tests add what they observed."""
    return FIGURES


@pytest.fixture
def estate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    """Tables, queues (each with its DLQ), lake bucket and pseudonym secret; env set."""
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_SERVICE_NAME": "reliability",
        "POWERTOOLS_METRICS_NAMESPACE": "SubscriberFeedbackLoop",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "LOG_LEVEL": "INFO",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_tables(dynamodb)
        sqs = boto3.client("sqs", region_name=REGION)
        queues: dict[str, str] = {}
        for name in ("incident_update_queue", "engagement_update_queue"):
            queues[name], queues[f"{name}_dlq"] = queue_with_dlq(sqs, name)
        queues["engagement_trigger_queue.fifo"], queues["engagement_trigger_dlq.fifo"] = (
            queue_with_dlq(sqs, "engagement_trigger_queue.fifo")
        )
        queues["ingest_failures_dlq"] = sqs.create_queue(QueueName="ingest_failures_dlq")[
            "QueueUrl"
        ]
        s3 = boto3.client("s3", region_name=REGION)
        bucket = "feedback-loop-lake-reliability"
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="pseudonym-key", SecretString=PSEUDONYM_KEY
        )["ARN"]
        for name, value in {
            "SUBSCRIBER_TABLE": "Subscriber_table",
            "COUNTERS_TABLE": "Subscriber_counters",
            "IDEMPOTENCY_TABLE": "Idempotency_table",
            "CONTACT_STATE_TABLE": "Contact_state",
            "INCIDENT_QUEUE_URL": queues["incident_update_queue"],
            "ENGAGEMENT_UPDATE_QUEUE_URL": queues["engagement_update_queue"],
            "ENGAGEMENT_TRIGGER_QUEUE_URL": queues["engagement_trigger_queue.fifo"],
            "LAKE_BUCKET": bucket,
            "PSEUDONYM_SECRET_ARN": secret_arn,
            "PARALLELIZATION_FACTOR": "10",
            "CONNECT_INSTANCE_ID": CONNECT_INSTANCE_ID,
            "CONTACT_FLOW_ID": CONTACT_FLOW_ID,
            "SOURCE_PHONE_NUMBER": SOURCE_PHONE_NUMBER,
            "POLICY_JSON": json.dumps({"min_sessions": 1, "quiet_hours": None}),
        }.items():
            monkeypatch.setenv(name, value)
        fresh_handler_modules()
        yield Estate(
            dynamodb=dynamodb,
            sqs=sqs,
            s3=s3,
            bucket=bucket,
            queues=queues,
        )
        fresh_handler_modules()


@pytest.fixture
def invoke(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., tuple[Any, Output]]]:
    """Invoke a handler and parse what it printed (logs and metrics) into an ``Output``.

    The shared Powertools logger was bound to whatever stdout existed when it
    was imported; it is pointed at the captured stdout for the test.
    """
    from feedback_loop.observability import logger, metrics

    if not metrics.provider.namespace:
        monkeypatch.setattr(metrics.provider, "namespace", "SubscriberFeedbackLoop")

    handler = logger.registered_handler
    previous = handler.stream

    def _invoke(package: str, event: dict[str, Any]) -> tuple[Any, Output]:
        capsys.readouterr()
        handler.stream = sys.stdout
        response = handler_of(package)(event, FakeContext(function_name=package))
        return response, parse_output(capsys.readouterr().out)

    yield _invoke
    handler.stream = previous


@pytest.fixture
def connect_calls(estate: Estate) -> Iterator[ConnectCalls]:
    """Answer ``StartOutboundVoiceContact`` in place of Amazon Connect and record each call.

    A ``before-call`` hook on the default boto3 session (inherited by the
    ``connect`` client the handler creates at cold start) returns the response,
    so the handler code runs unchanged and the request never leaves the process.
    """
    calls = ConnectCalls()

    def answer(model: Any, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        request = json.loads(params["body"])
        if calls.throttle:
            error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
            return HttpResponse(429), {**error, "ResponseMetadata": {"HTTPStatusCode": 429}}
        calls.requests.append(request)
        return HttpResponse(200), {"ContactId": str(uuid.uuid4())}

    events = boto3._get_default_session().events
    events.register("before-call.connect.StartOutboundVoiceContact", answer)
    yield calls
    events.unregister("before-call.connect.StartOutboundVoiceContact", answer)
