"""Operator tools under moto: DLQ redrive and the right to erasure."""

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from feedback_loop.adapters.dynamodb import from_item
from feedback_loop.episodes import SubscriberView
from feedback_loop.lake import decode_jsonl_gz, encode_jsonl_gz
from feedback_loop.pseudonym import redact, subscriber_id
from ops.erase_subscriber import erase_subscriber
from ops.redrive import redrive
from tests.moto_tables import create_tables

REGION = "eu-west-2"
KEY = b"pseudonym-key-for-tests"


@pytest.fixture
def sqs():
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def _queue_pair(sqs, name: str, fifo: bool) -> tuple[str, str]:
    """A source queue and its DLQ, wired with a redrive policy as the stacks do."""
    suffix = ".fifo" if fifo else ""
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    dlq_url = sqs.create_queue(QueueName=f"{name}_dlq{suffix}", Attributes=attributes)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
    source_url = sqs.create_queue(
        QueueName=f"{name}{suffix}", Attributes={**attributes, "RedrivePolicy": policy}
    )["QueueUrl"]
    return dlq_url, source_url


def _drain(sqs, url: str) -> list[dict]:
    received = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            return received
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        received.extend(batch)


def _count(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_redrive_standard_dlq_moves_body_and_attributes(sqs):
    dlq_url, source_url = _queue_pair(sqs, "incident_update_queue", fifo=False)
    bodies = [json.dumps({"schema": "incident", "version": 1, "n": n}) for n in range(23)]
    for body in bodies:
        sqs.send_message(
            QueueUrl=dlq_url,
            MessageBody=body,
            MessageAttributes={"origin": {"DataType": "String", "StringValue": "ingest"}},
        )

    result = redrive(sqs, dlq_url, source_url, wait_seconds=0)

    assert (result.moved, result.failed) == (len(bodies), 0)
    assert _count(sqs, dlq_url) == 0
    moved = _drain(sqs, source_url)
    assert sorted(m["Body"] for m in moved) == sorted(bodies)
    assert {m["MessageAttributes"]["origin"]["StringValue"] for m in moved} == {"ingest"}


def test_redrive_fifo_dlq_keeps_group_and_order(sqs):
    dlq_url, source_url = _queue_pair(sqs, "engagement_trigger_queue", fifo=True)
    sent = []
    for n in range(6):
        for phone in ("+447700900001", "+447700900002"):
            body = json.dumps({"engagement_id": f"{phone}-{n}", "n": n})
            sqs.send_message(
                QueueUrl=dlq_url,
                MessageBody=body,
                MessageGroupId=phone,
                MessageDeduplicationId=f"{phone}-{n}",
            )
            sent.append((phone, body))

    result = redrive(sqs, dlq_url, source_url, wait_seconds=0)

    assert (result.moved, result.failed) == (len(sent), 0)
    moved = _drain(sqs, source_url)
    for phone in ("+447700900001", "+447700900002"):
        expected = [body for group, body in sent if group == phone]
        got = [m["Body"] for m in moved if m["Attributes"]["MessageGroupId"] == phone]
        assert got == expected


def test_a_failed_send_leaves_the_message_and_the_rest_of_its_group_in_the_dlq(sqs):
    dlq_url, source_url = _queue_pair(sqs, "engagement_trigger_queue", fifo=True)
    for n in range(3):
        for group in ("a", "b"):
            sqs.send_message(
                QueueUrl=dlq_url,
                MessageBody=f"{group}{n}",
                MessageGroupId=group,
                MessageDeduplicationId=f"{group}{n}",
            )

    def refuse_a1(params, **_):
        if params.get("MessageBody") == "a1":
            raise ClientError(
                {"Error": {"Code": "InternalError", "Message": "boom"}}, "SendMessage"
            )

    sqs.meta.events.register("before-parameter-build.sqs.SendMessage", refuse_a1)

    result = redrive(sqs, dlq_url, source_url, wait_seconds=0, visibility_timeout=0)

    assert result.failed == 2
    assert result.moved == 4
    assert result.errors and "boom" in result.errors[0]
    sqs.meta.events.unregister("before-parameter-build.sqs.SendMessage", refuse_a1)
    moved = [m["Body"] for m in _drain(sqs, source_url)]
    assert sorted(moved) == ["a0", "b0", "b1", "b2"]
    left = sorted(m["Body"] for m in _drain(sqs, dlq_url))
    assert left == ["a1", "a2"]


def test_max_messages_stops_early_and_keeps_the_rest(sqs):
    dlq_url, source_url = _queue_pair(sqs, "engagement_update_queue", fifo=False)
    for n in range(15):
        sqs.send_message(QueueUrl=dlq_url, MessageBody=str(n))

    result = redrive(sqs, dlq_url, source_url, max_messages=12, wait_seconds=0)

    assert result.moved == 12
    assert _count(sqs, source_url) == 12
    assert _count(sqs, dlq_url) == 3


def test_mixing_fifo_and_standard_is_refused(sqs):
    dlq_url, _ = _queue_pair(sqs, "a", fifo=True)
    _, source_url = _queue_pair(sqs, "b", fifo=False)

    with pytest.raises(ValueError, match="FIFO"):
        redrive(sqs, dlq_url, source_url)


ERASED = "+447700900123"
KEPT = "+447700900456"


def _lake_record(prefix: str, phone: str, n: int) -> dict:
    sid = subscriber_id(KEY, phone)
    if prefix == "rejected":
        payload = {"phone_number": phone, "event_type": "CALL_DRP", "n": n}
        return {
            "source": "probe_events",
            "reason": "unknown_event_type",
            "received_at": "2026-11-25T10:00:00Z",
            "payload": redact(KEY, payload),
        }
    return {"subscriber_id": sid, "cell": "LDN-0042", "n": n, "prefix": prefix}


@pytest.fixture
def estate():
    """Subscriber tables and a versioned lake holding two subscribers' records, mixed."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_tables(dynamodb, "Subscriber_table", "Subscriber_counters")
        for phone in (ERASED, KEPT):
            dynamodb.put_item(
                TableName="Subscriber_table",
                Item={"PhoneNumber": {"S": phone}, "Sentiment": {"N": "-0.5"}},
            )
            for kpi in ("CALL_DROP", "LOW_BITRATE"):
                dynamodb.put_item(
                    TableName="Subscriber_counters",
                    Item={"PhoneNumber": {"S": phone}, "Kpi": {"S": kpi}},
                )
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket="lake", VersioningConfiguration={"Status": "Enabled"})
        for prefix in ("incidents", "engagement", "feedback", "sentiment", "rejected"):
            mixed = [_lake_record(prefix, phone, n) for n in range(3) for phone in (ERASED, KEPT)]
            s3.put_object(
                Bucket="lake",
                Key=f"{prefix}/dt=2026-11-25/mixed.jsonl.gz",
                Body=encode_jsonl_gz(mixed),
            )
            only = [_lake_record(prefix, ERASED, n) for n in range(2)]
            s3.put_object(
                Bucket="lake",
                Key=f"{prefix}/dt=2026-11-26/only.jsonl.gz",
                Body=encode_jsonl_gz(only),
            )
        # An older version of one object: erasure must not leave it restorable.
        s3.put_object(
            Bucket="lake",
            Key="incidents/dt=2026-11-25/mixed.jsonl.gz",
            Body=encode_jsonl_gz([_lake_record("incidents", p, 9) for p in (ERASED, KEPT)]),
        )
        yield dynamodb, s3


def _all_versions(s3) -> list[tuple[str, list[dict]]]:
    contents = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket="lake"):
        for version in page.get("Versions", []):
            body = s3.get_object(Bucket="lake", Key=version["Key"], VersionId=version["VersionId"])[
                "Body"
            ].read()
            contents.append((version["Key"], decode_jsonl_gz(body)))
    return contents


def _erase(dynamodb, s3):
    return erase_subscriber(
        ERASED,
        dynamodb=dynamodb,
        s3=s3,
        table_name="Subscriber_table",
        counters_table_name="Subscriber_counters",
        bucket="lake",
        pseudonym_key=KEY,
    )


def _current_records(s3) -> list[dict]:
    records = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="lake"):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket="lake", Key=item["Key"])["Body"].read()
            records.extend(decode_jsonl_gz(body))
    return records


def test_erasure_removes_the_subscriber_everywhere_and_keeps_the_others(estate):
    dynamodb, s3 = estate
    erased_sid, kept_sid = subscriber_id(KEY, ERASED), subscriber_id(KEY, KEPT)
    before = _current_records(s3)
    kept_before = [r for r in before if kept_sid in json.dumps(r)]
    erased_before = [r for r in before if erased_sid in json.dumps(r)]

    report = _erase(dynamodb, s3)

    tainted = [key for key, records in _all_versions(s3) if erased_sid in json.dumps(records)]
    assert tainted == []
    kept_after = [r for r in _current_records(s3) if kept_sid in json.dumps(r)]
    assert sorted(map(json.dumps, kept_after)) == sorted(map(json.dumps, kept_before))
    assert report.records_removed == len(erased_before) > 0
    assert report.table_item_deleted and report.counter_items_deleted == 2
    assert report.objects_deleted == 5 and report.objects_rewritten == 5
    assert not report.unreadable
    assert "Item" not in dynamodb.get_item(
        TableName="Subscriber_table", Key={"PhoneNumber": {"S": ERASED}}
    )
    assert "Item" in dynamodb.get_item(
        TableName="Subscriber_table", Key={"PhoneNumber": {"S": KEPT}}
    )
    counters = dynamodb.scan(TableName="Subscriber_counters")["Items"]
    assert {item["PhoneNumber"]["S"] for item in counters} == {KEPT}


def test_erasure_keeps_an_opt_out_as_a_bare_suppression_record(estate):
    """An opted-out subscriber who asks to be forgotten must not become callable when a
    probe record makes a new profile: only the number and the flag stay."""
    dynamodb, s3 = estate
    dynamodb.update_item(
        TableName="Subscriber_table",
        Key={"PhoneNumber": {"S": ERASED}},
        UpdateExpression="SET OptedOut = :yes",
        ExpressionAttributeValues={":yes": {"BOOL": True}},
    )

    report = _erase(dynamodb, s3)
    again = _erase(dynamodb, s3)

    item = dynamodb.get_item(TableName="Subscriber_table", Key={"PhoneNumber": {"S": ERASED}})
    assert item["Item"] == {"PhoneNumber": {"S": ERASED}, "OptedOut": {"BOOL": True}}
    assert (report.table_item_deleted, report.suppression_kept) == (True, ["OptedOut"])
    assert (again.table_item_deleted, again.suppression_kept) == (False, ["OptedOut"])
    assert SubscriberView.from_profile(ERASED, from_item(item["Item"])).opted_out


def test_erasure_is_safe_to_run_twice(estate):
    dynamodb, s3 = estate
    _erase(dynamodb, s3)
    before = _all_versions(s3)

    again = _erase(dynamodb, s3)

    assert (again.records_removed, again.versions_deleted, again.table_item_deleted) == (
        0,
        0,
        False,
    )
    assert _all_versions(s3) == before


def test_erasure_refuses_a_number_that_is_not_e164(estate):
    dynamodb, s3 = estate

    with pytest.raises(ValueError, match=r"E\.164"):
        erase_subscriber(
            "07700 900123",
            dynamodb=dynamodb,
            s3=s3,
            table_name="Subscriber_table",
            counters_table_name="Subscriber_counters",
            bucket="lake",
            pseudonym_key=KEY,
        )
