"""The twin's memoised moto lookups (simulator/moto_speed.py) change no answer.

The same calls run in two fresh interpreters, one with ``speed_up_moto()`` installed and
one without; every response (and error) must be the same. The calls are the kinds the
twin's handlers make whose answers go through the memoised paths: DynamoDB items of every
attribute type back from ``UpdateItem`` (``ALL_NEW``, and ``ALL_OLD`` on a failed
condition), the same update expression again and an invalid one twice, update expressions
through every validator (arithmetic, functions, nested paths, REMOVE/DELETE, each kind of
rejection), condition expressions of each kind (and malformed ones), the table's stream
records, SQS messages with attributes, visible, in flight and delayed, an S3 listing.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CALLS = r"""
import json, sys
import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

if sys.argv[1] == "fast":
    from simulator.moto_speed import speed_up_moto

    speed_up_moto()


def answer(call, **params):
    try:
        response = call(**params)
    except ClientError as error:
        return {"error": error.response["Error"], "item": error.response.get("Item")}
    except ValueError as error:  # moto's condition parser raises this on a malformed one
        return {"raised": repr(error)}
    response.pop("ResponseMetadata", None)
    return response


out = []
with mock_aws():
    dynamodb = boto3.client("dynamodb", region_name="eu-west-2")
    dynamodb.create_table(
        TableName="T",
        KeySchema=[{"AttributeName": "Pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    key = {"Pk": {"S": "+447700900123"}}
    update = dict(
        TableName="T",
        Key=key,
        UpdateExpression="SET #m = :m, #l = :l, #b = :b, #t = :t, #z = :z ADD #n :one, #s :s",
        ExpressionAttributeNames={
            "#m": "Map", "#l": "List", "#b": "Bin", "#t": "Flag", "#z": "Nothing",
            "#n": "Count", "#s": "Set",
        },
        ExpressionAttributeValues={
            ":m": {"M": {"a": {"N": "1"}, "b": {"M": {"c": {"SS": ["x", "y"]}}}}},
            ":l": {"L": [{"S": "v"}, {"NS": ["1", "2"]}, {"BS": [b"\x00\x01"]}]},
            ":b": {"B": b"\xff\x00"},
            ":t": {"BOOL": True},
            ":z": {"NULL": True},
            ":one": {"N": "1"},
            ":s": {"SS": ["p", "q"]},
        },
        ReturnValues="ALL_NEW",
    )
    out.append(answer(dynamodb.update_item, **update))
    out.append(answer(dynamodb.update_item, **update))
    out.append(answer(
        dynamodb.update_item,
        TableName="T",
        Key=key,
        UpdateExpression="SET #n = :v",
        ConditionExpression="#n < :v",
        ExpressionAttributeNames={"#n": "Count"},
        ExpressionAttributeValues={":v": {"N": "0"}},
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    ))
    for _ in range(2):
        out.append(answer(
            dynamodb.update_item, TableName="T", Key=key, UpdateExpression="SET = :v",
            ExpressionAttributeValues={":v": {"N": "0"}},
        ))
    # The update-expression validators (a deep copy of the parsed tree, ten walks of it):
    # arithmetic, functions, nested paths, REMOVE/DELETE, and each kind of rejection.
    for expression, names, values in [
        ("SET #n = #n + :one, #x = if_not_exists(#x, :one)", {"#n": "Count", "#x": "X"},
         {":one": {"N": "1"}}),
        ("SET #l = list_append(#l, :l), #m.#a = :one - :one",
         {"#l": "List", "#m": "Map", "#a": "a"}, {":l": {"L": [{"S": "w"}]}, ":one": {"N": "1"}}),
        ("SET #m.#b.#c[0] = :one", {"#m": "Map", "#b": "b", "#c": "c"}, {":one": {"N": "1"}}),
        ("SET #l[1] = :one REMOVE #bin, #l[0] DELETE #s :p",
         {"#s": "Set", "#l": "List", "#bin": "Bin"}, {":one": {"N": "5"}, ":p": {"SS": ["p"]}}),
        ("SET #m.#q.#r = :one", {"#m": "Map", "#q": "q", "#r": "r"}, {":one": {"N": "1"}}),
        ("SET #k = :one", {"#k": "Pk"}, {":one": {"S": "x"}}),
        ("SET #n = :one, #n = :one", {"#n": "Count"}, {":one": {"N": "1"}}),
        ("SET #n = :missing", {"#n": "Count"}, {":one": {"N": "1"}}),
        ("SET #n = #n + :s", {"#n": "Count"}, {":s": {"S": "x"}}),
        ("SET #n = :one ADD #n :one", {"#n": "Count"}, {":one": {"N": "1"}}),
        ("SET size = :one", None, {":one": {"N": "1"}}),
    ]:
        params = dict(
            TableName="T", Key=key, UpdateExpression=expression,
            ExpressionAttributeValues=values, ReturnValues="UPDATED_OLD",
        )
        if names:
            params["ExpressionAttributeNames"] = names
        out.append(answer(dynamodb.update_item, **params))
    # Condition expressions (lexed once per string): each kind of node, twice, and ones
    # that do not lex or parse.
    names = {"#n": "Count", "#x": "X", "#l": "List", "#p": "Pk"}
    values = {":v": {"N": "2"}, ":w": {"N": "9"}, ":s": {"S": "+44"}}
    for condition in [
        "attribute_not_exists(#n) OR #n < :v",
        "attribute_exists(#n) AND NOT (#n BETWEEN :v AND :w)",
        "#n IN (:v, :w) OR size(#l) > :v",
        "begins_with(#p, :s) AND #n <> :v",
        "attribute_exists(#n) AND NOT (#n BETWEEN :v AND :w)",
        "#n ! :v",
        "#n < :v AND",
        "#n ! :v",
    ]:
        out.append(answer(
            dynamodb.update_item, TableName="T", Key=key, UpdateExpression="SET #x = :v",
            ConditionExpression=condition,
            ExpressionAttributeNames={
                k: v for k, v in names.items() if k in condition or k == "#x"
            },
            ExpressionAttributeValues={
                k: v for k, v in values.items() if k in condition or k == ":v"
            },
            ReturnValues="ALL_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ))
    out.append(answer(
        dynamodb.update_item, TableName="T", Key={"Pk": {"S": "new"}},
        UpdateExpression="SET #v = :v ADD #c :one", ExpressionAttributeNames={"#v": "V", "#c": "C"},
        ExpressionAttributeValues={":v": {"S": "v"}, ":one": {"N": "1"}}, ReturnValues="ALL_NEW",
    ))
    # Stream records (their time, sequence and size, which counts the time's digits, vary).
    streams = boto3.client(  # the classic endpoint, as the twin's (simulator/provision.py)
        "dynamodbstreams", region_name="eu-west-2",
        endpoint_url="https://streams.dynamodb.eu-west-2.amazonaws.com",
    )
    arn = dynamodb.describe_table(TableName="T")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    varying = ("ApproximateCreationDateTime", "SequenceNumber", "SizeBytes")
    out.append([
        {k: v for k, v in r["dynamodb"].items() if k not in varying} | {"eventName": r["eventName"]}
        for r in records
    ])
    out.append(answer(dynamodb.get_item, TableName="T", Key=key, ConsistentRead=True))
    out.append(answer(
        dynamodb.query, TableName="T", KeyConditionExpression="Pk = :p",
        ExpressionAttributeValues={":p": key["Pk"]},
    ))
    sqs = boto3.client("sqs", region_name="eu-west-2")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(
        QueueUrl=url, MessageBody="{}",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "engagement"}},
    )
    received = answer(
        sqs.receive_message, QueueUrl=url, MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    for message in received["Messages"]:
        message.pop("ReceiptHandle")
        message.pop("MessageId")
        message["Attributes"] = sorted(message["Attributes"])
    out.append(received)
    # Visibility and delay (moto reads the time through unix_time for each message).
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    sqs.send_message(QueueUrl=url, MessageBody="now")
    depths = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
              "ApproximateNumberOfMessagesDelayed"]
    out.append(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=depths)["Attributes"])
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    out.append(sorted(m["Body"] for m in again.get("Messages", [])))
    out.append(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=depths)["Attributes"])
    s3 = boto3.client("s3", region_name="eu-west-2")
    s3.create_bucket(
        Bucket="lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
    )
    s3.put_object(Bucket="lake", Key="incidents/a.jsonl.gz", Body=b"x")
    listed = answer(s3.list_objects_v2, Bucket="lake")
    for item in listed["Contents"]:
        item.pop("LastModified")
    out.append(listed)
print(json.dumps(out, sort_keys=True, default=repr))
"""


def _answers(mode: str) -> list[object]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'lambdas'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", CALLS, mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    answers: list[object] = json.loads(done.stdout)
    return answers


@pytest.mark.slow
def test_moto_answers_the_same_with_the_memoised_lookups() -> None:
    plain, fast = _answers("plain"), _answers("fast")

    assert fast == plain
    new_item = plain[0]["Attributes"]  # type: ignore[index]
    assert new_item["Count"] == {"N": "1"} and new_item["Map"]["M"]["b"]["M"]["c"] == {
        "SS": ["x", "y"]
    }
    assert plain[2]["error"]["Code"] == "ConditionalCheckFailedException"  # type: ignore[index]
    assert plain[3] == plain[4] and plain[3]["error"]["Code"] == "ValidationException"  # type: ignore[index]
