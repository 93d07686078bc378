"""Amazon Data Firehose in the twin: each delivery stream of the template, emulated.

Read from the template like every other piece of wiring: a Kinesis-sourced
``AWS::KinesisFirehose::DeliveryStream`` with an extended S3 destination becomes one
:class:`DeliveryStream` that behaves as the Firehose developer guide describes:

* it is a consumer of the source stream of its own (its own shard iterators); the
  Lambda poller of the same stream does not drop records from moto before it has read them
  (:func:`guarded_trim`);
* records are buffered for the Lambda processor (``BufferSizeInMBs`` /
  ``BufferIntervalInSeconds`` on the simulated clock) and the function is invoked through
  the twin's runtime with Firehose's event (``kinesisRecordMetadata`` with shard, partition
  key, sequence and sub-sequence number, arrival in milliseconds); a failed invocation is
  retried ``NumberOfRetries`` times, then its records go to the error prefix as
  ``processing-failed``, as does a response record that is missing, unknown, not ``Ok`` /
  ``Dropped``, or lacks a partition key the prefix needs;
* ``Ok`` records are buffered per partition (``!{partitionKeyFromLambda:...}`` of the
  prefix) and each buffer is delivered when its ``IntervalInSeconds`` has passed (or it
  holds ``SizeInMBs``): record format conversion writes them as one Parquet object with the
  Glue table's columns (OpenX JSON SerDe: keys matched by name, absent keys null), named
  ``<stream>-1-<yyyy-MM-dd-HH-mm-ss>-<random><FileExtension>`` under the resolved prefix.

Not emulated: Firehose's own retries of S3 delivery (moto does not fail), KPL
de-aggregation (the twin's producer does not aggregate), throughput limits.
"""

from __future__ import annotations

import base64
import bisect
import functools
import gzip
import json
import re
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.clock import SimClock
from simulator.provision import ACCOUNT_ID, Provisioner
from simulator.runtime import Runtime
from simulator.template import WiringError

MEGABYTE = 1024 * 1024
DEFAULT_PROCESSOR = {"BufferSizeInMBs": 1, "BufferIntervalInSeconds": 60, "NumberOfRetries": 3}
_PARTITION_KEY = re.compile(r"!\{partitionKeyFromLambda:([^}]+)\}")
_TIMESTAMP = re.compile(r"!\{timestamp:([^}]+)\}")
_GLUE_TO_DUCKDB = {
    "string": "VARCHAR",
    "bigint": "BIGINT",
    "int": "INTEGER",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
}


@dataclass(frozen=True)
class DeliverySpec:
    """One delivery stream as the template configures it (resolved)."""

    function_name: str  # the transformation function (the name pollers report under)
    name: str
    source_arn: str
    stream_name: str
    bucket: str
    prefix: str
    error_prefix: str
    file_extension: str
    buffer_seconds: float
    buffer_bytes: int
    processor_seconds: float
    processor_bytes: int
    processor_retries: int
    columns: tuple[tuple[str, str], ...]


@dataclass
class DeliveryStats:
    """What one delivery stream did, for the summary and the tests."""

    invocations: int = 0
    records: int = 0
    function_errors: int = 0
    dropped: int = 0
    processing_failed: int = 0
    objects: int = 0
    rows_delivered: int = 0
    # the rows as the transformation returned them: what dynamic partitioning processes
    bytes_transformed: int = 0


def _java_date(pattern: str, moment: datetime) -> str:
    """The Java ``DateTimeFormatter`` subset Firehose prefixes use (yyyy, MM, dd, HH, mm)."""
    for java, python in (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M")):
        pattern = pattern.replace(java, python)
    return moment.strftime(pattern)


def delivery_specs(provisioner: Provisioner) -> list[DeliverySpec]:
    """Every Kinesis-sourced delivery stream of the template with an S3 destination."""
    template = provisioner.template
    specs = []
    for logical_id, props in template.of_type("AWS::KinesisFirehose::DeliveryStream"):
        source = props.get("KinesisStreamSourceConfiguration")
        destination = props.get("ExtendedS3DestinationConfiguration")
        if source is None or destination is None:
            raise WiringError(
                f"{logical_id}: the twin emulates Kinesis-to-S3 delivery streams only"
            )
        source_arn = provisioner.resolve(source["KinesisStreamARN"])
        processors = [
            p
            for p in destination.get("ProcessingConfiguration", {}).get("Processors", [])
            if p.get("Type") == "Lambda"
        ]
        if len(processors) != 1:
            raise WiringError(f"{logical_id}: expected one Lambda processor, found {processors}")
        parameters = {**DEFAULT_PROCESSOR}
        for parameter in processors[0]["Parameters"]:
            parameters[parameter["ParameterName"]] = provisioner.resolve(
                parameter["ParameterValue"]
            )
        function_arn = str(parameters["LambdaArn"])
        hints = destination.get("BufferingHints", {})
        specs.append(
            DeliverySpec(
                function_name=function_arn.rsplit(":", 1)[-1],
                name=str(provisioner.resolve(props.get("DeliveryStreamName")) or logical_id),
                source_arn=source_arn,
                stream_name=source_arn.rsplit("/", 1)[-1],
                bucket=provisioner.resolve(destination["BucketARN"]).rsplit(":", 1)[-1],
                prefix=str(destination.get("Prefix", "")),
                error_prefix=str(destination.get("ErrorOutputPrefix", "")),
                file_extension=str(destination.get("FileExtension", "")),
                buffer_seconds=float(hints.get("IntervalInSeconds", 300)),
                buffer_bytes=int(hints.get("SizeInMBs", 5)) * MEGABYTE,
                processor_seconds=float(parameters["BufferIntervalInSeconds"]),
                processor_bytes=int(float(parameters["BufferSizeInMBs"]) * MEGABYTE),
                processor_retries=int(parameters["NumberOfRetries"]),
                columns=_schema_columns(template.resources, destination),
            )
        )
    return specs


def _schema_columns(
    resources: Mapping[str, Any], destination: Mapping[str, Any]
) -> tuple[tuple[str, str], ...]:
    """The Glue table's columns that record format conversion writes."""
    conversion = destination.get("DataFormatConversionConfiguration") or {}
    if not conversion.get("Enabled", True) or not conversion:
        raise WiringError("the twin emulates delivery with record format conversion only")
    table = conversion["SchemaConfiguration"]["TableName"]
    if not isinstance(table, dict) or "Ref" not in table:
        raise WiringError(f"SchemaConfiguration.TableName must reference the Glue table: {table}")
    columns = resources[table["Ref"]]["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]
    return tuple((column["Name"], column["Type"]) for column in columns)


def guarded_trim(
    trim: Callable[[str, str, int], None], deliveries: Sequence[DeliveryStream]
) -> Callable[[str, str, int], None]:
    """A trim that keeps every record a delivery stream of the same source has not read yet."""

    def guarded(stream_name: str, shard_id: str, up_to: int) -> None:
        readers = [d.checkpoint(shard_id) for d in deliveries if d.spec.stream_name == stream_name]
        trim(stream_name, shard_id, min([up_to, *readers]))

    return guarded


@dataclass
class _Pending:
    """Records read from the stream in arrival order, waiting for the processor's buffer."""

    items: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)


@dataclass
class _Partition:
    """Transformed rows of one partition, waiting for the S3 buffer to close."""

    opened: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0


class DeliveryStream:
    """One delivery stream; pumped by the twin like an event source poller."""

    def __init__(
        self,
        spec: DeliverySpec,
        runtime: Runtime,
        clock: SimClock,
        kinesis: Any,
        s3: Any,
        peek: Callable[[str], dict[str, int]],
    ) -> None:
        self.spec = spec
        self.runtime = runtime
        self.clock = clock
        self.kinesis = kinesis
        self.s3 = s3
        self._peek = peek
        self.stats = DeliveryStats()
        self.region = runtime.region
        self.arn = f"arn:aws:firehose:{self.region}:{ACCOUNT_ID}:deliverystream/{spec.name}"
        runtime.function(spec.function_name)  # a wiring error when it is not in the template
        self.arrivals: dict[tuple[str, str], float] = {}
        self._iterators: dict[str, str] = {}
        self._read: dict[str, int] = {}
        for shard in kinesis.list_shards(StreamName=spec.stream_name)["Shards"]:
            shard_id = shard["ShardId"]
            self._iterators[shard_id] = kinesis.get_shard_iterator(
                StreamName=spec.stream_name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            self._read[shard_id] = -1
        self._pending = _Pending()
        self._partitions: dict[tuple[tuple[str, str], ...], _Partition] = {}
        self._sequence = 0

    # --- reading ----------------------------------------------------------------------------

    def note_arrival(self, shard_id: str, sequence_number: str, moment: float) -> None:
        """The simulated time the producer put a record (``approximateArrivalTimestamp``)."""
        self.arrivals[(shard_id, sequence_number)] = moment

    def checkpoint(self, shard_id: str) -> int:
        """The last sequence number read from ``shard_id`` (-1 before the first)."""
        return self._read.get(shard_id, -1)

    def _fetch(self) -> bool:
        latest = self._peek(self.spec.stream_name)
        arrived = False
        for shard_id, iterator in list(self._iterators.items()):
            if latest.get(shard_id, -1) <= self._read[shard_id]:
                continue
            while True:
                response = self.kinesis.get_records(ShardIterator=iterator, Limit=10000)
                iterator = response["NextShardIterator"]
                for raw in response["Records"]:
                    self._take(shard_id, raw)
                    arrived = True
                if not response["Records"] or not response.get("MillisBehindLatest"):
                    break
            self._iterators[shard_id] = iterator
        return arrived

    def _take(self, shard_id: str, raw: Mapping[str, Any]) -> None:
        sequence = raw["SequenceNumber"]
        self._read[shard_id] = int(sequence)
        arrival = self.arrivals.pop((shard_id, sequence), self.clock.now)
        millis = int(arrival * 1000)
        self._sequence += 1
        record = {
            "recordId": f"{self._sequence:020d}{uuid.uuid4().hex}",
            "approximateArrivalTimestamp": millis,
            "data": base64.b64encode(raw["Data"]).decode("ascii"),
            "kinesisRecordMetadata": {
                "shardId": shard_id,
                "partitionKey": raw["PartitionKey"],
                "approximateArrivalTimestamp": millis,
                "sequenceNumber": sequence,
                "subsequenceNumber": 0,
            },
        }
        # Shards are read one after the other; the buffer fills in arrival order.
        bisect.insort(self._pending.items, (arrival, self._sequence, record))

    # --- the poller interface ---------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When the processor buffer or the oldest partition buffer closes."""
        deadlines = [p.opened + self.spec.buffer_seconds for p in self._partitions.values()]
        if self._pending.items:
            deadlines.append(self._processor_batch()[0])
        return min(deadlines) if deadlines else None

    def _processor_batch(self) -> tuple[float, int]:
        """When the processor buffer closes, and how many records it then holds."""
        items = self._pending.items
        first = items[0][0]
        closes = first + self.spec.processor_seconds
        size = 0
        for count, (moment, _, record) in enumerate(items, start=1):
            if moment > closes:
                return closes, count - 1
            size += len(record["data"]) * 3 // 4
            if size >= self.spec.processor_bytes:
                return max(first, moment), count
        return closes, len(items)

    def pump(self) -> bool:
        """Read, transform what is due, deliver what is due; True when anything changed."""
        changed = self._fetch()
        now = self.clock.now
        while self._pending.items and (closing := self._processor_batch())[0] <= now:
            batch = [record for _, _, record in self._pending.items[: closing[1]]]
            del self._pending.items[: closing[1]]
            self._transform(batch)
            changed = True
        for key, partition in sorted(self._partitions.items()):
            if partition.opened + self.spec.buffer_seconds <= now or (
                partition.size >= self.spec.buffer_bytes
            ):
                del self._partitions[key]
                self._deliver(dict(key), partition.rows)
                changed = True
        return changed

    # --- transformation -----------------------------------------------------------------------

    def _event(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "invocationId": str(uuid.uuid4()),
            "deliveryStreamArn": self.arn,
            "sourceKinesisStreamArn": self.spec.source_arn,
            "region": self.region,
            "records": batch,
        }

    def _transform(self, batch: list[dict[str, Any]]) -> None:
        outcome = None
        for _ in range(self.spec.processor_retries + 1):
            self.stats.invocations += 1
            outcome = self.runtime.invoke(self.spec.function_name, self._event(batch))
            if not outcome.failed:
                break
            self.stats.function_errors += 1
        self.stats.records += len(batch)
        assert outcome is not None
        if outcome.failed:
            self._fail(batch, "Lambda.FunctionError")
            return
        answers = {
            r.get("recordId"): r
            for r in (outcome.result or {}).get("records", [])
            if isinstance(r, Mapping)
        }
        failed = []
        for record in batch:
            answer = answers.get(record["recordId"])
            result = answer.get("result") if answer else None
            if result == "Dropped":
                self.stats.dropped += 1
                continue
            keys = ((answer or {}).get("metadata") or {}).get("partitionKeys") or {}
            needed = set(_PARTITION_KEY.findall(self.spec.prefix))
            if result != "Ok" or not needed <= set(keys):
                failed.append(record)
                continue
            data = base64.b64decode(answer["data"])  # type: ignore[index]
            key = tuple(sorted((name, str(keys[name])) for name in needed))
            partition = self._partitions.setdefault(key, _Partition(opened=self.clock.now))
            partition.rows.append(json.loads(data))
            partition.size += len(data)
            self.stats.bytes_transformed += len(data)
        if failed:
            self._fail(failed, "Lambda.ProcessingFailedStatus")

    def _fail(self, records: list[dict[str, Any]], code: str) -> None:
        """Records Firehose could not transform, as it writes them to the error prefix."""
        self.stats.processing_failed += len(records)
        lines = [
            {
                "attemptsMade": self.spec.processor_retries + 1,
                "arrivalTimestamp": r["approximateArrivalTimestamp"],
                "errorCode": code,
                "rawData": r["data"],
                "sequenceNumber": r["kinesisRecordMetadata"]["sequenceNumber"],
                "lambdaArn": self.runtime.function(self.spec.function_name).spec.arn,
            }
            for r in records
        ]
        body = gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode(), mtime=0)
        key = self._key(self._error_prefix("processing-failed"), ".gz")
        self.s3.put_object(Bucket=self.spec.bucket, Key=key, Body=body)

    # --- delivery ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now, UTC)

    def _error_prefix(self, kind: str) -> str:
        prefix = self.spec.error_prefix.replace("!{firehose:error-output-type}", kind)
        return _TIMESTAMP.sub(lambda m: _java_date(m.group(1), self._now()), prefix)

    def _key(self, prefix: str, extension: str) -> str:
        stamp = self._now().strftime("%Y-%m-%d-%H-%M-%S")
        return f"{prefix}{self.spec.name}-1-{stamp}-{uuid.uuid4()}{extension}"

    def _deliver(self, keys: Mapping[str, str], rows: list[dict[str, Any]]) -> None:
        prefix = _PARTITION_KEY.sub(lambda m: keys[m.group(1)], self.spec.prefix)
        prefix = _TIMESTAMP.sub(lambda m: _java_date(m.group(1), self._now()), prefix)
        body = parquet_bytes(rows, self.spec.columns)
        self.s3.put_object(
            Bucket=self.spec.bucket, Key=self._key(prefix, self.spec.file_extension), Body=body
        )
        self.stats.objects += 1
        self.stats.rows_delivered += len(rows)


@functools.cache
def _duckdb() -> Any:
    """One in-memory DuckDB connection for the process: opening one costs more than a
    delivery's conversion (about 25 ms of CPU each, measured on the default day)."""
    import duckdb

    return duckdb.connect()


def parquet_bytes(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> bytes:
    """Rows as one Snappy-compressed Parquet object with the Glue table's columns (DuckDB)."""
    unknown = sorted({kind for _, kind in columns} - set(_GLUE_TO_DUCKDB))
    if unknown:
        raise WiringError(f"Glue column types the twin cannot convert: {unknown}")
    with tempfile.TemporaryDirectory(prefix="firehose-") as work:
        source, target = Path(work) / "rows.jsonl", Path(work) / "rows.parquet"
        source.write_text(
            "".join(json.dumps({k.lower(): v for k, v in row.items()}) + "\n" for row in rows),
            encoding="utf-8",
        )
        struct = ", ".join(f"'{name}': '{_GLUE_TO_DUCKDB[kind]}'" for name, kind in columns)
        names = ", ".join(f'"{name}"' for name, _ in columns)
        _duckdb().execute(
            f"COPY (SELECT {names} FROM read_json('{source}', format = 'newline_delimited', "
            f"columns = {{{struct}}})) TO '{target}' (FORMAT parquet, COMPRESSION snappy)"
        )
        return target.read_bytes()
