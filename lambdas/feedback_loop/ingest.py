"""Detect: a batch of probe records → windowed counters, incidents on profiles, incident messages.

The batch is validated record by record; a bad record is rejected (returned with its
reason and written pseudonymised to ``rejected/``) and counts as processed, so it never
blocks the shard. Good records are aggregated per subscriber: one counter update per
(subscriber, KPI), one profile update per subscriber with incidents, and the incident
messages sent in batches. An AWS failure fails only the records of the subscriber it
concerns; the retry is idempotent (counters skip what they already applied, incident
ids are deterministic and deduplicated on the profile).

Two kinds of records are handed back unprocessed, as failures Lambda retries from:

- the subscribers not reached before the invocation's time runs short (``remaining``
  below ``TIME_MARGIN_SECONDS``): a batch of KPL aggregates can hold tens of thousands of
  probe records, more than one invocation may count, and a timeout would report nothing;
- with more than one batch per shard in flight, the subscribers with a record an aggregate
  carried under another partition key (``held``): Lambda does not keep their order, and
  counting them could make the replay guard skip an earlier session for good
  (docs/PRODUCERS.md, "Aggregated records and parallel batches").
"""

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from feedback_loop.archive import record_id
from feedback_loop.contract import INCIDENTS_VERSION, SEEN_INCIDENTS
from feedback_loop.errors import AwsError, InvalidRecord
from feedback_loop.incidents import Incident, incident_from, profile_update
from feedback_loop.messages import encode
from feedback_loop.policy import Policy
from feedback_loop.ports import CounterStore, LakeSink, MessageQueue, OutgoingMessage, ProfileStore
from feedback_loop.probe import MAX_PAST, ProbeRecord, parse_probe_record
from feedback_loop.pseudonym import subscriber_id
from feedback_loop.rates import Session, fold, rates_at_failures, subtract
from feedback_loop.records import rejected_record
from feedback_loop.timeutil import format_utc

SOURCE = "probe_events"
# Left for the profile writes and incident messages of the subscribers already counted,
# after the last subscriber started (a few calls each, with the SDK's retries).
TIME_MARGIN_SECONDS = 10.0


@dataclass(frozen=True)
class ProbeInput:
    """One probe record as ingest needs it: its position, its bytes and its arrival.

    A record a producer packed into a KPL aggregate shares the aggregate's sequence number
    (the one Lambda retries from) and has its own ``subsequence_number`` within it; it is
    ``under_another_key`` when the aggregate's partition key is not its own.
    """

    sequence_number: str
    shard_id: str
    data: bytes
    arrival: datetime
    subsequence_number: int = 0
    under_another_key: bool = False

    @property
    def record_id(self) -> str:
        """Where the record is on the stream: ``<shard id>:<sequence number>[:<sub>]``."""
        return record_id(self.shard_id, self.sequence_number, self.subsequence_number)

    @property
    def position(self) -> str:
        """Its place in the shard's order: ``<sequence number>[:<sub>]``, unique per record."""
        sub = self.subsequence_number
        return f"{self.sequence_number}:{sub}" if sub else self.sequence_number


@dataclass(frozen=True)
class IngestPorts:
    """What ingest reads and writes, created once per cold start, and the number of a
    shard's batches Lambda processes at once (the event source's ParallelizationFactor)."""

    policy: Policy
    counters: CounterStore
    profiles: ProfileStore
    incident_queue: MessageQueue
    lake: LakeSink
    pseudonym_key: bytes
    parallelization_factor: int


@dataclass(frozen=True)
class Failure:
    """A step that failed for one subscriber (or for the rejects); its records are retried."""

    step: str
    subscriber_id: str | None
    error: str


@dataclass
class IngestOutcome:
    """What a batch did: sequence numbers to retry, and what the metrics and logs report.

    ``incidents`` counts the incidents newly recorded (and sent); a replayed batch resends
    its incidents without counting them again. ``under_another_key`` counts the records an
    aggregate carried under another partition key than their own; ``unordered`` counts the
    same records when the order of each partition key is all Lambda keeps (more than one
    batch per shard in flight): their subscriber's other records may be processed at the
    same time, and the counters' replay guard could then skip the earlier ones
    (docs/PRODUCERS.md, "Aggregated records and parallel batches"), so ``held`` counts the
    records of their subscribers, not processed and reported failed. ``deferred`` counts
    the records left for the retry because the invocation's time ran short.
    """

    failed: list[str] = field(default_factory=list)
    incidents: int = 0
    under_another_key: int = 0
    unordered: int = 0
    held: int = 0
    deferred: int = 0
    rejected: list[tuple[ProbeInput, InvalidRecord]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def rejected_by_reason(self) -> Counter[str]:
        """Rejected records counted by reason."""
        return Counter(error.reason for _, error in self.rejected)


@dataclass(frozen=True)
class _Good:
    order: int
    source: ProbeInput
    record: ProbeRecord


def _unlimited() -> float:
    return math.inf


def ingest(
    inputs: Sequence[ProbeInput],
    ports: IngestPorts,
    remaining: Callable[[], float] = _unlimited,
) -> IngestOutcome:
    """Process one batch of stream records; returns the sequence numbers to retry.

    ``remaining`` answers the seconds left to the invocation; no subscriber is started
    with less than ``TIME_MARGIN_SECONDS`` left.
    """
    outcome = IngestOutcome()
    if not inputs:
        return outcome
    outcome.under_another_key = sum(source.under_another_key for source in inputs)
    if ports.parallelization_factor > 1:
        outcome.unordered = outcome.under_another_key
    reference = max(source.arrival for source in inputs)
    by_phone: dict[str, list[_Good]] = defaultdict(list)
    for order, source in enumerate(inputs):
        try:
            record = parse_probe_record(source.data, reference)
        except InvalidRecord as error:
            outcome.rejected.append((source, error))
            continue
        by_phone[record.phone_number].append(_Good(order, source, record))
    if outcome.rejected:
        _write_rejects(outcome, ports)

    failed_phones: set[str] = set()
    if outcome.unordered:
        held = {
            p for p, goods in by_phone.items() if any(g.source.under_another_key for g in goods)
        }
        outcome.held = sum(len(by_phone[phone]) for phone in held)
        failed_phones |= held
    incidents: dict[str, list[Incident]] = {}
    phones = [phone for phone in by_phone if phone not in failed_phones]
    for index, phone in enumerate(phones):
        if remaining() < TIME_MARGIN_SECONDS:
            late = phones[index:]
            outcome.deferred = sum(len(by_phone[p]) for p in late)
            failed_phones.update(late)
            break
        goods = by_phone[phone]
        try:
            found = _incidents_of(goods, ports)
        except AwsError as error:
            outcome.failures.append(Failure("counters", _sid(phone, ports), str(error)))
            failed_phones.add(phone)
            continue
        if found:
            incidents[phone] = found

    recorded = _record_on_profiles(incidents, by_phone, ports, failed_phones, outcome)
    messages = [
        OutgoingMessage(key=incident.incident_id, body=encode(incident))
        for phone, found in incidents.items()
        if phone not in failed_phones
        for incident in found
    ]
    not_sent = ports.incident_queue.send(messages)
    for phone, found in incidents.items():
        if phone in failed_phones:
            continue
        if any(incident.incident_id in not_sent.keys for incident in found):
            failed_phones.add(phone)
            outcome.failures.append(
                Failure("incident_queue", _sid(phone, ports), ", ".join(not_sent.errors))
            )
        else:
            outcome.incidents += recorded.get(phone, 0)
    for phone in failed_phones:
        outcome.failed.extend(good.source.sequence_number for good in by_phone[phone])
    # The records of one aggregate share its sequence number: report it once.
    outcome.failed = list(dict.fromkeys(outcome.failed))
    return outcome


def _write_rejects(outcome: IngestOutcome, ports: IngestPorts) -> None:
    records = [
        rejected_record(
            SOURCE,
            source.record_id,
            error.reason,
            format_utc(source.arrival),
            source.data,
            ports.pseudonym_key,
        )
        for source, error in outcome.rejected
    ]
    # Named after its records, so a retried batch overwrites its rejects instead of repeating them.
    batch_id = hashlib.sha256("|".join(r["record_id"] for r in records).encode()).hexdigest()[:32]
    try:
        ports.lake.put_records("rejected", records, "received_at", batch_id=batch_id)
    except AwsError as error:
        outcome.failures.append(Failure("rejected", None, str(error)))
        outcome.failed.extend(source.sequence_number for source, _ in outcome.rejected)


def _incidents_of(records: Sequence[_Good], ports: IngestPorts) -> list[Incident]:
    """Update the subscriber's counters (one write per KPI) and rate each failed session."""
    by_kpi: dict[str, list[_Good]] = defaultdict(list)
    for good in records:
        by_kpi[good.record.event_type].append(good)
    incidents = []
    for kpi, goods in sorted(by_kpi.items()):
        window = ports.policy.windows_minutes[kpi]
        sessions = [Session(g.record.moment, not g.record.success, g.order) for g in goods]
        newest = max(s.moment for s in sessions)
        after = ports.counters.add(
            goods[0].record.phone_number,
            kpi,
            goods[0].source.shard_id,
            [(g.source.position, s) for g, s in zip(goods, sessions, strict=True)],
            int((newest + timedelta(minutes=window) + MAX_PAST + timedelta(days=1)).timestamp()),
            window,
        )
        by_order = {g.order: g for g in goods}
        for rate in rates_at_failures(subtract(after, fold(sessions, window)), sessions, window):
            good = by_order[rate.session.order]
            incidents.append(incident_from(good.record, good.source.record_id, rate, window))
    return incidents


def _record_on_profiles(
    incidents: dict[str, list[Incident]],
    by_phone: dict[str, list[_Good]],
    ports: IngestPorts,
    failed_phones: set[str],
    outcome: IngestOutcome,
) -> dict[str, int]:
    """One conditional profile write per subscriber with incidents.

    Returns how many incidents each subscriber's write newly recorded (a replayed batch
    records none: its incidents are resent, but they are not new).
    """
    recorded: dict[str, int] = {}
    phones = sorted(incidents)
    try:
        profiles = ports.profiles.read(phones) if phones else {}
    except AwsError as error:
        outcome.failures.append(Failure("profiles", None, str(error)))
        failed_phones.update(phones)
        return recorded
    for phone in phones:
        if phone not in profiles:
            outcome.failures.append(Failure("profiles", _sid(phone, ports), "unprocessed key"))
            failed_phones.add(phone)
            continue
        profile = profiles[phone]
        newest = max(by_phone[phone], key=lambda good: (good.record.moment, good.order))
        update = profile_update(
            phone,
            profile.get(SEEN_INCIDENTS) or [],
            incidents[phone],
            newest.record,
            ports.policy.max_recent_incidents,
        )
        if update is None:
            continue
        version = profile.get(INCIDENTS_VERSION)
        try:
            written = ports.profiles.write(update, None if version is None else int(version))
        except AwsError as error:
            outcome.failures.append(Failure("profile", _sid(phone, ports), str(error)))
            written = False
        else:
            if not written:
                outcome.failures.append(
                    Failure("profile", _sid(phone, ports), "changed by another writer")
                )
        if written:
            recorded[phone] = len(update.new_incidents)
        else:
            failed_phones.add(phone)
    return recorded


def _sid(phone: str, ports: IngestPorts) -> str:
    return subscriber_id(ports.pseudonym_key, phone)
