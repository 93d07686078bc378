"""moto fixtures: the resources of docs/ARCHITECTURE.md and the handlers' environment.

``aws`` starts moto, creates the tables, queues, lake bucket and pseudonym
secret under their contract names, sets every function's environment
variables and resets the handlers' cached cold-start dependencies.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from tests.moto_tables import create_tables

REGION = "eu-west-2"
EVENTS = Path(__file__).parents[1] / "events"
PSEUDONYM_KEY = "integration-test-pseudonym-key"


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of an AWS event fixture from ``tests/events``."""
    return json.loads((EVENTS / name).read_text())


def kinesis_retry(batch: dict[str, Any], failed: list[str]) -> dict[str, Any]:
    """The event Lambda sends after a partial failure: the shard's records from the lowest
    reported sequence number on (a Kinesis mapping checkpoints below it)."""
    lowest = min(int(sequence) for sequence in failed)
    return {
        "Records": [r for r in batch["Records"] if int(r["kinesis"]["sequenceNumber"]) >= lowest]
    }


@dataclass
class FakeLambdaContext:
    """The attributes Powertools reads from the Lambda context."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:test-function"
    aws_request_id: str = "6f2a4b1e-2f0c-4f57-9c1a-3f1f4d3b2a10"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class Aws:
    """Clients and resource ids of the mocked account."""

    dynamodb: Any
    sqs: Any
    s3: Any
    bucket: str
    queues: dict[str, str]
    pseudonym_key: bytes

    def messages(self, queue: str) -> list[dict[str, Any]]:
        """Every message waiting on ``queue`` (received once, with their attributes)."""
        found: list[dict[str, Any]] = []
        while True:
            response = self.sqs.receive_message(
                QueueUrl=self.queues[queue],
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                VisibilityTimeout=600,
            )
            batch = response.get("Messages", [])
            if not batch:
                return found
            found.extend(batch)

    def lake_objects(self, prefix: str) -> dict[str, bytes]:
        """Lake objects under ``prefix`` by key."""
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return {
            item["Key"]: self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
            for item in listing.get("Contents", [])
        }


class SendFaults:
    """Makes a client's ``SendMessageBatch`` refuse chosen entries or fail whole calls.

    ``refuse(entry)`` marks an entry ``Failed`` while the rest of the call goes to moto
    (as SQS answers a partly refused batch); ``failing_calls`` makes the next N calls
    fail as a whole with ``ServiceUnavailable``.
    """

    def __init__(self, sqs: Any) -> None:
        self.refuse: Any = lambda entry: False
        self.failing_calls = 0
        self._refused: list[str] = []
        self._fail = False
        self._sent_any = True
        events = sqs.meta.events
        events.register("before-parameter-build.sqs.SendMessageBatch", self._split)
        events.register("before-call.sqs.SendMessageBatch", self._answer)
        events.register("after-call.sqs.SendMessageBatch", self._mark_refused)

    def _split(self, params: dict[str, Any], **_: Any) -> None:
        self._fail = self.failing_calls > 0
        self.failing_calls -= int(self._fail)
        entries = params["Entries"]
        self._refused = [e["Id"] for e in entries if not self._fail and self.refuse(e)]
        self._sent_any = len(self._refused) < len(entries)
        if self._sent_any:
            params["Entries"] = [e for e in entries if e["Id"] not in self._refused]

    def _answer(self, **_: Any) -> Any:
        if self._fail:
            error = {"Error": {"Code": "ServiceUnavailable", "Message": "x"}}
            return AWSResponse(None, 503, {}, None), {**error, "ResponseMetadata": {}}
        if self._refused and not self._sent_any:
            return AWSResponse(None, 200, {}, None), {"Successful": [], "ResponseMetadata": {}}
        return None

    def _mark_refused(self, parsed: dict[str, Any], **_: Any) -> None:
        for entry_id in self._refused:
            parsed.setdefault("Failed", []).append(
                {"Id": entry_id, "SenderFault": False, "Code": "InternalError", "Message": "x"}
            )


def _create_queues(sqs: Any) -> dict[str, str]:
    queues = {
        name: sqs.create_queue(QueueName=name)["QueueUrl"]
        for name in ("incident_update_queue", "engagement_update_queue")
    }
    queues["engagement_trigger_queue.fifo"] = sqs.create_queue(
        QueueName="engagement_trigger_queue.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    return queues


def _reset_handlers() -> None:
    from ingest_probe_events import app as ingest
    from read_after_incident import app as read_after
    from write_engagement_to_s3 import app as write_engagement
    from write_incident_to_s3 import app as write_incident

    for module in (ingest, read_after, write_engagement, write_incident):
        module._dependencies.cache_clear()


@pytest.fixture
def event():
    """``event("name.json")`` loads a fresh copy of an AWS event fixture."""
    return load_event


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    """A mocked account with every resource handlers 1-4 use, and their environment."""
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "feedback-loop-tests",
        "POWERTOOLS_METRICS_NAMESPACE": "SubscriberFeedbackLoop",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("POLICY_JSON", raising=False)
    # The shared Metrics object read the namespace when it was first imported.
    from feedback_loop.observability import metrics

    monkeypatch.setattr(metrics, "namespace", "SubscriberFeedbackLoop")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        create_tables(dynamodb, "Subscriber_table", "Subscriber_counters", "Contact_state")
        queues = _create_queues(sqs)
        bucket = "feedback-loop-lake-test"
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        secret_arn = secrets.create_secret(Name="pseudonym-key", SecretString=PSEUDONYM_KEY)["ARN"]
        for name, value in {
            "SUBSCRIBER_TABLE": "Subscriber_table",
            "COUNTERS_TABLE": "Subscriber_counters",
            "CONTACT_STATE_TABLE": "Contact_state",
            "INCIDENT_QUEUE_URL": queues["incident_update_queue"],
            "ENGAGEMENT_UPDATE_QUEUE_URL": queues["engagement_update_queue"],
            "ENGAGEMENT_TRIGGER_QUEUE_URL": queues["engagement_trigger_queue.fifo"],
            "LAKE_BUCKET": bucket,
            "PSEUDONYM_SECRET_ARN": secret_arn,
            "PARALLELIZATION_FACTOR": "10",
        }.items():
            monkeypatch.setenv(name, value)
        _reset_handlers()
        yield Aws(dynamodb, sqs, s3, bucket, queues, PSEUDONYM_KEY.encode())
        _reset_handlers()
