"""The probe feed: when each scenario record reaches the Kinesis stream, and putting it there.

A probe's ``timestamp`` is what the probe *claims*; Kinesis stamps a record with when it
*arrived* (``approximateArrivalTimestamp``), and the ingest handler judges timestamps
against arrival. So the twin separates the two (docs/TWIN.md, "Arrival"):

* a record may carry ``"arrival"`` (ISO time the feed delivers it); the key is the
  twin's, so it is removed before the record is put;
* otherwise records arrive in list order and arrival never goes backwards: a record
  arrives at the later of the previous record's arrival and its own timestamp, when that
  timestamp parses and is plausible (at most :data:`PLAUSIBLE_AHEAD` after the previous
  arrival); else together with the previous record. Records before the first one with a
  time arrive with it.

The feed is never re-sorted: late and out-of-order records reach the handler as they
would in production, and a probe whose clock is years ahead arrives *now*.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from feedback_loop.timeutil import parse_utc

if TYPE_CHECKING:
    from simulator.stream_pollers import KinesisPoller

ARRIVAL_KEY = "arrival"
PLAUSIBLE_AHEAD = 86400.0  # one day
PUT_RECORDS_LIMIT = 500


class ArrivalReader(Protocol):
    """A reader of the stream that needs each record's arrival time."""

    def note_arrival(self, shard_id: str, sequence_number: str, moment: float) -> None: ...


class ArrivalError(ValueError):
    """An explicit ``arrival`` that is not an ISO time, or that goes back in the feed."""


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_utc(text).timestamp()
    except ValueError:
        return None


def arrival_times(records: Sequence[Any]) -> list[float]:
    """When each record of the feed arrives (epoch seconds), by the rule above."""
    arrivals: list[float | None] = []
    previous: float | None = None
    for index, record in enumerate(records):
        explicit = record.get(ARRIVAL_KEY) if isinstance(record, dict) else None
        if explicit is not None:
            moment = _epoch(explicit)
            if moment is None:
                raise ArrivalError(
                    f"probe_events[{index}].arrival: expected an ISO time with a zone"
                )
            if previous is not None and moment < previous:
                raise ArrivalError(
                    f"probe_events[{index}].arrival: {explicit} is before the previous record's "
                    "arrival (records arrive in list order)"
                )
        else:
            claimed = _epoch(record.get("timestamp")) if isinstance(record, dict) else None
            if previous is None:
                moment = claimed
            elif claimed is not None and claimed <= previous + PLAUSIBLE_AHEAD:
                moment = max(previous, claimed)
            else:
                moment = previous
        arrivals.append(moment)
        previous = moment if moment is not None else previous
    first = next((moment for moment in arrivals if moment is not None), 0.0)
    return [first if moment is None else moment for moment in arrivals]


def record_bytes(record: Any) -> bytes:
    """What the producer puts on the stream: the JSON text (without ``arrival``), or the
    raw string as it is."""
    if isinstance(record, str):
        return record.encode("utf-8")
    if isinstance(record, dict) and ARRIVAL_KEY in record:
        record = {k: v for k, v in record.items() if k != ARRIVAL_KEY}
    return json.dumps(record, separators=(",", ":")).encode("utf-8")


def partition_key(record: Any, fallback: int) -> str:
    """The subscriber's phone number, so one subscriber's records stay on one shard."""
    phone = record.get("phone_number") if isinstance(record, dict) else None
    if isinstance(phone, str) and phone:
        return phone
    return f"unkeyed-{fallback}"


class Producer:
    """Puts the feed on the stream ``PUT_RECORDS_LIMIT`` records per ``PutRecords`` call,
    ahead of the clock, telling the stream's readers (the Lambda poller, any Firehose
    delivery stream) when each record arrives."""

    def __init__(
        self,
        kinesis: Any,
        poller: KinesisPoller,
        records: Sequence[Any],
        other_readers: Sequence[ArrivalReader] = (),
    ) -> None:
        self.kinesis = kinesis
        self.poller = poller
        self.readers: tuple[ArrivalReader, ...] = (poller, *other_readers)
        self.feed = list(zip(arrival_times(records), records, strict=True))
        self.put_count = 0

    def chunks(self) -> list[list[tuple[float, Any]]]:
        """The feed in ``PutRecords``-sized pieces, in list order."""
        return [
            self.feed[start : start + PUT_RECORDS_LIMIT]
            for start in range(0, len(self.feed), PUT_RECORDS_LIMIT)
        ]

    def put(self, chunk: list[tuple[float, Any]], offset: int) -> None:
        """One ``PutRecords`` call; each record's arrival is noted for the poller."""
        response = self.kinesis.put_records(
            StreamName=self.poller.stream_name,
            Records=[
                {"Data": record_bytes(r), "PartitionKey": partition_key(r, offset + i)}
                for i, (_, r) in enumerate(chunk)
            ],
        )
        for (moment, _), result in zip(chunk, response["Records"], strict=True):
            if "SequenceNumber" in result:
                for reader in self.readers:
                    reader.note_arrival(result["ShardId"], result["SequenceNumber"], moment)
                self.put_count += 1
