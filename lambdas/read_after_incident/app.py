"""Read_after_incident: DynamoDB stream of ``Subscriber_table`` → engagement decisions.

Works from the stream images alone (no GetItem): the new incidents are those
in the NEW image's ``RecentIncidents`` that the OLD image did not have. Each
above-threshold incident gets a decision (``feedback_loop.decision``); engage
decisions are recorded atomically on the profile, then every decision goes to
``engagement_update_queue`` and the engage ones to
``engagement_trigger_queue.fifo`` (group = phone number, dedup = engagement id),
in incident order.

Stream semantics: records are handled in order and the first one that fails
(an AWS error) is reported with every record after it, which is where Lambda
resumes anyway; a retried record finds its engagement already recorded and
re-sends the same messages (deduplicated by engagement id). A malformed image
can never succeed, so it is dropped with a log line and the
``MalformedStreamRecords`` metric instead of blocking the shard.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from feedback_loop.adapters.queues import OutgoingMessage, send_batches
from feedback_loop.adapters.settings import load_settings
from feedback_loop.contract import LAST_CHANGE, LastChange
from feedback_loop.decision import (
    ENGAGE,
    Decision,
    EngagementState,
    decide_all,
    new_incidents,
    recorded_incidents,
)
from feedback_loop.errors import InvalidRecord
from feedback_loop.messages import encode
from feedback_loop.observability import MetricUnit, logger, metrics
from feedback_loop.policy import Policy
from read_after_incident.store import EngagementStore

MAX_ATTEMPTS = 3
AWS_ERRORS = (ClientError, BotoCoreError)


@dataclass(frozen=True)
class Settings:
    """Environment of this function (docs/ARCHITECTURE.md)."""

    subscriber_table: str
    engagement_update_queue_url: str
    engagement_trigger_queue_url: str
    policy: Policy


@dataclass(frozen=True)
class Dependencies:
    """What one cold start creates."""

    policy: Policy
    engagements: EngagementStore
    sqs: Any
    update_queue_url: str
    trigger_queue_url: str


@dataclass(frozen=True)
class Change:
    """One stream record: its sequence number and both images (deserialised)."""

    sequence_number: str
    new_image: dict[str, Any] | None
    old_image: dict[str, Any] | None
    unreadable: str = ""


@dataclass
class Outcome:
    """Failed sequence numbers and the decisions taken."""

    failed: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    malformed: int = 0


@cache
def _dependencies() -> Dependencies:
    settings = load_settings(Settings)
    return Dependencies(
        policy=settings.policy,
        engagements=EngagementStore(boto3.client("dynamodb"), settings.subscriber_table),
        sqs=boto3.client("sqs"),
        update_queue_url=settings.engagement_update_queue_url,
        trigger_queue_url=settings.engagement_trigger_queue_url,
    )


def _decide(change: Change, deps: Dependencies, states: dict[str, Any]) -> list[Decision]:
    """Decisions for one record's new incidents, the engage ones recorded on the profile."""
    image = change.new_image or {}
    phone = image.get("PhoneNumber")
    if not isinstance(phone, str) or not phone:
        raise InvalidRecord("malformed_image", "NewImage without PhoneNumber")
    fresh = new_incidents(
        recorded_incidents((change.old_image or {}).get("RecentIncidents")),
        recorded_incidents(image.get("RecentIncidents")),
    )
    if not fresh:
        return []
    # A later record of the same subscriber in this batch carries an image older
    # than our own writes: continue from what this invocation last wrote.
    item = states.get(phone, image)
    for _ in range(MAX_ATTEMPTS):
        seen = item.get("Engagements")
        state = EngagementState.from_item(seen)
        decisions, after = decide_all(
            phone, fresh, state, item.get("OptedOut") is True, deps.policy
        )
        if after == state:
            return decisions
        current = deps.engagements.record(phone, seen, after)
        if current is None:
            states[phone] = {**item, "Engagements": after.to_item()}
            return decisions
        item = current
    raise RuntimeError("Engagements kept changing under concurrent writers")


def evaluate(changes: Sequence[Change], deps: Dependencies) -> Outcome:
    """Decide on every record in order; stop at the first AWS failure (stream checkpoint)."""
    outcome = Outcome()
    states: dict[str, Any] = {}
    per_record: list[tuple[str, list[Decision]]] = []
    for index, change in enumerate(changes):
        image = change.new_image or {}
        if not change.unreadable and image.get(LAST_CHANGE) != LastChange.INCIDENT:
            continue
        try:
            if change.unreadable:
                raise InvalidRecord("malformed_image", change.unreadable)
            decisions = _decide(change, deps, states)
        except InvalidRecord as error:
            outcome.malformed += 1
            logger.error(
                "Dropped malformed stream record",
                extra={"sequence": change.sequence_number, "reason": error.reason},
            )
            continue
        except (*AWS_ERRORS, RuntimeError):
            logger.exception("Engagement write failed", extra={"sequence": change.sequence_number})
            outcome.failed = [c.sequence_number for c in changes[index:]]
            break
        per_record.append((change.sequence_number, decisions))
    _send(per_record, deps, outcome, changes)
    return outcome


def _send(
    per_record: list[tuple[str, list[Decision]]],
    deps: Dependencies,
    outcome: Outcome,
    changes: Sequence[Change],
) -> None:
    updates, triggers = [], []
    for sequence, decisions in per_record:
        for decision in decisions:
            body = encode(decision.to_message())
            updates.append(OutgoingMessage(key=sequence, body=body))
            if decision.decision == ENGAGE:
                triggers.append(
                    OutgoingMessage(
                        key=sequence,
                        body=body,
                        group_id=decision.phone_number,
                        deduplication_id=decision.engagement_id,
                    )
                )
    not_sent = send_batches(deps.sqs, deps.update_queue_url, updates)
    not_sent |= send_batches(deps.sqs, deps.trigger_queue_url, triggers)
    order = [change.sequence_number for change in changes]
    if not_sent:
        first = min(order.index(sequence) for sequence in not_sent)
        logger.error("Engagement messages not sent", extra={"records": len(not_sent)})
        failed = set(outcome.failed) | set(order[first:])
        outcome.failed = [sequence for sequence in order if sequence in failed]
    failed = set(outcome.failed)
    outcome.decisions = [
        decision
        for sequence, decisions in per_record
        if sequence not in failed
        for decision in decisions
    ]


def _changes(event: dict[str, Any]) -> list[Change]:
    changes = []
    for record in DynamoDBStreamEvent(event).records:
        stream = record.dynamodb
        sequence = stream.sequence_number if stream else ""
        try:
            new_image = stream.new_image if stream else None
            old_image = stream.old_image if stream else None
        except (TypeError, ValueError, KeyError) as error:
            changes.append(Change(str(sequence), None, None, f"undecodable image: {error}"))
            continue
        changes.append(Change(str(sequence), new_image or None, old_image or None))
    return changes


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """DynamoDB stream entry point; returns the partial batch response."""
    outcome = evaluate(_changes(event), _dependencies())
    engaged = sum(1 for decision in outcome.decisions if decision.decision == ENGAGE)
    metrics.add_metric(name="Engagements", unit=MetricUnit.Count, value=engaged)
    metrics.add_metric(
        name="SuppressedEngagements", unit=MetricUnit.Count, value=len(outcome.decisions) - engaged
    )
    if outcome.malformed:
        metrics.add_metric(
            name="MalformedStreamRecords", unit=MetricUnit.Count, value=outcome.malformed
        )
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in outcome.failed]}
