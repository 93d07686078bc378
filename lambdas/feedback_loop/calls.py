"""Outbound calls: the StartOutboundVoiceContact request and how to treat its errors.

The engagement id is the call's ``ClientToken``, so Amazon Connect itself
refuses to place a second call for the same engagement (on top of the
handler's idempotency record), even when a timed-out request is retried.
"""

from dataclasses import dataclass
from typing import Any

from feedback_loop.errors import InvalidRecord
from feedback_loop.messages import EngagementMessage

ENGAGE = "engage"

RETRYABLE_ERRORS = frozenset(
    {
        "ThrottlingException",
        "LimitExceededException",
        "ServiceQuotaExceededException",
        "InternalServiceException",
    }
)
"""Connect error codes that a later attempt can succeed on (capacity, concurrency, outages)."""


@dataclass(frozen=True)
class CallCentre:
    """Where calls are placed from: the Connect instance, its contact flow and caller id."""

    instance_id: str
    contact_flow_id: str
    source_phone_number: str


def contact_attributes(message: EngagementMessage) -> dict[str, str]:
    """The contact attributes the flow reads (all strings, as Connect requires)."""
    return {
        "engagement_id": str(message.engagement_id),
        "incident_type": str(message.incident_type),
        "incident_time": str(message.incident_time),
        "incident_id": str(message.incident_id),
        "cell": str(message.cell),
    }


def outbound_call_request(message: EngagementMessage, centre: CallCentre) -> dict[str, Any]:
    """Keyword arguments of ``StartOutboundVoiceContact`` for one engagement.

    Raises :class:`InvalidRecord` for a message that must never become a call
    (a suppressed decision or no engagement id to deduplicate on).
    """
    if message.decision != ENGAGE:
        raise InvalidRecord("not_an_engagement", f"decision {message.decision!r}")
    if not message.engagement_id or not message.phone_number:
        raise InvalidRecord("missing_field", "engagement_id and phone_number are required")
    return {
        "DestinationPhoneNumber": message.phone_number,
        "ContactFlowId": centre.contact_flow_id,
        "InstanceId": centre.instance_id,
        "SourcePhoneNumber": centre.source_phone_number,
        "ClientToken": message.engagement_id,
        "Attributes": contact_attributes(message),
    }


def is_retryable(error_code: str) -> bool:
    """True when Connect refused for now (throttled, over quota, internal) rather than for good."""
    return error_code in RETRYABLE_ERRORS
