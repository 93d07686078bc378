"""Outages: many subscribers of one cell crossing a KPI threshold at once.

Calling each of them would flood the contact centre to learn what a sample tells, so
the policy counts, per cell and window (``outage.window_minutes``, aligned to the
epoch), the distinct subscribers whose above-threshold incident had enough sessions to
judge. Reaching ``outage.min_subscribers`` declares an outage: one cell-level signal
(an ``outages/`` lake record, the ``CellOutages`` metric and its alarm). When an
engagement of that cell and window is about to be contacted, only a deterministic random
sample goes ahead: a subscriber is eligible when the rank its key, the cell and the
window hash to (uniform in [0, 1)) is below ``SAMPLE_FRACTION``, and is contacted while
the outage's ``outage.sample_size`` slots last; the others are suppressed as
``cell_outage``. The sample's answers still reach the map, which estimates the loss for
everyone affected.
"""

import hashlib
from datetime import datetime, timedelta

from feedback_loop.timeutil import format_utc

# Half the affected subscribers are eligible, so the sample does not simply take the
# first to cross (the heaviest users); at the default threshold of 20 subscribers that
# still leaves about as many eligible as the default sample of 10.
SAMPLE_FRACTION = 0.5


def window_start(moment: datetime, minutes: int) -> datetime:
    """Start of the ``minutes``-long window (aligned to the epoch) holding ``moment``."""
    seconds = minutes * 60
    epoch = int(moment.timestamp())
    return moment - timedelta(seconds=epoch % seconds, microseconds=moment.microsecond)


def subscriber_key(phone_number: str) -> str:
    """A short, stable key for a subscriber in the cell state (not the number itself)."""
    return hashlib.sha256(f"subscriber|{phone_number}".encode()).hexdigest()[:16]


def sample_rank(key: str, cell: str, window: datetime) -> float:
    """The subscriber's place in the outage's random order, uniform in [0, 1)."""
    digest = hashlib.sha256(f"{key}|{cell}|{format_utc(window)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def eligible_for_sample(key: str, cell: str, window: datetime) -> bool:
    """True when the subscriber is in the eligible part of the outage's random order."""
    return sample_rank(key, cell, window) < SAMPLE_FRACTION
