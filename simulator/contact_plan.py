"""The contact policy offline: who would be contacted, when, and why not, for a set of incidents.

The what-if and the cost model ask what the policy makes of a day of incidents without
running the handlers. This replays them through the handlers' own rules, in time order:
``feedback_loop.decision.decide`` when an incident arrives (``Read_after_incident``), and
at the planned contact time the checks ``Trigger_Connect`` makes again before dialling
(``next_contact``, staleness, the rating budget, the outage sample of
``feedback_loop.outages``). The rating budget asks ``RatingBudget.measured`` of each cell's
tally, which the answers of the planned contacts fill (``rating_of``: the sentiment change
each contact's answer makes, ``None`` for no rating; without it nothing is rated and no
cell is ever measured).

What it cannot know it assumes, and says so: an incident arrives when it happened; each
episode's first contact reaches the subscriber (no retry, no text) and the answer closes
it after ``answer_wait_minutes``; nobody opts out; the pacing budget (``calls_per_minute``)
only moves contacts by minutes, so it is not modelled; profiles give no time zone, so a
subscriber's zones are the number's (``phonenumbers``) or the deployment's.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from feedback_loop.contact_policy import (
    RatingTally,
    Zones,
    is_stale,
    next_contact,
    subscriber_zones,
)
from feedback_loop.contract import Verdict
from feedback_loop.decision import CELL_MEASURED, Decision, decide
from feedback_loop.episodes import CLOSED, CONTACTED, Episode, SubscriberView
from feedback_loop.incidents import Incident
from feedback_loop.outages import eligible_for_sample, subscriber_key, window_start
from feedback_loop.policy import Policy
from feedback_loop.timeutil import format_utc, parse_utc

# Event kinds, in their order at equal moments: a message due at a moment is handled
# before a record stamped the same moment is decided.
DIAL, CLOSE, ARRIVE = 0, 1, 2


@dataclass(frozen=True)
class PlannedContact:
    """One first contact of an episode, as ``Trigger_Connect`` would place it."""

    phone_number: str
    engagement_id: str
    cell: str
    incident_types: tuple[str, ...]
    first_incident: datetime
    at: datetime
    zones: Zones

    @property
    def deferred(self) -> bool:
        """True when the contact waited for more than the gathering delay."""
        return self.at > self.first_incident


@dataclass
class ContactPlan:
    """What the policy made of the incidents."""

    decisions: list[Decision] = field(default_factory=list)
    contacts: list[PlannedContact] = field(default_factory=list)
    # Engagements decided but never contacted, by the dial-time rule that stopped them.
    dropped: Counter[str] = field(default_factory=Counter)
    # Engagements contacted later than gathered, by the rule that held them.
    deferred: Counter[str] = field(default_factory=Counter)
    outages: set[tuple[str, str]] = field(default_factory=set)

    @property
    def not_contacted(self) -> Counter[str]:
        """Every above-threshold incident that did not become a contact, by reason."""
        reasons = Counter(d.reason for d in self.decisions if d.decision != Verdict.ENGAGE)
        return reasons + self.dropped


@dataclass
class _Cell:
    subscribers: set[str] = field(default_factory=set)
    sampled: int = 0


def plan_contacts(
    incidents: Iterable[Incident],
    policy: Policy,
    rating_of: Callable[[PlannedContact], float | None] | None = None,
) -> ContactPlan:
    """Replay ``incidents`` (with their subscribers' phone numbers) through the policy."""
    plan = ContactPlan()
    views: dict[str, SubscriberView] = {}
    cells: dict[tuple[str, str], _Cell] = defaultdict(_Cell)
    rules = policy.contact_rules
    budget = policy.rating_budget
    # The cells' rating tallies by (cell, period), and the answers still to come in.
    tallies: dict[tuple[str, datetime], RatingTally] = defaultdict(RatingTally)
    answers: dict[str, tuple[tuple[str, datetime], float]] = {}

    def measured(cell: str, first_incident: datetime) -> bool:
        tally = tallies[(cell, budget.period(first_incident))]
        return budget.measured(tally, policy.sentiment_alpha)

    order = itertools.count()
    # (moment, kind, tie-break, payload)
    events: list[tuple[datetime, int, int, Incident | tuple[str, str]]] = []
    for incident in incidents:
        heapq.heappush(events, (parse_utc(incident.timestamp), ARRIVE, next(order), incident))

    def count_outage(decision: Decision) -> None:
        incident = decision.incident
        window = window_start(parse_utc(incident.timestamp), policy.outage.window_minutes)
        cell = cells[(incident.cell, format_utc(window))]
        cell.subscribers.add(subscriber_key(decision.phone_number))
        if len(cell.subscribers) >= policy.outage.min_subscribers:
            plan.outages.add((incident.cell, format_utc(window)))

    def close(phone: str, episode: Episode) -> None:
        answer = answers.pop(episode.engagement_id, None)
        if answer is not None and budget.enabled:
            key, change = answer
            tallies[key] = tallies[key].plus(change)
        view = views[phone]
        views[phone] = replace(
            view, contact=view.contact.with_episode(replace(episode, status=CLOSED))
        )

    def contacted(moment: datetime, phone: str, episode: Episode) -> None:
        # Open until the answer is in: incidents meanwhile join it, as in the handlers.
        view = views[phone]
        state = view.contact.with_episode(replace(episode, status=CONTACTED))
        views[phone] = replace(view, contact=state.contacted(moment, rules.max_contacts_window))
        answered = moment + timedelta(minutes=policy.answer_wait_minutes)
        heapq.heappush(events, (answered, CLOSE, next(order), (phone, episode.engagement_id)))

    def dial(moment: datetime, phone: str, engagement_id: str) -> None:
        view = views[phone]
        episode = view.contact.episode
        if episode is None or episode.engagement_id != engagement_id or episode.status == CLOSED:
            return
        if episode.status == CONTACTED:
            close(phone, episode)
            return
        zones = subscriber_zones(view.time_zone, phone, policy.timezone, rules.hours)
        earliest = next_contact(moment, episode.first_incident, view.contact.history, rules, zones)
        if is_stale(episode.first_incident, earliest.at, rules):
            plan.dropped["stale"] += 1
            close(phone, episode)
            return
        if earliest.at > moment:
            if earliest.reason not in ("gathering", None):
                plan.deferred[earliest.reason] += 1
            heapq.heappush(events, (earliest.at, DIAL, next(order), (phone, engagement_id)))
            return
        if budget.suppresses and measured(episode.cell, episode.first_incident):
            plan.dropped[CELL_MEASURED] += 1
            close(phone, episode)
            return
        window = window_start(episode.first_incident, policy.outage.window_minutes)
        cell = cells[(episode.cell, format_utc(window))]
        if len(cell.subscribers) >= policy.outage.min_subscribers:
            key = subscriber_key(phone)
            if not eligible_for_sample(key, episode.cell, window) or (
                cell.sampled >= policy.outage.sample_size
            ):
                plan.dropped["cell_outage"] += 1
                close(phone, episode)
                return
            cell.sampled += 1
        contact = PlannedContact(
            phone,
            engagement_id,
            episode.cell,
            episode.incident_types,
            episode.first_incident,
            moment,
            zones,
        )
        plan.contacts.append(contact)
        change = None if rating_of is None else rating_of(contact)
        if change is not None:
            answers[engagement_id] = ((episode.cell, budget.period(episode.first_incident)), change)
        contacted(moment, phone, episode)

    while events:
        moment, _, _, payload = heapq.heappop(events)
        if not isinstance(payload, Incident):
            dial(moment, *payload)  # a close is the dial that finds the episode contacted
            continue
        phone = payload.phone_number
        view = views.get(phone) or SubscriberView(phone)
        decision, views[phone] = decide(
            payload, view, policy, moment, lambda i: measured(i.cell, parse_utc(i.timestamp))
        )
        if decision is None:
            continue
        plan.decisions.append(decision)
        if decision.reason != "min_sessions":
            count_outage(decision)
        if decision.decision == Verdict.ENGAGE:
            heapq.heappush(events, (moment, DIAL, next(order), (phone, decision.engagement_id)))
    return plan
