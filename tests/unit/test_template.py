"""Wiring from a template: intrinsic functions, provisioning, and loud failures on bad wiring."""

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from simulator.provision import ACCOUNT_ID, FunctionSpec, Provisioner
from simulator.runtime import Runtime
from simulator.template import Template, WiringError

REGION = "eu-west-2"


def _template(function_env: dict[str, Any], **extra: Any) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "work_dlq"}},
        "Work": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": "work",
                "VisibilityTimeout": 120,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]},
                    "maxReceiveCount": 4,
                },
            },
        },
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": "Subscriber_table",
                "KeySchema": [{"AttributeName": "PhoneNumber", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "PhoneNumber", "AttributeType": "S"}],
                "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            },
        },
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": "Writer",
                "Handler": "write_incident_to_s3.app.handler",
                "Timeout": 60,
                "Environment": {"Variables": function_env},
            },
        },
        "Mapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "FunctionName": {"Ref": "Fn"},
                "EventSourceArn": {"Fn::GetAtt": ["Work", "Arn"]},
                "BatchSize": 100,
                "MaximumBatchingWindowInSeconds": 10,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            },
        },
    }
    resources.update(extra)
    return {"Resources": resources}


@pytest.fixture
def aws() -> Iterator[None]:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with mock_aws():
        yield


def test_environment_and_mappings_resolve_to_the_moto_resources(aws: None) -> None:
    env = {
        "QUEUE_URL": {"Ref": "Work"},
        "TABLE_ARN": {"Fn::GetAtt": ["Table", "Arn"]},
        "WHERE": {"Fn::Sub": "${AWS::Region}/${Work.QueueName}/${!Literal}"},
        "JOINED": {"Fn::Join": ["-", ["a", {"Ref": "AWS::AccountId"}]]},
        "PICKED": {"Fn::Select": [1, {"Fn::Split": ["/", "x/y/z"]}]},
    }
    estate = Provisioner(Template(_template(env))).provision()

    resolved = estate.functions["Writer"].environment
    url = boto3.client("sqs", region_name=REGION).get_queue_url(QueueName="work")["QueueUrl"]
    assert resolved["QUEUE_URL"] == url
    assert resolved["TABLE_ARN"].endswith(":table/Subscriber_table")
    assert resolved["WHERE"] == f"{REGION}/work/${{Literal}}"
    assert resolved["JOINED"] == f"a-{ACCOUNT_ID}"
    assert resolved["PICKED"] == "y"
    (mapping,) = estate.event_sources
    assert (mapping.batch_size, mapping.window_seconds, mapping.report_item_failures) == (
        100,
        10,
        True,
    )


def test_queues_get_the_template_settings_in_moto(aws: None) -> None:
    estate = Provisioner(Template(_template({}))).provision()
    sqs = boto3.client("sqs", region_name=REGION)
    url = next(q.url for q in estate.queues.values() if q.name == "work")

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    assert attributes["VisibilityTimeout"] == "120"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == 4
    assert redrive["deadLetterTargetArn"].endswith(":work_dlq")


def test_a_table_stream_is_enabled_as_declared(aws: None) -> None:
    estate = Provisioner(Template(_template({}))).provision()

    table = estate.tables["Subscriber_table"]
    description = boto3.client("dynamodb", region_name=REGION).describe_table(
        TableName="Subscriber_table"
    )["Table"]
    assert table.stream_arn == description["LatestStreamArn"]
    assert description["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_a_generated_secret_follows_generate_secret_string(aws: None) -> None:
    secret = {
        "Type": "AWS::SecretsManager::Secret",
        "Properties": {"GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True}},
    }
    estate = Provisioner(Template(_template({}, Key=secret))).provision()

    (arn,) = estate.secrets
    value = boto3.client("secretsmanager", region_name=REGION).get_secret_value(SecretId=arn)
    assert len(value["SecretString"]) == 64
    assert value["SecretString"].isalnum()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"INCIDENT_QUEUE_URL": "https://sqs.eu-west-2.amazonaws.com/1/nope"},
            "INCIDENT_QUEUE_URL",
        ),
        ({"SUBSCRIBER_TABLE": "Subscriber_tabel"}, "SUBSCRIBER_TABLE"),
        ({"X": {"Ref": "Missing"}}, "Missing"),
        ({"X": {"Fn::GetAtt": ["Work", "Colour"]}}, "Colour"),
        ({"X": {"Fn::Transmogrify": ["a"]}}, "Fn::Transmogrify"),
    ],
)
def test_wrong_wiring_fails_loudly(aws: None, env: dict[str, Any], message: str) -> None:
    with pytest.raises(WiringError, match=message):
        Provisioner(Template(_template(env))).provision()


def test_a_queue_visibility_shorter_than_the_function_timeout_is_rejected(aws: None) -> None:
    template = _template({})
    template["Resources"]["Work"]["Properties"]["VisibilityTimeout"] = 30

    with pytest.raises(WiringError, match="visibility timeout"):
        Provisioner(Template(template)).provision()


def _spec(name: str, handler: str) -> FunctionSpec:
    return FunctionSpec(
        logical_id=name,
        name=name,
        arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
        handler=handler,
        environment={"LAKE_BUCKET": f"bucket-of-{name}"},
        timeout=60,
        memory=256,
    )


def test_a_handler_that_cannot_be_imported_fails_loudly() -> None:
    with pytest.raises(WiringError, match="no_such_function"):
        Runtime([_spec("Broken", "no_such_function.app.handler")], REGION)


def test_two_functions_never_share_handler_module_globals() -> None:
    runtime = Runtime(
        [
            _spec("First", "write_incident_to_s3.app.handler"),
            _spec("Second", "write_incident_to_s3.app.handler"),
        ],
        REGION,
    )
    first = runtime.function("First").module("write_incident_to_s3.app")
    second = runtime.function("Second").module("write_incident_to_s3.app")

    assert first is not second
    assert first.__dict__ is not second.__dict__
    assert runtime.function("First").module("feedback_loop.lake") is not runtime.function(
        "Second"
    ).module("feedback_loop.lake")
    assert os.environ.get("LAKE_BUCKET") is None
