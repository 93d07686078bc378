"""Windowed failure counters per (subscriber, KPI), kept in fixed time buckets.

Sessions are counted in fixed buckets named by their start (epoch seconds), so a
KPI window (``policy.windows_minutes``) slides bucket by bucket and the counters
can be kept with DynamoDB ``ADD`` (commutative, no read).

Bucket size: ``BUCKET_MINUTES`` (5) for windows up to an hour, and 5 minutes per
started hour of the window beyond that (30 minutes for a 6 h window), so a window
never spans more than ``MAX_WINDOW_BUCKETS`` (12) buckets and the counter item
stays within one DynamoDB write unit whatever the window.

Window rule: the window ending at time ``t`` is the bucket holding ``t`` and the
``n - 1`` buckets before it, ``n = ceil(window / bucket)``; so it reaches back between
``(n - 1) x bucket`` and ``n x bucket`` minutes, where ``n x bucket`` is at least the window
and less than a bucket more (6 h: between 5 h 30 and 6 h; 61 minutes: between 60 and 70).
The failure rate recorded with an incident at ``t`` counts, inside that window, every
session stored by earlier batches plus the sessions of the current batch up to and
including the incident itself, taken in (timestamp, arrival) order - so a later session in the
same batch never changes an earlier incident's rate.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

BUCKET_MINUTES = 5
MINUTES_PER_BUCKET_STEP = 60
MAX_WINDOW_BUCKETS = MINUTES_PER_BUCKET_STEP // BUCKET_MINUTES
SESSIONS_PREFIX = "S"
FAILURES_PREFIX = "F"
# Expired buckets tolerated on a counter item before a prune update removes them:
# keeping the hot-path update expression small matters more than a tidy item.
STALE_BUCKETS_BEFORE_PRUNE = 12


@dataclass(frozen=True)
class Counts:
    """Sessions and failed sessions in one bucket or window."""

    sessions: int = 0
    failures: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.sessions + other.sessions, self.failures + other.failures)

    def __sub__(self, other: "Counts") -> "Counts":
        return Counts(
            max(0, self.sessions - other.sessions), max(0, self.failures - other.failures)
        )


@dataclass(frozen=True)
class Session:
    """One probe session of a (subscriber, KPI); ``order`` breaks timestamp ties (arrival)."""

    moment: datetime
    failed: bool
    order: int = 0


@dataclass(frozen=True)
class WindowRate:
    """The failure rate over the window ending at ``session``'s time."""

    session: Session
    sessions: int
    failures: int

    @property
    def failure_rate(self) -> float:
        """failures / sessions (0 when the window is empty)."""
        return self.failures / self.sessions if self.sessions else 0.0


Buckets = Mapping[int, Counts]


def bucket_seconds(window_minutes: int) -> int:
    """Length of a window's buckets: 5 minutes per started hour of the window."""
    steps = max(1, math.ceil(window_minutes / MINUTES_PER_BUCKET_STEP))
    return steps * BUCKET_MINUTES * 60


def bucket_start(moment: datetime, window_minutes: int) -> int:
    """Epoch second at which the bucket holding ``moment`` starts."""
    epoch = int(moment.timestamp())
    return epoch - epoch % bucket_seconds(window_minutes)


def window_size(window_minutes: int) -> int:
    """Number of buckets in a window (a partial bucket counts as a whole one)."""
    return max(1, math.ceil(window_minutes * 60 / bucket_seconds(window_minutes)))


def window_reach(window_minutes: int) -> int:
    """Seconds from a window's oldest bucket start to the start of the bucket it ends in."""
    return (window_size(window_minutes) - 1) * bucket_seconds(window_minutes)


def window_starts(moment: datetime, window_minutes: int) -> range:
    """Starts of the buckets of the window ending at ``moment``, oldest first."""
    last = bucket_start(moment, window_minutes)
    return range(last - window_reach(window_minutes), last + 1, bucket_seconds(window_minutes))


def fold(sessions: Iterable[Session], window_minutes: int) -> dict[int, Counts]:
    """Per-bucket deltas of a batch of sessions (what one ``ADD`` applies)."""
    deltas: dict[int, Counts] = {}
    for session in sessions:
        start = bucket_start(session.moment, window_minutes)
        deltas[start] = deltas.get(start, Counts()) + Counts(1, int(session.failed))
    return deltas


def subtract(buckets: Buckets, deltas: Buckets) -> dict[int, Counts]:
    """``buckets`` without ``deltas``: the state before a batch, from the state after it."""
    return {start: counts - deltas.get(start, Counts()) for start, counts in buckets.items()}


def window_counts(buckets: Buckets, end: datetime, window_minutes: int) -> Counts:
    """Sessions and failures stored in the window ending at ``end``."""
    total = Counts()
    for start in window_starts(end, window_minutes):
        total += buckets.get(start, Counts())
    return total


def rates_at_failures(
    before: Buckets, batch: Sequence[Session], window_minutes: int
) -> list[WindowRate]:
    """Rate at each failed session of ``batch``, by the rule in the module docstring."""
    ordered = sorted(batch, key=lambda s: (s.moment, s.order))
    rates = []
    for index, session in enumerate(ordered):
        if not session.failed:
            continue
        window = set(window_starts(session.moment, window_minutes))
        counts = window_counts(before, session.moment, window_minutes)
        for earlier in ordered[: index + 1]:
            if bucket_start(earlier.moment, window_minutes) in window:
                counts += Counts(1, int(earlier.failed))
        rates.append(WindowRate(session, counts.sessions, counts.failures))
    return rates


def expired(buckets: Iterable[int], window_minutes: int) -> list[int]:
    """Buckets older than the window ending at the newest stored bucket (safe to prune)."""
    starts = sorted(buckets)
    if not starts:
        return []
    oldest_live = starts[-1] - window_reach(window_minutes)
    return [start for start in starts if start < oldest_live]


def attribute_names(start: int) -> tuple[str, str]:
    """The sessions and failures attribute names of one bucket on the counter item."""
    return f"{SESSIONS_PREFIX}{start}", f"{FAILURES_PREFIX}{start}"


def buckets_from_item(item: Mapping[str, Any]) -> dict[int, Counts]:
    """Read the buckets back from a (deserialised) counter item."""
    buckets: dict[int, Counts] = {}
    for name, value in item.items():
        prefix, digits = name[:1], name[1:]
        if prefix not in (SESSIONS_PREFIX, FAILURES_PREFIX) or not digits.isdigit():
            continue
        start = int(digits)
        current = buckets.get(start, Counts())
        if prefix == SESSIONS_PREFIX:
            buckets[start] = Counts(int(value), current.failures)
        else:
            buckets[start] = Counts(current.sessions, int(value))
    return buckets
