"""The bench's time per AWS operation: each call counts once, for itself only, errors too."""

import gc
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from moto import mock_aws

from simulator.api_calls import CallTimer, CallTimes

REGION = "eu-west-2"
# A nested call's sleep: far above a call's own time (about 1 ms) even on a loaded machine;
# with 0.2 s, a purge's own time once passed it in a long-running test worker.
SLOW = 1.0


@pytest.fixture
def session() -> Iterator[boto3.session.Session]:
    """A moto session, with the collector paused: a full collection of a long-running
    worker's heap inside a timed call would be timed too."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    collecting = gc.isenabled()
    gc.disable()
    try:
        with mock_aws():
            yield boto3.session.Session(region_name=REGION)
    finally:
        if collecting:
            gc.enable()


def _watched(timer: CallTimer, events: Any) -> CallTimes:
    times = CallTimes()
    timer.watch(events, times)
    return times


def _on(operation: str, act: Callable[[], Any]) -> Callable[..., Any]:
    """A ``before-call`` handler that acts for ``operation`` only (after the timer's start:
    botocore runs a service's own handlers first, then the generic ones in order)."""

    def handler(model: Any, **_: Any) -> Any:
        return act() if model.name == operation else None

    return handler


def _answered() -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse("https://test.local/", 200, HTTPHeaders(), None), {
        "ResponseMetadata": {"HTTPStatusCode": 200}
    }


def _crash() -> None:
    raise RuntimeError("sandbox stopped")


def test_every_operation_is_timed_error_responses_included(
    session: boto3.session.Session,
) -> None:
    table = _watched(CallTimer(), session.events)
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="timed")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    with pytest.raises(ClientError):
        sqs.get_queue_url(QueueName="absent")

    assert table.calls == {"sqs.CreateQueue": 1, "sqs.SendMessage": 1, "sqs.GetQueueUrl": 1}
    assert all(seconds > 0 for seconds in table.seconds.values())


def test_a_call_that_fails_on_its_way_to_moto_is_timed(session: boto3.session.Session) -> None:
    timer = CallTimer()
    table = _watched(timer, session.events)
    session.events.register("before-send.sqs.SendMessage", lambda **_: _crash())
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="lost")["QueueUrl"]
    with pytest.raises(RuntimeError):
        sqs.send_message(QueueUrl=url, MessageBody="never sent")

    def slow() -> None:
        time.sleep(SLOW)

    session.events.register("before-call", _on("GetQueueAttributes", slow))
    second = session.client("sqs")
    second.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])

    assert table.calls["sqs.SendMessage"] == 1
    assert table.seconds["sqs.SendMessage"] < SLOW  # the later call is not added to it


@pytest.mark.parametrize("a_nested_call_raises_first", [False, True])
def test_a_call_made_while_answering_another_counts_for_itself(
    session: boto3.session.Session, a_nested_call_raises_first: bool
) -> None:
    table = _watched(CallTimer(), session.events)
    session.events.register("before-call", _on("SendMessage", _crash))
    session.events.register("before-call", _on("GetQueueAttributes", lambda: time.sleep(SLOW)))

    def answer_by_calling() -> tuple[AWSResponse, dict[str, Any]]:
        if a_nested_call_raises_first:
            with pytest.raises(RuntimeError):
                sqs.send_message(QueueUrl=url, MessageBody="crashes")
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        return _answered()

    session.events.register_last("before-call", _on("PurgeQueue", answer_by_calling))
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="nested")["QueueUrl"]
    sqs.purge_queue(QueueUrl=url)

    assert "sqs.SendMessage" not in table.calls
    assert table.seconds["sqs.GetQueueAttributes"] >= SLOW
    assert table.seconds["sqs.PurgeQueue"] < SLOW


def test_a_call_of_another_table_made_while_answering_counts_only_there(
    session: boto3.session.Session,
) -> None:
    timer = CallTimer()
    handlers = _watched(timer, session.events)
    own_session = boto3.session.Session(region_name=REGION)
    own = _watched(timer, own_session.events)
    own_session.events.register("before-call", _on("GetQueueAttributes", lambda: time.sleep(SLOW)))
    own_sqs = own_session.client("sqs")
    url = own_sqs.create_queue(QueueName="shared")["QueueUrl"]

    def answer_with_the_twins_client() -> tuple[AWSResponse, dict[str, Any]]:
        own_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        return _answered()

    session.events.register_last("before-call", _on("PurgeQueue", answer_with_the_twins_client))
    session.client("sqs").purge_queue(QueueUrl=url)

    assert own.seconds["sqs.GetQueueAttributes"] >= SLOW
    assert handlers.seconds["sqs.PurgeQueue"] < SLOW
    assert "sqs.GetQueueAttributes" not in handlers.calls
