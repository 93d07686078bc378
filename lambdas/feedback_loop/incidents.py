"""Incidents: every failed session, with the failure rate of its KPI at that moment.

An incident is its own queue message (:class:`~feedback_loop.messages.IncidentMessage`).
On the subscriber's profile, ingest writes only what the engagement decision needs: the
incidents a batch added (``NewIncidents``, which the table's stream hands to
``Read_after_incident``) and the short ids of the ``policy.max_recent_incidents`` most
recent ones (``SeenIncidents``), so replaying a batch adds nothing. The full history
lives in the lake. An entry keeps the fields the decision and the engagement record read
(``contract.INCIDENT_ATTRIBUTES``) and leaves out a dimension equal to the one the same
write sets on the item. A batch whose incidents would take more than
``INCIDENTS_BUDGET`` bytes is written in several writes, each one stream record, so
every write stays within one DynamoDB write unit (``feedback_loop.item_size``).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from feedback_loop.contract import (
    EVENT_TYPES,
    INCIDENT_ATTRIBUTES,
    INCIDENT_DIMENSIONS,
    NEW_INCIDENTS,
    SEEN_INCIDENTS,
    Reason,
)
from feedback_loop.errors import InvalidRecord
from feedback_loop.ids import incident_id, short_id, short_ids
from feedback_loop.item_size import item_size
from feedback_loop.messages import IncidentMessage
from feedback_loop.probe import ProbeRecord
from feedback_loop.rates import WindowRate
from feedback_loop.timeutil import parse_utc

RATE_DIGITS = 6
# Bytes the attributes ingest writes (``NewIncidents``, ``SeenIncidents`` and the
# dimensions) may take after one write; a single incident always goes in one write.
INCIDENTS_BUDGET = 384
Incident = IncidentMessage


@dataclass(frozen=True)
class ProfileWrite:
    """One ``UpdateItem`` of ingest: some of the batch's incidents and the ids seen after it."""

    new_incidents: list[dict[str, Any]]
    seen_incidents: list[str]


@dataclass(frozen=True)
class ProfileUpdate:
    """What one batch changes on a subscriber's profile item, in one or more writes."""

    phone_number: str
    cell: str
    device: str | None
    vendor: str | None
    writes: tuple[ProfileWrite, ...]

    @property
    def new_incidents(self) -> list[dict[str, Any]]:
        """Every entry the batch adds, in write order."""
        return [entry for write in self.writes for entry in write.new_incidents]

    @property
    def seen_incidents(self) -> list[str]:
        """``SeenIncidents`` once every write is done."""
        return self.writes[-1].seen_incidents

    def dimensions(self) -> dict[str, str]:
        """The top-level dimensions every write sets (an absent one is left as it is)."""
        return _top_level(self.cell, self.device, self.vendor)


def _top_level(cell: str, device: str | None, vendor: str | None) -> dict[str, str]:
    values = {"cell": cell, "device": device, "vendor": vendor}
    return {INCIDENT_ATTRIBUTES[n]: v for n, v in values.items() if v is not None}


def incident_from(
    record: ProbeRecord, record_id: str, rate: WindowRate, window_minutes: int
) -> Incident:
    """The incident of the failed session ``record``, found at ``record_id`` on the stream."""
    phone, kpi, timestamp = record.phone_number, record.event_type, record.timestamp
    return Incident(
        incident_id=incident_id(phone, kpi, timestamp, record_id),
        phone_number=record.phone_number,
        event_type=record.event_type,
        timestamp=record.timestamp,
        cell=record.cell,
        device=record.device,
        vendor=record.vendor,
        failure_rate=failure_rate(rate.sessions, rate.failures),
        sessions=rate.sessions,
        failures=rate.failures,
        window_minutes=window_minutes,
        record_id=record_id,
    )


def failure_rate(sessions: int, failures: int) -> float:
    """failures / sessions as incidents carry it (0 for an empty window)."""
    return round(failures / sessions, RATE_DIGITS) if sessions else 0.0


def incident_item(incident: Incident, top: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The incident as a ``NewIncidents`` entry.

    A dimension equal to the write's top-level one (``top``) is left out; one the write
    does not set is stated, ``None`` included, so a reader never falls back to an older
    top-level value.
    """
    top = top or {}
    entry: dict[str, Any] = {}
    for name, attribute in INCIDENT_ATTRIBUTES.items():
        value = getattr(incident, name)
        if name in INCIDENT_DIMENSIONS and attribute in top and top[attribute] == value:
            continue
        entry[attribute] = value
    return entry


def incident_from_item(
    phone_number: str,
    item: Any,
    top: Mapping[str, Any] | None = None,
    windows: Mapping[str, int] | None = None,
) -> Incident:
    """Read a ``NewIncidents`` entry back; a malformed one raises :class:`InvalidRecord`.

    ``top`` is the item the entry is on (its dimensions fill the ones the entry leaves
    out) and ``windows`` the policy's KPI windows. The profile keeps no record id: the
    entries are in stream order, which is what a reader needs of it.
    """
    if not isinstance(item, Mapping):
        raise InvalidRecord(Reason.MALFORMED_IMAGE, "incident is not a map")
    top = top or {}

    def value(name: str) -> Any:
        attribute = INCIDENT_ATTRIBUTES[name]
        return item[attribute] if attribute in item else top.get(attribute)

    def text(name: str) -> str:
        found = value(name)
        if not isinstance(found, str) or not found:
            raise ValueError(f"incident without {INCIDENT_ATTRIBUTES[name]}")
        return found

    def optional(name: str) -> str | None:
        found = value(name)
        return found if isinstance(found, str) and found else None

    try:
        kpi = text("event_type")
        if kpi not in EVENT_TYPES:
            raise ValueError(f"unknown event type {kpi!r}")
        sessions, failures = int(item["Sessions"]), int(item["Failures"])
        incident = Incident(
            incident_id=text("incident_id"),
            phone_number=phone_number,
            event_type=kpi,
            timestamp=text("timestamp"),
            cell=text("cell"),
            device=optional("device"),
            vendor=optional("vendor"),
            failure_rate=failure_rate(sessions, failures),
            sessions=sessions,
            failures=failures,
            window_minutes=(windows or {}).get(kpi, 0),
            record_id="",
        )
        parse_utc(incident.timestamp)
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidRecord(Reason.MALFORMED_IMAGE, f"bad incident: {error}") from error
    return incident


def new_incidents(
    phone_number: str, image: Mapping[str, Any], windows: Mapping[str, int] | None = None
) -> list[Incident]:
    """The incidents of a profile image's ``NewIncidents``, oldest first (stream order
    among incidents of the same second)."""
    items = image.get(NEW_INCIDENTS)
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidRecord(Reason.MALFORMED_IMAGE, "NewIncidents is not a list")
    incidents = [incident_from_item(phone_number, item, image, windows) for item in items]
    return sorted(incidents, key=lambda i: parse_utc(i.timestamp))


def profile_update(
    phone_number: str,
    seen: Sequence[str],
    incidents: Sequence[Incident],
    newest_record: ProbeRecord,
    cap: int,
) -> ProfileUpdate | None:
    """The profile change for a batch, or ``None`` when every incident was recorded before.

    ``seen`` is the stored ``SeenIncidents``; a replayed batch finds its incidents there.
    """
    remembered = short_ids(seen)
    known = set(remembered)
    fresh: dict[str, Incident] = {}
    for incident in incidents:
        key = short_id(incident.incident_id)
        if key not in known:
            fresh.setdefault(key, incident)
    if not fresh:
        return None
    ordered = sorted(fresh.values(), key=lambda i: (parse_utc(i.timestamp), i.record_id))
    top = _top_level(newest_record.cell, newest_record.device, newest_record.vendor)
    writes: list[ProfileWrite] = []
    entries: list[dict[str, Any]] = []
    for incident in ordered:
        entry = incident_item(incident, top)
        after = [*remembered, short_id(incident.incident_id)][-cap:]
        written = {NEW_INCIDENTS: [*entries, entry], SEEN_INCIDENTS: after, **top}
        if entries and item_size(written) > INCIDENTS_BUDGET:
            writes.append(ProfileWrite(entries, remembered))
            entries = []
        entries.append(entry)
        remembered = after
    writes.append(ProfileWrite(entries, remembered))
    return ProfileUpdate(
        phone_number=phone_number,
        cell=newest_record.cell,
        device=newest_record.device,
        vendor=newest_record.vendor,
        writes=tuple(writes),
    )
