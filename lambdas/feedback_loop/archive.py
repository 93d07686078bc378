"""The probe archive: every valid probe record as the lake keeps it (``probes/``, Parquet).

Amazon Data Firehose reads the ``probe_events`` stream and hands each batch to
``Archive_probe_records``, which turns every record into a ``probes`` row here: validated by
the rule ``Ingest_probe_events`` applies (:mod:`feedback_loop.probe`), the phone number
replaced by its keyed pseudonym, and the record's stream position kept as ``record_id`` so
SQL over the archive (``sql/detect_incidents.sql``) can order sessions the way the handler
did and name the very record an incident came from.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from feedback_loop.contract import LAKE_TABLES, PROBE_ARCHIVE
from feedback_loop.errors import InvalidRecord
from feedback_loop.probe import parse_probe_record
from feedback_loop.pseudonym import subscriber_id


@dataclass(frozen=True)
class StreamRecord:
    """One Kinesis record as Firehose describes it (``kinesisRecordMetadata``)."""

    shard_id: str
    sequence_number: str
    subsequence_number: int
    arrival: datetime
    data: bytes


def record_id(shard_id: str, sequence_number: str, subsequence_number: int = 0) -> str:
    """``<shardId>:<sequenceNumber>``, plus ``:<subSequenceNumber>`` when it is not 0.

    Firehose reports sub-sequence 0 for a record that was not aggregated (and for the first
    user record of a KPL aggregate, which therefore keeps the aggregate's own position), so
    only the later user records of an aggregate carry the suffix; every id stays unique.
    """
    base = f"{shard_id}:{sequence_number}"
    return f"{base}:{subsequence_number}" if subsequence_number else base


def iso_millis(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``: arrival times keep Kinesis's millisecond precision."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def archive_record(source: StreamRecord, reference: datetime, key: bytes) -> dict[str, Any]:
    """The ``probes`` row of one stream record; raises ``InvalidRecord`` for a bad one.

    ``reference`` is the newest arrival in the batch, the same reference time
    ``Ingest_probe_events`` judges timestamps against.
    """
    probe = parse_probe_record(source.data, reference)
    return LAKE_TABLES[PROBE_ARCHIVE].record(
        {
            "record_id": record_id(
                source.shard_id, source.sequence_number, source.subsequence_number
            ),
            "arrival": iso_millis(source.arrival),
            "subscriber_id": subscriber_id(key, probe.phone_number),
            "timestamp": probe.timestamp,
            "timestamp_epoch": int(probe.moment.timestamp()),
            "cell": probe.cell,
            "event_type": probe.event_type,
            "success": probe.success,
            "device": probe.device,
            "vendor": probe.vendor,
        }
    )


def partition_of(row: dict[str, Any]) -> str:
    """The ``dt`` partition of an archive row: the business date of its ``timestamp``."""
    return str(row["timestamp"])[:10]


@dataclass(frozen=True)
class Archived:
    """The answer for one record of the batch: its row and partition, or why it was dropped."""

    delivery_id: str
    row: dict[str, Any] | None
    partition: str | None = None
    reason: str | None = None


@dataclass
class ArchiveOutcome:
    """Every record of the batch answered, in the batch's order."""

    results: list[Archived] = field(default_factory=list)

    @property
    def dropped_by_reason(self) -> Counter[str]:
        """Records not archived (the ingest handler rejects them), by reason."""
        return Counter(r.reason for r in self.results if r.row is None and r.reason)

    @property
    def archived(self) -> int:
        """Rows handed back for the archive."""
        return sum(1 for r in self.results if r.row is not None)


def archive_batch(records: Sequence[tuple[str, StreamRecord]], key: bytes) -> ArchiveOutcome:
    """Turn a delivery batch (``(delivery record id, stream record)`` pairs) into archive rows.

    The reference time is the newest arrival of the batch, as for ``Ingest_probe_events``;
    a record it would reject is dropped with the same reason.
    """
    outcome = ArchiveOutcome()
    if not records:
        return outcome
    reference = max(source.arrival for _, source in records)
    for delivery_id, source in records:
        try:
            row = archive_record(source, reference, key)
        except InvalidRecord as error:
            outcome.results.append(Archived(delivery_id, None, reason=error.reason))
            continue
        outcome.results.append(Archived(delivery_id, row, partition_of(row)))
    return outcome
