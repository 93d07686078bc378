"""The bench's time per AWS operation: each call counts once, for itself only, errors too."""

import os
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from moto import mock_aws

from simulator.api_calls import CallTimer

REGION = "eu-west-2"
SLOW = 0.2


@pytest.fixture
def session() -> Iterator[boto3.session.Session]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def _timed(session: boto3.session.Session) -> CallTimer:
    timer = CallTimer()
    timer.watch(session.events)
    return timer


def test_every_operation_is_timed_errors_included(session: boto3.session.Session) -> None:
    timer = _timed(session)
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="timed")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    with pytest.raises(ClientError):
        sqs.get_queue_url(QueueName="absent")

    assert set(timer.seconds) == {"sqs.CreateQueue", "sqs.SendMessage", "sqs.GetQueueUrl"}
    assert all(seconds > 0 for seconds in timer.seconds.values())


def test_a_call_made_while_answering_another_counts_for_itself(
    session: boto3.session.Session,
) -> None:
    timer = _timed(session)

    def slow(model: Any, **_: Any) -> None:
        if model.name == "GetQueueAttributes":
            time.sleep(SLOW)

    def answer_by_calling(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name != "PurgeQueue":
            return None
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        response = AWSResponse("https://test.local/", 200, HTTPHeaders(), None)
        return response, {"ResponseMetadata": {"HTTPStatusCode": 200}}

    # After the timer's start: botocore runs a service's own handlers before these.
    session.events.register("before-call", slow)
    session.events.register_last("before-call", answer_by_calling)
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="nested")["QueueUrl"]
    sqs.purge_queue(QueueUrl=url)

    assert timer.seconds["sqs.GetQueueAttributes"] >= SLOW
    assert timer.seconds["sqs.PurgeQueue"] < SLOW


def test_a_call_whose_answer_raised_leaves_the_next_calls_timed_alone(
    session: boto3.session.Session,
) -> None:
    timer = _timed(session)

    def crash(model: Any, **_: Any) -> None:
        if model.name == "PurgeQueue":
            time.sleep(SLOW)
            raise RuntimeError("sandbox stopped")

    session.events.register("before-call", crash)
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="crash")["QueueUrl"]
    with pytest.raises(RuntimeError):
        sqs.purge_queue(QueueUrl=url)
    sqs.send_message(QueueUrl=url, MessageBody="after")

    assert "sqs.PurgeQueue" not in timer.seconds
    assert 0 < timer.seconds["sqs.SendMessage"] < SLOW
