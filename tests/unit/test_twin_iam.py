"""IAM in the twin: a handler's call is allowed or denied by its role from the template.

A small template (encrypted queue, table, KMS-encrypted bucket, secret, Connect instance,
one function whose role is the policy under test) is provisioned in moto; handler calls
are made through boto3's default session with the twin's hooks installed, as the
runtime does while a handler runs. Denied calls must raise the service's own
``ClientError``.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from simulator.api_calls import AwsHooks
from simulator.iam import (
    AccessRequest,
    IamEnforcer,
    IamModel,
    Principal,
    access_requests,
    check_event_source_permissions,
    evaluate,
    wildcard_match,
)
from simulator.provision import ACCOUNT_ID, Provisioner
from simulator.template import Template, WiringError

REGION = "eu-west-2"
KEY_ARN = {"Fn::GetAtt": ["Key", "Arn"]}
ROLE = Principal(
    f"arn:aws:iam::{ACCOUNT_ID}:role/r", f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/r/Fn"
)


def _allow(action: str | list[str], resource: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


FULL_GRANTS = [
    _allow("sqs:SendMessage", {"Fn::GetAtt": ["Queue", "Arn"]}),
    _allow(["kms:GenerateDataKey", "kms:Decrypt"], KEY_ARN),
    _allow(["dynamodb:GetItem", "dynamodb:BatchGetItem"], {"Fn::GetAtt": ["Table", "Arn"]}),
    _allow("s3:PutObject", {"Fn::Join": ["", [{"Fn::GetAtt": ["Lake", "Arn"]}, "/incidents/*"]]}),
    _allow("secretsmanager:GetSecretValue", {"Ref": "Secret"}),
    _allow(
        "connect:StartOutboundVoiceContact",
        {"Fn::Join": ["", [{"Fn::GetAtt": ["Instance", "Arn"]}, "/contact/*"]]},
    ),
]


def _template(grants: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "KeyPolicy": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                                "Action": "kms:*",
                                "Resource": "*",
                            }
                        ]
                    }
                },
            },
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"QueueName": "incident_update_queue", "KmsMasterKeyId": KEY_ARN},
            },
            "QueuePolicy": {
                "Type": "AWS::SQS::QueuePolicy",
                "Properties": {
                    "Queues": [{"Ref": "Queue"}],
                    "PolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Deny",
                                "Principal": {"AWS": "*"},
                                "Action": "sqs:*",
                                "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ]
                    },
                },
            },
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": "Subscriber_table",
                    "KeySchema": [{"AttributeName": "PhoneNumber", "KeyType": "HASH"}],
                    "AttributeDefinitions": [
                        {"AttributeName": "PhoneNumber", "AttributeType": "S"}
                    ],
                },
            },
            "Lake": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "BucketName": "lake",
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {
                                "ServerSideEncryptionByDefault": {
                                    "SSEAlgorithm": "aws:kms",
                                    "KMSMasterKeyID": KEY_ARN,
                                }
                            }
                        ]
                    },
                },
            },
            "Secret": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {"Name": "pseudonym", "SecretString": "k", "KmsKeyId": KEY_ARN},
            },
            "Instance": {"Type": "AWS::Connect::Instance", "Properties": {}},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Policy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyName": "p",
                    "Roles": [{"Ref": "Role"}],
                    "PolicyDocument": {"Statement": grants},
                },
            },
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "Fn",
                    "Handler": "write_incident_to_s3.app.handler",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                },
            },
        }
    }


@dataclass
class _Spec:
    name: str


@dataclass
class _Function:
    spec: _Spec


@pytest.fixture
def aws() -> Iterator[None]:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with mock_aws():
        yield
    boto3.DEFAULT_SESSION = None  # the hooks must not outlive the test


def handler_session(grants: list[dict[str, Any]]) -> tuple[IamEnforcer, Provisioner]:
    """Provision the template and hook boto3's default session as a running ``Fn``."""
    provisioner = Provisioner(Template(_template(grants)), region=REGION)
    provisioner.provision()
    enforcer = IamEnforcer(
        IamModel(provisioner.template, provisioner), lambda: _Function(_Spec("Fn"))
    )
    hooks = AwsHooks(REGION, active=lambda: True)
    hooks.call_checks.append(enforcer.check)
    return enforcer, provisioner


def _calls(provisioner: Provisioner) -> dict[str, Any]:
    queue_url = next(iter(provisioner.estate.queues))
    secret_arn = next(iter(provisioner.estate.secrets))
    instance_id = provisioner.get_att("Instance", "Id")
    return {
        "sqs.SendMessageBatch": lambda: boto3.client("sqs").send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": "0", "MessageBody": "{}"}]
        ),
        "dynamodb.BatchGetItem": lambda: boto3.client("dynamodb").batch_get_item(
            RequestItems={"Subscriber_table": {"Keys": [{"PhoneNumber": {"S": "+447700900123"}}]}}
        ),
        "s3.PutObject": lambda: boto3.client("s3").put_object(
            Bucket="lake", Key="incidents/dt=2026-11-25/a.jsonl.gz", Body=b"x"
        ),
        "secretsmanager.GetSecretValue": lambda: boto3.client("secretsmanager").get_secret_value(
            SecretId=secret_arn
        ),
        "connect.StartOutboundVoiceContact": lambda: boto3.client(
            "connect"
        ).start_outbound_voice_contact(
            DestinationPhoneNumber="+447700900123",
            ContactFlowId="flow",
            InstanceId=instance_id,
        ),
    }


# (operation, the grant taken away, expected error code, HTTP status)
DENIALS = [
    ("sqs.SendMessageBatch", 0, "AccessDenied", 403),
    ("dynamodb.BatchGetItem", 2, "AccessDeniedException", 400),
    ("s3.PutObject", 3, "AccessDenied", 403),
    ("secretsmanager.GetSecretValue", 4, "AccessDeniedException", 400),
    ("connect.StartOutboundVoiceContact", 5, "AccessDeniedException", 403),
]


@pytest.mark.parametrize(("operation", "missing", "code", "status"), DENIALS)
def test_a_role_without_the_grant_gets_the_services_access_denied(
    aws: None, operation: str, missing: int, code: str, status: int
) -> None:
    grants = [g for i, g in enumerate(FULL_GRANTS) if i != missing]
    enforcer, provisioner = handler_session(grants)

    with pytest.raises(ClientError) as denied:
        _calls(provisioner)[operation]()

    error = denied.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert "is not authorized to perform" in error["Error"]["Message"]
    (denial,) = enforcer.denials
    assert (denial.function, denial.operation) == ("Fn", operation)
    assert enforcer.summary()[0] == 1


def test_with_every_grant_no_call_is_denied(aws: None) -> None:
    enforcer, provisioner = handler_session(FULL_GRANTS)
    calls = _calls(provisioner)

    for operation, make in calls.items():
        if operation != "connect.StartOutboundVoiceContact":  # moto has no Connect
            make()

    assert enforcer.denials == []
    assert enforcer.check("connect.StartOutboundVoiceContact", _connect_params(provisioner)) is None


def _connect_params(provisioner: Provisioner) -> dict[str, Any]:
    return {"InstanceId": provisioner.get_att("Instance", "Id"), "ContactFlowId": "flow"}


def test_sending_to_an_encrypted_queue_needs_the_key_too(aws: None) -> None:
    """SQS developer guide: a producer needs kms:GenerateDataKey and kms:Decrypt."""
    without_key = [g for i, g in enumerate(FULL_GRANTS) if i != 1]
    enforcer, provisioner = handler_session(without_key)

    with pytest.raises(ClientError) as denied:
        _calls(provisioner)["sqs.SendMessageBatch"]()

    assert denied.value.response["Error"]["Code"] == "KMS.AccessDeniedException"
    assert enforcer.denials[0].action == "kms:GenerateDataKey"


def test_start_outbound_voice_contact_on_the_instance_and_flow_arns_is_denied(aws: None) -> None:
    """Finding 1 of issue 8: the action is authorised on the contact resource type only."""
    instance = {"Fn::GetAtt": ["Instance", "Arn"]}
    wrong = [
        *FULL_GRANTS[:5],
        _allow(
            "connect:StartOutboundVoiceContact",
            [instance, {"Fn::Join": ["", [instance, "/contact-flow/flow"]]}],
        ),
    ]
    enforcer, provisioner = handler_session(wrong)

    error = enforcer.check("connect.StartOutboundVoiceContact", _connect_params(provisioner))

    assert error is not None and error.code == "AccessDeniedException"
    assert enforcer.denials[0].resource.endswith("/contact/*")


def test_requests_follow_the_service_authorization_reference(aws: None) -> None:
    _, provisioner = handler_session(FULL_GRANTS)
    model = IamModel(provisioner.template, provisioner)
    queue_url = next(iter(provisioner.estate.queues))

    batch = access_requests(model, "sqs.SendMessageBatch", {"QueueUrl": queue_url, "Entries": []})
    put = access_requests(model, "s3.PutObject", {"Bucket": "lake", "Key": "a/b"})
    tables = access_requests(model, "dynamodb.BatchGetItem", {"RequestItems": {"A": {}, "B": {}}})

    assert [(r.action, r.resource.split(":")[-1]) for r in batch] == [
        ("sqs:SendMessage", "incident_update_queue"),
        ("kms:GenerateDataKey", batch[1].resource.split(":")[-1]),
        ("kms:Decrypt", batch[1].resource.split(":")[-1]),
    ]
    assert batch[1].resource.startswith("arn:aws:kms:")
    assert [r.resource for r in put][:1] == ["arn:aws:s3:::lake/a/b"]
    assert put[1].action == "kms:GenerateDataKey"
    assert [r.resource.rsplit("/", 1)[-1] for r in tables] == ["A", "B"]


def test_an_event_source_mapping_the_role_cannot_poll_is_a_wiring_error(aws: None) -> None:
    from simulator.provision import EventSourceSpec

    _, provisioner = handler_session(FULL_GRANTS)
    model = IamModel(provisioner.template, provisioner)
    queue = next(iter(provisioner.estate.queues.values()))
    spec = EventSourceSpec("Mapping", "Fn", queue.arn, 10, 0, (), True, False, -1, None, None)

    with pytest.raises(WiringError, match="sqs:ReceiveMessage"):
        check_event_source_permissions(model, spec, "sqs")


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (_allow("s3:Put*", "arn:aws:s3:::lake/*"), "allowed"),
        (_allow("S3:PUTOBJECT", "arn:aws:s3:::lake/incidents/?.gz"), "allowed"),
        (_allow("s3:PutObject", "arn:aws:s3:::lake/rejected/*"), "implicit_deny"),
        ({"Effect": "Allow", "NotAction": "s3:Get*", "Resource": "*"}, "allowed"),
        ({"Effect": "Allow", "NotAction": "s3:Put*", "Resource": "*"}, "implicit_deny"),
        ({"Effect": "Deny", "Action": "*", "Resource": "*"}, "explicit_deny"),
        (
            {
                **_allow("s3:PutObject", "*"),
                "Condition": {"StringEquals": {"aws:PrincipalAccount": ACCOUNT_ID}},
            },
            "allowed",
        ),
        (
            {
                **_allow("s3:PutObject", "*"),
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            "implicit_deny",
        ),
        (
            {**_allow("s3:PutObject", "*"), "Condition": {"StringLike": {"aws:SourceVpce": "v*"}}},
            "implicit_deny",
        ),
        (
            {
                **_allow("s3:PutObject", "*"),
                "Condition": {"StringLikeIfExists": {"aws:SourceVpce": "v*"}},
            },
            "allowed",
        ),
    ],
)
def test_policy_evaluation(statement: dict[str, Any], expected: str) -> None:
    request = AccessRequest("s3:PutObject", "arn:aws:s3:::lake/incidents/a.gz", "s3")

    assert evaluate(request, ROLE, [statement], None) == expected


def test_a_kms_key_policy_must_let_the_account_decide_or_name_the_role() -> None:
    request = AccessRequest("kms:Decrypt", "arn:aws:kms:eu-west-2:1:key/k", "s3", kms=True)
    identity = [_allow("kms:Decrypt", "*")]
    root = {"Effect": "Allow", "Principal": {"AWS": ROLE.account_ids[1]}, "Action": "kms:*"}
    direct = {"Effect": "Allow", "Principal": {"AWS": ROLE.role_arn}, "Action": "kms:Decrypt"}
    other = {"Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com"}, "Action": "kms:*"}

    assert evaluate(request, ROLE, identity, [root]) == "allowed"
    assert evaluate(request, ROLE, [], [root]) == "implicit_deny"
    assert evaluate(request, ROLE, [], [direct]) == "allowed"
    assert evaluate(request, ROLE, identity, [other]) == "implicit_deny"


def test_wildcards_are_iams_not_regular_expressions() -> None:
    assert wildcard_match("arn:aws:s3:::lake/a.b", "arn:aws:s3:::lake/a.b")
    assert not wildcard_match("arn:aws:s3:::lake/a.b", "arn:aws:s3:::lake/aXb")
    assert wildcard_match("sqs:*", "SQS:SendMessage", ignore_case=True)
    assert not wildcard_match("sqs:*", "SQS:SendMessage")
