"""Ingest_probe_events: Kinesis ``probe_events`` → ``feedback_loop.ingest``.

Parses the Kinesis event (unpacking KPL aggregates into their probe records), runs the use
case on the cold start's ports, logs what it rejected or could not do, emits the metrics and
returns the partial batch response (the sequence numbers Lambda must retry; for a probe
record of an aggregate, the aggregate's). Aggregates whose records Lambda may process out
of order (docs/PRODUCERS.md) are an error and the metric ``UnorderedAggregateRecords``;
their subscribers' records are not counted but retried, and after the retries parked in
``ingest_failures_dlq``. Subscribers not reached before the invocation's time runs short
are retried too (a warning, ``deferred``).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import single_metric
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedback_loop.adapters.counters import CounterStore
from feedback_loop.adapters.kinesis import UserRecord, user_records
from feedback_loop.adapters.lake_writer import LakeWriter
from feedback_loop.adapters.profiles import ProfileStore
from feedback_loop.adapters.queues import Queue
from feedback_loop.adapters.secrets import load_pseudonym_key
from feedback_loop.adapters.settings import load_settings
from feedback_loop.ingest import IngestOutcome, IngestPorts, ProbeInput, ingest
from feedback_loop.observability import MetricUnit, logger, metrics
from feedback_loop.policy import Policy


@dataclass(frozen=True)
class Settings:
    """Environment of this function (docs/ARCHITECTURE.md)."""

    subscriber_table: str
    counters_table: str
    incident_queue_url: str
    lake_bucket: str
    pseudonym_secret_arn: str
    parallelization_factor: int
    policy: Policy


@cache
def _dependencies() -> IngestPorts:
    settings = load_settings(Settings)
    dynamodb = boto3.client("dynamodb")
    return IngestPorts(
        policy=settings.policy,
        counters=CounterStore(dynamodb, settings.counters_table),
        profiles=ProfileStore(dynamodb, settings.subscriber_table),
        incident_queue=Queue(boto3.client("sqs"), settings.incident_queue_url),
        lake=LakeWriter(boto3.client("s3"), settings.lake_bucket),
        pseudonym_key=load_pseudonym_key(
            boto3.client("secretsmanager"), settings.pseudonym_secret_arn
        ),
        parallelization_factor=settings.parallelization_factor,
    )


def _input(user: UserRecord) -> ProbeInput:
    record = KinesisStreamRecord(user.record)
    return ProbeInput(
        sequence_number=record.kinesis.sequence_number,
        shard_id=record.event_id.split(":", 1)[0],
        data=record.kinesis.data_as_bytes(),
        arrival=datetime.fromtimestamp(record.kinesis.approximate_arrival_timestamp, UTC),
        subsequence_number=int(record["kinesis"].get("subSequenceNumber", 0)),
        under_another_key=user.under_another_key,
    )


def _report(inputs: list[ProbeInput], outcome: IngestOutcome) -> None:
    for source, error in outcome.rejected:
        logger.warning(
            "Rejected probe record",
            extra={"reason": error.reason, "detail": error.detail, "record_id": source.record_id},
        )
    for failure in outcome.failures:
        logger.error(
            "Ingest step failed; its records will be retried",
            extra={
                "step": failure.step,
                "subscriber_id": failure.subscriber_id,
                "error": failure.error,
            },
        )
    if outcome.deferred:
        logger.warning(
            "Time ran short: the records of the subscribers not reached are retried",
            extra={"deferred": outcome.deferred, "records": len(inputs)},
        )
    _report_key_mix(inputs, outcome)
    metrics.add_metric(name="ProbeRecords", unit=MetricUnit.Count, value=len(inputs))
    metrics.add_metric(name="Incidents", unit=MetricUnit.Count, value=outcome.incidents)
    for reason, count in sorted(outcome.rejected_by_reason.items()):
        with single_metric(name="RejectedRecords", unit=MetricUnit.Count, value=count) as metric:
            metric.add_dimension(name="reason", value=reason)


def _report_key_mix(inputs: list[ProbeInput], outcome: IngestOutcome) -> None:
    """Mixed partition keys in aggregates are an error only when Lambda's order is per key."""
    carriers = sorted({s.sequence_number for s in inputs if s.under_another_key}, key=int)
    if outcome.unordered:
        logger.error(
            "KPL aggregates carry probe records under another partition key while Lambda "
            "processes several batches per shard: a subscriber's records may be processed out "
            "of order, so their subscribers' records are not counted but retried, then parked "
            "in ingest_failures_dlq. Fix: deploy with ingest_parallelization_factor: 1, or "
            "aggregate per key group (docs/PRODUCERS.md, 'Aggregated records and parallel "
            "batches'), then replay the parked ranges (docs/OPERATIONS.md).",
            extra={
                "records": outcome.unordered,
                "held": outcome.held,
                "aggregates": len(carriers),
                "first_aggregate": carriers[0],
            },
        )
        metrics.add_metric(
            name="UnorderedAggregateRecords", unit=MetricUnit.Count, value=outcome.unordered
        )
    elif outcome.under_another_key:
        logger.debug(
            "KPL aggregates carry probe records under another partition key; one batch per "
            "shard keeps their order",
            extra={"records": outcome.under_another_key, "aggregates": len(carriers)},
        )


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Kinesis entry point; returns the partial batch response."""
    inputs = [_input(user) for user in user_records(event["Records"])]
    outcome = ingest(inputs, _dependencies(), lambda: context.get_remaining_time_in_millis() / 1000)
    _report(inputs, outcome)
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in outcome.failed]}
