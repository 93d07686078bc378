"""Calls: how long each kind of call is billed, and how many calls a contact policy makes.

Durations come from the twin's contact centre (:mod:`simulator.contact_centre`): it executes
``connect_flows/Subscriber_engagement.json`` for a scripted answer pattern with its own
model of a call's length (:class:`~simulator.contact_centre.CallTiming`: prompts at its
speaking pace, ringing, the dialing timeout, the wait for a key or the flow's
``InputTimeLimitSeconds``, the Lambda block as long as the function runs), so a longer
prompt, another retry or a change to that model changes the bill, and the cost model
keeps no second model of call length. Billed is the connected part: from pick-up to
disconnect (ringing, and a call nobody picks up, are assumed not billed).

Calls per day come from one function, :func:`calls_per_day`, that replays the day's
candidate engagements (above-threshold incidents that passed ``min_sessions`` and were
not from opted-out subscribers) through the contact policy's own code
(:func:`simulator.contact_plan.plan_contacts`: one contact per episode across KPIs, gap,
cap, calling hours, staleness, outage sampling), then applies the cell-level rules at a
production cell's size: the cost model's outage sampling by share, and the deployed
policy's rating budget (``rating_budget``), evaluated by its own code
(:func:`ratings_needed`); a what-if run can feed it its own candidates.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feedback_loop.contact_policy import RatingBudget, RatingTally
from feedback_loop.contract import Verdict
from feedback_loop.decision import CELL_MEASURED
from feedback_loop.feedback import RATING_KEYS
from feedback_loop.incidents import Incident
from feedback_loop.policy import Policy, load_policy
from feedback_loop.sentiment import update_sentiment
from simulator.contact_centre import NO_ANSWER, NO_INPUT, CallTiming, ContactCentre
from simulator.contact_plan import plan_contacts
from simulator.runtime import Invocation

FLOW = Path(__file__).resolve().parents[2] / "connect_flows" / "Subscriber_engagement.json"
MINUTES_PER_DAY = 1440
# Minute 0 of the candidates: a Monday, midnight UTC (only the week day and the time of day
# matter to the policy).
DAY0 = datetime(2026, 11, 23, tzinfo=UTC)


@dataclass(frozen=True)
class CallKind:
    """One kind of call: how long it is connected and how often it invokes the function."""

    connected_seconds: float
    invocations: int
    rated: bool


def call_timing(
    answers: Sequence[str],
    flow: Mapping[str, Any] | None = None,
    timing: CallTiming | None = None,
    lambda_seconds: float = 0.0,
) -> CallKind:
    """The call the flow makes when the subscriber answers ``answers`` prompt by prompt.

    ``answers`` are the twin's subscriber answers (``"1"``..``"5"``, ``"9"``, ``"none"``
    for no input, ``"no_answer"`` to hang up at that prompt, or alone: nobody picks up,
    nothing connected). The twin's contact centre runs the call with ``timing`` (the twin's
    defaults when None) and a feedback function that takes ``lambda_seconds``; the
    connected time is its logged duration less the ringing.
    """
    flow = flow if flow is not None else json.loads(FLOW.read_text(encoding="utf-8"))
    timing = timing if timing is not None else CallTiming()
    script = list(answers)

    def subscriber(_phone: str, _attributes: dict[str, str]) -> str:
        return script.pop(0) if script else NO_INPUT

    def invoke(event: dict[str, Any], _at: float) -> Invocation:
        digits = event["Details"]["Parameters"].get("input", "")
        result = {"9": "opted_out", "": "no_response"}.get(digits, "recorded")
        answer = {"result": result, "sentiment": "0.0", "change_sentiment": "0.0"}
        return Invocation(answer, None, lambda_seconds)

    centre = ContactCentre(
        dict(flow), invoke, subscriber, "arn:aws:connect:::instance/cost", "+1", timing=timing
    )
    request = {
        "DestinationPhoneNumber": "+15550100001",
        "ContactFlowId": "flow",
        "InstanceId": "cost",
        "Attributes": {"incident_type": "CALL_DROP", "engagement_id": "cost"},
    }
    centre.start_outbound_voice_contact(request, 0.0)
    centre.finish()
    (record,) = centre.records
    if record["outcome"] == "no_answer":
        return CallKind(0.0, 0, False)
    rated = any(key and key in "12345" for key in record["inputs"])
    connected = record["duration_seconds"] - timing.ring_seconds
    return CallKind(connected, record["lambda_attempts"], rated)


def pattern_of(call: Mapping[str, Any]) -> tuple[str, ...]:
    """The answers that reproduce a ``calls.jsonl`` line: one per prompt, ``no_answer`` last
    for a hang-up, ``("no_answer",)`` for a call nobody picked up."""
    if call["outcome"] == "no_answer":
        return (NO_ANSWER,)
    answers = tuple(key if key else NO_INPUT for key in call.get("inputs", []))
    return (*answers, NO_ANSWER) if call["outcome"] == "hung_up" else answers


# --- calls per day -------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """An incident the policy may call about: subscriber, cell, KPI, minute since day 0 (UTC)."""

    subscriber: int
    cell: str
    kpi: str
    minute: int


# Beyond this many ratings a cell-day is taken as never measured.
MAX_RATINGS = 100_000


def rating_changes(patterns: Mapping[str, float], alpha: float) -> dict[float, float]:
    """The sentiment change each rated call pattern makes, by share of the rated calls.

    A pattern's rating is its first key 1-5 (``calls.jsonl`` answers, prompt by prompt).
    The change is taken from neutral sentiment (``update_sentiment(None, ...)``): the
    change of a subscriber's first rating, an approximation for the others.
    """
    counts: dict[float, float] = defaultdict(float)
    for pattern, count in patterns.items():
        rating = next((key for key in pattern.split(",") if key in RATING_KEYS), None)
        if rating is not None:
            counts[update_sentiment(None, int(rating), alpha).change] += count
    rated = sum(counts.values())
    return {change: count / rated for change, count in sorted(counts.items())} if rated else {}


def ratings_needed(
    budget: RatingBudget, alpha: float, changes: Mapping[float, float]
) -> int | None:
    """How many ratings make a cell measured under ``budget``, when ratings change
    sentiment by ``changes`` (change -> share): the deployed rule
    (``RatingBudget.measured``) asked of the tally with the expected sums after n ratings.
    ``None``: not within ``MAX_RATINGS`` (or no ratings to go by).
    """
    if not changes:
        return None
    mean = sum(change * share for change, share in changes.items())
    second = sum(change * change * share for change, share in changes.items())
    for n in range(budget.min_ratings, MAX_RATINGS + 1):
        if budget.measured(RatingTally(n, n * mean, n * second), alpha):
            return n
    return None


@dataclass(frozen=True)
class ContactPolicy:
    """The contact policy that decides how many calls are made.

    ``rules`` is the deployed policy (``feedback_loop.policy``), evaluated by its own code,
    its rating budget (``rules.rating_budget``) included. The rest is the cost model's
    outage sampling by share, off by default: a cell-day where at least ``outage_share``
    of the cell's subscribers are eligible is an outage, and only ``outage_sample`` of them
    are called.
    """

    rules: Policy = field(default_factory=load_policy)
    outage_share: float = 0.2
    outage_sample: float = 1.0


@dataclass(frozen=True)
class CallsPerDay:
    """What a policy made of a day's candidates."""

    candidates: int
    calls: float
    subscriber_days: float
    suppressed: Mapping[str, float]

    @property
    def per_subscriber_day(self) -> float:
        """Calls per subscriber and day: multiply by the subscriber count for calls per day."""
        return self.calls / self.subscriber_days if self.subscriber_days else 0.0


def _as_incident(index: int, candidate: Candidate, rules: Policy) -> Incident:
    """A candidate as the incident the handlers would decide on (above threshold, enough
    sessions; the subscriber index is no phone number, so the deployment's zone applies)."""
    moment = DAY0 + timedelta(minutes=candidate.minute)
    return Incident(
        incident_id=f"candidate-{index}",
        phone_number=f"subscriber-{candidate.subscriber}",
        event_type=candidate.kpi,
        timestamp=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        cell=candidate.cell,
        device=None,
        vendor=None,
        failure_rate=1.0,
        sessions=rules.min_sessions,
        failures=rules.min_sessions,
        window_minutes=rules.windows_minutes[candidate.kpi],
        record_id=f"candidate-{index}",
    )


def _per_subscriber(
    candidates: Sequence[Candidate], rules: Policy, suppressed: dict[str, float]
) -> list[Candidate]:
    """The contacts the policy makes of the candidates, each at the minute it is made."""
    candidate_of = {_as_incident(i, c, rules): c for i, c in enumerate(candidates)}
    plan = plan_contacts(candidate_of.keys(), rules)
    for reason, count in plan.not_contacted.items():
        _count(suppressed, reason, count)
    first = {
        d.engagement_id: candidate_of[d.incident]
        for d in plan.decisions
        if d.decision == Verdict.ENGAGE
    }
    return [
        Candidate(
            first[contact.engagement_id].subscriber,
            contact.cell,
            first[contact.engagement_id].kpi,
            int((contact.at - DAY0).total_seconds() // 60),
        )
        for contact in plan.contacts
    ]


def _count(suppressed: dict[str, float], rule: str, calls: float) -> None:
    suppressed[rule] = suppressed.get(rule, 0.0) + calls


def calls_per_day(
    candidates: Sequence[Candidate],
    subscribers: int,
    days: float,
    policy: ContactPolicy,
    *,
    cell_population: Mapping[str, int] | None = None,
    subscribers_per_cell: float | None = None,
    ratings_per_call: float = 1.0,
    changes: Mapping[float, float] | None = None,
) -> CallsPerDay:
    """Calls the policy makes out of ``candidates`` (from ``subscribers`` over ``days``).

    The cell rules work on shares, so they scale: ``cell_population`` (subscribers living
    on each cell where the candidates were measured) gives each cell-day's eligible
    share for outage sampling. The rating budget (in ``measure`` mode) needs
    :func:`ratings_needed` ratings of a production cell of ``subscribers_per_cell``, with
    ratings changing sentiment by ``changes`` (:func:`rating_changes`); that is converted
    into the measured cell's units, ``ratings_per_call`` being the share of calls that end
    in a rating. Its period is taken as the day (the default ``period_hours``).
    """
    suppressed: dict[str, float] = {}
    called = _per_subscriber(candidates, policy.rules, suppressed)
    budget = policy.rules.rating_budget
    needed = (
        ratings_needed(budget, policy.rules.sentiment_alpha, changes or {})
        if budget.suppresses
        else None
    )
    population = cell_population or {}
    by_cell_day: dict[tuple[str, int], list[Candidate]] = defaultdict(list)
    for candidate in called:
        by_cell_day[(candidate.cell, candidate.minute // MINUTES_PER_DAY)].append(candidate)
    calls = 0.0
    for (cell, _day), cell_calls in by_cell_day.items():
        cell_calls.sort(key=lambda c: (c.minute, c.subscriber))
        eligible = list(dict.fromkeys(c.subscriber for c in cell_calls))
        living = population.get(cell, 0)
        made = float(len(cell_calls))
        if policy.outage_sample < 1.0 and living and len(eligible) / living >= policy.outage_share:
            sampled = set(eligible[: math.ceil(len(eligible) * policy.outage_sample)])
            made = float(sum(1 for c in cell_calls if c.subscriber in sampled))
            _count(suppressed, "outage_sample", len(cell_calls) - made)
        if needed is not None and living:
            # The budget is per production cell; in the measured cell's units it is smaller
            # by the ratio of the two populations (and may be a fraction of a call).
            scale = (subscribers_per_cell or living) / living
            allowed = needed / max(ratings_per_call, 1e-9) / scale
            if made > allowed:
                _count(suppressed, CELL_MEASURED, made - allowed)
                made = allowed
        calls += made
    return CallsPerDay(
        candidates=len(candidates),
        calls=calls,
        subscriber_days=subscribers * days,
        suppressed=dict(sorted(suppressed.items())),
    )
