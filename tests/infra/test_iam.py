"""Least privilege: each role grants what its handler calls, on the resources it calls, only."""

import json
from typing import Any

import pytest
from infra_lookup import FUNCTION_NAMES, as_list, function_props, of_type, role_statements

pytestmark = [pytest.mark.xdist_group("synth"), pytest.mark.slow]

KINESIS_READ = {
    "kinesis:DescribeStream", "kinesis:DescribeStreamConsumer", "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards",
    "kinesis:ListStreams", "kinesis:SubscribeToShard",
}  # fmt: skip
SQS_CONSUME = {
    "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl", "sqs:ReceiveMessage",
}  # fmt: skip
STREAM_READ = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
KMS_TABLE = {"kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"}
KMS_WRITE = {"kms:Decrypt", "kms:GenerateDataKey"}
INGEST_PROFILES = {"dynamodb:BatchGetItem", "dynamodb:UpdateItem"}
INGEST_COUNTERS = {"dynamodb:UpdateItem"}
RUNTIME = {("logs:CreateLogStream", "own log group"), ("logs:PutLogEvents", "own log group"),
           ("xray:PutTraceSegments", "*"), ("xray:PutTelemetryRecords", "*")}  # fmt: skip


def _pairs(actions: set[str], *targets: str) -> set[tuple[str, str]]:
    return {(action, target) for action in actions for target in targets}


# What each handler calls (docs/ARCHITECTURE.md) plus what its event source mapping needs.
EXPECTED: dict[str, set[tuple[str, str]]] = {
    "Ingest_probe_events": RUNTIME
    | _pairs(KINESIS_READ, "stream probe_events")
    | _pairs(INGEST_PROFILES, "table Subscriber_table")
    | _pairs(INGEST_COUNTERS, "table Subscriber_counters")
    | _pairs({"sqs:SendMessage"}, "queue incident_update_queue", "queue ingest_failures_dlq")
    | _pairs({"s3:PutObject"}, "lake rejected/*")
    | _pairs({"secretsmanager:GetSecretValue"}, "pseudonym secret")
    | _pairs(KMS_TABLE, "stack key"),
    "write_incident_to_S3": RUNTIME
    | _pairs(SQS_CONSUME, "queue incident_update_queue")
    | _pairs({"s3:PutObject"}, "lake incidents/*")
    | _pairs({"secretsmanager:GetSecretValue"}, "pseudonym secret")
    | _pairs(KMS_WRITE, "stack key"),
    "Read_after_incident": RUNTIME
    | _pairs(STREAM_READ, "stream of Subscriber_table")
    | {("dynamodb:ListStreams", "*")}
    | _pairs({"dynamodb:UpdateItem"}, "table Subscriber_table", "table Contact_state")
    | _pairs(
        {"sqs:SendMessage"},
        "queue engagement_update_queue",
        "queue engagement_trigger_queue.fifo",
        "queue read_after_incident_failures_dlq",
    )
    | _pairs(KMS_TABLE, "stack key"),
    "write_engagement_to_S3": RUNTIME
    | _pairs(SQS_CONSUME, "queue engagement_update_queue")
    | _pairs({"s3:PutObject"}, "lake engagement/*", "lake outages/*", "lake decision_counts/*")
    | _pairs({"secretsmanager:GetSecretValue"}, "pseudonym secret")
    | _pairs(KMS_WRITE, "stack key"),
    "Trigger_Connect": RUNTIME
    | _pairs(SQS_CONSUME, "queue engagement_trigger_queue.fifo")
    | _pairs({"sqs:SendMessage"}, "queue engagement_update_queue")
    | _pairs(
        {"dynamodb:GetItem", "dynamodb:UpdateItem"}, "table Subscriber_table", "table Contact_state"
    )
    | _pairs(
        {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
        "table Idempotency_table",
    )
    | _pairs({"connect:StartOutboundVoiceContact"}, "contacts of the connect instance")
    | _pairs(KMS_TABLE, "stack key"),
    "Collect_feedback_from_Connect": RUNTIME
    | _pairs({"dynamodb:GetItem", "dynamodb:UpdateItem"}, "table Subscriber_table")
    | _pairs(KMS_TABLE, "stack key"),
    "write_feedback_to_S3": RUNTIME
    | _pairs(STREAM_READ, "stream of Subscriber_table")
    | {("dynamodb:ListStreams", "*")}
    | _pairs({"sqs:SendMessage"}, "queue write_feedback_failures_dlq")
    | _pairs({"s3:PutObject"}, "lake feedback/*", "lake sentiment/*")
    | _pairs({"secretsmanager:GetSecretValue"}, "pseudonym secret")
    # Reading the encrypted stream: CDK's stream grant adds kms:DescribeKey to Decrypt.
    | _pairs(KMS_WRITE | {"kms:DescribeKey"}, "stack key"),
    # Invoked by Firehose (its role calls lambda:InvokeFunction): reads the key, nothing else.
    "Archive_probe_records": RUNTIME
    | _pairs({"secretsmanager:GetSecretValue"}, "pseudonym secret")
    | _pairs({"kms:Decrypt"}, "stack key"),
}

# Every resource wildcard in an identity policy, and why AWS leaves no narrower choice.
WILDCARD_ALLOW_LIST = {
    "*": "X-Ray and dynamodb:ListStreams have no resource-level permissions",
    "lake rejected/*": "object keys are generated per batch under the prefix",
    "lake incidents/*": "object keys are generated per batch under the prefix",
    "lake engagement/*": "object keys are generated per batch under the prefix",
    "lake feedback/*": "object keys are generated per batch under the prefix",
    "lake sentiment/*": "object keys are generated per batch under the prefix",
    "lake outages/*": "object keys are generated per batch under the prefix",
    "lake decision_counts/*": "object keys are generated per batch under the prefix",
    "contacts of the connect instance": "a contact id exists only once the call is placed",
    "lake probes/*": "Firehose names the archive objects at delivery time under the prefix",
    "lake probes-errors/*": "Firehose names its error objects at delivery time under the prefix",
}


def describe(resources: dict[str, Any], value: Any, own_log_group: str | None = None) -> str:
    """A readable name for an IAM resource: what it points at, not its logical id."""
    if value == "*":
        return "*"
    if isinstance(value, str) and ":connect:" in value and value.count("/") == 1:
        return "connect instance"
    if isinstance(value, str) and ":connect:" in value and value.endswith("/contact/*"):
        return "contacts of the connect instance"
    if isinstance(value, str) and value.startswith("arn:aws:sms-voice:"):
        return "sms origination identity"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target, attribute = value["Fn::GetAtt"]
        resource = resources[target]
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::DynamoDB::Table":
            prefix = "stream of " if attribute == "StreamArn" else "table "
            return prefix + props["TableName"]
        if kind == "AWS::SQS::Queue":
            return f"queue {props['QueueName']}"
        if kind == "AWS::Kinesis::Stream":
            return f"stream {props['Name']}"
        if kind == "AWS::KMS::Key":
            return "stack key"
        if kind == "AWS::Logs::LogGroup":
            return "own log group" if target == own_log_group else f"log group {target}"
        if kind == "AWS::Connect::Instance":
            return "connect instance"
        if kind == "AWS::Connect::ContactFlow":
            return "contact flow"
        if kind == "AWS::S3::Bucket":
            return "lake bucket"
        if kind == "AWS::Lambda::Function":
            return f"function {props['FunctionName']}"
    is_ref = isinstance(value, dict) and "Ref" in value
    if is_ref and resources[value["Ref"]]["Type"] == "AWS::SecretsManager::Secret":
        return "pseudonym secret"
    if isinstance(value, dict) and "Fn::Join" in value:
        parts = value["Fn::Join"][1]
        text = "".join(p if isinstance(p, str) else "" for p in parts)
        head = parts[0]
        on_bucket = isinstance(head, dict) and "Fn::GetAtt" in head
        if on_bucket and resources[head["Fn::GetAtt"][0]]["Type"] == "AWS::S3::Bucket":
            return f"lake {text.lstrip('/')}"
        if text == "/contact/*" and resources[head["Fn::GetAtt"][0]]["Type"] == (
            "AWS::Connect::Instance"
        ):
            return "contacts of the connect instance"
        if ":glue:" in text:  # the probe archive's Firehose reads its table's schema
            return f"glue {text.rsplit(':', 1)[-1]}"
    raise AssertionError(f"unrecognised IAM resource {json.dumps(value)}")


def granted(resources: dict[str, Any], role_id: str, own_log_group: str | None = None) -> set:
    pairs = set()
    for statement in role_statements(resources, role_id):
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                pairs.add((action, describe(resources, resource, own_log_group)))
    return pairs


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_role_grants_exactly_what_the_handler_calls(variant, name) -> None:
    resources = variant.resources
    props = function_props(resources, name)
    role_id = props["Role"]["Fn::GetAtt"][0]
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert resources[role_id]["Properties"].get("ManagedPolicyArns") is None
    assert granted(resources, role_id, log_group) == EXPECTED[name]


def test_texting_grants_the_dialler_its_number_and_the_reply_function_only_the_table(
    texting,
) -> None:
    """With SMS on, Trigger_Connect may send texts from the configured number alone, and
    Collect_feedback_from_SMS reads and writes the subscriber table, nothing else."""
    resources = texting.resources
    grants = {}
    for name in ("Trigger_Connect", "Collect_feedback_from_SMS"):
        props = function_props(resources, name)
        log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
        grants[name] = granted(resources, props["Role"]["Fn::GetAtt"][0], log_group)

    assert grants["Trigger_Connect"] == EXPECTED["Trigger_Connect"] | {
        ("sms-voice:SendTextMessage", "sms origination identity")
    }
    # Its asynchronous invocation's on-failure destination is the one queue it may write.
    assert grants["Collect_feedback_from_SMS"] == EXPECTED["Collect_feedback_from_Connect"] | {
        ("sqs:SendMessage", "queue sms_replies_dlq")
    }


def test_each_function_has_a_role_of_its_own(default) -> None:
    roles = [
        function_props(default.resources, name)["Role"]["Fn::GetAtt"][0] for name in FUNCTION_NAMES
    ]
    assert len(set(roles)) == len(FUNCTION_NAMES)


def test_no_identity_policy_has_a_wildcard_action(variant) -> None:
    for policy in of_type(variant.resources, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            for action in as_list(statement["Action"]):
                assert "*" not in action, statement


def test_every_identity_wildcard_resource_is_allow_listed(variant) -> None:
    resources = variant.resources
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            for resource in as_list(statement["Resource"]):
                name = describe(resources, resource)
                if "*" in name:
                    assert name in WILDCARD_ALLOW_LIST, (name, statement["Action"])
                    if name == "*":
                        assert set(as_list(statement["Action"])) <= {
                            "xray:PutTraceSegments",
                            "xray:PutTelemetryRecords",
                            "dynamodb:ListStreams",
                        }


def test_key_policy_wildcards_are_scoped_by_service_and_condition(default) -> None:
    (key,) = of_type(default.resources, "AWS::KMS::Key").values()
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        principal = statement["Principal"]
        if "Service" in principal:
            assert "Condition" in statement, statement
            assert all("*" not in action for action in as_list(statement["Action"])), statement
            continue
        # Only the account itself: AWS's default delegation to IAM ("kms:*"), and the
        # statement Secrets Manager needs to use the key on the account's behalf.
        assert ":root" in json.dumps(principal)
        if statement["Action"] != "kms:*":
            via = statement["Condition"]["StringEquals"]["kms:ViaService"]
            assert "secretsmanager." in json.dumps(via)


def test_connect_may_invoke_only_the_feedback_function_from_its_instance(default) -> None:
    (permission,) = of_type(default.resources, "AWS::Lambda::Permission").values()
    props = permission["Properties"]
    instance = next(iter(of_type(default.resources, "AWS::Connect::Instance")))
    assert props["Principal"] == "connect.amazonaws.com"
    assert props["Action"] == "lambda:InvokeFunction"
    assert props["SourceArn"] == {"Fn::GetAtt": [instance, "Arn"]}
    feedback = function_props(default.resources, "Collect_feedback_from_Connect")
    assert feedback["FunctionName"] == "Collect_feedback_from_Connect"
    assert default.resources[props["FunctionName"]["Fn::GetAtt"][0]]["Properties"] == feedback
