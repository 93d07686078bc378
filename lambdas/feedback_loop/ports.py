"""The ports the use cases need, as plain-data protocols; ``adapters/`` implements them.

Tests swap in memory fakes; the handlers wire the AWS adapters once per cold start.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from feedback_loop.decision import EngagementState
from feedback_loop.incidents import ProfileUpdate
from feedback_loop.rates import Counts, Session
from feedback_loop.sentiment import SentimentUpdate


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


class EngagementStore(Protocol):
    """The ``Engagements`` state of subscriber profiles."""

    def record(
        self, phone_number: str, seen: Mapping[str, Any] | None, state: EngagementState
    ) -> dict[str, Any] | None:
        """Write ``state`` if the item still holds ``seen``; else return the current item."""
        ...


@dataclass(frozen=True)
class AppliedRating:
    """What the store did with a rating.

    ``update`` is the sentiment change this contact caused and ``received_at``
    when it was first recorded; both are ``None`` for a replay of a contact
    older than the last one, whose original result is no longer kept.
    """

    current_sentiment: float
    update: SentimentUpdate | None
    received_at: str | None
    device: str | None
    vendor: str | None
    replayed: bool


class SubscriberStore(Protocol):
    """The subscriber table as the feedback use case needs it."""

    def apply_rating(
        self,
        phone_number: str,
        contact_id: str,
        received_at: str,
        compute: Callable[[float | None], SentimentUpdate],
    ) -> AppliedRating:
        """Store ``compute(stored sentiment)`` once per contact id, atomically.

        Raises ``InvalidRecord`` for an unknown subscriber.
        """
        ...

    def opt_out(self, phone_number: str, received_at: str) -> float | None:
        """Mark the subscriber opted out; returns the current sentiment (``None`` = neutral)."""
        ...

    def current_sentiment(self, phone_number: str) -> float | None:
        """The stored sentiment, ``None`` when absent."""
        ...
