"""Decide: what to do about each new above-threshold incident (the contact policy, first pass).

Incidents at or below the KPI's threshold (compared exactly) produce no decision at
all. For the others, in this order, the first rule that applies names the decision:

1. the subscriber opted out → ``suppress: opted_out``; is on the do-not-contact list →
   ``suppress: do_not_contact``;
2. the KPI's window held fewer than ``min_sessions`` sessions → ``suppress: min_sessions``;
3. the incident is already older than ``max_incident_age_hours`` → ``suppress: stale``;
4. the subscriber has an open episode → ``merged: same_episode`` (the contact will ask
   about this problem too);
5. the contact policy could not allow a contact before the incident grows stale → suppress
   with the rule that pushes it too late (``contact_gap``, ``contact_cap``, ``quiet_hours``);
6. the rating budget is on in ``measure`` mode and the incident's cell is measured for
   the period (``contact_policy.RatingBudget``) → ``suppress: cell_measured`` (the incident
   still counts on the map); asked only here, so a merge or another rule costs no read;
7. otherwise → ``engage: above_threshold``: a new episode. When it is contacted is the
   dialler's decision (gathering delay, calling hours, pacing), made again before dialling.

``now`` is the business time of the decision: the stream record's creation time, so a
replayed day takes the same decisions.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction

from feedback_loop.contact_policy import is_stale, next_contact, subscriber_zones
from feedback_loop.contract import Verdict
from feedback_loop.episodes import Episode, SubscriberView
from feedback_loop.ids import engagement_id, short_id
from feedback_loop.messages import EngagementMessage
from feedback_loop.messages import IncidentMessage as Incident
from feedback_loop.policy import Policy
from feedback_loop.timeutil import format_utc, parse_utc

ENGAGE = Verdict.ENGAGE
SUPPRESS = Verdict.SUPPRESS
MERGED = Verdict.MERGED
CELL_MEASURED = "cell_measured"

CellMeasured = Callable[[Incident], bool]
"""Whether the rating budget counts the incident's cell as measured for its period."""


@dataclass(frozen=True)
class Decision:
    """The decision on one above-threshold incident.

    ``engagement_id`` is the engagement the incident belongs to: a new one for
    ``engage`` (and for a suppressed incident), the open episode's for ``merged``.
    """

    phone_number: str
    incident: Incident
    decision: str
    reason: str
    threshold: float
    engagement_id: str
    decided_at: str
    replayed: bool = False

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
            decided_at=self.decided_at,
        )


def own_engagement_id(phone_number: str, incident: Incident) -> str:
    """The id of the engagement an incident starts (or would have started)."""
    return engagement_id(
        phone_number, incident.event_type, incident.timestamp, incident.incident_id
    )


def above_threshold(incident: Incident, threshold: float) -> bool:
    """failures/sessions strictly above ``threshold``, compared exactly (no float rounding)."""
    if incident.sessions <= 0:
        return False
    return Fraction(incident.failures, incident.sessions) > Fraction(str(threshold))


def new_episode(phone_number: str, incident: Incident) -> Episode:
    """The episode an engaged incident opens."""
    return Episode(
        engagement_id=own_engagement_id(phone_number, incident),
        incident_id=incident.incident_id,
        incident_type=incident.event_type,
        incident_time=incident.timestamp,
        cell=incident.cell,
        incident_types=(incident.event_type,),
        incident_keys=(short_id(incident.incident_id),),
    )


def _blocking_rule(
    incident: Incident, view: SubscriberView, policy: Policy, now: datetime
) -> str | None:
    if view.opted_out:
        return "opted_out"
    if view.do_not_contact:
        return "do_not_contact"
    if incident.sessions < policy.min_sessions:
        return "min_sessions"
    rules = policy.contact_rules
    moment = parse_utc(incident.timestamp)
    if is_stale(moment, now, rules):
        return "stale"
    return None


def decide(
    incident: Incident,
    view: SubscriberView,
    policy: Policy,
    now: datetime,
    measured: CellMeasured | None = None,
) -> tuple[Decision | None, SubscriberView]:
    """Decide on one incident; returns the decision (``None`` if not above threshold) and
    the subscriber's state after it. ``measured`` answers rule 6 (``None``: no budget)."""
    phone = view.phone_number
    threshold = float(policy.thresholds[incident.event_type])
    if not above_threshold(incident, threshold):
        return None, view
    decided_at = format_utc(now)
    episode = view.contact.episode
    key = short_id(incident.incident_id)
    if episode is not None and key in episode.incident_keys:
        # A replay of a decision taken before: the same messages again, no state change.
        first = episode.incident_keys[0] == key
        verdict, reason = (ENGAGE, "above_threshold") if first else (MERGED, "same_episode")
        decision = Decision(
            phone, incident, verdict, reason, threshold, episode.engagement_id, decided_at, True
        )
        return decision, view
    own_id = own_engagement_id(phone, incident)
    rule = _blocking_rule(incident, view, policy, now)
    if rule is not None:
        return Decision(phone, incident, SUPPRESS, rule, threshold, own_id, decided_at), view
    rules = policy.contact_rules
    if episode is not None and episode.is_open and not is_stale(episode.first_incident, now, rules):
        # An episode older than the age limit is never contacted (its trigger may sit in a
        # dead-letter queue): a new incident opens a new one instead of joining it.
        merged = episode.joined(incident.event_type, key)
        after = replace(view, contact=view.contact.with_episode(merged))
        decision = Decision(
            phone, incident, MERGED, "same_episode", threshold, episode.engagement_id, decided_at
        )
        return decision, after
    happened = parse_utc(incident.timestamp)
    zones = subscriber_zones(view.time_zone, phone, policy.timezone, rules.hours)
    earliest = next_contact(now, happened, view.contact.history, rules, zones)
    if is_stale(happened, earliest.at, rules):
        # The rule that pushes the first possible contact past the incident's age limit.
        reason = earliest.reason or "stale"
        return Decision(phone, incident, SUPPRESS, reason, threshold, own_id, decided_at), view
    if measured is not None and policy.rating_budget.suppresses and measured(incident):
        return Decision(
            phone, incident, SUPPRESS, CELL_MEASURED, threshold, own_id, decided_at
        ), view
    opened = replace(view, contact=view.contact.with_episode(new_episode(phone, incident)))
    return Decision(
        phone, incident, ENGAGE, "above_threshold", threshold, own_id, decided_at
    ), opened


def decide_all(
    incidents: Sequence[Incident],
    view: SubscriberView,
    policy: Policy,
    now: datetime,
    measured: CellMeasured | None = None,
) -> tuple[list[Decision], SubscriberView]:
    """Decide on incidents in time order, each seeing the state the ones before it left."""
    decisions = []
    for incident in sorted(incidents, key=lambda i: (parse_utc(i.timestamp), i.record_id)):
        decision, view = decide(incident, view, policy, now, measured)
        if decision is not None:
            decisions.append(decision)
    return decisions, view
