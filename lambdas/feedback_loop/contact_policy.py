"""The contact policy: when, how often and whether a subscriber may be contacted.

One set of rules, evaluated twice: when an incident is decided (``Read_after_incident``)
and again right before the subscriber is contacted (``Trigger_Connect``), because a
queued engagement can wait long enough for the answer to change (an opt-out pressed
meanwhile, the night falling, the incident growing stale).

* **Episodes, not incidents.** Incidents of any KPI that arrive while an engagement is
  open join it: one contact per episode, explaining each problem. Dialling waits
  ``gather_minutes`` after the first incident, so problems that come together are asked
  about together.
* **Per subscriber, across all KPIs:** at least ``cooldown_minutes`` from the latest
  contact (any attempt of an episode: a second call, a text) to the next episode's first,
  and at most ``max_contacts`` episodes contacted in ``max_contacts_days``.
* **The subscriber's own hours:** quiet hours and blocked week days in the subscriber's
  time zone: the profile's ``TimeZone`` when the operator supplied one, else the zones of
  the number's area (the ``phonenumbers`` library), else the deployment's ``timezone``.
  A number whose area spans several zones (a UK mobile: London, Jersey, Guernsey, the
  Isle of Man; an Australian mobile: the Cocos Islands to Lord Howe) is contacted only
  when every one of them allows it. Where no moment suits them all (they are more hours
  apart than the calling hours last, or hours across midnight meet blocked days), the
  deployment's ``timezone`` applies.
  Zone arithmetic goes through ``zoneinfo``, so daylight-saving changes are honoured.
* **Deferred, not dropped:** a contact that may not happen now is scheduled for the next
  allowed moment; it is dropped as ``stale`` only when its first incident would by then
  be older than ``max_incident_age_hours``.
* **A per-cell rating budget** (``rating_budget``, off by default): once a cell's ratings
  of the period pin its mean sentiment change down tightly enough (:class:`RatingBudget`),
  further subscribers of that cell are not called (``measure`` mode) unless the operator
  chose ``care`` mode (everyone eligible is called as a retention gesture).

Every function here is pure: times come in as arguments, nothing reads a clock.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

from feedback_loop.outages import window_start
from feedback_loop.timeutil import parse_utc

Zones = tuple[ZoneInfo, ...]
"""The time zones a subscriber may be in: calling hours must allow a moment in each."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
UNKNOWN_ZONE = "Etc/Unknown"
# How many local days ahead the next allowed moment is looked for (a week of blocked
# days is refused by the config, so a week and a day always finds one).
_SEARCH_DAYS = 8
# Where the zones of a number's area are compared from.
_SPREAD_FROM = datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC"))


@dataclass(frozen=True)
class CallingHours:
    """When a subscriber may be contacted, in their local time.

    ``quiet_start``/``quiet_end`` (``HH:MM``) bound the quiet interval, which may wrap
    midnight; equal values mean no quiet hours. ``blocked_days`` are week days
    (``mon``..``sun``) on which nobody is contacted.
    """

    quiet_start: str = "21:00"
    quiet_end: str = "08:00"
    blocked_days: tuple[str, ...] = ()

    def _quiet(self, local: datetime) -> bool:
        if self.quiet_start == self.quiet_end:
            return False
        hhmm = local.strftime("%H:%M")
        if self.quiet_start < self.quiet_end:
            return self.quiet_start <= hhmm < self.quiet_end
        return hhmm >= self.quiet_start or hhmm < self.quiet_end

    def daily_hours(self) -> timedelta:
        """How long the calling hours last in a day that is not blocked."""
        if self.quiet_start == self.quiet_end:
            return timedelta(hours=24)
        start, end = (_minutes(hhmm) for hhmm in (self.quiet_start, self.quiet_end))
        return timedelta(minutes=(start - end) % (24 * 60))

    def allows(self, moment: datetime, zones: Zones) -> bool:
        """True when ``moment`` (aware) falls in the calling hours in each of ``zones``."""
        if not zones:  # no zone at all must never read as "any time will do"
            raise ValueError("calling hours need at least one time zone")
        return all(self._allows_in(moment, zone) for zone in zones)

    def next_allowed(self, moment: datetime, zones: Zones) -> datetime:
        """The first moment at or after ``moment`` that the calling hours allow in each of
        ``zones`` (each step moves to the latest zone's next allowed moment)."""
        at = moment
        while not self.allows(at, zones):
            at = max(self._next_allowed_in(at, zone) for zone in zones)
            if at - moment > timedelta(days=_SEARCH_DAYS):
                raise ValueError("calling hours allow no moment in a week in every zone")
        return at

    def _allows_in(self, moment: datetime, zone: ZoneInfo) -> bool:
        local = moment.astimezone(zone)
        return WEEKDAYS[local.weekday()] not in self.blocked_days and not self._quiet(local)

    def _next_allowed_in(self, moment: datetime, zone: ZoneInfo) -> datetime:
        if self._allows_in(moment, zone):
            return moment
        local_day = moment.astimezone(zone).date()
        for offset in range(_SEARCH_DAYS):
            candidate = _local_moment(local_day + timedelta(days=offset), self.quiet_end, zone)
            if candidate > moment and self._allows_in(candidate, zone):
                return candidate
            # A blocked day ends at local midnight; quiet hours ending at midnight too.
            midnight = _local_moment(local_day + timedelta(days=offset + 1), "00:00", zone)
            if midnight > moment and self._allows_in(midnight, zone):
                return midnight
        raise ValueError("calling hours allow no moment in a week")


def _minutes(hhmm: str) -> int:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return hour * 60 + minute


def _local_moment(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    """``hhmm`` on local ``day`` as an aware datetime; a time skipped by a DST change
    (spring forward) becomes the first valid moment after the gap."""
    hour, minute = (int(part) for part in hhmm.split(":"))
    naive = datetime.combine(day, time(hour, minute))
    local = naive.replace(tzinfo=zone)
    # zoneinfo gives a skipped wall time an offset anyway; round-tripping through UTC
    # moves it past the gap, which is when that clock reading first really exists.
    return local.astimezone(ZoneInfo("UTC")).astimezone(zone)


@lru_cache(maxsize=4096)
def zones_of_number(phone_number: str) -> tuple[str, ...]:
    """The time zones of the number's area in the numbering plan (none where unknown)."""
    try:
        parsed = phonenumbers.parse(phone_number, None)
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in number_zones.time_zones_for_number(parsed) if z != UNKNOWN_ZONE)


@lru_cache(maxsize=256)
def _widest_apart(zones: Zones) -> timedelta:
    """How far apart the zones' clocks are at most, over two years of their rules (every
    6 hours: zones that change their clocks on different days differ for days, which the
    samples see; a change on the same day at other hours, never longer than a night)."""
    widest = timedelta(0)
    for step in range(2 * 366 * 4):
        moment = _SPREAD_FROM + timedelta(hours=6 * step)
        offsets = [zone.utcoffset(moment.astimezone(zone)) or timedelta(0) for zone in zones]
        widest = max(widest, max(offsets) - min(offsets))
    return widest


def subscriber_zones(
    profile_zone: str | None, phone_number: str, default: str, hours: CallingHours
) -> Zones:
    """The zones whose calling hours apply: the profile's, else the number's area's (when
    the calling hours leave a moment that suits them all), else ``default``."""
    if profile_zone:
        try:
            return (ZoneInfo(profile_zone),)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    zones = []
    for key in zones_of_number(phone_number):
        try:
            zones.append(ZoneInfo(key))
        except (ZoneInfoNotFoundError, ValueError):
            continue
    if len(zones) == 1 or (zones and _every_zone_has_hours(tuple(zones), hours)):
        return tuple(zones)
    return (ZoneInfo(default),)


def _every_zone_has_hours(zones: Zones, hours: CallingHours) -> bool:
    """True when the calling hours leave a moment all ``zones`` allow on every allowed day.

    Each zone's hours are the same daily stretch shifted by its offset, so they overlap
    while the clocks are closer than the stretch lasts. A stretch across midnight is the
    exception where days are blocked: one zone's blocked day can cut another's night short.
    """
    if hours.blocked_days and hours.quiet_start < hours.quiet_end:
        return False
    return _widest_apart(zones) < hours.daily_hours()


@dataclass(frozen=True)
class ContactRules:
    """The per-subscriber contact rules of the policy (see the module docstring)."""

    cooldown: timedelta = timedelta(hours=24)
    max_contacts: int = 2
    max_contacts_window: timedelta = timedelta(days=7)
    gather: timedelta = timedelta(minutes=10)
    max_incident_age: timedelta = timedelta(hours=24)
    hours: CallingHours = CallingHours()


@dataclass(frozen=True)
class NextContact:
    """When a contact may happen, and which rule set that time (``None``: nothing waits)."""

    at: datetime
    reason: str | None


def contacts_in_window(history: Sequence[str], moment: datetime, window: timedelta) -> int:
    """Contacts of ``history`` (ISO times) within ``window`` before ``moment``."""
    return sum(1 for made in history if moment - window < parse_utc(made) <= moment)


def next_contact(
    now: datetime,
    first_incident: datetime,
    history: Sequence[str],
    rules: ContactRules,
    zones: Zones,
) -> NextContact:
    """The earliest moment an episode that started at ``first_incident`` may be contacted.

    The gathering delay, the gap after the last contact, the cap and the calling hours
    each push it later; the last one to push it names the reason.
    """
    candidates = [(now, None), (first_incident + rules.gather, "gathering")]
    made = sorted(parse_utc(moment) for moment in history)
    if made:
        candidates.append((made[-1] + rules.cooldown, "contact_gap"))
        recent = [m for m in made if m > now - rules.max_contacts_window]
        if len(recent) >= rules.max_contacts:
            # The cap reopens when the oldest contact that fills it leaves the window.
            candidates.append(
                (recent[-rules.max_contacts] + rules.max_contacts_window, "contact_cap")
            )
    at, reason = max(candidates, key=lambda pair: pair[0])
    allowed = rules.hours.next_allowed(at, zones)
    if allowed > at:
        return NextContact(allowed, "quiet_hours")
    return NextContact(at, reason)


def is_stale(first_incident: datetime, at: datetime, rules: ContactRules) -> bool:
    """True when a contact at ``at`` would be about an incident older than the policy allows."""
    return at - first_incident > rules.max_incident_age


# --- the per-cell rating budget ------------------------------------------------------------

MEASURE = "measure"
CARE = "care"
BUDGET_MODES = (MEASURE, CARE)
# The map's shrinkage settings (sql/priority.sql ``settings``): the network's mean counts
# as PRIOR_ANSWERS answers, Z_90 standard errors make the 90 % interval, and answers are
# never taken to vary less than MIN_VARIANCE.
PRIOR_ANSWERS = 2.0
Z_90 = 1.645
MIN_VARIANCE = 0.0625


@dataclass(frozen=True)
class RatingTally:
    """A cell's ratings in one period: how many, and the sum and the sum of squares of
    the sentiment changes they made (running sums, so one atomic ``ADD`` keeps them)."""

    ratings: int = 0
    total: float = 0.0
    squares: float = 0.0

    def plus(self, change: float) -> "RatingTally":
        """The tally with one more rating."""
        return RatingTally(self.ratings + 1, self.total + change, self.squares + change * change)


def change_variance_bound(alpha: float) -> float:
    """The largest variance one rating's sentiment change can have.

    A change is ``alpha * (score - previous)`` with both in [-1, 1], so it lies in
    [-2 alpha, 2 alpha]; a variable in an interval of width w varies at most w^2 / 4
    (Popoviciu's inequality): 4 alpha^2, and never less than the map's MIN_VARIANCE.
    """
    return max(MIN_VARIANCE, 4 * alpha * alpha)


def interval_half_width(tally: RatingTally, prior_variance: float) -> float:
    """Half the width of the map's 90 % interval of the cell's mean change, from the tally.

    The same shrinkage formula as ``sql/priority.sql``: ``spread2 = (K * S2 + (n - 1) *
    s2) / (K + n - 1)``, half-width ``Z * sqrt(spread2 / (n + K))``, with ``prior_variance``
    standing for the network's variance S2 (which a cell's tally cannot know).
    """
    n = tally.ratings
    own = max(0.0, tally.squares - tally.total * tally.total / n) if n else 0.0
    spread2 = (PRIOR_ANSWERS * prior_variance + own) / (PRIOR_ANSWERS + max(n - 1, 0))
    return Z_90 * math.sqrt(spread2 / (n + PRIOR_ANSWERS))


@dataclass(frozen=True)
class RatingBudget:
    """When a cell counts as measured for the period, and what that changes.

    A cell is measured once it has at least ``min_ratings`` ratings in the period
    (``period_hours``, aligned to the epoch: 24 = the UTC day, the lake's ``dt``) and the
    half-width of its 90 % interval, as the map computes it, is at most ``half_width``.
    The map's network variance is replaced by :func:`change_variance_bound`, the largest a
    rating's change can have: never narrower than the map's own interval, so a cell is
    never taken as measured before the map would show it so. Each rating counts as one
    answer; the map counts subscribers (their net change in the period), which is the
    same while a subscriber rates at most once a period (the default 24 h gap ensures it).
    In ``measure`` mode further subscribers of a measured cell are suppressed as
    ``cell_measured``; in ``care`` mode they are called anyway (the tally is still kept, so
    switching to ``measure`` takes effect at once).
    """

    enabled: bool = False
    mode: str = MEASURE
    half_width: float = 0.125
    min_ratings: int = 10
    period_hours: int = 24

    @property
    def suppresses(self) -> bool:
        """True when a measured cell's further subscribers are not called."""
        return self.enabled and self.mode == MEASURE

    def period(self, moment: datetime) -> datetime:
        """The start of the period holding ``moment``."""
        return window_start(moment, self.period_hours * 60)

    def measured(self, tally: RatingTally, alpha: float) -> bool:
        """True when ``tally`` (ratings made at ``sentiment_alpha`` = ``alpha``) is tight
        enough."""
        return (
            tally.ratings >= self.min_ratings
            and interval_half_width(tally, change_variance_bound(alpha)) <= self.half_width
        )
