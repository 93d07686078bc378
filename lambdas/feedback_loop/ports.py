"""The ports the use cases need, as plain-data protocols; ``adapters/`` implements them.

Tests swap in memory fakes; the handlers wire the AWS adapters once per cold start.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from feedback_loop.decision import EngagementState
from feedback_loop.incidents import ProfileUpdate
from feedback_loop.rates import Counts, Session

if TYPE_CHECKING:
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


class EngagementStore(Protocol):
    """The ``Engagements`` state of subscriber profiles."""

    def record(
        self, phone_number: str, seen: Mapping[str, Any] | None, state: EngagementState
    ) -> dict[str, Any] | None:
        """Write ``state`` if the item still holds ``seen``; else return the current item."""
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
