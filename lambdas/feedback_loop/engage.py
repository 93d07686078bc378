"""Decide: changes of subscriber profiles (the table's stream) → engagement decisions.

Works from the stream images alone (no read): the new incidents are the NEW image's
``NewIncidents``, which the ingest write that produced the record added. Each
above-threshold incident gets a decision (``feedback_loop.decision``); the subscriber's
contact state (the open episode) is written atomically on the profile; the cell's
outage count takes the incident's subscriber (``feedback_loop.outages``) and declares
the outage when it reaches the threshold; then every decision (and outage signal) goes
to the update queue (the lake) and the engage ones to the trigger queue (FIFO, group =
phone number, dedup = engagement id), in incident order. The decisions
``contract.COUNTED_DECISIONS`` names (``suppress: min_sessions``, most of them at scale)
are not sent one by one: the batch sends their counts per stream record, decision date,
cell and KPI (``decision_counts/``), after the records they come from are known not to be retried.

Stream semantics: records are handled in order and the first one that fails (an AWS
error) is reported with every record after it, which is where Lambda resumes anyway; a
retried record finds its engagement already recorded and re-sends the same messages
(deduplicated by engagement id). A malformed image can never succeed, so it is dropped
and reported instead of blocking the shard.
"""

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from feedback_loop.contract import (
    COUNTED_DECISIONS,
    LAST_CHANGE,
    LastChange,
    Reason,
    Verdict,
)
from feedback_loop.decision import CellMeasured, Decision, decide_all
from feedback_loop.episodes import SubscriberView
from feedback_loop.errors import AwsError, InvalidRecord
from feedback_loop.incidents import new_incidents
from feedback_loop.messages import DecisionCount, DecisionCountsMessage, OutageMessage, encode
from feedback_loop.messages import IncidentMessage as Incident
from feedback_loop.outages import subscriber_key, window_start
from feedback_loop.policy import Policy
from feedback_loop.ports import CellStore, ContactStore, MessageQueue, OutgoingMessage
from feedback_loop.timeutil import format_utc, parse_utc

MAX_ATTEMPTS = 3
# Counts per message: ~200 bytes each, so ten such messages (one SendMessageBatch) stay far
# below SQS's 256 KiB per request.
COUNTS_PER_MESSAGE = 100


class EngagementsKeptChanging(AwsError):
    """Concurrent writers kept changing the contact state; the record is retried later."""


@dataclass(frozen=True)
class EngagePorts:
    """What deciding reads and writes, created once per cold start."""

    policy: Policy
    contacts: ContactStore
    cells: CellStore
    update_queue: MessageQueue
    trigger_queue: MessageQueue


@dataclass(frozen=True)
class Change:
    """One stream record: its sequence number and both images (deserialised)."""

    sequence_number: str
    new_image: Mapping[str, Any] | None
    old_image: Mapping[str, Any] | None
    created_at: datetime
    unreadable: str = ""


@dataclass
class EngageOutcome:
    """Sequence numbers to retry, the decisions taken, and what went wrong."""

    failed: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    outages: list[OutageMessage] = field(default_factory=list)
    malformed: list[tuple[str, InvalidRecord]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    # Outage signals sent but not marked as sent (each may be sent once more).
    unmarked_outages: list[tuple[OutageMessage, str]] = field(default_factory=list)

    @property
    def engaged(self) -> int:
        """Decisions to engage."""
        return sum(1 for d in self.decisions if d.decision == Verdict.ENGAGE)


def evaluate(changes: Sequence[Change], ports: EngagePorts) -> EngageOutcome:
    """Decide on every record in order; stop at the first AWS failure (stream checkpoint)."""
    outcome = EngageOutcome()
    views: dict[str, SubscriberView] = {}
    measured = (
        cell_measured(ports.cells, ports.policy) if ports.policy.rating_budget.suppresses else None
    )
    per_record: list[tuple[str, list[Decision], list[OutageMessage]]] = []
    signalled: set[tuple[str, str]] = set()  # (cell, window) signalled in this batch
    for index, change in enumerate(changes):
        image = change.new_image or {}
        if not change.unreadable and image.get(LAST_CHANGE) != LastChange.INCIDENT:
            continue
        try:
            if change.unreadable:
                raise InvalidRecord(Reason.MALFORMED_IMAGE, change.unreadable)
            decisions = _decide(change, ports, views, measured)
            outages = _count_outages(decisions, ports, change.created_at, signalled)
        except InvalidRecord as error:
            outcome.malformed.append((change.sequence_number, error))
            continue
        except AwsError as error:
            outcome.errors.append((change.sequence_number, str(error)))
            outcome.failed = [c.sequence_number for c in changes[index:]]
            break
        per_record.append((change.sequence_number, decisions, outages))
    _send(per_record, ports, outcome, changes)
    if changes:
        _declare(outcome, ports, changes[-1].created_at)
    return outcome


def _decide(
    change: Change,
    ports: EngagePorts,
    views: dict[str, SubscriberView],
    measured: CellMeasured | None,
) -> list[Decision]:
    """Decisions for one record's new incidents, the contact state recorded on the profile.

    ``measured`` is the batch's: each cell's tally is read once per period and invocation.
    """
    image = change.new_image or {}
    phone = image.get("PhoneNumber")
    if not isinstance(phone, str) or not phone:
        raise InvalidRecord(Reason.MALFORMED_IMAGE, "NewImage without PhoneNumber")
    fresh = new_incidents(phone, image, ports.policy.windows_minutes)
    if not fresh:
        return []
    # A later record of the same subscriber in this batch carries an image older
    # than our own writes: continue from what this invocation last wrote.
    view = views.get(phone) or SubscriberView.from_profile(phone, image)
    for _ in range(MAX_ATTEMPTS):
        decisions, after = decide_all(fresh, view, ports.policy, change.created_at, measured)
        if after.contact == view.contact:
            return decisions
        current = ports.contacts.record(phone, after.contact)
        if current is None:
            views[phone] = replace(
                after, contact=replace(after.contact, version=after.contact.version + 1)
            )
            return decisions
        view = SubscriberView.from_profile(phone, current)
    raise EngagementsKeptChanging("dynamodb.UpdateItem", "ConditionKeptFailing")


def cell_measured(cells: CellStore, policy: Policy) -> CellMeasured:
    """The rating budget's question, answered from the cells' tallies (one read per cell and
    period for as long as the answer is kept: a batch; and only for an incident that would
    otherwise open an episode)."""
    budget = policy.rating_budget
    answers: dict[tuple[str, datetime], bool] = {}

    def measured(incident: Incident) -> bool:
        key = (incident.cell, budget.period(parse_utc(incident.timestamp)))
        if key not in answers:
            answers[key] = budget.measured(cells.ratings(*key), policy.sentiment_alpha)
        return answers[key]

    return measured


def _count_outages(
    decisions: Sequence[Decision],
    ports: EngagePorts,
    now: datetime,
    signalled: set[tuple[str, str]],
) -> list[OutageMessage]:
    """Count each subscriber crossing a threshold on its cell; the outage signals to send.

    A window at or above ``outage.min_subscribers`` whose signal was not sent yet gives
    one; it is marked sent only after it was (``_declare``), so a crash in between sends it
    again rather than never (the lake's readers count distinct cell windows). Replayed
    decisions are counted again: the set makes that harmless.
    """
    rule = ports.policy.outage
    signals = []
    for decision in decisions:
        if decision.reason == "min_sessions":
            continue
        incident = decision.incident
        window = window_start(parse_utc(incident.timestamp), rule.window_minutes)
        counted = ports.cells.count_subscriber(
            incident.cell, window, subscriber_key(decision.phone_number)
        )
        key = (incident.cell, format_utc(window))
        reached = counted.subscribers >= rule.min_subscribers
        if reached and not counted.declared and key not in signalled:
            signalled.add(key)
            signals.append(
                OutageMessage(
                    cell=incident.cell,
                    window_start=key[1],
                    detected_at=format_utc(now),
                    subscribers=counted.subscribers,
                    min_subscribers=rule.min_subscribers,
                    sample_size=rule.sample_size,
                )
            )
    return signals


def _declare(outcome: EngageOutcome, ports: EngagePorts, now: datetime) -> None:
    """Mark the sent outage signals as sent; if that fails, the next subscriber's count
    sends the signal again (a duplicate), which is better than none."""
    for outage in outcome.outages:
        try:
            ports.cells.declare_outage(outage.cell, parse_utc(outage.window_start), now)
        except AwsError as error:
            outcome.unmarked_outages.append((outage, str(error)))


def is_counted(decision: Decision) -> bool:
    """True for a decision recorded in a count rather than as its own message."""
    return (decision.decision, decision.reason) in COUNTED_DECISIONS


def decision_counts(record: str, decisions: Sequence[Decision]) -> list[DecisionCount]:
    """One stream record's ``decisions`` counted per decision date, cell, KPI, decision and
    reason.

    ``count_id`` hashes the record's sequence number with the group, so it does not depend
    on the batch the record came in: a record retried in another batch (Lambda bisects and
    regroups batches) gives the same ids, and the lake's readers count each id once.
    """
    groups: dict[tuple[str, str, str, str, str], list[Decision]] = defaultdict(list)
    for d in decisions:
        incident = d.incident
        key = (d.decided_at[:10], incident.cell, incident.event_type, d.decision, d.reason)
        groups[key].append(d)
    counts = []
    for key, members in sorted(groups.items()):
        _date, cell, kpi, verdict, reason = key
        identity = "|".join((record, *key))
        counts.append(
            DecisionCount(
                count_id=hashlib.sha256(identity.encode()).hexdigest()[:32],
                cell=cell,
                incident_type=kpi,
                decision=verdict,
                reason=reason,
                incidents=len({member.incident.incident_id for member in members}),
                decided_at=max(member.decided_at for member in members),
            )
        )
    return counts


def _send(
    per_record: list[tuple[str, list[Decision], list[OutageMessage]]],
    ports: EngagePorts,
    outcome: EngageOutcome,
    changes: Sequence[Change],
) -> None:
    updates: list[OutgoingMessage] = []
    triggers: list[OutgoingMessage] = []
    counted: list[tuple[str, Decision]] = []
    for sequence, decisions, outages in per_record:
        updates.extend(OutgoingMessage(key=sequence, body=encode(outage)) for outage in outages)
        for decision in decisions:
            if is_counted(decision):
                counted.append((sequence, decision))
                continue
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
    # No contact without its decision on record: a record whose decisions were not all sent
    # sends no trigger now (its retry sends both; if it ends in the DLQ, nobody is called).
    recorded = [t for t in triggers if t.key not in not_sent.keys]
    not_sent_triggers = ports.trigger_queue.send(recorded)
    unsent = not_sent.keys | not_sent_triggers.keys
    order = [change.sequence_number for change in changes]
    if unsent:
        first = min(order.index(sequence) for sequence in unsent)
        codes = ", ".join((*not_sent.errors, *not_sent_triggers.errors))
        outcome.errors.append((order[first], f"engagement messages not sent: {codes}"))
        failed = set(outcome.failed) | set(order[first:])
        outcome.failed = [sequence for sequence in order if sequence in failed]
    _send_counts(counted, ports, outcome, order)
    failed_set = set(outcome.failed)
    done = [(decisions, outages) for seq, decisions, outages in per_record if seq not in failed_set]
    outcome.decisions = [decision for decisions, _ in done for decision in decisions]
    outcome.outages = [outage for _, outages in done for outage in outages]


def _send_counts(
    counted: list[tuple[str, Decision]],
    ports: EngagePorts,
    outcome: EngageOutcome,
    order: list[str],
) -> None:
    """Send the counts of the records that will not be retried.

    Counting only those keeps a retried record from being counted twice. If a count is
    not sent, its records fail from the first one on (Lambda retries them and they are
    counted then); their other messages are sent again, as for any retried record.
    """
    position = {sequence: index for index, sequence in enumerate(order)}
    failed = set(outcome.failed)
    kept = [(sequence, decision) for sequence, decision in counted if sequence not in failed]
    if not kept:
        return
    first = min(position[sequence] for sequence, _ in kept)
    per_record: dict[str, list[Decision]] = defaultdict(list)
    for sequence, decision in kept:
        per_record[sequence].append(decision)
    counts = [
        asdict(count)
        for sequence, decisions in per_record.items()
        for count in decision_counts(sequence, decisions)
    ]
    messages = [
        OutgoingMessage(
            key=order[first],
            body=encode(DecisionCountsMessage(counts[start : start + COUNTS_PER_MESSAGE])),
        )
        for start in range(0, len(counts), COUNTS_PER_MESSAGE)
    ]
    not_sent = ports.update_queue.send(messages)
    if not_sent:
        outcome.errors.append(
            (order[first], f"decision counts not sent: {', '.join(not_sent.errors)}")
        )
        outcome.failed = [s for s in order if s in failed or position[s] >= first]
