"""Create the template's resources in moto and resolve the wiring to concrete values.

Only resources a handler or the event-source emulator touches are created in moto
(queues, tables, the stream, buckets, secrets), each with the template's settings.
Resources the twin only needs ids for (functions, roles, keys, the Connect instance
and flow) get deterministic fake ids. KMS settings are not emulated: moto stores
objects unencrypted, which changes nothing the handlers can observe.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from simulator.template import STACK_NAME, Resolver, Template, WiringError

ACCOUNT_ID = "123456789012"
REGION = "eu-west-2"

_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


@dataclass(frozen=True)
class QueueInfo:
    """An SQS queue as created in moto, with the settings the emulator honours."""

    logical_id: str
    name: str
    url: str
    arn: str
    fifo: bool
    visibility_timeout: int
    dlq_arn: str | None


@dataclass(frozen=True)
class TableInfo:
    """A DynamoDB table (and its stream, if enabled)."""

    logical_id: str
    name: str
    arn: str
    stream_arn: str | None


@dataclass(frozen=True)
class StreamInfo:
    """A Kinesis data stream."""

    logical_id: str
    name: str
    arn: str


@dataclass(frozen=True)
class FunctionSpec:
    """An ``AWS::Lambda::Function`` with its properties resolved."""

    logical_id: str
    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    timeout: int
    memory: int


@dataclass(frozen=True)
class EventSourceSpec:
    """An ``AWS::Lambda::EventSourceMapping`` with its properties resolved."""

    logical_id: str
    function_name: str
    source_arn: str
    batch_size: int
    window_seconds: int
    filter_patterns: tuple[dict[str, Any], ...]
    report_item_failures: bool
    bisect_on_error: bool
    maximum_retry_attempts: int
    on_failure_arn: str | None
    starting_position: str | None
    enabled: bool = True
    # Batches of one shard in flight at once (streams); the twin runs them one after another.
    parallelization_factor: int = 1


@dataclass(frozen=True)
class ContactFlowSpec:
    """The contact flow and the Connect instance it belongs to (fake ids)."""

    instance_id: str
    instance_arn: str
    flow_id: str
    flow_arn: str
    content: dict[str, Any]


@dataclass
class Estate:
    """Everything provisioned for one run, by physical id."""

    queues: dict[str, QueueInfo] = field(default_factory=dict)
    tables: dict[str, TableInfo] = field(default_factory=dict)
    streams: dict[str, StreamInfo] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    event_sources: list[EventSourceSpec] = field(default_factory=list)
    contact_flows: list[ContactFlowSpec] = field(default_factory=list)

    def queue_by_arn(self, arn: str) -> QueueInfo | None:
        """The queue with ``arn``, if provisioned."""
        return next((q for q in self.queues.values() if q.arn == arn), None)

    @property
    def lake_buckets(self) -> list[str]:
        """Names of the buckets the functions were given as ``*_BUCKET``."""
        names = {
            value
            for spec in self.functions.values()
            for key, value in spec.environment.items()
            if key.endswith("_BUCKET")
        }
        return sorted(names)


def _fake_id(*parts: str) -> str:
    return str(uuid.UUID(hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]))


class Provisioner:
    """Creates resources on demand (so dependencies resolve in any order) and resolves values."""

    def __init__(self, template: Template, seed: int = 0, region: str = REGION) -> None:
        self.template = template
        self.region = region
        self.account = ACCOUNT_ID
        self._rng = random.Random(seed)
        self._session = boto3.session.Session(region_name=region)
        self._created: dict[str, tuple[str, dict[str, Any]]] = {}
        self._in_progress: set[str] = set()
        self.estate = Estate()
        self.resolver = Resolver(
            template,
            self.ref,
            self.get_att,
            {
                "AWS::Region": region,
                "AWS::AccountId": ACCOUNT_ID,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": STACK_NAME,
                "AWS::StackId": (
                    f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{STACK_NAME}/"
                    + _fake_id(STACK_NAME)
                ),
                "AWS::NotificationARNs": [],
            },
        )
        self._builders: dict[str, Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]]] = {
            "AWS::SQS::Queue": self._queue,
            "AWS::DynamoDB::Table": self._table,
            "AWS::DynamoDB::GlobalTable": self._table,
            "AWS::Kinesis::Stream": self._stream,
            "AWS::S3::Bucket": self._bucket,
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::Lambda::Function": self._function_ids,
            "AWS::Connect::Instance": self._connect_instance,
            "AWS::Connect::ContactFlow": self._contact_flow_ids,
            "AWS::Connect::PhoneNumber": self._claimed_phone_number,
            "AWS::KMS::Key": self._fake("kms", "key/", ref_is_arn=False),
            "AWS::IAM::Role": self._role,
            "AWS::Logs::LogGroup": self._fake("logs", "log-group:", ref_is_arn=False),
            "AWS::SNS::Topic": self._fake("sns", "", ref_is_arn=True),
        }

    # --- public -------------------------------------------------------------------------------

    def provision(self) -> Estate:
        """Create every emulated resource, then resolve functions, mappings and flows."""
        for logical_id, resource in self.template.resources.items():
            if resource["Type"] in (
                "AWS::SQS::Queue",
                "AWS::DynamoDB::Table",
                "AWS::DynamoDB::GlobalTable",
                "AWS::Kinesis::Stream",
                "AWS::S3::Bucket",
                "AWS::SecretsManager::Secret",
            ):
                self.ensure(logical_id)
        for logical_id, props in self.template.of_type("AWS::Lambda::Function"):
            self.estate.functions[self.ref(logical_id)] = self._function_spec(logical_id, props)
        for logical_id, props in self.template.of_type("AWS::Lambda::EventSourceMapping"):
            self.estate.event_sources.append(self._event_source(logical_id, props))
        for logical_id, props in self.template.of_type("AWS::Connect::ContactFlow"):
            self.estate.contact_flows.append(self._contact_flow(logical_id, props))
        self._check_environment()
        return self.estate

    def ensure(self, logical_id: str) -> tuple[str, dict[str, Any]]:
        """``(Ref value, attributes)`` of ``logical_id``, creating the resource on first use."""
        if logical_id in self._created:
            return self._created[logical_id]
        resource_type = self.template.type_of(logical_id)
        builder = self._builders.get(resource_type)
        if builder is None:
            raise WiringError(
                f"{logical_id} ({resource_type}) is referenced but the twin does not emulate it"
            )
        if logical_id in self._in_progress:
            raise WiringError(f"circular reference through {logical_id}")
        self._in_progress.add(logical_id)
        props = self.template.resources[logical_id].get("Properties", {})
        self._created[logical_id] = builder(logical_id, props)
        self._in_progress.discard(logical_id)
        return self._created[logical_id]

    def ref(self, logical_id: str) -> str:
        """``{"Ref": logical_id}``."""
        return self.ensure(logical_id)[0]

    def get_att(self, logical_id: str, attribute: str) -> Any:
        """``{"Fn::GetAtt": [logical_id, attribute]}``."""
        _, attributes = self.ensure(logical_id)
        if attribute not in attributes:
            raise WiringError(
                f"Fn::GetAtt {logical_id}.{attribute}: the twin knows only {sorted(attributes)}"
            )
        return attributes[attribute]

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsic functions in ``value``."""
        return self.resolver.resolve(value)

    def client(self, service: str) -> Any:
        """A boto3 client of the provisioning session (moto must be active).

        DynamoDB Streams gets its classic endpoint: botocore now derives an account-based
        host (``<account>.streams-ddb...``) from the stream ARN, which moto does not route.
        """
        session: Any = self._session  # the stubs' overloads want a literal service name
        if service == "dynamodbstreams":
            return session.client(
                service, endpoint_url=f"https://streams.dynamodb.{self.region}.amazonaws.com"
            )
        return session.client(service)

    # --- builders -----------------------------------------------------------------------------

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"

    def _generated_name(self, logical_id: str, max_length: int = 63) -> str:
        suffix = "".join(self._rng.choices(string.ascii_lowercase + string.digits, k=12))
        return f"{STACK_NAME}-{logical_id}"[: max_length - 13].lower() + "-" + suffix

    def _queue(self, logical_id: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        props = self.resolve(props)
        fifo = bool(props.get("FifoQueue", False))
        name = props.get("QueueName") or (
            self._generated_name(logical_id, 80 - 5) + (".fifo" if fifo else "")
        )
        attributes = {
            k: str(props[k]).lower() if isinstance(props[k], bool) else str(props[k])
            for k in _QUEUE_ATTRIBUTES
            if k in props
        }
        redrive = props.get("RedrivePolicy")
        if redrive:
            dlq_arn = redrive["deadLetterTargetArn"]
            if not any(q.arn == dlq_arn for q in self.estate.queues.values()):
                raise WiringError(
                    f"{logical_id}: dead-letter queue {dlq_arn} is not in the template"
                )
            attributes["RedrivePolicy"] = json.dumps(redrive)
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self._arn("sqs", name)
        self.estate.queues[url] = QueueInfo(
            logical_id=logical_id,
            name=name,
            url=url,
            arn=arn,
            fifo=fifo,
            visibility_timeout=int(props.get("VisibilityTimeout", 30)),
            dlq_arn=redrive["deadLetterTargetArn"] if redrive else None,
        )
        return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}

    def _table(self, logical_id: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        props = self.resolve(props)
        name = props.get("TableName") or self._generated_name(logical_id, 255)
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        for index in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(index):
                request[index] = [
                    {k: v for k, v in gsi.items() if k != "ProvisionedThroughput"}
                    for gsi in props[index]
                ]
        stream = props.get("StreamSpecification")
        if stream and stream.get("StreamViewType"):
            request["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        client = self.client("dynamodb")
        description = client.create_table(**request)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        stream_arn = description.get("LatestStreamArn")
        self.estate.tables[name] = TableInfo(logical_id, name, description["TableArn"], stream_arn)
        attributes = {"Arn": description["TableArn"]}
        if stream_arn:
            attributes["StreamArn"] = stream_arn
        return name, attributes

    def _stream(self, logical_id: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        props = self.resolve(props)
        name = props.get("Name") or self._generated_name(logical_id, 128)
        mode = props.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
        client = self.client("kinesis")
        if mode == "ON_DEMAND":
            client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        else:
            client.create_stream(StreamName=name, ShardCount=int(props.get("ShardCount", 1)))
        arn = self._arn("kinesis", f"stream/{name}")
        self.estate.streams[name] = StreamInfo(logical_id, name, arn)
        return name, {"Arn": arn}

    def _bucket(self, logical_id: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = self.resolve(props.get("BucketName")) or self._generated_name(logical_id)
        self.client("s3").create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region}
        )
        self.estate.buckets[name] = logical_id
        return name, {
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com",
        }

    def _secret(self, logical_id: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = self.resolve(props.get("Name")) or self._generated_name(logical_id, 256)
        if "SecretString" in props:
            secret = str(self.resolve(props["SecretString"]))
        else:
            secret = self._generate_secret(self.resolve(props.get("GenerateSecretString", {})))
        arn = self.client("secretsmanager").create_secret(Name=name, SecretString=secret)["ARN"]
        self.estate.secrets[arn] = logical_id
        return arn, {"Id": arn}

    def _generate_secret(self, spec: Mapping[str, Any]) -> str:
        """A secret string as Secrets Manager's ``GenerateSecretString`` describes it."""
        alphabet = ""
        if not spec.get("ExcludeLowercase"):
            alphabet += string.ascii_lowercase
        if not spec.get("ExcludeUppercase"):
            alphabet += string.ascii_uppercase
        if not spec.get("ExcludeNumbers"):
            alphabet += string.digits
        if not spec.get("ExcludePunctuation"):
            alphabet += "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
        if spec.get("IncludeSpace"):
            alphabet += " "
        alphabet = "".join(c for c in alphabet if c not in spec.get("ExcludeCharacters", ""))
        if not alphabet:
            raise WiringError("GenerateSecretString excludes every character")
        password = "".join(self._rng.choices(alphabet, k=int(spec.get("PasswordLength", 32))))
        template = spec.get("SecretStringTemplate")
        if template is None:
            return password
        document = json.loads(template)
        document[spec["GenerateStringKey"]] = password
        return json.dumps(document)

    def _role(self, logical_id: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A role: its name (``Ref``) and its ARN, which has no Region."""
        name = self.resolve(props.get("RoleName")) or f"{STACK_NAME}-{logical_id}"[:64]
        arn = f"arn:aws:iam::{self.account}:role/{name}"
        return name, {"Arn": arn, "RoleId": "AROA" + _fake_id("role", logical_id)[:17].upper()}

    def _function_ids(self, logical_id: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = self.resolve(props.get("FunctionName")) or self._generated_name(logical_id, 64)
        return name, {"Arn": self._arn("lambda", f"function:{name}")}

    def _connect_instance(
        self, logical_id: str, props: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        instance_id = _fake_id("connect-instance", logical_id)
        arn = self._arn("connect", f"instance/{instance_id}")
        return arn, {"Arn": arn, "Id": instance_id, "InstanceStatus": "ACTIVE"}

    def _contact_flow_ids(
        self, logical_id: str, props: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        instance_arn = self.resolve(props["InstanceArn"])
        arn = f"{instance_arn}/contact-flow/{_fake_id('contact-flow', logical_id)}"
        return arn, {"ContactFlowArn": arn}

    def _claimed_phone_number(
        self, logical_id: str, props: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """A claimed DID; the twin hands out numbers of the UK drama range (+44 20 7946 0xxx)."""
        instance_arn = self.resolve(props["TargetArn"])
        suffix = int(_fake_id("phone-number", logical_id).replace("-", "")[-3:], 16) % 1000
        address = f"+44207946{suffix:04d}"
        arn = f"{instance_arn}/phone-number/{_fake_id('phone-number', logical_id)}"
        return arn, {"PhoneNumberArn": arn, "Address": address}

    def _fake(
        self, service: str, prefix: str, *, ref_is_arn: bool
    ) -> Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]]:
        def build(logical_id: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            name = _fake_id(service, logical_id)
            arn = self._arn(service, f"{prefix}{name}")
            return (arn if ref_is_arn else name), {"Arn": arn, "TopicArn": arn}

        return build

    # --- functions, mappings, flows -----------------------------------------------------------

    def _function_spec(self, logical_id: str, props: dict[str, Any]) -> FunctionSpec:
        name, attributes = self.ensure(logical_id)
        variables = self.resolve(props.get("Environment", {}).get("Variables", {}))
        for key, value in variables.items():
            if not isinstance(value, str):
                raise WiringError(f"{name}: environment variable {key} resolved to {value!r}")
        return FunctionSpec(
            logical_id=logical_id,
            name=name,
            arn=attributes["Arn"],
            handler=self.resolve(props["Handler"]),
            environment=variables,
            timeout=int(self.resolve(props.get("Timeout", 3))),
            memory=int(self.resolve(props.get("MemorySize", 128))),
        )

    def _event_source(self, logical_id: str, props: dict[str, Any]) -> EventSourceSpec:
        props = self.resolve(props)
        function = str(props["FunctionName"]).rsplit(":", 1)[-1]
        if function not in self.estate.functions:
            raise WiringError(
                f"{logical_id}: function {props['FunctionName']!r} is not in the template"
            )
        source_arn = props["EventSourceArn"]
        known = (
            [q.arn for q in self.estate.queues.values()]
            + [s.arn for s in self.estate.streams.values()]
            + [t.stream_arn for t in self.estate.tables.values() if t.stream_arn]
        )
        if source_arn not in known:
            raise WiringError(
                f"{logical_id}: event source {source_arn} is not a provisioned resource"
            )
        on_failure = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if on_failure is not None and self.estate.queue_by_arn(on_failure) is None:
            raise WiringError(f"{logical_id}: on-failure destination {on_failure} is not a queue")
        queue = self.estate.queue_by_arn(source_arn)
        spec = EventSourceSpec(
            logical_id=logical_id,
            function_name=function,
            source_arn=source_arn,
            batch_size=int(props.get("BatchSize", 10 if queue else 100)),
            window_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
            filter_patterns=tuple(
                json.loads(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", [])
            ),
            report_item_failures="ReportBatchItemFailures"
            in props.get("FunctionResponseTypes", []),
            bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
            maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
            on_failure_arn=on_failure,
            starting_position=props.get("StartingPosition"),
            enabled=bool(props.get("Enabled", True)),
            parallelization_factor=int(props.get("ParallelizationFactor", 1)),
        )
        if queue is not None:
            self._check_sqs_mapping(spec, queue)
        return spec

    def _check_sqs_mapping(self, spec: EventSourceSpec, queue: QueueInfo) -> None:
        """The checks the Lambda API makes when it creates an SQS event source mapping."""
        function = self.estate.functions[spec.function_name]
        if queue.visibility_timeout < function.timeout:
            raise WiringError(
                f"{spec.logical_id}: queue {queue.name} visibility timeout "
                f"{queue.visibility_timeout}s is shorter than {function.name}'s timeout "
                f"{function.timeout}s (Lambda rejects this mapping)"
            )
        if queue.fifo and (spec.window_seconds or spec.batch_size > 10):
            raise WiringError(
                f"{spec.logical_id}: FIFO queues take batches of at most 10 and no batching window"
            )
        if spec.batch_size > 10 and spec.window_seconds < 1:
            raise WiringError(
                f"{spec.logical_id}: a batch size above 10 needs a batching window of 1 s or more"
            )

    def _contact_flow(self, logical_id: str, props: dict[str, Any]) -> ContactFlowSpec:
        flow_arn = self.ref(logical_id)
        instance_arn = self.resolve(props["InstanceArn"])
        content = self.resolve(props["Content"])
        return ContactFlowSpec(
            instance_id=instance_arn.rsplit("/", 1)[-1],
            instance_arn=instance_arn,
            flow_id=flow_arn.rsplit("/", 1)[-1],
            flow_arn=flow_arn,
            content=json.loads(content) if isinstance(content, str) else content,
        )

    def _check_environment(self) -> None:
        """Every resource-naming environment variable must name a provisioned resource."""
        estate = self.estate
        kinds: dict[str, tuple[str, set[str]]] = {
            "_QUEUE_URL": ("queue URL", set(estate.queues)),
            "_TABLE": ("DynamoDB table", set(estate.tables)),
            "_BUCKET": ("bucket", set(estate.buckets)),
            "_SECRET_ARN": ("secret ARN", set(estate.secrets)),
            "_STREAM": ("Kinesis stream", set(estate.streams)),
            "CONNECT_INSTANCE_ID": (
                "Connect instance id",
                {f.instance_id for f in estate.contact_flows}
                | {f.instance_arn for f in estate.contact_flows},
            ),
            "CONTACT_FLOW_ID": ("contact flow id", {f.flow_id for f in estate.contact_flows}),
        }
        for function in estate.functions.values():
            for key, value in function.environment.items():
                for suffix, (what, known) in kinds.items():
                    if key.endswith(suffix) and value not in known:
                        raise WiringError(
                            f"{function.name}: {key}={value!r} is not a provisioned {what}"
                        )
