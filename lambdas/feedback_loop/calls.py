"""Outbound calls: the StartOutboundVoiceContact request, and which refusals are final.

The engagement id is the call's ``ClientToken``. Amazon Connect returns the running
contact for a repeated token, but only while that contact is active: once it has
disconnected, the same token starts a new call (StartOutboundVoiceContact, Amazon
Connect API Reference, ``ClientToken``). The caller's idempotency record is therefore
the guard that matters; Connect's is a second one for a request retried mid-call.

Errors (same API reference, "Errors"): Connect answers ``LimitExceededException`` when
the instance is at its concurrent active calls quota and ``ThrottlingException`` beyond
the API's request rate; those, an internal error and a failure below the API (a timeout
or a broken connection) can succeed later. A refusal of the destination, the
parameters, the resource or the permission cannot: retrying it only blocks the
subscriber's queue.
"""

from dataclasses import dataclass
from typing import Any

from feedback_loop.contract import Reason, Verdict
from feedback_loop.errors import InvalidRecord
from feedback_loop.messages import EngagementMessage

ENGAGE = Verdict.ENGAGE

PERMANENT_ERRORS = frozenset(
    {
        "DestinationNotAllowedException",
        "OutboundContactNotPermittedException",
        "InvalidParameterException",
        "InvalidRequestException",
        "ResourceNotFoundException",
        "AccessDeniedException",
        "IdempotencyException",
    }
)
"""Connect error codes no later attempt can overcome: the engagement fails for good."""


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
        raise InvalidRecord(Reason.NOT_AN_ENGAGEMENT, f"decision {message.decision!r}")
    if not message.engagement_id or not message.phone_number:
        raise InvalidRecord(Reason.MISSING_FIELD, "engagement_id and phone_number are required")
    return {
        "DestinationPhoneNumber": message.phone_number,
        "ContactFlowId": centre.contact_flow_id,
        "InstanceId": centre.instance_id,
        "SourcePhoneNumber": centre.source_phone_number,
        "ClientToken": message.engagement_id,
        "Attributes": contact_attributes(message),
    }


def is_permanent(error_code: str) -> bool:
    """True when Connect refused the call for good; anything else may succeed later."""
    return error_code in PERMANENT_ERRORS
