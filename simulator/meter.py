"""Meter what the handlers ask of AWS: calls per function, DynamoDB units, SQS batch fill.

Used by the dense-load bench (``simulator/dense.py``) on the twin's moto estate. The
DynamoDB units follow "DynamoDB read and write operations"
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html)
on item sizes computed by :mod:`simulator.units` from the items moto holds.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.units import item_size, read_units, write_units

_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def moto_table(name: str) -> Any:
    """moto's model of table ``name`` in the twin's account and region."""
    from moto.dynamodb.models import dynamodb_backends

    from simulator.provision import ACCOUNT_ID, REGION

    return dynamodb_backends[ACCOUNT_ID][REGION].get_table(name)


def stored_item(table_name: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
    """The item moto holds under ``key`` (low-level JSON), or None."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    table = moto_table(table_name)
    hash_key = DynamoType(key[table.hash_key_attr])
    range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    item = table.get_item(hash_key, range_key)
    return None if item is None else item.to_json()["Attributes"]


def _key_of(table_name: str, item: Mapping[str, Any]) -> dict[str, Any]:
    table = moto_table(table_name)
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: item[name] for name in names}


@dataclass
class TableUse:
    """What the handlers did to one table."""

    writes: int = 0
    write_units: int = 0
    failed_conditions: int = 0
    reads: int = 0
    read_units: float = 0.0
    written_bytes: list[int] = field(default_factory=list)


class Meter:
    """Hooks on boto3's default session: per-function calls and the units they consume.

    The function is the one whose sandbox is active (Lambda's ``AWS_LAMBDA_FUNCTION_NAME``
    in the environment); calls made outside a handler (the twin's own) are not seen,
    because the twin's clients come from another session. Times are this process's CPU
    time (``time.process_time``), so other load on the machine does not inflate them;
    the time inside AWS calls (moto) and in the meter itself is taken out of a function's
    compute, and its first invocation (imports, clients: a cold start) is kept apart.
    """

    def __init__(self) -> None:
        self.calls: dict[str, Counter[str]] = defaultdict(Counter)
        self.aws_seconds: defaultdict[str, float] = defaultdict(float)
        self.meter_seconds: defaultdict[str, float] = defaultdict(float)  # its own bookkeeping
        self.compute_seconds: dict[str, list[float]] = defaultdict(list)
        self.invocations: Counter[str] = Counter()
        self.tables: dict[tuple[str, str], TableUse] = defaultdict(TableUse)
        self.batch_calls: Counter[tuple[str, str]] = Counter()
        self.batch_entries: Counter[tuple[str, str]] = Counter()
        self.batch_bytes: Counter[tuple[str, str]] = Counter()

    def install(self, events: Any) -> None:
        """Register on a boto3 session's event system."""
        events.register("before-parameter-build", self._params)
        events.register("before-call", self._before)
        events.register("after-call", self._after)

    def time_invocations(self, runtime: Any) -> None:
        """Time every invocation ``runtime`` makes (the twin's Lambda runtime)."""
        invoke = runtime.invoke

        def timed(name_or_arn: str, event: dict[str, Any], at: float | None = None) -> Any:
            name = runtime.function(name_or_arn).spec.name
            before = (time.process_time(), self.aws_seconds[name], self.meter_seconds[name])
            try:
                return invoke(name_or_arn, event, at)
            finally:
                spent = time.process_time() - before[0]
                spent -= self.aws_seconds[name] - before[1]
                spent -= self.meter_seconds[name] - before[2]
                self.compute_seconds[name].append(spent)
                self.invocations[name] += 1

        runtime.invoke = timed

    @staticmethod
    def _function() -> str | None:
        return os.environ.get("AWS_LAMBDA_FUNCTION_NAME")

    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["dense_params"] = params

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        function = self._function()
        if function is None:
            return
        entered = time.process_time()
        service, operation = model.service_model.service_name, model.name
        self.calls[function][f"{service}.{operation}"] += 1
        params = context.get("dense_params", {})
        if service == "dynamodb" and operation in _WRITES:
            table = params["TableName"]
            key = params.get("Key") or _key_of(table, params["Item"])
            context["dense_write"] = (table, key, item_size(stored_item(table, key)))
        elif service == "dynamodb":
            self._reads(function, operation, params)
        elif service == "sqs" and operation == "SendMessageBatch":
            queue = (function, params["QueueUrl"].rsplit("/", 1)[-1])
            self.batch_calls[queue] += 1
            self.batch_entries[queue] += len(params["Entries"])
            self.batch_bytes[queue] += sum(len(e["MessageBody"]) for e in params["Entries"])
        context["dense_started"] = time.process_time()
        self.meter_seconds[function] += context["dense_started"] - entered

    def _after(
        self, model: Any, parsed: Mapping[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        function = self._function()
        if function is None or "dense_started" not in context:
            return
        entered = time.process_time()
        self.aws_seconds[function] += entered - context["dense_started"]
        if "dense_write" in context:
            table, key, before = context["dense_write"]
            after = item_size(stored_item(table, key))
            use = self.tables[(function, table)]
            use.writes += 1
            use.write_units += write_units(before, after)
            use.written_bytes.append(after)
            if parsed.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                use.failed_conditions += 1
        self.meter_seconds[function] += time.process_time() - entered

    def _reads(self, function: str, operation: str, params: Mapping[str, Any]) -> None:
        if operation == "GetItem":
            requests = {params["TableName"]: {**params, "Keys": [params["Key"]]}}
        elif operation == "BatchGetItem":
            requests = params["RequestItems"]
        else:
            return
        for table, request in requests.items():
            use = self.tables[(function, table)]
            for key in request["Keys"]:
                use.reads += 1
                size = item_size(stored_item(table, key))
                use.read_units += read_units(size, bool(request.get("ConsistentRead")))
