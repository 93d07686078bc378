"""Reliability harness: the deployed resources under moto, real AWS event shapes, figures.

Shared by ``conftest.py`` (fixtures, the session-end table) and the test
modules; the name is unique so it imports the same way under pytest-xdist.
"""

import base64
import hashlib
import importlib
import json
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeSerializer

REGION = "eu-west-2"
ACCOUNT = "123456789012"
PSEUDONYM_KEY = "reliability-test-pseudonym-key"
CONNECT_INSTANCE_ID = "9308c2a1-9bc6-4cea-8290-6c0b4a6d38fa"
CONTACT_FLOW_ID = "b1a7c0de-0000-4000-8000-000000000001"
SOURCE_PHONE_NUMBER = "+442079460000"
HANDLER_PACKAGES = (
    "ingest_probe_events",
    "write_incident_to_s3",
    "read_after_incident",
    "write_engagement_to_s3",
    "trigger_connect",
    "collect_feedback_from_connect",
    "write_feedback_to_s3",
)


@dataclass
class Figures:
    """What the reliability tests observed; printed as the session-end table."""

    inputs_tried: int = 0
    rejected_with_reason: int = 0
    processed: int = 0
    duplicates_injected: int = 0
    duplicate_calls_placed: int = 0
    duplicate_updates: int = 0
    engagements_lost: int = 0
    dead_lettered: int = 0
    redriven: int = 0
    reasons: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "reasons": dict(self.reasons)}


FIGURES = Figures()


# --- the account under moto ------------------------------------------------------------


@dataclass
class Estate:
    """The resources of docs/ARCHITECTURE.md, created under moto."""

    dynamodb: Any
    sqs: Any
    s3: Any
    bucket: str
    queues: dict[str, str]

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"

    def lake_records(self, prefix: str) -> list[dict[str, Any]]:
        """Every record under one lake prefix."""
        from feedback_loop.lake import decode_jsonl_gz

        records = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{prefix}/"
        ):
            for item in page.get("Contents", []):
                body = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                records.extend(decode_jsonl_gz(body))
        return records

    def drain(self, name: str) -> list[dict[str, Any]]:
        """Receive and delete everything on a queue (with its attributes)."""
        url, received = self.queues[name], []
        while batch := self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", []):
            for message in batch:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            received.extend(batch)
        return received

    def depth(self, name: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queues[name],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())


def queue_with_dlq(sqs: Any, name: str) -> tuple[str, str]:
    fifo = name.endswith(".fifo")
    base = name.removesuffix(".fifo")
    dlq_name = "engagement_trigger_dlq.fifo" if fifo else f"{base}_dlq"
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes=attributes)["QueueUrl"]
    redrive = {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{dlq_name}"}
    redrive["maxReceiveCount"] = 5
    url = sqs.create_queue(
        QueueName=name,
        Attributes={**attributes, "RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": "30"},
    )["QueueUrl"]
    return url, dlq_url


def fresh_handler_modules() -> None:
    """Drop cached clients/settings of handlers imported by an earlier test."""
    for package in HANDLER_PACKAGES:
        module = sys.modules.get(f"{package}.app")
        dependencies = getattr(module, "_dependencies", None)
        if dependencies is not None and hasattr(dependencies, "cache_clear"):
            dependencies.cache_clear()


# --- handlers, their output, the Lambda context -------------------------------------------


@dataclass
class FakeContext:
    """The parts of the Lambda context Powertools reads."""

    function_name: str = "reliability"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:reliability"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def handler_of(package: str) -> Callable[[dict[str, Any], Any], Any]:
    """The real ``handler`` of one Lambda folder (imported lazily, after moto is up)."""
    return importlib.import_module(f"{package}.app").handler


@dataclass
class Output:
    """Structured stdout of one invocation: Powertools log lines and EMF metric blobs."""

    logs: list[dict[str, Any]]
    emf: list[dict[str, Any]]

    def reasons(self) -> list[str]:
        """The ``reason`` of every log line that has one."""
        return [str(line["reason"]) for line in self.logs if "reason" in line]

    def metric(self, name: str, **dimensions: str) -> float:
        """Sum of metric ``name`` over the EMF blobs carrying all of ``dimensions``."""
        total = 0.0
        for blob in self.emf:
            if not all(blob.get(key) == value for key, value in dimensions.items()):
                continue
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    if metric["Name"] == name:
                        value = blob[name]
                        total += sum(value) if isinstance(value, list) else value
        return total


def parse_output(stdout: str) -> Output:
    """Split captured stdout into Powertools JSON log lines and EMF metric blobs."""
    logs, emf = [], []
    for line in stdout.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            (emf if "_aws" in parsed else logs).append(parsed)
    return Output(logs=logs, emf=emf)


# --- real AWS event shapes -----------------------------------------------------------------


def kinesis_event(payloads: Sequence[bytes], arrival: datetime) -> dict[str, Any]:
    """A Kinesis batch as Lambda delivers it (base64 data, sequence numbers, arrival time)."""
    records = []
    for index, data in enumerate(payloads):
        sequence = f"4959{index:052d}"
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": hashlib.sha256(data).hexdigest()[:16],
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(data).decode("ascii"),
                    "approximateArrivalTimestamp": arrival.timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/Ingest_probe_events",
                "awsRegion": REGION,
                "eventSourceARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/probe_events",
            }
        )
    return {"Records": records}


def sqs_record(
    body: str,
    queue_arn: str,
    *,
    group_id: str | None = None,
    deduplication_id: str | None = None,
    message_id: str | None = None,
    receive_count: int = 1,
) -> dict[str, Any]:
    """One SQS record as Lambda delivers it; FIFO attributes when ``group_id`` is given."""
    attributes = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": "1795605303000",
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": "1795605303100",
    }
    if group_id is not None:
        attributes["MessageGroupId"] = group_id
        attributes["MessageDeduplicationId"] = (
            deduplication_id or hashlib.sha256(body.encode()).hexdigest()
        )
        attributes["SequenceNumber"] = str(uuid.uuid4().int)[:20]
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": base64.b64encode(uuid.uuid4().bytes).decode(),
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def sqs_event(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": list(records)}


def sqs_event_from_queue(messages: Sequence[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Turn messages received from a (moto) queue into the event Lambda would deliver."""
    records = []
    for message in messages:
        system = message.get("Attributes", {})
        record = sqs_record(
            message["Body"],
            queue_arn,
            group_id=system.get("MessageGroupId"),
            deduplication_id=system.get("MessageDeduplicationId"),
            message_id=message["MessageId"],
            receive_count=int(system.get("ApproximateReceiveCount", "1")),
        )
        record["receiptHandle"] = message["ReceiptHandle"]
        records.append(record)
    return {"Records": records}


_SERIALIZER = TypeSerializer()


def dynamodb_image(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain item in DynamoDB JSON (the stream image format)."""
    return {name: _SERIALIZER.serialize(value) for name, value in item.items()}


def dynamodb_stream_record(
    new_image: Mapping[str, Any] | None,
    old_image: Mapping[str, Any] | None = None,
    *,
    event_name: str = "MODIFY",
    raw: bool = False,
    sequence: int = 1,
) -> dict[str, Any]:
    """A ``Subscriber_table`` stream record (NEW_AND_OLD_IMAGES); ``raw`` images are as given."""
    convert = (lambda image: dict(image)) if raw else dynamodb_image
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": 1795605303.0,
        "SequenceNumber": f"{sequence:021d}",
        "SizeBytes": 512,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    phone = None
    if new_image is not None:
        change["NewImage"] = convert(new_image)
        phone = change["NewImage"].get("PhoneNumber")
    if old_image is not None:
        change["OldImage"] = convert(old_image)
    change["Keys"] = {"PhoneNumber": phone} if phone is not None else {}
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": change,
        "eventSourceARN": (
            f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Subscriber_table/stream/"
            "2026-11-25T00:00:00.000"
        ),
    }


def connect_event(
    parameters: Mapping[str, Any],
    *,
    phone_number: str | None = "+447700900123",
    contact_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A contact-flow invocation of ``Collect_feedback_from_Connect`` (Connect's shape)."""
    contact_id = contact_id or str(uuid.uuid4())
    endpoint = (
        None if phone_number is None else {"Address": phone_number, "Type": "TELEPHONE_NUMBER"}
    )
    return {
        "Details": {
            "ContactData": {
                "Attributes": dict(attributes if attributes is not None else parameters),
                "AwsRegion": REGION,
                "Channel": "VOICE",
                "ContactId": contact_id,
                "CustomerEndpoint": endpoint,
                "InitialContactId": contact_id,
                "InitiationMethod": "OUTBOUND",
                "InstanceARN": f"arn:aws:connect:{REGION}:{ACCOUNT}:instance/{CONNECT_INSTANCE_ID}",
                "LanguageCode": "en-US",
                "MediaStreams": {"Customer": {"Audio": None}},
                "PreviousContactId": contact_id,
                "Queue": None,
                "SystemEndpoint": {"Address": SOURCE_PHONE_NUMBER, "Type": "TELEPHONE_NUMBER"},
            },
            "Parameters": dict(parameters),
        },
        "Name": "ContactFlowEvent",
    }


# --- a fake Amazon Connect (moto has no StartOutboundVoiceContact) -----------------------


@dataclass
class ConnectCalls:
    """Every StartOutboundVoiceContact that reached 'Connect', and a switch to throttle it."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    throttle: bool = False

    def engagement_ids(self) -> list[str]:
        return [request["ClientToken"] for request in self.requests]


@dataclass
class HttpResponse:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
