"""Incidents: every failed session, recorded on the subscriber's profile.

The profile keeps only the ``policy.max_recent_incidents`` newest incidents
(``RecentIncidents``, newest last); the full history lives in the lake. The
list is rebuilt here from the stored one plus the batch's incidents, so one
write per subscriber per batch both appends and trims, and the item never
grows past the cap. Incidents are deduplicated by their deterministic id, so
replaying a batch changes nothing.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from feedback_loop.ids import incident_id
from feedback_loop.messages import IncidentMessage
from feedback_loop.probe import ProbeRecord
from feedback_loop.rates import WindowRate

RATE_DIGITS = 6


@dataclass(frozen=True)
class Incident(IncidentMessage):
    """A failed session with the failure rate of its KPI at that moment.

    It is its own ``incident`` queue message; it adds only its profile-item form.
    """

    def to_item(self) -> dict[str, Any]:
        """The ``RecentIncidents`` entry (see docs/ARCHITECTURE.md)."""
        return {
            "IncidentId": self.incident_id,
            "EventType": self.event_type,
            "Timestamp": self.timestamp,
            "Cell": self.cell,
            "Device": self.device,
            "Vendor": self.vendor,
            "FailureRate": self.failure_rate,
            "Sessions": self.sessions,
            "Failures": self.failures,
        }


@dataclass(frozen=True)
class ProfileUpdate:
    """What one batch changes on a subscriber's profile item."""

    phone_number: str
    recent_incidents: list[dict[str, Any]]
    latest: dict[str, Any]
    cell: str
    device: str | None
    vendor: str | None


def incident_from(record: ProbeRecord, rate: WindowRate, window_minutes: int) -> Incident:
    """Build the incident of a failed session from its record and window rate."""
    return Incident(
        incident_id=incident_id(record.phone_number, record.event_type, record.timestamp),
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
    )


def merge_recent(
    stored: Sequence[Mapping[str, Any]], new: Sequence[Incident], cap: int
) -> list[dict[str, Any]]:
    """Stored plus new incidents, deduplicated by id, in time order, the ``cap`` newest kept."""
    by_id: dict[str, dict[str, Any]] = {str(item["IncidentId"]): dict(item) for item in stored}
    for incident in new:
        by_id.setdefault(incident.incident_id, incident.to_item())
    ordered = sorted(by_id.values(), key=lambda item: (str(item["Timestamp"]), item["IncidentId"]))
    return ordered[-cap:]


def profile_update(
    phone_number: str,
    stored: Sequence[Mapping[str, Any]],
    incidents: Sequence[Incident],
    newest_record: ProbeRecord,
    cap: int,
) -> ProfileUpdate | None:
    """The profile change for a batch, or ``None`` when it adds nothing to the stored list.

    ``None`` happens on a replayed batch (incidents already recorded) or when
    every incident is older than the ``cap`` stored ones.
    """
    recent = merge_recent(stored, incidents, cap)
    if [item["IncidentId"] for item in recent] == [item["IncidentId"] for item in stored]:
        return None
    return ProfileUpdate(
        phone_number=phone_number,
        recent_incidents=recent,
        latest=recent[-1],
        cell=newest_record.cell,
        device=newest_record.device,
        vendor=newest_record.vendor,
    )
