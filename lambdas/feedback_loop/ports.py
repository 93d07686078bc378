"""The ports the use cases need, as plain-data protocols; ``adapters/`` implements them.

Tests swap in memory fakes; the handlers wire the AWS adapters once per cold start.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from feedback_loop.incidents import ProfileUpdate
from feedback_loop.rates import Counts, Session

if TYPE_CHECKING:
    from feedback_loop.contact_policy import RatingTally
    from feedback_loop.episodes import ContactState, SubscriberView
    from feedback_loop.feedback import Feedback


@dataclass(frozen=True)
class OutgoingMessage:
    """One queue message to send; ``key`` is the sender's handle to map failures back."""

    key: str
    body: str
    group_id: str | None = None
    deduplication_id: str | None = None


@dataclass(frozen=True)
class NotSent:
    """Keys of the messages the queue did not accept, and the error codes it gave."""

    keys: frozenset[str] = frozenset()
    errors: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keys)


class MessageQueue(Protocol):
    """A queue messages are sent to; never raises for a refused message."""

    def send(self, messages: Sequence[OutgoingMessage]) -> NotSent:
        """Send; returns what was not sent (falsy when everything was)."""
        ...


class LakeSink(Protocol):
    """Where lake records go."""

    def put_records(
        self,
        prefix: str,
        records: Iterable[Mapping[str, Any]],
        time_field: str,
        batch_id: str | None = None,
    ) -> list[str]:
        """Write records under ``prefix``, one object per date, named ``batch_id`` if given."""
        ...


class CounterStore(Protocol):
    """Windowed session counters per (subscriber, KPI)."""

    def add(
        self,
        phone_number: str,
        kpi: str,
        shard_id: str,
        sessions: Sequence[tuple[str, Session]],
        expires_at: int,
        window_minutes: int,
    ) -> dict[int, Counts]:
        """Count the ``(sequence number, session)`` pairs not counted yet; returns all buckets."""
        ...


class ProfileStore(Protocol):
    """The recent-incident list of subscriber profiles."""

    def read(self, phone_numbers: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Profiles by phone number (``{}`` for a new subscriber; missing = unreadable now)."""
        ...

    def write(self, update: ProfileUpdate, seen_version: int | None) -> bool:
        """Write if nobody changed the list since ``seen_version``; ``False`` otherwise."""
        ...


class ContactStore(Protocol):
    """The subscriber's profile as the contact policy reads and writes it."""

    def load(self, phone_number: str) -> "SubscriberView | None":
        """The subscriber now (``None``: no profile)."""
        ...

    def record(self, phone_number: str, state: "ContactState") -> dict[str, Any] | None:
        """Write ``state`` if the profile is still at ``state.version``; else return the
        current profile item (deserialised)."""
        ...


@dataclass(frozen=True)
class CellWindow:
    """A cell's outage window after a subscriber was counted in it."""

    subscribers: int  # distinct subscribers who crossed a threshold on the cell in it
    declared: bool  # its outage signal was sent already


class CellStore(Protocol):
    """Counters shared across subscribers: outages, the pacing budget, rating tallies."""

    def count_subscriber(self, cell: str, window: datetime, subscriber: str) -> CellWindow:
        """Add ``subscriber`` to the cell's window (idempotent); the window as it is now."""
        ...

    def declare_outage(self, cell: str, window: datetime, at: datetime) -> None:
        """Note that the window's outage signal was sent."""
        ...

    def subscribers(self, cell: str, window: datetime) -> int:
        """Distinct subscribers of the cell who crossed a threshold in the window."""
        ...

    def claim_sample(self, cell: str, window: datetime, subscriber: str, size: int) -> bool:
        """Take one of an outage's ``size`` sample slots (idempotent per subscriber)."""
        ...

    def claim_pacing(self, minute: datetime, budget: int) -> bool:
        """Take one of the minute's ``budget`` contacts."""
        ...

    def ratings(self, cell: str, period: datetime) -> "RatingTally":
        """The cell's rating tally for the period starting at ``period``."""
        ...

    def count_rating(
        self,
        cell: str,
        period: datetime,
        engagement_id: str,
        change: float,
        expires: datetime,
        mark_expires: datetime,
    ) -> bool:
        """Add one rating to the tally (kept until ``expires``), once per engagement (its
        mark kept until ``mark_expires``): ``False`` if it was counted."""
        ...


@dataclass(frozen=True)
class RecordedAnswer:
    """What the profile holds for a contact's answer, and whether it was recorded before.

    ``sentiment`` is the subscriber's sentiment now (``None`` = never rated);
    ``change_sentiment`` is what this answer changed (0 unless it was a rating).
    """

    outcome: str
    sentiment: float | None
    change_sentiment: float
    replayed: bool


class SubscriberStore(Protocol):
    """The subscriber table as the feedback use case needs it."""

    def record_answer(
        self,
        phone_number: str,
        contact_id: str,
        answer: "Callable[[float | None], Feedback]",
    ) -> RecordedAnswer:
        """Record ``answer(stored sentiment)`` once per contact id, atomically.

        Raises ``InvalidRecord`` (``unknown_subscriber``) for a number with no profile.
        """
        ...
