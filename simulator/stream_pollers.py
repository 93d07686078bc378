"""Lambda's stream pollers: Kinesis data streams and DynamoDB streams.

Per shard, records wait in a buffer with the time they became available; a batch goes
when its window closes or it is full. A failed batch is retried, bisected when the
mapping says so, and given up after ``MaximumRetryAttempts`` with a metadata message to
the on-failure destination shaped like Lambda's.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import takewhile
from typing import Any

from simulator.clock import SimClock
from simulator.event_filter import passes_filters
from simulator.event_sources import Poller, failed_item_ids
from simulator.provision import ACCOUNT_ID, EventSourceSpec
from simulator.runtime import Invocation, Runtime

UNBOUNDED_RETRIES = 10_000  # MaximumRetryAttempts -1 ("until the record expires")


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
        # The records behind each on-failure entry (the entry holds only their positions):
        # the twin's own bookkeeping, so its summary can tell parked work from lost work.
        self.parked_records: list[dict[str, Any]] = []

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
        self.parked_records.extend(records)
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
