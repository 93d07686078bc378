"""Engagement decision and contact policy, evaluated for each new incident.

Incidents at or below the KPI's threshold (compared exactly) produce no decision at
all. The others are engaged unless a rule blocks them; the rules are checked in this
order and the first that blocks names the ``suppress`` decision's reason: the
subscriber opted out (``opted_out``); the window held fewer than ``min_sessions``
sessions (``min_sessions``); the incident's local time (``policy.timezone``) is in
quiet hours (``quiet_hours``); the same KPI was engaged within ``cooldown_minutes``
(``cooldown``); ``max_calls_per_day`` engagements already happened on that local day
(``daily_cap``).

All times are business times: ``decided_at`` is the incident's time, so a
replayed day takes the same decisions.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from feedback_loop.contract import EVENT_TYPES, Reason, Verdict
from feedback_loop.errors import InvalidRecord
from feedback_loop.ids import engagement_id
from feedback_loop.messages import EngagementMessage
from feedback_loop.messages import IncidentMessage as Incident
from feedback_loop.policy import Policy
from feedback_loop.timeutil import parse_utc

ENGAGE = Verdict.ENGAGE
SUPPRESS = Verdict.SUPPRESS
CALLS_DAY = "CallsDay"
CALLS_TODAY = "CallsToday"


@dataclass(frozen=True)
class EngagementState:
    """The profile's ``Engagements`` map: last engagement per KPI and today's call count."""

    last_by_kpi: Mapping[str, str] = field(default_factory=dict)
    calls_day: str | None = None
    calls_today: int = 0

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> "EngagementState":
        """Read the (deserialised) ``Engagements`` attribute; absent means never engaged.

        A malformed attribute raises :class:`InvalidRecord` so the stream record is
        rejected alone instead of failing its whole batch.
        """
        item = item or {}
        try:
            return cls(
                last_by_kpi={k: str(v) for k, v in item.items() if k in EVENT_TYPES},
                calls_day=str(item[CALLS_DAY]) if item.get(CALLS_DAY) else None,
                calls_today=int(item.get(CALLS_TODAY) or 0),
            )
        except (AttributeError, TypeError, ValueError) as error:
            raise InvalidRecord(Reason.MALFORMED_IMAGE, f"bad Engagements: {error}") from error

    def to_item(self) -> dict[str, Any]:
        """The ``Engagements`` attribute value."""
        item: dict[str, Any] = dict(self.last_by_kpi)
        if self.calls_day is not None:
            item[CALLS_DAY] = self.calls_day
            item[CALLS_TODAY] = self.calls_today
        return item

    def calls_on(self, day: str) -> int:
        """Engagements already made on local ``day``."""
        return self.calls_today if self.calls_day == day else 0

    def engaged(self, incident: Incident, day: str) -> "EngagementState":
        """The state after engaging on ``incident`` (local ``day``)."""
        last = dict(self.last_by_kpi)
        previous = last.get(incident.event_type)
        if previous is None or parse_utc(previous) < parse_utc(incident.timestamp):
            last[incident.event_type] = incident.timestamp
        if self.calls_day is None or day > self.calls_day:
            return replace(self, last_by_kpi=last, calls_day=day, calls_today=1)
        if day == self.calls_day:
            return replace(self, last_by_kpi=last, calls_today=self.calls_today + 1)
        return replace(self, last_by_kpi=last)


@dataclass(frozen=True)
class Decision:
    """The decision on one above-threshold incident."""

    phone_number: str
    incident: Incident
    decision: str
    reason: str
    threshold: float
    replayed: bool = False

    @property
    def engagement_id(self) -> str:
        """Deterministic id: the same incident always yields the same engagement."""
        incident = self.incident
        return engagement_id(
            self.phone_number, incident.event_type, incident.timestamp, incident.incident_id
        )

    def to_message(self) -> EngagementMessage:
        """The ``engagement`` queue message for this decision."""
        incident = self.incident
        return EngagementMessage(
            engagement_id=self.engagement_id,
            incident_id=incident.incident_id,
            phone_number=self.phone_number,
            incident_type=incident.event_type,
            incident_time=incident.timestamp,
            cell=incident.cell,
            device=incident.device,
            vendor=incident.vendor,
            failure_rate=incident.failure_rate,
            threshold=self.threshold,
            decision=self.decision,
            reason=self.reason,
            decided_at=incident.timestamp,
        )


def above_threshold(incident: Incident, threshold: float) -> bool:
    """failures/sessions strictly above ``threshold``, compared exactly (no float rounding)."""
    if incident.sessions <= 0:
        return False
    return Fraction(incident.failures, incident.sessions) > Fraction(str(threshold))


def local_day_and_time(timestamp: str, timezone: str) -> tuple[str, str]:
    """``(YYYY-MM-DD, HH:MM)`` of ``timestamp`` in ``timezone``."""
    local = parse_utc(timestamp).astimezone(ZoneInfo(timezone))
    return local.strftime("%Y-%m-%d"), local.strftime("%H:%M")


def _blocking_rule(
    incident: Incident, state: EngagementState, opted_out: bool, policy: Policy
) -> str | None:
    day, hhmm = local_day_and_time(incident.timestamp, policy.timezone)
    if opted_out:
        return "opted_out"
    if incident.sessions < policy.min_sessions:
        return "min_sessions"
    if policy.quiet_hours.contains(hhmm):
        return "quiet_hours"
    last = state.last_by_kpi.get(incident.event_type)
    if last is not None and abs(parse_utc(incident.timestamp) - parse_utc(last)) < timedelta(
        minutes=policy.cooldown_minutes
    ):
        return "cooldown"
    if state.calls_on(day) >= policy.max_calls_per_day:
        return "daily_cap"
    return None


def decide(
    phone_number: str,
    incident: Incident,
    state: EngagementState,
    opted_out: bool,
    policy: Policy,
) -> tuple[Decision | None, EngagementState]:
    """Decide on one incident; returns the decision (``None`` if not above threshold) and
    the engagement state after it.

    An incident whose engagement is already recorded (same KPI, same time) is a
    replay of a decision taken before: it is engaged again, without changing
    the state, so the downstream messages can be re-sent idempotently.
    """
    threshold = float(policy.thresholds[incident.event_type])
    if not above_threshold(incident, threshold):
        return None, state
    if state.last_by_kpi.get(incident.event_type) == incident.timestamp:
        return Decision(phone_number, incident, ENGAGE, "above_threshold", threshold, True), state
    rule = _blocking_rule(incident, state, opted_out, policy)
    if rule is not None:
        return Decision(phone_number, incident, SUPPRESS, rule, threshold), state
    day, _ = local_day_and_time(incident.timestamp, policy.timezone)
    decision = Decision(phone_number, incident, ENGAGE, "above_threshold", threshold)
    return decision, state.engaged(incident, day)


def decide_all(
    phone_number: str,
    incidents: Sequence[Incident],
    state: EngagementState,
    opted_out: bool,
    policy: Policy,
) -> tuple[list[Decision], EngagementState]:
    """Decide on incidents in time order, each seeing the engagements decided before it."""
    decisions = []
    for incident in sorted(incidents, key=lambda i: (parse_utc(i.timestamp), i.incident_id)):
        decision, state = decide(phone_number, incident, state, opted_out, policy)
        if decision is not None:
            decisions.append(decision)
    return decisions, state
