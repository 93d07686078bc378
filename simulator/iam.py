"""IAM in the twin: every AWS call a handler makes is allowed or denied as AWS would.

The policies are the synthesized template's: each function's execution role (its
``AWS::IAM::Policy`` / ``AWS::IAM::ManagedPolicy`` documents and inline ``Policies``) and
the resource policies of what it touches (SQS queue policies, S3 bucket policies, KMS key
policies, Secrets Manager resource policies), with their intrinsics resolved to the
twin's physical ids. A call is turned into the requests AWS authorises (action and
resource ARN, from the Service Authorization Reference's resource types: an S3 object
ARN for ``PutObject``, the ``instance/<id>/contact/*`` ARN for
``StartOutboundVoiceContact``, ``sqs:SendMessage`` for ``SendMessageBatch``, one request
per table for ``BatchGetItem``) plus the KMS requests the service makes for the caller on
an encrypted resource (SQS send: ``kms:GenerateDataKey`` and ``kms:Decrypt``; SQS
receive, S3 read, Secrets Manager read: ``kms:Decrypt``; S3 write: ``kms:GenerateDataKey``).

Evaluation follows the IAM policy evaluation logic for one account: an explicit
``Deny`` anywhere wins; otherwise an ``Allow`` in the role's policies or one naming the
role in the resource policy; for KMS the key policy must allow the role itself or let
the account's IAM policies decide (a statement for the account root) *and* the role
must allow it. ``Action``/``NotAction``, ``Resource``/``NotResource``, ``*``/``?``
wildcards and the ``String*``, ``Arn*``, ``Bool`` and ``Null`` condition operators
(with ``...IfExists``) are evaluated; anything else in a policy is a wiring error rather
than a guess. Not modelled: DynamoDB's use of the table key (DynamoDB decrypts with its
own grant, so no per-request KMS check is made), SCPs, permission boundaries, session
policies, policy variables.

A denied call answers with the service's modelled access-denied error (``ClientError``
code and status as on AWS) and is recorded in :attr:`IamEnforcer.denials`.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from simulator.api_calls import ApiError
from simulator.provision import ACCOUNT_ID, EventSourceSpec, Provisioner
from simulator.template import Template, WiringError

# (code, HTTP status) of the access-denied answer per service, and of the KMS failure
# the service reports when the caller may not use the resource's key.
ACCESS_DENIED = {
    "dynamodb": ("AccessDeniedException", 400),
    "sqs": ("AccessDenied", 403),
    "s3": ("AccessDenied", 403),
    "secretsmanager": ("AccessDeniedException", 400),
    "connect": ("AccessDeniedException", 403),
    "kinesis": ("AccessDeniedException", 400),
}
KMS_DENIED = {
    "sqs": ("KMS.AccessDeniedException", 400),
    "s3": ("AccessDenied", 403),
    "secretsmanager": ("AccessDeniedException", 400),
    "kinesis": ("KMSAccessDeniedException", 400),
}
SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
S3_ACTIONS = {
    "HeadObject": "GetObject",
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "HeadBucket": "ListBucket",
}
DYNAMODB_TRANSACT = {
    "ConditionCheck": "ConditionCheckItem",
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "Get": "GetItem",
}
# What Lambda's event-source poller calls with the function's role (Lambda developer
# guide, the execution role permissions of each event source).
POLLER_ACTIONS = {
    "sqs": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
    "kinesis": (
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
    ),
    "dynamodb": (
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ),
}
_CONDITION_OPERATORS = {
    "StringEquals": ("string", False, False),
    "StringNotEquals": ("string", True, False),
    "StringEqualsIgnoreCase": ("string", False, True),
    "StringNotEqualsIgnoreCase": ("string", True, True),
    "StringLike": ("like", False, False),
    "StringNotLike": ("like", True, False),
    "ArnEquals": ("like", False, False),
    "ArnLike": ("like", False, False),
    "ArnNotEquals": ("like", True, False),
    "ArnNotLike": ("like", True, False),
    "Bool": ("bool", False, True),
}


class UnmodelledCall(BaseException):
    """A handler made a call whose IAM request the twin cannot derive.

    A ``BaseException`` so that no handler's ``except Exception`` can turn it into a
    silently allowed call: the run stops and names the operation to add.
    """


@dataclass(frozen=True)
class AccessRequest:
    """One authorisation AWS makes for a call: action, resource ARN, condition context."""

    action: str
    resource: str
    service: str
    kms: bool = False
    context: Mapping[str, str] = field(default_factory=dict)
    policy_resource: str = ""  # whose resource policy applies (the bucket of an object)

    @property
    def policy_owner(self) -> str:
        return self.policy_resource or self.resource


@functools.cache
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in str(pattern))
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's ``*`` (any run of characters) and ``?`` (one character) matching."""
    return _wildcard(pattern, ignore_case).match(value) is not None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Principal:
    """The role a function runs as: its ARN and the assumed-role session ARN AWS sees."""

    role_arn: str
    session_arn: str
    account: str = ACCOUNT_ID

    @property
    def account_ids(self) -> tuple[str, ...]:
        return (self.account, f"arn:aws:iam::{self.account}:root")


def _principal_match(statement: Mapping[str, Any], who: Principal) -> str | None:
    """``"direct"`` when a resource-policy statement names the role (or everyone),
    ``"account"`` when it names the role's account, else ``None``."""
    if "NotPrincipal" in statement:
        raise WiringError(f"NotPrincipal is not evaluated by the twin: {dict(statement)}")
    principal = statement.get("Principal")
    if principal == "*":
        return "direct"
    if not isinstance(principal, Mapping):
        return None
    names = [str(n) for n in _as_list(principal.get("AWS", []))]
    if any(n == "*" or n in (who.role_arn, who.session_arn) for n in names):
        return "direct"
    if any(n in who.account_ids for n in names):
        return "account"
    return None


def _condition_holds(conditions: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, tests in conditions.items():
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        for key, expected in tests.items():
            value = context.get(key)
            values = [str(v) for v in _as_list(expected)]
            if base == "Null":
                if (value is None) != (values[0].lower() == "true"):
                    return False
                continue
            if base not in _CONDITION_OPERATORS:
                raise WiringError(f"condition operator {operator} is not evaluated by the twin")
            kind, negated, ignore_case = _CONDITION_OPERATORS[base]
            if value is None:
                if not (if_exists or negated):
                    return False
                continue
            if kind == "like":
                hit = any(wildcard_match(v, value) for v in values)
            elif ignore_case:
                hit = any(v.lower() == value.lower() for v in values)
            else:
                hit = value in values
            if hit == negated:
                return False
    return True


def _statement_applies(
    statement: Mapping[str, Any], request: AccessRequest, context: Mapping[str, str]
) -> bool:
    if "NotAction" in statement:
        if any(wildcard_match(a, request.action, True) for a in _as_list(statement["NotAction"])):
            return False
    elif not any(wildcard_match(a, request.action, True) for a in _as_list(statement["Action"])):
        return False
    if "NotResource" in statement:
        if any(wildcard_match(r, request.resource) for r in _as_list(statement["NotResource"])):
            return False
    elif "Resource" in statement and not any(
        wildcard_match(r, request.resource) for r in _as_list(statement["Resource"])
    ):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


def _statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        document = json.loads(document)
    if not isinstance(document, Mapping):
        raise WiringError(f"a policy document must be an object, got {document!r}")
    return [dict(s) for s in _as_list(document.get("Statement", []))]


def evaluate(
    request: AccessRequest,
    who: Principal,
    identity: Sequence[Mapping[str, Any]],
    resource_policy: Sequence[Mapping[str, Any]] | None,
) -> str:
    """``"allowed"``, ``"explicit_deny"`` or ``"implicit_deny"`` for one request."""
    context = {
        "aws:SecureTransport": "true",
        "aws:PrincipalArn": who.role_arn,
        "aws:PrincipalAccount": who.account,
        "aws:PrincipalType": "AssumedRole",
        **request.context,
    }
    identity_allows = False
    for statement in identity:
        if _statement_applies(statement, request, context):
            if statement.get("Effect") == "Deny":
                return "explicit_deny"
            identity_allows = True
    resource_allows = account_delegates = False
    for statement in resource_policy or ():
        match = _principal_match(statement, who)
        if match is None or not _statement_applies(statement, request, context):
            continue
        if statement.get("Effect") == "Deny":
            return "explicit_deny"
        resource_allows |= match == "direct"
        account_delegates |= match == "account"
    if request.kms and resource_policy is not None:
        allowed = resource_allows or (account_delegates and identity_allows)
    else:
        allowed = identity_allows or resource_allows
    return "allowed" if allowed else "implicit_deny"


@dataclass(frozen=True)
class Denial:
    """A call the role did not allow."""

    function: str
    operation: str
    action: str
    resource: str
    reason: str


class IamModel:
    """Roles, resource policies and encryption keys of a template, resolved to physical ids."""

    def __init__(self, template: Template, provisioner: Provisioner) -> None:
        self.template = template
        self.provisioner = provisioner
        self.region = provisioner.region
        self.principals: dict[str, Principal] = {}
        self.identity: dict[str, list[dict[str, Any]]] = {}
        self.resource_policies: dict[str, list[dict[str, Any]]] = {}
        self.keys: dict[str, str] = {}  # resource ARN → KMS key ARN
        self._function_roles()
        self._resource_policies()
        self._encryption()

    # --- building the model ------------------------------------------------------------------

    def _function_roles(self) -> None:
        role_of: dict[str, str] = {}
        for logical_id, props in self.template.of_type("AWS::Lambda::Function"):
            name = self.provisioner.ref(logical_id)
            role_arn = str(self.provisioner.resolve(props["Role"]))
            role_of[role_arn] = role_of.get(role_arn, logical_id)
            role_name = role_arn.rsplit("/", 1)[-1]
            self.principals[name] = Principal(
                role_arn, f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role_name}/{name}"
            )
        statements: dict[str, list[dict[str, Any]]] = {arn: [] for arn in role_of}
        for logical_id, props in self.template.of_type("AWS::IAM::Role"):
            arn = self.provisioner.get_att(logical_id, "Arn")
            if arn not in statements:
                continue
            for inline in props.get("Policies", []):
                statements[arn] += _statements(self.provisioner.resolve(inline["PolicyDocument"]))
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for _, props in self.template.of_type(kind):
                roles = {
                    self._role_arn(self.provisioner.resolve(r)) for r in props.get("Roles", [])
                }
                for arn in roles & set(statements):
                    statements[arn] += _statements(
                        self.provisioner.resolve(props["PolicyDocument"])
                    )
        for name, principal in self.principals.items():
            self.identity[name] = statements[principal.role_arn]

    def _role_arn(self, name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        return f"arn:aws:iam::{ACCOUNT_ID}:role/{name_or_arn}"

    def _resource_policies(self) -> None:
        targets = {
            "AWS::SQS::QueuePolicy": ("Queues", "PolicyDocument"),
            "AWS::S3::BucketPolicy": ("Bucket", "PolicyDocument"),
            "AWS::SecretsManager::ResourcePolicy": ("SecretId", "ResourcePolicy"),
        }
        for kind, (target_key, document_key) in targets.items():
            for _, props in self.template.of_type(kind):
                document = _statements(self.provisioner.resolve(props[document_key]))
                for target in _as_list(self.provisioner.resolve(props[target_key])):
                    arn = self.arn_of(kind.split("::")[1].lower(), str(target))
                    self.resource_policies.setdefault(arn, []).extend(document)
        for logical_id, props in self.template.of_type("AWS::KMS::Key"):
            arn = self.provisioner.get_att(logical_id, "Arn")
            if "KeyPolicy" in props:
                self.resource_policies[arn] = _statements(
                    self.provisioner.resolve(props["KeyPolicy"])
                )

    def _encryption(self) -> None:
        for logical_id, props in self.template.of_type("AWS::SQS::Queue"):
            self._key_for(self.provisioner.get_att(logical_id, "Arn"), props.get("KmsMasterKeyId"))
        for logical_id, props in self.template.of_type("AWS::S3::Bucket"):
            rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
            for rule in rules:
                default = rule.get("ServerSideEncryptionByDefault", {})
                if str(default.get("SSEAlgorithm", "")).startswith("aws:kms"):
                    self._key_for(
                        self.provisioner.get_att(logical_id, "Arn"), default.get("KMSMasterKeyID")
                    )
        for logical_id, props in self.template.of_type("AWS::SecretsManager::Secret"):
            self._key_for(self.provisioner.ref(logical_id), props.get("KmsKeyId"))
        for logical_id, props in self.template.of_type("AWS::Kinesis::Stream"):
            encryption = props.get("StreamEncryption", {})
            if encryption.get("EncryptionType") == "KMS":
                self._key_for(self.provisioner.get_att(logical_id, "Arn"), encryption.get("KeyId"))

    def _key_for(self, resource_arn: str, key: Any) -> None:
        """Remember a customer managed key; AWS managed keys (``alias/aws/...``) need no grant."""
        if key is None:
            return
        key_id = str(self.provisioner.resolve(key))
        if key_id.startswith("alias/aws/") or ":alias/aws/" in key_id:
            return
        if not key_id.startswith("arn:"):
            key_id = f"arn:aws:kms:{self.region}:{ACCOUNT_ID}:key/{key_id}"
        self.keys[resource_arn] = key_id

    # --- ARNs --------------------------------------------------------------------------------

    def arn_of(self, kind: str, identifier: str) -> str:
        """The ARN of a queue (URL or name), bucket, secret, table, stream or key."""
        if identifier.startswith("arn:"):
            return identifier
        if kind == "sqs":
            if identifier.startswith("http"):
                account, name = urlparse(identifier).path.strip("/").split("/", 1)
                return f"arn:aws:sqs:{self.region}:{account}:{name}"
            return f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{identifier}"
        if kind == "s3":
            return f"arn:aws:s3:::{identifier}"
        if kind == "secretsmanager":
            secrets = self.provisioner.estate.secrets
            known = [arn for arn in secrets if arn.split(":")[-1].startswith(identifier)]
            if not known:
                return f"arn:aws:secretsmanager:{self.region}:{ACCOUNT_ID}:secret:{identifier}"
            return known[0]
        if kind == "dynamodb":
            return f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{identifier}"
        if kind == "kinesis":
            return f"arn:aws:kinesis:{self.region}:{ACCOUNT_ID}:stream/{identifier}"
        raise UnmodelledCall(f"no ARN rule for {kind} {identifier!r}")


def _kms_requests(
    model: IamModel, service: str, resource: str, actions: Iterable[str]
) -> list[AccessRequest]:
    key = model.keys.get(resource)
    if key is None:
        return []
    context = {
        "kms:CallerAccount": ACCOUNT_ID,
        "kms:ViaService": f"{service}.{model.region}.amazonaws.com",
    }
    return [AccessRequest(action, key, service, True, context) for action in actions]


def access_requests(
    model: IamModel, operation: str, params: Mapping[str, Any]
) -> list[AccessRequest]:
    """The authorisations AWS makes for a handler's ``service.Operation`` call."""
    service, name = operation.split(".", 1)
    if service == "sts" and name == "GetCallerIdentity":
        return []
    if service == "dynamodb":
        return _dynamodb(model, name, params)
    if service == "sqs":
        queue = model.arn_of("sqs", str(params.get("QueueUrl") or params.get("QueueName")))
        action = f"sqs:{SQS_ACTIONS.get(name, name)}"
        requests = [AccessRequest(action, queue, "sqs")]
        if action == "sqs:SendMessage":
            requests += _kms_requests(model, "sqs", queue, ("kms:GenerateDataKey", "kms:Decrypt"))
        elif action == "sqs:ReceiveMessage":
            requests += _kms_requests(model, "sqs", queue, ("kms:Decrypt",))
        return requests
    if service == "s3":
        bucket = model.arn_of("s3", str(params["Bucket"]))
        action = f"s3:{S3_ACTIONS.get(name, name)}"
        if action == "s3:ListBucket":
            return [AccessRequest(action, bucket, "s3")]
        if "Key" not in params:
            raise UnmodelledCall(f"the twin cannot authorise {operation} (no object key)")
        target = f"{bucket}/{params['Key']}"
        requests = [AccessRequest(action, target, "s3", policy_resource=bucket)]
        if action == "s3:PutObject":
            requests += _kms_requests(model, "s3", bucket, ("kms:GenerateDataKey",))
        elif action == "s3:GetObject":
            requests += _kms_requests(model, "s3", bucket, ("kms:Decrypt",))
        return requests
    if service == "secretsmanager":
        secret = model.arn_of("secretsmanager", str(params["SecretId"]))
        requests = [AccessRequest(f"secretsmanager:{name}", secret, "secretsmanager")]
        if name == "GetSecretValue":
            requests += _kms_requests(model, "secretsmanager", secret, ("kms:Decrypt",))
        return requests
    if service == "connect" and name == "StartOutboundVoiceContact":
        instance = str(params["InstanceId"]).rsplit("/", 1)[-1]
        arn = f"arn:aws:connect:{model.region}:{ACCOUNT_ID}:instance/{instance}/contact/*"
        return [AccessRequest("connect:StartOutboundVoiceContact", arn, "connect")]
    if service == "pinpoint-sms-voice-v2" and name == "SendTextMessage":
        # The origination identity is the resource (a phone number or pool ARN, as the
        # config requires); End User Messaging SMS has no resource policy for it.
        identity = str(params["OriginationIdentity"])
        return [AccessRequest("sms-voice:SendTextMessage", identity, "sms-voice")]
    if service == "kinesis" and name in ("PutRecord", "PutRecords"):
        stream = model.arn_of("kinesis", str(params.get("StreamARN") or params["StreamName"]))
        return [
            AccessRequest(f"kinesis:{name}", stream, "kinesis"),
            *_kms_requests(model, "kinesis", stream, ("kms:GenerateDataKey",)),
        ]
    raise UnmodelledCall(
        f"the twin cannot derive the IAM request of {operation}: add it to simulator/iam.py"
    )


def _dynamodb(model: IamModel, name: str, params: Mapping[str, Any]) -> list[AccessRequest]:
    def table(identifier: str, index: str | None = None) -> str:
        arn = model.arn_of("dynamodb", identifier)
        return f"{arn}/index/{index}" if index else arn

    if name in ("BatchGetItem", "BatchWriteItem"):
        return [
            AccessRequest(f"dynamodb:{name}", table(t), "dynamodb")
            for t in params.get("RequestItems", {})
        ]
    if name in ("TransactWriteItems", "TransactGetItems"):
        requests = []
        for item in params.get("TransactItems", []):
            ((kind, body),) = item.items()
            requests.append(
                AccessRequest(
                    f"dynamodb:{DYNAMODB_TRANSACT[kind]}", table(body["TableName"]), "dynamodb"
                )
            )
        return requests
    if "TableName" not in params:
        raise UnmodelledCall(f"the twin cannot derive the IAM request of dynamodb.{name}")
    return [
        AccessRequest(
            f"dynamodb:{name}", table(params["TableName"], params.get("IndexName")), "dynamodb"
        )
    ]


class IamEnforcer:
    """The IAM check plugged into the AWS hooks: one role per running function."""

    def __init__(self, model: IamModel, current_function: Any) -> None:
        self.model = model
        self._current = current_function
        self.denials: list[Denial] = []

    def check(self, operation: str, params: dict[str, Any]) -> ApiError | None:
        """Once per handler call: the service's access-denied error, or ``None``."""
        function = self._current()
        if function is None:
            return None
        name = function.spec.name
        who = self.model.principals[name]
        for request in access_requests(self.model, operation, params):
            verdict = evaluate(
                request,
                who,
                self.model.identity[name],
                self.model.resource_policies.get(request.policy_owner),
            )
            if verdict == "allowed":
                continue
            self.denials.append(Denial(name, operation, request.action, request.resource, verdict))
            code, status = (KMS_DENIED if request.kms else ACCESS_DENIED)[request.service]
            because = (
                "with an explicit deny"
                if verdict == "explicit_deny"
                else f"because no identity-based policy allows the {request.action} action"
            )
            return ApiError(
                code,
                f"User: {who.session_arn} is not authorized to perform: {request.action} "
                f"on resource: {request.resource} {because}",
                status,
                "access_denied",
            )
        return None

    def summary(self) -> tuple[int, list[dict[str, Any]]]:
        """``access_denied`` and the denied calls (function, operation, action, resource, count)."""
        counted = Counter(self.denials)
        return len(self.denials), [
            {**vars(denial), "count": count}
            for denial, count in sorted(
                counted.items(),
                key=lambda item: (item[0].function, item[0].action, item[0].resource),
            )
        ]


def check_event_source_permissions(model: IamModel, spec: EventSourceSpec, kind: str) -> None:
    """What ``CreateEventSourceMapping`` checks: the role may poll the source (and decrypt
    it) and send to the on-failure destination; otherwise Lambda refuses the mapping."""
    who = model.principals[spec.function_name]
    identity = model.identity[spec.function_name]
    source = spec.source_arn
    requests = [AccessRequest(action, source, kind) for action in POLLER_ACTIONS[kind]]
    if kind != "dynamodb":
        requests += _kms_requests(model, kind, source, ("kms:Decrypt",))
    if spec.on_failure_arn is not None:
        requests.append(AccessRequest("sqs:SendMessage", spec.on_failure_arn, "sqs"))
        requests += _kms_requests(
            model, "sqs", spec.on_failure_arn, ("kms:GenerateDataKey", "kms:Decrypt")
        )
    for request in requests:
        verdict = evaluate(
            request, who, identity, model.resource_policies.get(request.policy_owner)
        )
        if verdict != "allowed":
            raise WiringError(
                f"{spec.logical_id}: the execution role of {spec.function_name} does not allow "
                f"{request.action} on {request.resource} (Lambda refuses this event source mapping)"
            )
