"""Read_after_incident: the ``Subscriber_table`` stream → ``feedback_loop.engage``.

Parses the DynamoDB stream event (images deserialised by Powertools), runs the use case
on the cold start's ports, logs and counts what it dropped or could not do, emits the
decision metrics and returns the partial batch response.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import single_metric
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedback_loop.adapters.cell_state import CellState
from feedback_loop.adapters.contacts import ContactStore
from feedback_loop.adapters.queues import Queue
from feedback_loop.adapters.settings import load_settings
from feedback_loop.engage import Change, EngageOutcome, EngagePorts, evaluate
from feedback_loop.observability import MetricUnit, logger, metrics
from feedback_loop.policy import Policy


@dataclass(frozen=True)
class Settings:
    """Environment of this function (docs/ARCHITECTURE.md)."""

    subscriber_table: str
    contact_state_table: str
    engagement_update_queue_url: str
    engagement_trigger_queue_url: str
    policy: Policy


@cache
def _dependencies() -> EngagePorts:
    settings = load_settings(Settings)
    sqs = boto3.client("sqs")
    dynamodb = boto3.client("dynamodb")
    return EngagePorts(
        policy=settings.policy,
        contacts=ContactStore(dynamodb, settings.subscriber_table),
        cells=CellState(dynamodb, settings.contact_state_table),
        update_queue=Queue(sqs, settings.engagement_update_queue_url),
        trigger_queue=Queue(sqs, settings.engagement_trigger_queue_url),
    )


def _changes(event: dict[str, Any]) -> list[Change]:
    changes = []
    for record in DynamoDBStreamEvent(event).records:
        stream = record.dynamodb
        sequence = stream.sequence_number if stream else ""
        # The record's creation time is the business time of the decisions it causes.
        created = stream.approximate_creation_date_time if stream else None
        created_at = datetime.fromtimestamp(created, UTC) if created else datetime.now(UTC)
        try:
            new_image = stream.new_image if stream else None
            old_image = stream.old_image if stream else None
        except (TypeError, ValueError, KeyError) as error:
            changes.append(
                Change(str(sequence), None, None, created_at, f"undecodable image: {error}")
            )
            continue
        changes.append(Change(str(sequence), new_image or None, old_image or None, created_at))
    return changes


def _report(outcome: EngageOutcome) -> None:
    for sequence, error in outcome.malformed:
        logger.error(
            "Dropped malformed stream record",
            extra={"sequence": sequence, "reason": error.reason, "detail": error.detail},
        )
    for sequence, failure in outcome.errors:
        logger.error(
            "Engagement step failed; Lambda retries from here",
            extra={"sequence": sequence, "error": failure},
        )
    for outage, reason in outcome.unmarked_outages:
        logger.warning(
            "Outage signal sent but not marked; it may be sent once more",
            extra={"cell": outage.cell, "window": outage.window_start, "error": reason},
        )
    metrics.add_metric(name="Engagements", unit=MetricUnit.Count, value=outcome.engaged)
    metrics.add_metric(
        name="SuppressedEngagements",
        unit=MetricUnit.Count,
        value=len(outcome.decisions) - outcome.engaged,
    )
    by_reason = Counter(f"{d.decision}:{d.reason}" for d in outcome.decisions)
    for key, count in sorted(by_reason.items()):
        decision, reason = key.split(":", 1)
        with single_metric(name="Decisions", unit=MetricUnit.Count, value=count) as metric:
            metric.add_dimension(name="decision", value=decision)
            metric.add_dimension(name="reason", value=reason)
    if outcome.outages:
        metrics.add_metric(name="CellOutages", unit=MetricUnit.Count, value=len(outcome.outages))
        for outage in outcome.outages:
            logger.warning(
                "Cell outage declared", extra={"cell": outage.cell, "window": outage.window_start}
            )
    if outcome.malformed:
        metrics.add_metric(
            name="MalformedStreamRecords", unit=MetricUnit.Count, value=len(outcome.malformed)
        )


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """DynamoDB stream entry point; returns the partial batch response."""
    outcome = evaluate(_changes(event), _dependencies())
    _report(outcome)
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in outcome.failed]}
