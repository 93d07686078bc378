"""Deterministic identifiers: the same incident always gets the same ids.

They are used for FIFO deduplication, as the outbound call's ClientToken and as
idempotency keys, so they must not depend on when or where they are computed.
"""

import hashlib


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:32]


def incident_id(phone_number: str, event_type: str, timestamp: str) -> str:
    """Id of the incident a failed session of ``event_type`` at ``timestamp`` caused."""
    return _digest(phone_number, event_type, timestamp)


def engagement_id(phone_number: str, incident_type: str, incident_time: str) -> str:
    """Id of the engagement decided for one incident (hash of subscriber, type and time)."""
    return _digest(phone_number, incident_type, incident_time)
