"""Kinesis event records → user records, de-aggregating what producers packed with the KPL.

Producers may pack several probe records into one Kinesis record in the KPL aggregation
format (docs/PRODUCERS.md). ``aws_kinesis_agg`` (awslabs/kinesis-aggregation, the modules
"Process serialized data using AWS Lambda with the Amazon Kinesis Producer Library" in the
Kinesis Data Streams Developer Guide points Lambda consumers to) unpacks them; each user
record keeps the aggregate's ``sequenceNumber`` and ``eventID`` and gets its own
``subSequenceNumber``.

A malformed aggregate (bad checksum, truncated, not protobuf) is handed on unchanged by
the library, so ingest rejects it like any other record that is not a probe record. The
library also stops silently, after logging to stderr, when an aggregate parses but names
a partition key that is not in its table; such an aggregate is handed on whole too, never
as the part the library managed to read.

Lambda keeps order per partition key of the *Kinesis* record ("Using Lambda to process
records from Amazon Kinesis Data Streams", AWS Lambda Developer Guide), so each user
record says which key its carrier had: an aggregate may pack records of other keys.
"""

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from aws_kinesis_agg import DIGEST_SIZE, MAGIC
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from aws_kinesis_agg.messages_pb2 import AggregatedRecord


@dataclass(frozen=True)
class UserRecord:
    """A record as Lambda delivers it (the Kinesis event record shape), and the partition
    key of the Kinesis record that carried it."""

    record: dict[str, Any]
    carrier_key: str

    @property
    def under_another_key(self) -> bool:
        """Whether an aggregate carried it under another partition key than its own."""
        return bool(self.record["kinesis"]["partitionKey"] != self.carrier_key)


def user_records(records: Iterable[dict[str, Any]]) -> Iterator[UserRecord]:
    """Each Kinesis record of a Lambda event, or the user records of each aggregate."""
    for record in records:
        carrier_key = record["kinesis"]["partitionKey"]
        unpacked: list[dict[str, Any]] = list(iter_deaggregate_records([record]))
        for user in unpacked if _complete(record, unpacked) else [record]:
            yield UserRecord(user, carrier_key)


def _complete(record: dict[str, Any], unpacked: list[dict[str, Any]]) -> bool:
    """Whether the library returned every user record of ``record`` (or ``record`` itself)."""
    if unpacked and not unpacked[0]["kinesis"].get("aggregated"):
        return True
    data = base64.b64decode(record["kinesis"]["data"])
    packed = AggregatedRecord.FromString(data[len(MAGIC) : -DIGEST_SIZE])
    return len(packed.records) == len(unpacked)
