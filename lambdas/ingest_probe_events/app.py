"""Ingest_probe_events: Kinesis probe records → counters, incidents, incident messages.

The batch is validated record by record; a bad record is rejected (logged,
counted by reason, written pseudonymised to ``rejected/``) and counts as
processed, so it never blocks the shard. Good records are aggregated per
subscriber: one counter update per (subscriber, KPI), one profile update per
subscriber with incidents, and the incident messages in ``SendMessageBatch``
calls. A transient AWS failure fails only that subscriber's records; the
retry is idempotent (see ``store`` for counters; incident ids are
deterministic and deduplicated on the profile).
"""

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import single_metric
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from feedback_loop.adapters.lake_writer import LakeWriter
from feedback_loop.adapters.queues import OutgoingMessage, send_batches
from feedback_loop.adapters.secrets import load_pseudonym_key
from feedback_loop.adapters.settings import load_settings
from feedback_loop.errors import InvalidRecord
from feedback_loop.incidents import Incident, incident_from, profile_update
from feedback_loop.messages import encode
from feedback_loop.observability import MetricUnit, logger, metrics
from feedback_loop.policy import Policy
from feedback_loop.probe import MAX_PAST, ProbeRecord, parse_probe_record
from feedback_loop.pseudonym import subscriber_id
from feedback_loop.rates import Session, fold, rates_at_failures, subtract
from feedback_loop.records import rejected_record
from feedback_loop.timeutil import format_utc
from ingest_probe_events.store import CounterStore, ProfileStore

SOURCE = "probe_events"
AWS_ERRORS = (ClientError, BotoCoreError)


@dataclass(frozen=True)
class Settings:
    """Environment of this function (docs/ARCHITECTURE.md)."""

    subscriber_table: str
    counters_table: str
    incident_queue_url: str
    lake_bucket: str
    pseudonym_secret_arn: str
    policy: Policy


@dataclass(frozen=True)
class Dependencies:
    """What one cold start creates."""

    policy: Policy
    counters: CounterStore
    profiles: ProfileStore
    sqs: Any
    incident_queue_url: str
    lake: LakeWriter
    pseudonym_key: bytes


@dataclass(frozen=True)
class ProbeInput:
    """One Kinesis record as this function needs it."""

    sequence_number: str
    shard_id: str
    data: bytes
    arrival: datetime


@dataclass
class Outcome:
    """What a batch did: failed sequence numbers and the counts behind the metrics."""

    failed: list[str] = field(default_factory=list)
    incidents: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Good:
    order: int
    source: ProbeInput
    record: ProbeRecord


@cache
def _dependencies() -> Dependencies:
    settings = load_settings(Settings)
    dynamodb = boto3.client("dynamodb")
    return Dependencies(
        policy=settings.policy,
        counters=CounterStore(dynamodb, settings.counters_table),
        profiles=ProfileStore(dynamodb, settings.subscriber_table),
        sqs=boto3.client("sqs"),
        incident_queue_url=settings.incident_queue_url,
        lake=LakeWriter(boto3.client("s3"), settings.lake_bucket),
        pseudonym_key=load_pseudonym_key(
            boto3.client("secretsmanager"), settings.pseudonym_secret_arn
        ),
    )


def _reject(
    rejected: Sequence[tuple[ProbeInput, InvalidRecord]], deps: Dependencies, outcome: Outcome
) -> None:
    for source, error in rejected:
        outcome.rejected[error.reason] += 1
        logger.warning(
            "Rejected probe record",
            extra={
                "reason": error.reason,
                "detail": error.detail,
                "sequence": source.sequence_number,
            },
        )
    records = [
        rejected_record(
            SOURCE,
            f"{source.shard_id}:{source.sequence_number}",
            error.reason,
            format_utc(source.arrival),
            source.data,
            deps.pseudonym_key,
        )
        for source, error in rejected
    ]
    # Named after its records, so a retried batch overwrites its rejects instead of repeating them.
    batch_id = hashlib.sha256("|".join(r["record_id"] for r in records).encode()).hexdigest()[:32]
    try:
        deps.lake.put_records("rejected", records, "received_at", batch_id=batch_id)
    except AWS_ERRORS:
        logger.exception("Could not write rejected records; the batch will retry them")
        outcome.failed.extend(source.sequence_number for source, _ in rejected)


def _incidents_of(records: Sequence[_Good], deps: Dependencies) -> list[Incident]:
    """Update the subscriber's counters (one write per KPI) and rate each failed session."""
    by_kpi: dict[str, list[_Good]] = defaultdict(list)
    for good in records:
        by_kpi[good.record.event_type].append(good)
    incidents = []
    for kpi, goods in sorted(by_kpi.items()):
        window = deps.policy.windows_minutes[kpi]
        sessions = [Session(g.record.moment, not g.record.success, g.order) for g in goods]
        newest = max(s.moment for s in sessions)
        after = deps.counters.add(
            goods[0].record.phone_number,
            kpi,
            goods[0].source.shard_id,
            [(g.source.sequence_number, s) for g, s in zip(goods, sessions, strict=True)],
            int((newest + timedelta(minutes=window) + MAX_PAST + timedelta(days=1)).timestamp()),
            window,
        )
        by_order = {g.order: g.record for g in goods}
        for rate in rates_at_failures(subtract(after, fold(sessions)), sessions, window):
            incidents.append(incident_from(by_order[rate.session.order], rate, window))
    return incidents


def ingest(inputs: Sequence[ProbeInput], deps: Dependencies) -> Outcome:
    """Process one Kinesis batch; returns the sequence numbers to retry."""
    outcome = Outcome()
    if not inputs:
        return outcome
    reference = max(source.arrival for source in inputs)
    by_phone: dict[str, list[_Good]] = defaultdict(list)
    rejected = []
    for order, source in enumerate(inputs):
        try:
            record = parse_probe_record(source.data, reference)
        except InvalidRecord as error:
            rejected.append((source, error))
            continue
        by_phone[record.phone_number].append(_Good(order, source, record))
    if rejected:
        _reject(rejected, deps, outcome)

    failed_phones: set[str] = set()
    incidents: dict[str, list[Incident]] = {}
    for phone, goods in by_phone.items():
        try:
            found = _incidents_of(goods, deps)
        except AWS_ERRORS:
            logger.exception("Counter update failed", extra={"subscriber_id": _sid(phone, deps)})
            failed_phones.add(phone)
            continue
        if found:
            incidents[phone] = found

    _record_on_profiles(incidents, by_phone, deps, failed_phones)
    messages = [
        OutgoingMessage(key=incident.incident_id, body=encode(incident))
        for phone, found in incidents.items()
        if phone not in failed_phones
        for incident in found
    ]
    not_sent = send_batches(deps.sqs, deps.incident_queue_url, messages)
    for phone, found in incidents.items():
        if phone in failed_phones:
            continue
        if any(incident.incident_id in not_sent for incident in found):
            failed_phones.add(phone)
        else:
            outcome.incidents += len(found)
    for phone in failed_phones:
        outcome.failed.extend(good.source.sequence_number for good in by_phone[phone])
    return outcome


def _record_on_profiles(
    incidents: dict[str, list[Incident]],
    by_phone: dict[str, list[_Good]],
    deps: Dependencies,
    failed_phones: set[str],
) -> None:
    """One conditional profile write per subscriber with incidents."""
    phones = sorted(incidents)
    try:
        profiles = deps.profiles.read(phones) if phones else {}
    except AWS_ERRORS:
        logger.exception("Profile read failed")
        failed_phones.update(phones)
        return
    for phone in phones:
        if phone not in profiles:
            failed_phones.add(phone)
            continue
        profile = profiles[phone]
        newest = max(by_phone[phone], key=lambda good: (good.record.moment, good.order))
        update = profile_update(
            phone,
            profile.get("RecentIncidents") or [],
            incidents[phone],
            newest.record,
            deps.policy.max_recent_incidents,
        )
        if update is None:
            continue
        version = profile.get("IncidentsVersion")
        try:
            written = deps.profiles.write(update, None if version is None else int(version))
        except AWS_ERRORS:
            written = False
            logger.exception("Profile write failed", extra={"subscriber_id": _sid(phone, deps)})
        if not written:
            failed_phones.add(phone)


def _sid(phone: str, deps: Dependencies) -> str:
    return subscriber_id(deps.pseudonym_key, phone)


def _inputs(event: dict[str, Any]) -> list[ProbeInput]:
    return [
        ProbeInput(
            sequence_number=record.kinesis.sequence_number,
            shard_id=record.event_id.split(":", 1)[0],
            data=record.kinesis.data_as_bytes(),
            arrival=datetime.fromtimestamp(record.kinesis.approximate_arrival_timestamp, UTC),
        )
        for record in KinesisStreamEvent(event).records
    ]


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Kinesis entry point; returns the partial batch response."""
    inputs = _inputs(event)
    outcome = ingest(inputs, _dependencies())
    metrics.add_metric(name="ProbeRecords", unit=MetricUnit.Count, value=len(inputs))
    metrics.add_metric(name="Incidents", unit=MetricUnit.Count, value=outcome.incidents)
    for reason, count in sorted(outcome.rejected.items()):
        with single_metric(name="RejectedRecords", unit=MetricUnit.Count, value=count) as metric:
            metric.add_dimension(name="reason", value=reason)
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in outcome.failed]}
