"""The shared AWS adapters against moto: settings, lake writer, batched sends."""

from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from feedback_loop.adapters.lake_writer import LakeWriter
from feedback_loop.adapters.queues import OutgoingMessage, send_batches
from feedback_loop.adapters.secrets import load_pseudonym_key
from feedback_loop.adapters.settings import load_settings
from feedback_loop.errors import ConfigError
from feedback_loop.lake import decode_jsonl_gz
from feedback_loop.policy import Policy

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

    failed = send_batches(sqs, url, messages)

    assert failed == set()
    assert len(calls) == 3
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in received][:2] == ['{"n": 0}', '{"n": 1}']


@mock_aws
def test_pseudonym_key_comes_from_the_secret():
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name="k", SecretString="s3cr3t")["ARN"]

    assert load_pseudonym_key(secrets, arn) == b"s3cr3t"
