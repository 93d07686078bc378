"""Simulated business time: the probe timestamps drive it, so a day replays in seconds."""

from __future__ import annotations

from datetime import UTC, datetime

from feedback_loop.timeutil import format_utc


class SimClock:
    """A clock that only moves forward, and only when the twin moves it.

    The event-source emulator measures batching windows and visibility timeouts on it;
    the contact centre stamps calls with it; the feedback handler's injectable ``clock``
    reads it.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    @property
    def now(self) -> float:
        """Seconds since the epoch."""
        return self._now

    def advance_to(self, moment: float) -> None:
        """Move to ``moment``; an earlier moment leaves the clock where it is."""
        self._now = max(self._now, float(moment))

    def advance_by(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        self._now += max(0.0, float(seconds))

    def datetime(self) -> datetime:
        """The current simulated time as an aware UTC datetime."""
        return datetime.fromtimestamp(self._now, UTC)

    def iso(self) -> str:
        """The current simulated time as ``YYYY-MM-DDTHH:MM:SSZ``."""
        return format_utc(self.datetime())
