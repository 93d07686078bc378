"""Every IAM policy of a synthesized template, checked against AWS's catalogue by parliament.

parliament (https://github.com/duo-labs/parliament) audits a policy against the IAM
definitions of AWS's *Service Authorization Reference*: unknown actions or prefixes, an
action granted on a resource type it is not authorised on (``RESOURCE_MISMATCH``),
condition keys an action does not support, malformed statements and principals.

It reads literal policies, so the template's intrinsics are resolved first: ``Ref`` and
``Fn::GetAtt`` of a resource become an identifier of the shape CloudFormation documents
for that resource type (``Ref`` of a queue is its URL, ``GetAtt Arn`` of a table is
``arn:aws:dynamodb:<region>:<account>:table/<name>``...), pseudo parameters a fixed
partition, region and account. A resource type or attribute the resolver does not know
stops the check instead of being guessed.

Run on a template file: ``python tests/infra/iam_catalogue.py cdk.out/<stack>.template.json``
(``make synth-check``); the infra test runs it on both synthesized variants.
"""

import json
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # parliament 1.6 imports pkg_resources, deprecated in setuptools 81 (pinned below 82).
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
    from parliament import analyze_policy_string

PARTITION, REGION, ACCOUNT = "aws", "eu-west-2", "111122223333"
PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "SubscriberFeedbackLoop",
}

# Resource type -> (Ref value, {attribute: value}); ``n`` is the logical id used as name.
_Shape = Callable[[str], tuple[str, dict[str, str]]]
_ARN = f"arn:{PARTITION}:{{service}}:{REGION}:{ACCOUNT}:{{resource}}"


def _arn(service: str, resource: str, *, regional: bool = True) -> str:
    if not regional:
        return f"arn:{PARTITION}:{service}:::{resource}"
    return _ARN.format(service=service, resource=resource)


_UUID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
_SHAPES: dict[str, _Shape] = {
    "AWS::SQS::Queue": lambda n: (
        f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{n}",
        {
            "Arn": _arn("sqs", n),
            "QueueName": n,
            "QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{n}",
        },
    ),
    "AWS::DynamoDB::Table": lambda n: (
        n,
        {
            "Arn": _arn("dynamodb", f"table/{n}"),
            "StreamArn": _arn("dynamodb", f"table/{n}/stream/2026-01-01T00:00:00.000"),
        },
    ),
    "AWS::KMS::Key": lambda n: (_UUID, {"Arn": _arn("kms", f"key/{_UUID}"), "KeyId": _UUID}),
    "AWS::S3::Bucket": lambda n: (
        n.lower(),
        {
            "Arn": _arn("s3", n.lower(), regional=False),
            "DomainName": f"{n.lower()}.s3.amazonaws.com",
        },
    ),
    "AWS::Kinesis::Stream": lambda n: (n, {"Arn": _arn("kinesis", f"stream/{n}")}),
    "AWS::Logs::LogGroup": lambda n: (n, {"Arn": _arn("logs", f"log-group:{n}:*")}),
    "AWS::SecretsManager::Secret": lambda n: (_arn("secretsmanager", f"secret:{n}-AbCdEf"), {}),
    "AWS::SNS::Topic": lambda n: (_arn("sns", n), {"TopicArn": _arn("sns", n), "TopicName": n}),
    "AWS::Lambda::Function": lambda n: (n, {"Arn": _arn("lambda", f"function:{n}")}),
    "AWS::IAM::Role": lambda n: (
        n,
        {"Arn": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{n}", "RoleId": "AROAEXAMPLE"},
    ),
    "AWS::Connect::Instance": lambda n: (
        _arn("connect", f"instance/{_UUID}"),
        {"Arn": _arn("connect", f"instance/{_UUID}"), "Id": _UUID},
    ),
    "AWS::Connect::ContactFlow": lambda n: (
        _arn("connect", f"instance/{_UUID}/contact-flow/{_UUID}"),
        {"ContactFlowArn": _arn("connect", f"instance/{_UUID}/contact-flow/{_UUID}")},
    ),
    "AWS::Connect::PhoneNumber": lambda n: (
        _arn("connect", f"phone-number/{_UUID}"),
        {"PhoneNumberArn": _arn("connect", f"phone-number/{_UUID}"), "Address": "+442079460000"},
    ),
    "AWS::Glue::Database": lambda n: (n.lower(), {}),
    "AWS::Glue::Table": lambda n: (n.lower(), {}),
    "AWS::Athena::WorkGroup": lambda n: (n, {}),
}


class UnresolvedIntrinsic(ValueError):
    """The template uses an intrinsic, resource type or attribute the resolver cannot shape."""


@dataclass(frozen=True)
class Finding:
    """One parliament finding on one statement of one policy of the template."""

    where: str
    kind: str
    issue: str
    actions: frozenset[str]
    conditions: frozenset[str]
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.issue} {sorted(self.actions)} {self.detail}".rstrip()


@dataclass(frozen=True)
class Allowance:
    """A reviewed finding: ``issue`` on a policy ``kind``, about these actions or condition key."""

    issue: str
    kind: str
    reason: str
    actions: frozenset[str] | None = None
    condition: str | None = None

    def covers(self, finding: Finding) -> bool:
        return (
            finding.issue == self.issue
            and finding.kind == self.kind
            and (self.actions is None or finding.actions <= self.actions)
            and (self.condition is None or self.condition in finding.conditions)
        )


class _Resolver:
    def __init__(self, template: dict[str, Any]) -> None:
        self._resources: dict[str, dict[str, Any]] = template.get("Resources", {})
        self._conditions: dict[str, Any] = template.get("Conditions", {})

    def _shape(self, logical_id: str) -> tuple[str, dict[str, str]]:
        resource_type = self._resources[logical_id]["Type"]
        if resource_type not in _SHAPES:
            raise UnresolvedIntrinsic(f"no ARN shape for {resource_type} ({logical_id})")
        name = self._resources[logical_id].get("Properties", {}).get("FunctionName", logical_id)
        return _SHAPES[resource_type](name if isinstance(name, str) else logical_id)

    def _ref(self, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if name not in self._resources:
            raise UnresolvedIntrinsic(f"Ref to unknown {name}")
        return self._shape(name)[0]

    def _get_att(self, logical_id: str, attribute: str) -> str:
        attributes = self._shape(logical_id)[1]
        if attribute not in attributes:
            raise UnresolvedIntrinsic(f"GetAtt {logical_id}.{attribute}")
        return attributes[attribute]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(logical_id, attribute)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self.resolve(part)) for part in parts)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                raise UnresolvedIntrinsic("Fn::If inside a policy: audit each branch explicitly")
            if key.startswith("Fn::"):
                raise UnresolvedIntrinsic(key)
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg
        for name, value in variables.items():
            text = text.replace("${" + name + "}", str(self.resolve(value)))
        while "${" in text:
            start = text.index("${")
            end = text.index("}", start)
            name = text[start + 2 : end]
            value = self._get_att(*name.split(".", 1)) if "." in name else self._ref(name)
            text = text[:start] + value + text[end + 1 :]
        return text


def policies(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(logical id, property, resolved document) for every IAM policy document in ``template``."""
    resolver = _Resolver(template)
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        for key in ("PolicyDocument", "AssumeRolePolicyDocument", "KeyPolicy", "ResourcePolicy"):
            document = properties.get(key)
            if isinstance(document, dict):
                document = document.get("PolicyDocument", document)
                yield logical_id, key, resolver.resolve(document)
        for inline in properties.get("Policies", []):
            yield logical_id, "Policies", resolver.resolve(inline["PolicyDocument"])


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statement = document.get("Statement", [])
    return statement if isinstance(statement, list) else [statement]


def _actions(issue: str, detail: Any, statement: dict[str, Any]) -> frozenset[str]:
    """The actions a finding is about: those it lists, else the statement's."""
    if isinstance(detail, list):
        named = {item["action"] for item in detail if isinstance(item, dict) and "action" in item}
        named |= {item for item in detail if isinstance(item, str)}
        if named:
            return frozenset(named)
    action = statement.get("Action", statement.get("NotAction", []))
    return frozenset([action] if isinstance(action, str) else action)


def findings(template: dict[str, Any]) -> list[Finding]:
    """parliament's findings on every statement of every policy in ``template``.

    Statements are audited one by one so that each finding names its statement; the
    reviewed ``ALLOWED`` findings are marked ``allowed`` with the allowance that covers them.
    """
    found = []
    for logical_id, kind, document in policies(template):
        for index, statement in enumerate(_statements(document)):
            single = {"Version": document.get("Version", "2012-10-17"), "Statement": [statement]}
            policy = analyze_policy_string(json.dumps(single), ignore_private_auditors=True)
            for raw in policy.findings:
                finding = Finding(
                    where=f"{logical_id}.{kind}[{index}]",
                    kind=kind,
                    issue=raw.issue,
                    actions=_actions(raw.issue, raw.detail, statement),
                    conditions=frozenset(
                        key for test in statement.get("Condition", {}).values() for key in test
                    ),
                    detail=json.dumps(raw.detail, default=str) if raw.detail else "",
                )
                found.append(finding)
    return found


ALLOWED = (
    Allowance(
        "MALFORMED",
        "AssumeRolePolicyDocument",
        "A role's trust policy has no Resource element: the role is the resource (IAM JSON "
        "policy reference, Resource element). parliament audits it as an identity policy; its "
        "principal checks still run.",
    ),
    Allowance(
        "RESOURCE_STAR",
        "KeyPolicy",
        'In a key policy "Resource": "*" means this KMS key and nothing else (AWS KMS Developer '
        "Guide, Key policies); parliament reads it as every resource.",
    ),
    Allowance(
        "MISMATCHED_TYPE",
        "KeyPolicy",
        "CloudWatch Logs' guide to encrypting log groups with AWS KMS matches this key with "
        "ArnLike/ArnEquals: its value is the log group's ARN; the catalogue types every "
        "kms:EncryptionContext: key as String.",
        condition="kms:EncryptionContext:aws:logs:arn",
    ),
    Allowance(
        "RESOURCE_MISMATCH",
        "PolicyDocument",
        "aws-cdk-lib's Stream.grant_read (used by KinesisEventSource) lists these on the stream "
        "ARN. AWS authorises SubscribeToShard and DescribeStreamConsumer only on consumer ARNs "
        "(enhanced fan-out, which the stack does not use) and ListStreams only on *, so they "
        "grant nothing here; the event source mapping polls with the other actions.",
        actions=frozenset(
            {"kinesis:SubscribeToShard", "kinesis:DescribeStreamConsumer", "kinesis:ListStreams"}
        ),
    ),
    Allowance(
        "RESOURCE_MISMATCH",
        "PolicyDocument",
        "A stream ARN ends in its label, a timestamp with colons (table/<name>/stream/"
        "2015-05-11T21:21:33.291, DynamoDB Streams API reference); parliament 1.6 rejects any "
        "colon after the resource type, so it cannot match the real shape.",
        actions=frozenset(
            {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
        ),
    ),
)


def unexpected(found: list[Finding]) -> list[Finding]:
    """The findings no allowance covers."""
    return [finding for finding in found if not any(a.covers(finding) for a in ALLOWED)]


def main(argv: list[str]) -> int:
    """Print the unexpected findings of each template given; exit 1 if there is any."""
    problems = 0
    for path in argv:
        template = json.loads(Path(path).read_text(encoding="utf-8"))
        documents = sum(1 for _ in policies(template))
        found = findings(template)
        bad = unexpected(found)
        for finding in bad:
            print(finding)
        print(
            f"{path}: {documents} IAM policy documents checked against the catalogue, "
            f"{len(bad)} findings ({len(found) - len(bad)} reviewed and allowed, docs/TOOLING.md)"
        )
        problems += len(bad)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
