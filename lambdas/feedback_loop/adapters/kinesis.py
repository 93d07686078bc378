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
"""

import base64
from collections.abc import Iterable, Iterator
from typing import Any

from aws_kinesis_agg import DIGEST_SIZE, MAGIC
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from aws_kinesis_agg.messages_pb2 import AggregatedRecord


def user_records(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Each Kinesis record of a Lambda event, or the user records of each aggregate."""
    for record in records:
        unpacked: list[dict[str, Any]] = list(iter_deaggregate_records([record]))
        if _complete(record, unpacked):
            yield from unpacked
        else:
            yield record


def _complete(record: dict[str, Any], unpacked: list[dict[str, Any]]) -> bool:
    """Whether the library returned every user record of ``record`` (or ``record`` itself)."""
    if unpacked and not unpacked[0]["kinesis"].get("aggregated"):
        return True
    data = base64.b64decode(record["kinesis"]["data"])
    packed = AggregatedRecord.FromString(data[len(MAGIC) : -DIGEST_SIZE])
    return len(packed.records) == len(unpacked)
