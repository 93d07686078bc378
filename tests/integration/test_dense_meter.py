"""The dense bench's meter on moto: DynamoDB units from item sizes, SQS batch fill, per function."""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from simulator.meter import Meter
from simulator.units import item_size

REGION = "eu-west-2"


@pytest.fixture
def metered(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Meter, Any, Any]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        meter = Meter()
        meter.install(session.events)
        dynamodb = session.client("dynamodb")
        dynamodb.create_table(
            TableName="T",
            KeySchema=[{"AttributeName": "PhoneNumber", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "PhoneNumber", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        # only calls made inside a function's sandbox are metered
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
        yield meter, dynamodb, session.client("sqs")


KEY = {"PhoneNumber": {"S": "+447700900123"}}


def test_writes_cost_the_larger_of_the_item_before_and_after(metered: tuple) -> None:
    meter, dynamodb, _ = metered
    # Given a 1.5 KB item put, then grown to about 3.5 KB
    item = {**KEY, "Blob": {"S": "x" * 1500}}
    dynamodb.put_item(TableName="T", Item=item)
    dynamodb.update_item(
        TableName="T",
        Key=KEY,
        UpdateExpression="SET More = :m",
        ExpressionAttributeValues={":m": {"S": "y" * 2000}},
    )
    # When a conditional update fails on it
    with pytest.raises(ClientError):
        dynamodb.update_item(
            TableName="T",
            Key=KEY,
            UpdateExpression="SET More = :m",
            ConditionExpression="attribute_not_exists(PhoneNumber)",
            ExpressionAttributeValues={":m": {"S": "z"}},
        )
    use = meter.tables[("fn", "T")]
    grown = item_size({**item, "More": {"S": "y" * 2000}})
    assert 3 * 1024 < grown <= 4 * 1024
    # Then: 2 units, 4 units, and 4 units for the failed condition on the 3.5 KB item
    assert use.writes == 3
    assert use.write_units == 2 + 4 + 4
    assert use.failed_conditions == 1
    assert use.written_bytes == [item_size(item), grown, grown]
    assert meter.calls["fn"] == {"dynamodb.PutItem": 1, "dynamodb.UpdateItem": 2}


def test_reads_are_metered_on_the_whole_item(metered: tuple) -> None:
    meter, dynamodb, _ = metered
    dynamodb.put_item(TableName="T", Item={**KEY, "Data5k": {"S": "x" * 5000}})
    dynamodb.get_item(TableName="T", Key=KEY, ConsistentRead=True, ProjectionExpression="Data5k")
    dynamodb.batch_get_item(
        RequestItems={"T": {"Keys": [KEY, {"PhoneNumber": {"S": "+447700900999"}}]}}
    )
    use = meter.tables[("fn", "T")]
    # 5 KB consistent: 2 units; eventually consistent: 1 unit, and half a unit for the miss
    assert use.reads == 3
    assert use.read_units == 2 + 1 + 0.5


def test_send_message_batch_fill_per_function_and_queue(metered: tuple) -> None:
    meter, _, sqs = metered
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "abcd"} for i in range(3)]
    )
    assert meter.batch_calls[("fn", "q")] == 1
    assert meter.batch_entries[("fn", "q")] == 3
    assert meter.batch_bytes[("fn", "q")] == 12


def test_calls_outside_a_function_are_not_metered(
    metered: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    meter, dynamodb, _ = metered
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    dynamodb.put_item(TableName="T", Item=KEY)
    assert not meter.tables and not meter.calls
