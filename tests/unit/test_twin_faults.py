"""Faults and SDK retries on simulated time, as a handler's boto3 calls meet them in the twin.

The hooks are installed on boto3's default session exactly as the twin does while a
handler runs; the "handler" here is the test itself, on an invocation clock of its own.
"""

import os
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from simulator.api_calls import AwsHooks
from simulator.faults import FaultInjector
from simulator.handler_time import (
    FunctionTimedOut,
    InvocationClock,
    call_seconds,
    is_retryable,
    sdk_attempts,
)
from simulator.scenario import Faults, Outage

REGION = "eu-west-2"
T0 = 1795600000.0


@pytest.fixture
def aws() -> Iterator[None]:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with mock_aws():
        yield
    boto3.DEFAULT_SESSION = None  # the hooks must not outlive the test


def hooked(faults: Faults, timeout: float = 60.0) -> tuple[FaultInjector, InvocationClock]:
    """Hooks as in a running handler whose invocation started at ``T0``."""
    clock = InvocationClock(T0, timeout)
    own = boto3.session.Session(region_name=REGION)
    injector = FaultInjector(faults, seed=3, now=lambda: clock.now, sqs=own.client("sqs"))
    hooks = AwsHooks(REGION, active=lambda: True, spend=clock.spend, seed=3)
    hooks.call_checks.append(injector.call_check)
    hooks.attempt_checks.append(injector.attempt_check)
    hooks.failure_listeners.append(injector.failed)
    hooks.intercept("sqs.SendMessageBatch", injector.partial_batch)
    return injector, clock


def _queue() -> str:
    own = boto3.session.Session(region_name=REGION).client("sqs")
    return own.create_queue(QueueName="incident_update_queue")["QueueUrl"]


def _depth(url: str) -> int:
    own = boto3.session.Session(region_name=REGION).client("sqs")
    attributes = own.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


ENTRIES = [{"Id": str(i), "MessageBody": f'{{"n": {i}}}'} for i in range(10)]


def test_a_send_message_batch_can_come_back_with_failed_entries(aws: None) -> None:
    url = _queue()
    injector, _ = hooked(Faults(sqs_batch_entry_failure_rate=0.5))

    response = boto3.client("sqs").send_message_batch(QueueUrl=url, Entries=ENTRIES)

    failed = {entry["Id"] for entry in response["Failed"]}
    sent = {entry["Id"] for entry in response["Successful"]}
    assert failed and sent and failed | sent == {e["Id"] for e in ENTRIES}
    assert not failed & sent
    assert all(
        e["Code"] == "InternalError" and e["SenderFault"] is False for e in response["Failed"]
    )
    assert _depth(url) == len(sent), "only the accepted entries are on the queue"
    assert injector.injected["sqs_batch_entry_failure"] == len(failed)


def test_a_whole_send_fails_only_when_every_sdk_attempt_fails(aws: None) -> None:
    url = _queue()
    injector, clock = hooked(Faults(sqs_send_error_rate=1.0))

    with pytest.raises(ClientError) as failed:
        boto3.client("sqs").send_message_batch(QueueUrl=url, Entries=ENTRIES)

    attempts = sdk_attempts("sqs")
    assert failed.value.response["Error"]["Code"] in {"InternalFailure", "ServiceUnavailable"}
    assert injector.injected["sqs_send_error"] == attempts
    assert injector.surfaced["sqs_send_error"] == 1
    assert _depth(url) == 0
    assert clock.elapsed > attempts * call_seconds("sqs"), "the SDK's back-off takes time"


def test_a_transient_send_error_is_retried_by_the_sdk(aws: None) -> None:
    url = _queue()
    injector, _ = hooked(Faults(sqs_send_error_rate=0.5))

    for _ in range(8):
        boto3.client("sqs").send_message(QueueUrl=url, MessageBody="{}")

    assert injector.injected["sqs_send_error"] > 0
    assert injector.surfaced["sqs_send_error"] == 0
    assert _depth(url) == 8


def test_secrets_manager_errors_reach_the_handler_after_the_retries(aws: None) -> None:
    own = boto3.session.Session(region_name=REGION).client("secretsmanager")
    arn = own.create_secret(Name="pseudonym", SecretString="k")["ARN"]
    injector, _ = hooked(Faults(secretsmanager_error_rate=1.0))

    with pytest.raises(ClientError) as failed:
        boto3.client("secretsmanager").get_secret_value(SecretId=arn)

    code = failed.value.response["Error"]["Code"]
    assert code in {"InternalServiceError", "ThrottlingException"}
    assert injector.surfaced["secretsmanager_error"] == 1


def test_an_outage_fails_every_attempt_inside_its_window_and_none_after(aws: None) -> None:
    own = boto3.session.Session(region_name=REGION).client("s3")
    own.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": REGION})
    outage = Outage("s3", T0 - 60, T0 + 3600)
    injector, clock = hooked(Faults(outages=(outage,)), timeout=7200)

    with pytest.raises(ClientError) as failed:
        boto3.client("s3").put_object(Bucket="lake", Key="feedback/a", Body=b"x")
    assert failed.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert injector.injected["s3_outage"] == sdk_attempts("s3")

    clock.elapsed = outage.end - T0  # the invocation goes on past the window
    boto3.client("s3").put_object(Bucket="lake", Key="feedback/a", Body=b"x")
    assert own.get_object(Bucket="lake", Key="feedback/a")["Body"].read() == b"x"


def test_the_sdk_back_off_can_outlast_a_short_outage(aws: None) -> None:
    """An outage shorter than the retries is absorbed: later attempts fall after it."""
    own = boto3.session.Session(region_name=REGION).client("s3")
    own.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": REGION})
    injector, clock = hooked(Faults(outages=(Outage("s3", T0 - 1, T0 + 0.3),)))

    boto3.client("s3").put_object(Bucket="lake", Key="feedback/a", Body=b"x")

    assert 0 < injector.injected["s3_outage"] < sdk_attempts("s3")
    assert injector.surfaced == {}
    assert clock.elapsed > 0.3


def test_a_call_that_outlasts_the_function_timeout_stops_the_sandbox(aws: None) -> None:
    own = boto3.session.Session(region_name=REGION).client("s3")
    own.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": REGION})
    hooked(Faults(outages=(Outage("s3", T0, T0 + 3600),)), timeout=1.0)

    with pytest.raises(FunctionTimedOut):
        boto3.client("s3").put_object(Bucket="lake", Key="feedback/a", Body=b"x")


def test_a_connect_throttle_episode_outlasts_the_sdk_retries(aws: None) -> None:
    injector, clock = hooked(Faults(connect_throttle_rate=1.0))

    with pytest.raises(ClientError) as throttled:
        boto3.client("connect").start_outbound_voice_contact(
            DestinationPhoneNumber="+447700900123", ContactFlowId="f", InstanceId="i"
        )

    error = throttled.value.response
    assert error["Error"]["Code"] in {"ThrottlingException", "LimitExceededException"}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert injector.injected["connect_throttle"] == sdk_attempts("connect")
    assert clock.elapsed > 1.0, "throttles are retried with back-off, which costs time"


@pytest.mark.parametrize(
    ("service", "code", "status", "retried"),
    [
        ("s3", "SlowDown", 503, True),
        ("dynamodb", "ProvisionedThroughputExceededException", 400, True),
        ("connect", "LimitExceededException", 429, True),
        ("dynamodb", "ConditionalCheckFailedException", 400, False),
        ("sqs", "AccessDenied", 403, False),
    ],
)
def test_retryable_errors_are_botocores(
    service: str, code: str, status: int, retried: bool
) -> None:
    assert is_retryable(service, code, status) is retried
