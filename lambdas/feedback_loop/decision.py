"""Engagement decision and contact policy, evaluated for each new incident.

Engage iff the failure rate is strictly above the KPI's threshold and the
window held at least ``min_sessions`` sessions, the subscriber has not opted
out, the incident's local time (``policy.timezone``) is outside quiet hours,
the same KPI was not engaged within ``cooldown_minutes`` and fewer than
``max_calls_per_day`` engagements happened on that local day. Incidents at or
below the threshold produce no decision at all; the others produce ``engage``
or ``suppress`` with the first rule that blocked them, checked in that order.

All times are business times: ``decided_at`` is the incident's time, so a
replayed day takes the same decisions.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from feedback_loop.contract import EVENT_TYPES, Verdict
from feedback_loop.errors import InvalidRecord
from feedback_loop.ids import engagement_id
from feedback_loop.messages import EngagementMessage
from feedback_loop.policy import Policy
from feedback_loop.timeutil import parse_utc

ENGAGE = Verdict.ENGAGE
SUPPRESS = Verdict.SUPPRESS
CALLS_DAY = "CallsDay"
CALLS_TODAY = "CallsToday"


@dataclass(frozen=True)
class RecordedIncident:
    """An incident as stored in the profile's ``RecentIncidents``."""

    incident_id: str
    event_type: str
    timestamp: str
    cell: str
    device: str | None
    vendor: str | None
    failure_rate: float
    sessions: int
    failures: int


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
            raise InvalidRecord("malformed_image", f"bad Engagements: {error}") from error

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

    def engaged(self, incident: RecordedIncident, day: str) -> "EngagementState":
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
    incident: RecordedIncident
    decision: str
    reason: str
    threshold: float
    replayed: bool = False

    @property
    def engagement_id(self) -> str:
        """Deterministic id: the same incident always yields the same engagement."""
        return engagement_id(self.phone_number, self.incident.event_type, self.incident.timestamp)

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


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRecord("malformed_image", f"incident without {name}")
    return value


def _optional(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value if isinstance(value, str) and value else None


def recorded_incidents(items: Any) -> list[RecordedIncident]:
    """Parse a deserialised ``RecentIncidents`` list; raises on a malformed entry."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidRecord("malformed_image", "RecentIncidents is not a list")
    incidents = []
    for item in items:
        if not isinstance(item, Mapping):
            raise InvalidRecord("malformed_image", "incident is not a map")
        try:
            incidents.append(
                RecordedIncident(
                    incident_id=_text(item, "IncidentId"),
                    event_type=_text(item, "EventType"),
                    timestamp=_text(item, "Timestamp"),
                    cell=_text(item, "Cell"),
                    device=_optional(item, "Device"),
                    vendor=_optional(item, "Vendor"),
                    failure_rate=float(item["FailureRate"]),
                    sessions=int(item["Sessions"]),
                    failures=int(item["Failures"]),
                )
            )
            parse_utc(incidents[-1].timestamp)
            if incidents[-1].event_type not in EVENT_TYPES:
                raise ValueError(f"unknown event type {incidents[-1].event_type!r}")
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidRecord("malformed_image", f"bad incident: {error}") from error
    return incidents


def new_incidents(
    old: Sequence[RecordedIncident], new: Sequence[RecordedIncident]
) -> list[RecordedIncident]:
    """Incidents in the new image but not in the old one, oldest first."""
    seen = {incident.incident_id for incident in old}
    fresh = [incident for incident in new if incident.incident_id not in seen]
    return sorted(fresh, key=lambda incident: (parse_utc(incident.timestamp), incident.incident_id))


def above_threshold(incident: RecordedIncident, threshold: float) -> bool:
    """failures/sessions strictly above ``threshold``, compared exactly (no float rounding)."""
    if incident.sessions <= 0:
        return False
    return Fraction(incident.failures, incident.sessions) > Fraction(str(threshold))


def local_day_and_time(timestamp: str, timezone: str) -> tuple[str, str]:
    """``(YYYY-MM-DD, HH:MM)`` of ``timestamp`` in ``timezone``."""
    local = parse_utc(timestamp).astimezone(ZoneInfo(timezone))
    return local.strftime("%Y-%m-%d"), local.strftime("%H:%M")


def _blocking_rule(
    incident: RecordedIncident, state: EngagementState, opted_out: bool, policy: Policy
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
    incident: RecordedIncident,
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
    incidents: Sequence[RecordedIncident],
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
