"""Incidents: every failed session, with the failure rate of its KPI at that moment.

An incident is its own queue message (:class:`~feedback_loop.messages.IncidentMessage`).
On the subscriber's profile, ingest writes only what the engagement decision needs: the
incidents a batch added (``NewIncidents``, which the table's stream hands to
``Read_after_incident``) and the short ids of the ``policy.max_recent_incidents`` most
recent ones (``SeenIncidents``), so replaying a batch adds nothing. The full history
lives in the lake. That keeps the item small and bounded: a profile write stays within
one DynamoDB write unit.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from feedback_loop.contract import EVENT_TYPES, INCIDENT_ATTRIBUTES, Reason
from feedback_loop.errors import InvalidRecord
from feedback_loop.ids import incident_id, short_id
from feedback_loop.messages import IncidentMessage
from feedback_loop.probe import ProbeRecord
from feedback_loop.rates import WindowRate
from feedback_loop.timeutil import parse_utc

RATE_DIGITS = 6
Incident = IncidentMessage


@dataclass(frozen=True)
class ProfileUpdate:
    """What one batch changes on a subscriber's profile item."""

    phone_number: str
    new_incidents: list[dict[str, Any]]
    seen_incidents: list[str]
    cell: str
    device: str | None
    vendor: str | None


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
        failure_rate=round(rate.failure_rate, RATE_DIGITS),
        sessions=rate.sessions,
        failures=rate.failures,
        window_minutes=window_minutes,
        record_id=record_id,
    )


def incident_item(incident: Incident) -> dict[str, Any]:
    """The incident as a ``NewIncidents`` entry of the profile (absent dimensions left out)."""
    return {
        attribute: getattr(incident, name)
        for name, attribute in INCIDENT_ATTRIBUTES.items()
        if getattr(incident, name) is not None
    }


def incident_from_item(phone_number: str, item: Any) -> Incident:
    """Read a ``NewIncidents`` entry back; a malformed one raises :class:`InvalidRecord`."""
    if not isinstance(item, Mapping):
        raise InvalidRecord(Reason.MALFORMED_IMAGE, "incident is not a map")

    def text(name: str) -> str:
        value = item.get(INCIDENT_ATTRIBUTES[name])
        if not isinstance(value, str) or not value:
            raise ValueError(f"incident without {INCIDENT_ATTRIBUTES[name]}")
        return value

    def optional(name: str) -> str | None:
        value = item.get(INCIDENT_ATTRIBUTES[name])
        return value if isinstance(value, str) and value else None

    def number(name: str) -> Any:
        return item[INCIDENT_ATTRIBUTES[name]]

    try:
        incident = Incident(
            incident_id=text("incident_id"),
            phone_number=phone_number,
            event_type=text("event_type"),
            timestamp=text("timestamp"),
            cell=text("cell"),
            device=optional("device"),
            vendor=optional("vendor"),
            failure_rate=float(number("failure_rate")),
            sessions=int(number("sessions")),
            failures=int(number("failures")),
            window_minutes=int(number("window_minutes")),
            record_id=text("record_id"),
        )
        if incident.event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {incident.event_type!r}")
        parse_utc(incident.timestamp)
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidRecord(Reason.MALFORMED_IMAGE, f"bad incident: {error}") from error
    return incident


def new_incidents(phone_number: str, items: Any) -> list[Incident]:
    """The incidents of a profile's ``NewIncidents``, oldest first."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidRecord(Reason.MALFORMED_IMAGE, "NewIncidents is not a list")
    incidents = [incident_from_item(phone_number, item) for item in items]
    return sorted(incidents, key=lambda i: (parse_utc(i.timestamp), i.record_id, i.incident_id))


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
    known = set(seen)
    fresh: dict[str, Incident] = {}
    for incident in incidents:
        key = short_id(incident.incident_id)
        if key not in known:
            fresh.setdefault(key, incident)
    if not fresh:
        return None
    ordered = sorted(fresh.values(), key=lambda i: (parse_utc(i.timestamp), i.record_id))
    return ProfileUpdate(
        phone_number=phone_number,
        new_incidents=[incident_item(incident) for incident in ordered],
        seen_incidents=[*seen, *(short_id(i.incident_id) for i in ordered)][-cap:],
        cell=newest_record.cell,
        device=newest_record.device,
        vendor=newest_record.vendor,
    )
