"""Deterministic identifiers: the same incident always gets the same ids.

They are used for FIFO deduplication, as the outbound call's ClientToken and as
idempotency keys, so they must not depend on when or where they are computed.
"""

import hashlib


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:32]


def incident_id(phone_number: str, event_type: str, timestamp: str, record_id: str) -> str:
    """Id of the incident one failed session caused.

    ``record_id`` is the session's position on the stream (``<shard>:<sequence number>``):
    timestamps have a resolution of one second and a busy subscriber can fail two
    sessions of one KPI within it, while a retried or redelivered record keeps its
    position, so the id is unique per session and the same on every delivery.
    """
    return _digest(phone_number, event_type, timestamp, record_id)


def engagement_id(
    phone_number: str, incident_type: str, incident_time: str, incident_id: str
) -> str:
    """Id of the engagement decided for one incident: subscriber, type, time and the incident.

    Deterministic for the same incident, and distinct from the incident's own id.
    """
    return _digest("engagement", phone_number, incident_type, incident_time, incident_id)


def short_id(full_id: str) -> str:
    """The first 16 hex digits: enough to tell a subscriber's recent incidents apart."""
    return full_id[:16]
