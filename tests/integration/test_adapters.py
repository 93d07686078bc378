"""The shared AWS adapters against moto: settings, lake writer, batched sends."""

from dataclasses import dataclass

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
from moto import mock_aws

from feedback_loop.adapters.connect import CONNECT_CLIENT_CONFIG, ConnectCalls
from feedback_loop.adapters.lake_writer import LakeWriter
from feedback_loop.adapters.queues import Queue
from feedback_loop.adapters.secrets import load_pseudonym_key
from feedback_loop.adapters.settings import load_settings
from feedback_loop.adapters.sms import SMS_CLIENT_CONFIG, TextSender
from feedback_loop.calls import may_have_been_placed
from feedback_loop.errors import AwsError, ConfigError
from feedback_loop.lake import decode_jsonl_gz
from feedback_loop.policy import Policy
from feedback_loop.ports import OutgoingMessage

REGION = "eu-west-2"


@dataclass(frozen=True)
class _Settings:
    lake_bucket: str
    policy: Policy


def test_settings_name_the_missing_variable(monkeypatch):
    monkeypatch.delenv("LAKE_BUCKET", raising=False)

    with pytest.raises(ConfigError, match="LAKE_BUCKET"):
        load_settings(_Settings)


def test_settings_read_variables_and_the_policy(monkeypatch):
    monkeypatch.setenv("LAKE_BUCKET", "lake")
    monkeypatch.setenv("POLICY_JSON", '{"min_sessions": 5}')

    settings = load_settings(_Settings)

    assert settings.lake_bucket == "lake"
    assert settings.policy.min_sessions == 5


@mock_aws
def test_lake_writer_puts_one_object_per_date_partition():
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": REGION})
    records = [
        {"id": 1, "timestamp": "2026-11-25T10:00:00Z"},
        {"id": 2, "timestamp": "2026-11-25T11:00:00Z"},
        {"id": 3, "timestamp": "2026-11-26T00:00:01Z"},
    ]

    keys = LakeWriter(s3, "lake").put_records("incidents", records, "timestamp")

    assert [key.split("/")[1] for key in keys] == ["dt=2026-11-25", "dt=2026-11-26"]
    first = s3.get_object(Bucket="lake", Key=keys[0])["Body"].read()
    assert [record["id"] for record in decode_jsonl_gz(first)] == [1, 2]


@mock_aws
def test_send_batches_chunks_by_ten_and_keeps_fifo_headers():
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    messages = [
        OutgoingMessage(key=str(i), body=f'{{"n": {i}}}', group_id="g", deduplication_id=f"d{i}")
        for i in range(23)
    ]
    calls = []
    sqs.meta.events.register("before-call.sqs.SendMessageBatch", lambda **kw: calls.append(1))

    not_sent = Queue(sqs, url).send(messages)

    assert not not_sent
    assert len(calls) == 3
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in received][:2] == ['{"n": 0}', '{"n": 1}']


@mock_aws
def test_pseudonym_key_comes_from_the_secret():
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name="k", SecretString="s3cr3t")["ARN"]

    assert load_pseudonym_key(secrets, arn) == b"s3cr3t"


def _answer_send_batches(sqs, answers):
    """Answer each SendMessageBatch with the next of ``answers``: a ``Failed`` id list or an
    error code (the call fails as a whole)."""
    pending = list(answers)

    def answer(params, **kwargs):
        reply = pending.pop(0) if pending else None
        if reply is None:
            return None
        if isinstance(reply, str):
            error = {"Error": {"Code": reply, "Message": "twin"}, "ResponseMetadata": {}}
            return AWSResponse(None, 500, {}, None), error
        entries = params["Entries"]
        failed = [e for e in entries if e["Id"] in reply]
        parsed = {
            "Successful": [
                {"Id": e["Id"], "MessageId": "m" + e["Id"], "MD5OfMessageBody": "x"}
                for e in entries
                if e["Id"] not in reply
            ],
            "Failed": [
                {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in failed
            ],
        }
        return AWSResponse(None, 200, {}, None), parsed

    captured = {}
    sqs.meta.events.register(
        "before-parameter-build.sqs.SendMessageBatch",
        lambda params, **kw: captured.update(params=params),
    )
    sqs.meta.events.register(
        "before-call.sqs.SendMessageBatch", lambda **kw: answer(captured["params"])
    )


@mock_aws
def test_send_reports_refused_entries_and_failed_calls_by_key():
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    messages = [OutgoingMessage(key=f"k{i}", body=f"{i}") for i in range(25)]
    # First chunk: entries 3 and 7 refused; second chunk: the whole call fails; third: fine.
    _answer_send_batches(sqs, [["3", "7"], "ServiceUnavailable", None])

    not_sent = Queue(sqs, url).send(messages)

    assert not_sent.keys == {"k3", "k7", *(f"k{i}" for i in range(10, 20))}
    assert sorted(not_sent.errors) == ["InternalError", "InternalError", "ServiceUnavailable"]


@pytest.mark.parametrize("lost", [ConnectionClosedError, ReadTimeoutError])
def test_a_call_or_text_whose_answer_is_lost_goes_out_once_and_counts_as_maybe_placed(
    lost, monkeypatch
):
    """The dialler's clients make one attempt: the SDK must not resend a request that may
    have rung (or texted) the subscriber; the dialler sees the failure as maybe placed."""
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sent: list[str] = []

    def lose_the_answer(request, **_):
        sent.append(request.url)
        raise lost(endpoint_url=request.url)

    connect = boto3.client("connect", region_name="eu-west-2", config=CONNECT_CLIENT_CONFIG)
    texts = boto3.client("pinpoint-sms-voice-v2", region_name="eu-west-2", config=SMS_CLIENT_CONFIG)
    for client in (connect, texts):
        client.meta.events.register("before-send", lose_the_answer)

    with pytest.raises(AwsError) as call:
        ConnectCalls(connect).start(
            {
                "DestinationPhoneNumber": "+447700900123",
                "ContactFlowId": "flow",
                "InstanceId": "instance",
                "ClientToken": "engagement-1",
            }
        )
    with pytest.raises(AwsError) as text:
        TextSender(texts, "origination").send("+447700900123", "How was it? Reply 1-5")

    assert len(sent) == 2  # one request each
    assert may_have_been_placed(call.value.code) and may_have_been_placed(text.value.code)
