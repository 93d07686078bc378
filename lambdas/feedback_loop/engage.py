"""Decide: changes of subscriber profiles (the table's stream) → engagement decisions.

Works from the stream images alone (no read): the new incidents are the NEW image's
``NewIncidents``, which the ingest write that produced the record added. Each above-threshold
incident gets a decision (``feedback_loop.decision``); engage decisions are recorded
atomically on the profile, then every decision goes to the update queue (the lake) and
the engage ones to the trigger queue (FIFO, group = phone number, dedup = engagement
id), in incident order.

Stream semantics: records are handled in order and the first one that fails (an AWS
error) is reported with every record after it, which is where Lambda resumes anyway; a
retried record finds its engagement already recorded and re-sends the same messages
(deduplicated by engagement id). A malformed image can never succeed, so it is dropped
and reported instead of blocking the shard.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feedback_loop.contract import LAST_CHANGE, NEW_INCIDENTS, LastChange, Reason, Verdict
from feedback_loop.decision import Decision, EngagementState, decide_all
from feedback_loop.errors import AwsError, InvalidRecord
from feedback_loop.incidents import new_incidents
from feedback_loop.messages import encode
from feedback_loop.policy import Policy
from feedback_loop.ports import EngagementStore, MessageQueue, OutgoingMessage

MAX_ATTEMPTS = 3


class EngagementsKeptChanging(AwsError):
    """Concurrent writers kept changing ``Engagements``; the record is retried later."""


@dataclass(frozen=True)
class EngagePorts:
    """What deciding reads and writes, created once per cold start."""

    policy: Policy
    engagements: EngagementStore
    update_queue: MessageQueue
    trigger_queue: MessageQueue


@dataclass(frozen=True)
class Change:
    """One stream record: its sequence number and both images (deserialised)."""

    sequence_number: str
    new_image: Mapping[str, Any] | None
    old_image: Mapping[str, Any] | None
    unreadable: str = ""


@dataclass
class EngageOutcome:
    """Sequence numbers to retry, the decisions taken, and what went wrong."""

    failed: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    malformed: list[tuple[str, InvalidRecord]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def engaged(self) -> int:
        """Decisions to engage."""
        return sum(1 for d in self.decisions if d.decision == Verdict.ENGAGE)


def evaluate(changes: Sequence[Change], ports: EngagePorts) -> EngageOutcome:
    """Decide on every record in order; stop at the first AWS failure (stream checkpoint)."""
    outcome = EngageOutcome()
    states: dict[str, Mapping[str, Any]] = {}
    per_record: list[tuple[str, list[Decision]]] = []
    for index, change in enumerate(changes):
        image = change.new_image or {}
        if not change.unreadable and image.get(LAST_CHANGE) != LastChange.INCIDENT:
            continue
        try:
            if change.unreadable:
                raise InvalidRecord(Reason.MALFORMED_IMAGE, change.unreadable)
            decisions = _decide(change, ports, states)
        except InvalidRecord as error:
            outcome.malformed.append((change.sequence_number, error))
            continue
        except AwsError as error:
            outcome.errors.append((change.sequence_number, str(error)))
            outcome.failed = [c.sequence_number for c in changes[index:]]
            break
        per_record.append((change.sequence_number, decisions))
    _send(per_record, ports, outcome, changes)
    return outcome


def _decide(
    change: Change, ports: EngagePorts, states: dict[str, Mapping[str, Any]]
) -> list[Decision]:
    """Decisions for one record's new incidents, the engage ones recorded on the profile."""
    image = change.new_image or {}
    phone = image.get("PhoneNumber")
    if not isinstance(phone, str) or not phone:
        raise InvalidRecord(Reason.MALFORMED_IMAGE, "NewImage without PhoneNumber")
    fresh = new_incidents(phone, image.get(NEW_INCIDENTS))
    if not fresh:
        return []
    # A later record of the same subscriber in this batch carries an image older
    # than our own writes: continue from what this invocation last wrote.
    item = states.get(phone, image)
    for _ in range(MAX_ATTEMPTS):
        seen = item.get("Engagements")
        state = EngagementState.from_item(seen)
        decisions, after = decide_all(
            phone, fresh, state, item.get("OptedOut") is True, ports.policy
        )
        if after == state:
            return decisions
        current = ports.engagements.record(phone, seen, after)
        if current is None:
            states[phone] = {**item, "Engagements": after.to_item()}
            return decisions
        item = current
    raise EngagementsKeptChanging("dynamodb.UpdateItem", "ConditionKeptFailing")


def _send(
    per_record: list[tuple[str, list[Decision]]],
    ports: EngagePorts,
    outcome: EngageOutcome,
    changes: Sequence[Change],
) -> None:
    updates, triggers = [], []
    for sequence, decisions in per_record:
        for decision in decisions:
            body = encode(decision.to_message())
            updates.append(OutgoingMessage(key=sequence, body=body))
            if decision.decision == Verdict.ENGAGE:
                triggers.append(
                    OutgoingMessage(
                        key=sequence,
                        body=body,
                        group_id=decision.phone_number,
                        deduplication_id=decision.engagement_id,
                    )
                )
    not_sent = ports.update_queue.send(updates)
    not_sent_triggers = ports.trigger_queue.send(triggers)
    unsent = not_sent.keys | not_sent_triggers.keys
    order = [change.sequence_number for change in changes]
    if unsent:
        first = min(order.index(sequence) for sequence in unsent)
        codes = ", ".join((*not_sent.errors, *not_sent_triggers.errors))
        outcome.errors.append((order[first], f"engagement messages not sent: {codes}"))
        failed = set(outcome.failed) | set(order[first:])
        outcome.failed = [sequence for sequence in order if sequence in failed]
    failed_set = set(outcome.failed)
    outcome.decisions = [
        decision
        for sequence, decisions in per_record
        if sequence not in failed_set
        for decision in decisions
    ]
