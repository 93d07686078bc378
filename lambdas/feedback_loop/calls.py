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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from feedback_loop.contract import Reason, Verdict
from feedback_loop.episodes import SMS
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

PERMANENT_TEXT_ERRORS = frozenset(
    {
        "ConflictException",
        "ValidationException",
        "ServiceQuotaExceededException",
        "AccessDeniedException",
        "ResourceNotFoundException",
    }
)
"""End User Messaging SMS codes no attempt within an episode overcomes (botocore's
pinpoint-sms-voice-v2 model): the number opted out of texts or, in the sandbox, is not a
verified destination (``ConflictException``); a country or field it refuses
(``ValidationException``); the month's spend limit (``ServiceQuotaExceededException``,
which for Connect is its call quota and passes)."""

UNKNOWN_OUTCOME_ERRORS = frozenset(
    {"ReadTimeoutError", "ConnectionClosedError", "ResponseStreamingError", "HTTPClientError"}
)
"""Failures after the request may have reached the service (botocore's names, as
``AwsError.code``): no answer came back, so the call (or text) may have been placed.
A connection never made (``ConnectTimeoutError``, ``EndpointConnectionError``) or an error
the service answered with (a ``ClientError`` code) means it was not."""


@dataclass(frozen=True)
class CallCentre:
    """Where calls are placed from: the Connect instance, its contact flow and caller id."""

    instance_id: str
    contact_flow_id: str
    source_phone_number: str


def contact_attributes(
    message: EngagementMessage, incident_types: Sequence[str], attempt: int
) -> dict[str, str]:
    """The contact attributes the flow reads (all strings, as Connect requires).

    ``incident_type`` and its time and id name the episode's first incident (the
    feedback function checks the engagement id against them); ``incident_types`` lists
    every problem the episode asks about (comma-separated), ``attempt`` which call this is.
    """
    return {
        "engagement_id": str(message.engagement_id),
        "incident_type": str(message.incident_type),
        "incident_time": str(message.incident_time),
        "incident_id": str(message.incident_id),
        "incident_types": ",".join(incident_types),
        "cell": str(message.cell),
        "attempt": str(attempt),
    }


def check_engagement(message: EngagementMessage) -> None:
    """Raise :class:`InvalidRecord` for a message that must never become a contact
    (a decision other than ``engage``, or no engagement id to deduplicate on)."""
    if message.decision != ENGAGE:
        raise InvalidRecord(Reason.NOT_AN_ENGAGEMENT, f"decision {message.decision!r}")
    if not message.engagement_id or not message.phone_number:
        raise InvalidRecord(Reason.MISSING_FIELD, "engagement_id and phone_number are required")


def client_token(engagement_id: str, attempt: int) -> str:
    """The ``ClientToken`` (and idempotency key) of one call attempt of an engagement."""
    return f"{engagement_id}-{attempt}"


def outbound_call_request(
    message: EngagementMessage, centre: CallCentre, incident_types: Sequence[str], attempt: int
) -> dict[str, Any]:
    """Keyword arguments of ``StartOutboundVoiceContact`` for one call attempt."""
    check_engagement(message)
    return {
        "DestinationPhoneNumber": message.phone_number,
        "ContactFlowId": centre.contact_flow_id,
        "InstanceId": centre.instance_id,
        "SourcePhoneNumber": centre.source_phone_number,
        "ClientToken": client_token(message.engagement_id, attempt),
        "Attributes": contact_attributes(message, incident_types, attempt),
    }


def is_permanent(error_code: str, channel: str | None = None) -> bool:
    """True when the channel refused the contact for good; anything else may succeed later."""
    return error_code in (PERMANENT_TEXT_ERRORS if channel == SMS else PERMANENT_ERRORS)


def may_have_been_placed(error_code: str) -> bool:
    """True when a failed contact request may still have rung (or texted) the subscriber."""
    return error_code in UNKNOWN_OUTCOME_ERRORS
