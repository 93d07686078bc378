"""Event-source emulator: Lambda's pollers for SQS, Kinesis and DynamoDB streams.

Each ``AWS::Lambda::EventSourceMapping`` of the template becomes one poller that
builds the real Lambda event shape and honours the mapping's settings: ``BatchSize``,
``MaximumBatchingWindowInSeconds`` (on the simulated clock), ``FilterCriteria``,
``ReportBatchItemFailures``, and for streams ``BisectBatchOnFunctionError``,
``MaximumRetryAttempts`` and ``DestinationConfig.OnFailure``.

SQS uses moto's real ReceiveMessage / DeleteMessageBatch / ChangeMessageVisibility, so
receive counts, FIFO group locking, deduplication and redrive to the DLQ are moto's.
moto's visibility timeout runs on wall time, which would make retries depend on how
fast the machine is. So the poller receives with a 12-hour visibility timeout, remembers
when each failed message would become visible again on the *simulated* clock (the
queue's ``VisibilityTimeout`` after the receive) and then makes it visible with
``ChangeMessageVisibility(0)``. Retries and dead-lettering are therefore deterministic.

Peeking (is there anything to poll?) reads moto's in-memory backends directly; the
reads that change state always go through the AWS API.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import takewhile
from typing import Any

from simulator.clock import SimClock
from simulator.provision import ACCOUNT_ID, EventSourceSpec, QueueInfo
from simulator.runtime import Invocation, Runtime
from simulator.template import WiringError

IN_FLIGHT_SECONDS = 43000  # just under SQS's 12-hour maximum visibility timeout
UNBOUNDED_RETRIES = 10_000  # MaximumRetryAttempts -1 ("until the record expires")
_MISSING = object()


# --- event filtering ---------------------------------------------------------------------------


class FilterError(WiringError):
    """A filter pattern uses a rule the Lambda event-filtering syntax does not have."""


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """Lambda event filtering: does ``event`` match ``pattern``?

    Object keys nest; a leaf is a list of alternatives, each an exact value (string,
    number, null, boolean) or a rule: ``prefix``, ``suffix``, ``anything-but``,
    ``numeric``, ``exists``, ``equals-ignore-case``. An array in the event matches
    when any of its elements does.
    """
    if not isinstance(pattern, Mapping):
        raise FilterError(f"a filter pattern must be an object, got {pattern!r}")
    for key, rule in pattern.items():
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(rule, Mapping):
            if not isinstance(value, Mapping) or not matches(rule, value):
                return False
        elif isinstance(rule, list):
            if not any(_alternative(alternative, value) for alternative in rule):
                return False
        else:
            raise FilterError(f"filter rule for {key!r} must be an object or a list, got {rule!r}")
    return True


def _alternative(rule: Any, value: Any) -> bool:
    if isinstance(rule, Mapping) and "exists" in rule:
        return bool(rule["exists"]) == (value is not _MISSING and not isinstance(value, Mapping))
    if value is _MISSING:
        return False
    values = value if isinstance(value, list) else [value]
    if isinstance(rule, Mapping):
        return any(_operator(rule, v) for v in values)
    return any(_equal(rule, v) for v in values)


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual)
    return type(expected) is type(actual) and expected == actual


def _operator(rule: Mapping[str, Any], value: Any) -> bool:
    if len(rule) != 1:
        raise FilterError(f"a filter rule has exactly one operator, got {dict(rule)!r}")
    ((name, operand),) = rule.items()
    if name == "prefix":
        if isinstance(operand, Mapping):
            text = operand["equals-ignore-case"]
            return isinstance(value, str) and value.lower().startswith(text.lower())
        return isinstance(value, str) and value.startswith(operand)
    if name == "suffix":
        if isinstance(operand, Mapping):
            text = operand["equals-ignore-case"]
            return isinstance(value, str) and value.lower().endswith(text.lower())
        return isinstance(value, str) and value.endswith(operand)
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(operand).lower()
    if name == "anything-but":
        if isinstance(operand, Mapping):
            return not _operator(operand, value)
        excluded = operand if isinstance(operand, list) else [operand]
        return not any(_equal(item, value) for item in excluded)
    if name == "numeric":
        return _numeric(operand, value)
    raise FilterError(f"filter operator {name!r} is not supported")


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _numeric(conditions: Sequence[Any], value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if len(conditions) % 2:
        raise FilterError(f"numeric rule needs operator/value pairs, got {conditions!r}")
    for operator, operand in zip(conditions[::2], conditions[1::2], strict=True):
        if operator not in _COMPARE:
            raise FilterError(f"numeric operator {operator!r} is not supported")
        if not _COMPARE[operator](value, operand):
            return False
    return True


def passes_filters(patterns: Sequence[Mapping[str, Any]], event: Any) -> bool:
    """No patterns: everything passes; otherwise any one pattern must match (OR)."""
    return not patterns or any(matches(pattern, event) for pattern in patterns)


def _json_or_raw(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


# --- shared poller plumbing -------------------------------------------------------------------


@dataclass
class SourceStats:
    """What one poller did, for the summary and the tests."""

    invocations: int = 0
    records: int = 0
    function_errors: int = 0
    item_failures: int = 0
    filtered_out: int = 0
    retries: int = 0
    bisections: int = 0
    sent_to_on_failure: int = 0
    duplicates: int = 0


def failed_item_ids(outcome: Invocation, ids: Sequence[str], report: bool) -> list[str] | None:
    """Item ids to retry, from a partial batch response; ``None`` means the whole batch failed.

    Without ``ReportBatchItemFailures`` only a function error fails the batch. With it,
    a malformed response, or an identifier that is empty or not in the batch, fails the
    whole batch, as Lambda does.
    """
    if outcome.failed:
        return None
    if not report or not isinstance(outcome.result, Mapping):
        return []
    failures = outcome.result.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return None
    wanted: list[str] = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not identifier or identifier not in ids:
            return None
        wanted.append(identifier)
    return wanted


class Poller:
    """Base of the three pollers: the mapping, the function, the clock and the stats."""

    def __init__(self, spec: EventSourceSpec, runtime: Runtime, clock: SimClock, sqs: Any) -> None:
        self.spec = spec
        self.runtime = runtime
        self.clock = clock
        self.sqs = sqs
        self.stats = SourceStats()
        self.function = runtime.function(spec.function_name)
        self.region = runtime.region

    def invoke(self, event: dict[str, Any], records: int) -> Invocation:
        """Invoke the mapped function and count it."""
        self.stats.invocations += 1
        self.stats.records += records
        outcome = self.runtime.invoke(self.spec.function_name, event)
        if outcome.failed:
            self.stats.function_errors += 1
        return outcome

    def pump(self) -> bool:
        """Deliver whatever is due now; True when anything changed."""
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        """The simulated time at which something becomes due, if anything is waiting."""
        raise NotImplementedError


# --- SQS --------------------------------------------------------------------------------------


def _sqs_record(message: Mapping[str, Any], queue: QueueInfo, region: str) -> dict[str, Any]:
    """The Lambda SQS event record of a ReceiveMessage result."""
    attributes = dict(message.get("Attributes", {}))
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: str(v) for k, v in attributes.items()},
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": (
                    base64.b64encode(value["BinaryValue"]).decode()
                    if "BinaryValue" in value
                    else None
                ),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


@dataclass
class _Hidden:
    visible_at: float
    receipt_handle: str


class SqsPoller(Poller):
    """Polls one queue like Lambda's SQS poller (standard or FIFO)."""

    def __init__(
        self,
        spec: EventSourceSpec,
        queue: QueueInfo,
        runtime: Runtime,
        clock: SimClock,
        sqs: Any,
        depth: Callable[[QueueInfo], int],
        duplicate: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(spec, runtime, clock, sqs)
        self.queue = queue
        self._depth = depth
        self._duplicate = duplicate
        self._first_seen: float | None = None
        self._hidden: list[_Hidden] = []

    def next_deadline(self) -> float | None:
        deadlines = [h.visible_at for h in self._hidden]
        if self._first_seen is not None:
            deadlines.append(self._first_seen + self.spec.window_seconds)
        return min(deadlines) if deadlines else None

    def _release_due(self) -> bool:
        now = self.clock.now
        due = [h for h in self._hidden if h.visible_at <= now]
        if not due:
            return False
        self._hidden = [h for h in self._hidden if h.visible_at > now]
        for start in range(0, len(due), 10):
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h.receipt_handle, "VisibilityTimeout": 0}
                    for i, h in enumerate(due[start : start + 10])
                ],
            )
        return True

    def pump(self) -> bool:
        changed = self._release_due()
        if not self.spec.enabled:
            return changed
        depth = self._depth(self.queue)
        if depth == 0:
            self._first_seen = None
            return changed
        now = self.clock.now
        if self._first_seen is None:
            self._first_seen = now
        if depth < self.spec.batch_size and now < self._first_seen + self.spec.window_seconds:
            return changed
        messages = self._receive()
        self._first_seen = None
        if not messages:
            return changed or self._depth(self.queue) != depth
        self._deliver(messages)
        return True

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < self.spec.batch_size:
            asked = min(10, self.spec.batch_size - len(messages))
            response = self.sqs.receive_message(
                QueueUrl=self.queue.url,
                MaxNumberOfMessages=asked,
                VisibilityTimeout=IN_FLIGHT_SECONDS,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            messages.extend(received)
            if len(received) < asked:  # moto returns every receivable message up to the max
                break
        return messages

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        records = [_sqs_record(m, self.queue, self.region) for m in messages]
        handles = {r["messageId"]: r["receiptHandle"] for r in records}
        kept = [
            r for r in records if passes_filters(self.spec.filter_patterns, self._filter_view(r))
        ]
        self.stats.filtered_out += len(records) - len(kept)
        failed: set[str] = set()
        if kept:
            outcome = self.invoke({"Records": kept}, len(kept))
            ids = [r["messageId"] for r in kept]
            reported = failed_item_ids(outcome, ids, self.spec.report_item_failures)
            failed = set(ids if reported is None else reported)
            self.stats.item_failures += len(failed) if reported is not None else 0
            for record in kept:
                if record["messageId"] not in failed and self._duplicate():
                    self.stats.duplicates += 1
                    self.invoke({"Records": [record]}, 1)
        done = [m for m in handles if m not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handles[mid]}
                    for i, mid in enumerate(done[start : start + 10])
                ],
            )
        visible_at = self.clock.now + self.queue.visibility_timeout
        self._hidden.extend(_Hidden(visible_at, handles[mid]) for mid in failed)

    @staticmethod
    def _filter_view(record: Mapping[str, Any]) -> dict[str, Any]:
        return {**record, "body": _json_or_raw(record["body"])}


# --- streams (Kinesis and DynamoDB) -----------------------------------------------------------


@dataclass
class _Shard:
    """One shard's reader: records read but not yet delivered, with when each became available."""

    shard_id: str
    iterator: str | None
    buffer: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    closed_at: float | None = None  # when the last delivered batch's window closed
    last_sequence: int = -1


class StreamPoller(Poller):
    """Shared stream logic: per-shard buffers, batching window, retries, bisection, on-failure."""

    batch_info_key = ""

    def __init__(self, spec: EventSourceSpec, runtime: Runtime, clock: SimClock, sqs: Any) -> None:
        super().__init__(spec, runtime, clock, sqs)
        self.shards: list[_Shard] = []
        self.lost_records = 0

    def next_deadline(self) -> float | None:
        if not self.spec.enabled:
            return None
        deadlines = [d for d in (self._due(s) for s in self.shards) if d is not None]
        return min(deadlines) if deadlines else None

    def _due(self, shard: _Shard) -> float | None:
        """When the shard's next batch is complete: its window closes or it reaches batch size.

        The window opens when the first waiting record became available. Records that
        were available before the previous window closed but did not fit in its batch
        belong to that window, so they are due at once.
        """
        if not shard.buffer:
            return None
        first = shard.buffer[0][0]
        if shard.closed_at is not None and first <= shard.closed_at:
            return shard.closed_at
        due = first + self.spec.window_seconds
        if len(shard.buffer) >= self.spec.batch_size:
            due = min(due, max(first, shard.buffer[self.spec.batch_size - 1][0]))
        return due

    def fetch(self) -> bool:
        """Read new records into the shard buffers; True when any arrived."""
        raise NotImplementedError

    def sequence(self, record: Mapping[str, Any]) -> str:
        """A record's sequence number (the partial-failure item identifier)."""
        raise NotImplementedError

    def event(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The Lambda event for a batch of records."""
        return {"Records": records}

    def pump(self) -> bool:
        changed = self.fetch()
        if not self.spec.enabled:
            return changed
        now = self.clock.now
        for shard in self.shards:
            while (due := self._due(shard)) is not None and due <= now:
                head = shard.buffer[: self.spec.batch_size]
                batch = [record for _, record in takewhile(lambda item: item[0] <= due, head)]
                del shard.buffer[: len(batch)]
                shard.closed_at = due
                self._process(shard, batch)
                changed = True
        return changed

    def _process(self, shard: _Shard, batch: list[dict[str, Any]]) -> None:
        """Deliver one batch until it succeeds, is bisected away or is given up."""
        limit = self.spec.maximum_retry_attempts
        limit = UNBOUNDED_RETRIES if limit < 0 else limit
        pending: list[tuple[list[dict[str, Any]], int]] = [(batch, 0)]
        while pending:
            records, attempts = pending.pop(0)
            outcome = self.invoke(self.event(records), len(records))
            ids = [self.sequence(r) for r in records]
            failed = failed_item_ids(outcome, ids, self.spec.report_item_failures)
            if failed == []:
                continue
            if failed is None and self.spec.bisect_on_error and len(records) > 1:
                self.stats.bisections += 1
                middle = len(records) // 2
                pending[:0] = [(records[:middle], attempts), (records[middle:], attempts)]
                continue
            if failed:
                self.stats.item_failures += len(failed)
                first = min(ids.index(f) for f in failed)
                records = records[first:]
            if attempts >= limit:
                self._give_up(shard, records, outcome)
                continue
            self.stats.retries += 1
            pending.insert(0, (records, attempts + 1))

    def _give_up(self, shard: _Shard, records: list[dict[str, Any]], outcome: Invocation) -> None:
        """Retries exhausted: skip the records, telling the on-failure destination if any."""
        self.lost_records += len(records)
        if self.spec.on_failure_arn is None:
            return
        queue_url = self._queue_url(self.spec.on_failure_arn)
        stamps = [self.arrival(r) for r in records]
        body = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function.spec.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": self.spec.maximum_retry_attempts + 1,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled" if outcome.failed else None,
            },
            "version": "1.0",
            "timestamp": self.clock.iso(),
            self.batch_info_key: {
                "shardId": shard.shard_id,
                "startSequenceNumber": self.sequence(records[0]),
                "endSequenceNumber": self.sequence(records[-1]),
                "approximateArrivalOfFirstRecord": _iso_ms(min(stamps)),
                "approximateArrivalOfLastRecord": _iso_ms(max(stamps)),
                "batchSize": len(records),
                "streamArn": self.spec.source_arn,
            },
        }
        self.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
        self.stats.sent_to_on_failure += 1

    def arrival(self, record: Mapping[str, Any]) -> float:
        """When the record arrived on the stream (simulated seconds since the epoch)."""
        raise NotImplementedError

    def _queue_url(self, arn: str) -> str:
        name = arn.rsplit(":", 1)[-1]
        return f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{name}"

    def _buffer(self, shard: _Shard, records: list[dict[str, Any]]) -> None:
        kept = [
            r for r in records if passes_filters(self.spec.filter_patterns, self.filter_view(r))
        ]
        self.stats.filtered_out += len(records) - len(kept)
        shard.buffer.extend((self.available(r), r) for r in kept)

    def available(self, record: Mapping[str, Any]) -> float:
        """When ``record`` reached the stream, as the poller sees it: now, unless known."""
        return self.clock.now

    def filter_view(self, record: Mapping[str, Any]) -> Any:
        """The JSON the filter patterns are matched against."""
        return record


def _iso_ms(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class KinesisPoller(StreamPoller):
    """Reads every shard of a Kinesis stream with GetRecords and builds Kinesis Lambda events.

    ``approximateArrivalTimestamp`` is the simulated time the twin put the record, so
    handlers that judge records by arrival see business time, as in production.
    """

    batch_info_key = "KinesisBatchInfo"

    def __init__(
        self,
        spec: EventSourceSpec,
        runtime: Runtime,
        clock: SimClock,
        sqs: Any,
        kinesis: Any,
        stream_name: str,
        peek: Callable[[str], dict[str, int]],
        trim: Callable[[str, str, int], None] | None = None,
    ) -> None:
        super().__init__(spec, runtime, clock, sqs)
        self.kinesis = kinesis
        self.stream_name = stream_name
        self._peek = peek
        self._trim = trim
        self.role_arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{spec.function_name}-role"
        self.arrivals: dict[tuple[str, str], float] = {}
        shard_ids = [s["ShardId"] for s in kinesis.list_shards(StreamName=stream_name)["Shards"]]
        position = "TRIM_HORIZON" if spec.starting_position != "LATEST" else "LATEST"
        for shard_id in shard_ids:
            iterator = kinesis.get_shard_iterator(
                StreamName=stream_name, ShardId=shard_id, ShardIteratorType=position
            )["ShardIterator"]
            self.shards.append(_Shard(shard_id, iterator))

    def note_arrival(self, shard_id: str, sequence_number: str, moment: float) -> None:
        """Remember the simulated arrival time of a record the twin put."""
        self.arrivals[(shard_id, sequence_number)] = moment

    def fetch(self) -> bool:
        latest = self._peek(self.stream_name)
        arrived = False
        for shard in self.shards:
            if latest.get(shard.shard_id, -1) <= shard.last_sequence:
                continue
            while True:
                response = self.kinesis.get_records(ShardIterator=shard.iterator, Limit=10000)
                shard.iterator = response["NextShardIterator"]
                records = response["Records"]
                if not records:
                    break
                shard.last_sequence = int(records[-1]["SequenceNumber"])
                self._buffer(shard, [self._record(shard, r) for r in records])
                arrived = True
                if self._trim is not None:
                    self._trim(self.stream_name, shard.shard_id, shard.last_sequence)
                if not response.get("MillisBehindLatest"):
                    break
        return arrived

    def _record(self, shard: _Shard, raw: Mapping[str, Any]) -> dict[str, Any]:
        sequence = raw["SequenceNumber"]
        arrival = self.arrivals.pop((shard.shard_id, sequence), self.clock.now)
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": raw["PartitionKey"],
                "sequenceNumber": sequence,
                "data": base64.b64encode(raw["Data"]).decode("ascii"),
                "approximateArrivalTimestamp": arrival,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard.shard_id}:{sequence}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": self.role_arn,
            "awsRegion": self.region,
            "eventSourceARN": self.spec.source_arn,
        }

    def sequence(self, record: Mapping[str, Any]) -> str:
        return record["kinesis"]["sequenceNumber"]

    def arrival(self, record: Mapping[str, Any]) -> float:
        return float(record["kinesis"]["approximateArrivalTimestamp"])

    def available(self, record: Mapping[str, Any]) -> float:
        return self.arrival(record)

    def filter_view(self, record: Mapping[str, Any]) -> Any:
        data = base64.b64decode(record["kinesis"]["data"])
        try:
            decoded: Any = json.loads(data)
        except ValueError:
            decoded = data.decode("utf-8", "replace")
        return {**record, "data": decoded}


def _lambda_json(value: Any) -> Any:
    """DynamoDB JSON as Lambda sends it: binary attributes base64-encoded."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _lambda_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lambda_json(v) for v in value]
    return value


class DynamoDbStreamPoller(StreamPoller):
    """Reads a table's stream with the DynamoDB Streams API and builds DynamoDB Lambda events."""

    batch_info_key = "DDBStreamBatchInfo"

    def __init__(
        self,
        spec: EventSourceSpec,
        runtime: Runtime,
        clock: SimClock,
        sqs: Any,
        streams: Any,
        peek: Callable[[str], int],
    ) -> None:
        super().__init__(spec, runtime, clock, sqs)
        self.streams = streams
        self._peek = peek
        description = streams.describe_stream(StreamArn=spec.source_arn)["StreamDescription"]
        position = "TRIM_HORIZON" if spec.starting_position != "LATEST" else "LATEST"
        for shard in description["Shards"]:
            iterator = streams.get_shard_iterator(
                StreamArn=spec.source_arn, ShardId=shard["ShardId"], ShardIteratorType=position
            )["ShardIterator"]
            self.shards.append(_Shard(shard["ShardId"], iterator))

    def fetch(self) -> bool:
        latest = self._peek(self.spec.source_arn)
        arrived = False
        for shard in self.shards:
            if latest <= shard.last_sequence:
                continue
            while True:
                response = self.streams.get_records(ShardIterator=shard.iterator, Limit=1000)
                shard.iterator = response["NextShardIterator"]
                records = response["Records"]
                if not records:
                    break
                shard.last_sequence = int(records[-1]["dynamodb"]["SequenceNumber"])
                self._buffer(shard, [self._record(r) for r in records])
                arrived = True
                if shard.last_sequence >= latest:
                    break
        return arrived

    def _record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        dynamodb = _lambda_json(dict(raw["dynamodb"]))
        dynamodb["ApproximateCreationDateTime"] = float(int(self.clock.now))
        return {
            "eventID": raw["eventID"],
            "eventName": raw["eventName"],
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": dynamodb,
            "eventSourceARN": self.spec.source_arn,
        }

    def sequence(self, record: Mapping[str, Any]) -> str:
        return record["dynamodb"]["SequenceNumber"]

    def arrival(self, record: Mapping[str, Any]) -> float:
        return float(record["dynamodb"]["ApproximateCreationDateTime"])


# --- peeking into moto's backends (reads only, plus Kinesis retention) --------------------------


def moto_queue_depth(queue: QueueInfo) -> int:
    """Messages of ``queue`` a ReceiveMessage could return now, read from moto.

    That is ApproximateNumberOfMessages (the visible ones), less, on a FIFO queue, those
    waiting behind an in-flight message of their group: polling for them would return
    nothing until that message is deleted or becomes visible again.
    """
    from moto.sqs.models import sqs_backends

    region = queue.arn.split(":")[3]
    model = sqs_backends[ACCOUNT_ID][region].queues[queue.name]
    visible = model.messages
    if not model.fifo_queue:
        return len(visible)
    busy = {m.group_id for m in model.pending_messages if not m.visible}
    return sum(1 for m in visible if m.group_id not in busy)


def moto_kinesis_latest(region: str) -> Callable[[str], dict[str, int]]:
    """Newest sequence number per shard of a stream in moto (-1 when a shard is empty)."""
    from moto.kinesis.models import kinesis_backends

    def peek(stream_name: str) -> dict[str, int]:
        stream = kinesis_backends[ACCOUNT_ID][region].streams[stream_name]
        return {
            shard_id: next(reversed(shard.records)) if shard.records else -1
            for shard_id, shard in stream.shards.items()
        }

    return peek


def moto_kinesis_trim(region: str) -> Callable[[str, str, int], None]:
    """Drop records up to a checkpoint from moto's shard: retention, done early.

    moto scans a shard from its first record on every GetRecords and PutRecords, which
    makes a day of traffic quadratic. The only consumer has read (and buffered) these
    records, so nothing can observe their removal. The newest record stays, because moto
    numbers the next record after it.
    """
    from moto.kinesis.models import kinesis_backends

    def trim(stream_name: str, shard_id: str, up_to: int) -> None:
        records = kinesis_backends[ACCOUNT_ID][region].streams[stream_name].shards[shard_id].records
        newest = next(reversed(records), None)
        for sequence in [s for s in records if s <= up_to and s != newest]:
            del records[sequence]

    return trim


def moto_stream_latest(region: str) -> Callable[[str], int]:
    """Newest sequence number of a DynamoDB table's stream in moto (-1 when empty)."""
    from moto.dynamodb.models import dynamodb_backends

    def peek(stream_arn: str) -> int:
        table_name = stream_arn.split(":", 5)[5].split("/")[1]
        shard = dynamodb_backends[ACCOUNT_ID][region].tables[table_name].stream_shard
        if shard is None or not shard.items:
            return -1
        return shard.starting_sequence_number + len(shard.items) - 1

    return peek
