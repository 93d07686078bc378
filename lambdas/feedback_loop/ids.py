"""Deterministic identifiers: the same incident always gets the same ids.

They are used for FIFO deduplication, as the outbound call's ClientToken and as
idempotency keys, so they must not depend on when or where they are computed.
"""

import hashlib
from collections.abc import Iterable


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


# 48 bits. A short id is only compared with the few ids kept on one subscriber's profile
# (``SeenIncidents``, an episode's ``IncidentKeys``): a new incident is mistaken for one of
# k kept ids with probability k / 2**48, about 3e-14 for k = 8, so even 10**8 incidents a
# day would give one mistake in some 10**4 years.
SHORT_ID_HEX = 12


def short_id(full_id: str) -> str:
    """The first ``SHORT_ID_HEX`` hex digits: enough to tell a subscriber's recent incidents
    apart, and small enough to keep a few of them on the profile."""
    return full_id[:SHORT_ID_HEX]


def short_ids(kept: Iterable[object]) -> list[str]:
    """Stored short ids as :func:`short_id` makes them (items written with longer ones,
    16 hex digits before, still match)."""
    return [str(key)[:SHORT_ID_HEX] for key in kept]


def contact_key(contact_id: str) -> str:
    """A contact id as ``FeedbackContacts`` keeps it: ``SHORT_ID_HEX`` hex digits of its hash
    (Connect's contact ids are 36-character UUIDs; a few are kept per subscriber)."""
    return hashlib.sha256(contact_id.encode("utf-8")).hexdigest()[:SHORT_ID_HEX]
