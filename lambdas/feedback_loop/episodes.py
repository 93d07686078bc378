"""A subscriber's contact state: the open episode, if any, and the recent contacts.

An *episode* is one engagement: it starts with an above-threshold incident, gathers the
incidents of any KPI that follow while it is open, is contacted (one or more attempts,
on one channel or two) and closes. ``ContactHistory`` keeps one time per episode
contacted within the cap window, its latest attempt: the cap counts the entries, the gap
runs from the last. The
state is one map on the profile, written whole with a version check, so the decision
and the dialler never interleave their changes.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from feedback_loop.contract import EVENT_TYPES, PHONE_NUMBER, Reason
from feedback_loop.errors import InvalidRecord
from feedback_loop.ids import engagement_id, short_id, short_ids
from feedback_loop.timeutil import format_utc, parse_utc

OPEN = "open"  # decided, not contacted yet
# Saved right before a contact is requested: a delivery that finds it cannot know whether
# the contact went out (the run before it ended in between), so it takes it as made.
DIALLING = "dialling"
CONTACTED = "contacted"  # an attempt was made; waiting for the answer
CLOSED = "closed"
STATUSES = (OPEN, DIALLING, CONTACTED, CLOSED)

VOICE = "voice"
SMS = "sms"
CHANNELS = (VOICE, SMS)

EPISODE = "Episode"
CONTACT_HISTORY = "ContactHistory"
CONTACT_VERSION = "ContactVersion"
ANSWERED = "AnsweredEngagement"
# Set by the subscriber (OptedOut, from the call) or by the operator (ops.contact_preferences).
OPTED_OUT = "OptedOut"
DO_NOT_CONTACT = "DoNotContact"
TIME_ZONE = "TimeZone"
PREFERRED_CHANNEL = "PreferredChannel"
# Incident keys an episode keeps (the first and the latest ones).
MAX_EPISODE_KEYS = 4
# The ``Episode`` map's keys: field → key. Short, because the map sits on a profile that
# must stay within one DynamoDB write unit ("DynamoDB item sizes and formats": map keys
# count like attribute names); maps written with the earlier, long keys are still read.
# For the same reason the map leaves out what its first incident implies: the engagement
# id (derived from the subscriber and that incident, ``ids.engagement_id``), and that
# incident's KPI and key at the head of ``Kpis`` and ``Keys``.
EPISODE_KEYS = {
    "engagement_id": "Eng",
    "incident_id": "Inc",
    "incident_type": "Kpi",
    "incident_time": "At",
    "cell": "Cell",
    "incident_types": "Kpis",
    "incident_keys": "Keys",
    "status": "St",
    "attempts": "N",
    "channel": "Ch",
    "last_attempt_at": "Tried",
    "deferred_until": "Until",
}
LEGACY_EPISODE_KEYS = {
    "engagement_id": "EngagementId",
    "incident_id": "IncidentId",
    "incident_type": "IncidentType",
    "incident_time": "IncidentTime",
    "cell": "Cell",
    "incident_types": "IncidentTypes",
    "incident_keys": "IncidentKeys",
    "status": "Status",
    "attempts": "Attempts",
    "channel": "Channel",
    "last_attempt_at": "LastAttemptAt",
    "deferred_until": "DeferredUntil",
}


@dataclass(frozen=True)
class Episode:
    """The subscriber's current (or last) engagement.

    The first incident names it (``engagement_id``, ``incident_*``); ``incident_types``
    lists every KPI it asks about, in the order they joined; ``incident_keys`` are the
    short ids of its incidents (a replayed incident is recognised).
    """

    engagement_id: str
    incident_id: str
    incident_type: str
    incident_time: str
    cell: str
    incident_types: tuple[str, ...]
    incident_keys: tuple[str, ...]
    status: str = OPEN
    attempts: int = 0
    channel: str | None = None
    last_attempt_at: str | None = None
    deferred_until: str | None = None

    @property
    def first_incident(self) -> datetime:
        """When the episode's first incident happened."""
        return parse_utc(self.incident_time)

    @property
    def is_open(self) -> bool:
        """True until the episode is closed: new incidents join it."""
        return self.status != CLOSED

    def joined(self, kpi: str, key: str) -> "Episode":
        """The episode with one more incident.

        Keys are kept for the first incident and the ``MAX_EPISODE_KEYS - 1`` latest: a
        replayed record repeats the latest ones, and the item stays bounded however many
        incidents join.
        """
        kpis = self.incident_types if kpi in self.incident_types else (*self.incident_types, kpi)
        keys = (*self.incident_keys, key)
        if len(keys) > MAX_EPISODE_KEYS:
            keys = (keys[0], *keys[-(MAX_EPISODE_KEYS - 1) :])
        return replace(self, incident_types=kpis, incident_keys=keys)

    def to_item(self, phone_number: str) -> dict[str, Any]:
        """The ``Episode`` map (empty fields and what the first incident implies left out)."""
        derived = engagement_id(
            phone_number, self.incident_type, self.incident_time, self.incident_id
        )
        later_types = [kpi for kpi in self.incident_types if kpi != self.incident_type]
        first_key = short_id(self.incident_id)
        later_keys = [key for key in self.incident_keys if key != first_key]
        values = {
            "engagement_id": None if self.engagement_id == derived else self.engagement_id,
            "incident_id": self.incident_id,
            "incident_type": self.incident_type,
            "incident_time": self.incident_time,
            "cell": self.cell,
            "incident_types": later_types or None,
            "incident_keys": later_keys or None,
            "status": self.status,
            "attempts": self.attempts,
            "channel": self.channel,
            "last_attempt_at": self.last_attempt_at,
            "deferred_until": self.deferred_until,
        }
        return {EPISODE_KEYS[name]: v for name, v in values.items() if v is not None}

    @classmethod
    def from_item(cls, item: Any, phone_number: str | None) -> "Episode":
        """Read the ``Episode`` map of ``phone_number``'s profile (items in the earlier,
        longer forms too); a malformed one raises :class:`InvalidRecord`."""
        if not isinstance(item, Mapping):
            raise InvalidRecord(Reason.MALFORMED_IMAGE, "Episode is not a map")
        fields: dict[str, Any] = {
            name: item[key] if key in item else item.get(LEGACY_EPISODE_KEYS[name])
            for name, key in EPISODE_KEYS.items()
        }
        try:
            incident_id = _text(fields, "incident_id")
            incident_type = _text(fields, "incident_type")
            incident_time = _text(fields, "incident_time")
            if fields["engagement_id"] is None and phone_number:
                fields["engagement_id"] = engagement_id(
                    phone_number, incident_type, incident_time, incident_id
                )
            types = [str(kpi) for kpi in fields["incident_types"] or []]
            keys = short_ids(fields["incident_keys"] or [])
            first_key = short_id(incident_id)
            episode = cls(
                engagement_id=_text(fields, "engagement_id"),
                incident_id=incident_id,
                incident_type=incident_type,
                incident_time=incident_time,
                cell=_text(fields, "cell"),
                incident_types=(incident_type, *[k for k in types if k != incident_type]),
                incident_keys=(first_key, *[k for k in keys if k != first_key]),
                status=_text(fields, "status"),
                attempts=int(fields["attempts"] or 0),
                channel=_optional(fields, "channel"),
                last_attempt_at=_optional(fields, "last_attempt_at"),
                deferred_until=_optional(fields, "deferred_until"),
            )
            for moment in (episode.incident_time, episode.last_attempt_at, episode.deferred_until):
                if moment is not None:
                    parse_utc(moment)
            if episode.status not in STATUSES or episode.channel not in (None, *CHANNELS):
                raise ValueError(f"status {episode.status!r}, channel {episode.channel!r}")
            if not set(episode.incident_types) <= set(EVENT_TYPES):
                raise ValueError(f"incident types {episode.incident_types!r}")
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidRecord(Reason.MALFORMED_IMAGE, f"bad Episode: {error}") from error
        return episode


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"Episode without {EPISODE_KEYS[name]}")
    return value


def _optional(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value if isinstance(value, str) and value else None


def episode_of(profile: Mapping[str, Any]) -> Episode | None:
    """The profile's episode alone: ``None`` when it has none or it cannot be read (what
    needs only the episode does not fail on the rest of the contact state)."""
    stored = profile.get(EPISODE)
    if stored is None:
        return None
    try:
        return Episode.from_item(stored, str(profile.get(PHONE_NUMBER) or ""))
    except InvalidRecord:
        return None


@dataclass(frozen=True)
class ContactState:
    """The open (or last) episode, the recent contacts, and the version they were read at."""

    episode: Episode | None = None
    history: tuple[str, ...] = ()
    version: int = 0

    @classmethod
    def from_profile(
        cls, profile: Mapping[str, Any], phone_number: str | None = None
    ) -> "ContactState":
        """Read the state from a (deserialised) profile item or stream image of
        ``phone_number`` (by default the item's own key)."""
        raw_history = profile.get(CONTACT_HISTORY) or []
        if not isinstance(raw_history, list):
            raise InvalidRecord(Reason.MALFORMED_IMAGE, "ContactHistory is not a list")
        try:
            history = tuple(format_utc(parse_utc(str(made))) for made in raw_history)
            version = int(profile.get(CONTACT_VERSION) or 0)
        except (TypeError, ValueError) as error:
            raise InvalidRecord(Reason.MALFORMED_IMAGE, f"bad contact state: {error}") from error
        episode = profile.get(EPISODE)
        phone = phone_number or str(profile.get(PHONE_NUMBER) or "")
        return cls(None if episode is None else Episode.from_item(episode, phone), history, version)

    def contacted(self, at: datetime, window: timedelta) -> "ContactState":
        """The state after an episode's first contact at ``at`` (history kept to ``window``)."""
        kept = [made for made in self.history if parse_utc(made) > at - window]
        return replace(self, history=(*kept, format_utc(at)))

    def contacted_again(self, at: datetime) -> "ContactState":
        """The state after a later attempt of the current episode at ``at`` (a second call,
        a text): the episode's entry moves to it, so the gap runs from the subscriber's
        latest contact while the cap still counts episodes."""
        return replace(self, history=(*self.history[:-1], format_utc(at)))

    def with_episode(self, episode: Episode | None) -> "ContactState":
        """The state with ``episode`` as the current one."""
        return replace(self, episode=episode)

    def saved(self) -> "ContactState":
        """This state as it is once stored (the store bumps the version)."""
        return replace(self, version=self.version + 1)


@dataclass(frozen=True)
class SubscriberView:
    """What the contact policy needs of a subscriber's profile."""

    phone_number: str
    opted_out: bool = False
    do_not_contact: bool = False
    time_zone: str | None = None
    prefers_sms: bool = False
    answered_engagement: str | None = None  # its short id (ids.short_id); whole before
    contact: ContactState = field(default_factory=ContactState)

    @classmethod
    def from_profile(cls, phone_number: str, profile: Mapping[str, Any]) -> "SubscriberView":
        """Read the view from a (deserialised) profile item or stream image."""
        zone = profile.get(TIME_ZONE)
        answered = profile.get(ANSWERED)
        return cls(
            phone_number=phone_number,
            opted_out=profile.get(OPTED_OUT) is True,
            do_not_contact=profile.get(DO_NOT_CONTACT) is True,
            time_zone=zone if isinstance(zone, str) and zone else None,
            prefers_sms=profile.get(PREFERRED_CHANNEL) == SMS,
            answered_engagement=answered if isinstance(answered, str) else None,
            contact=ContactState.from_profile(profile, phone_number),
        )


def history_times(history: Sequence[str]) -> list[datetime]:
    """The contact history as datetimes, oldest first."""
    return sorted(parse_utc(made) for made in history)
