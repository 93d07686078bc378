"""Engage: one engagement message → one outbound call, or a reason why not now or never.

The engagement id is the call's ``ClientToken`` and the key of the caller's idempotency
record, so a redelivered message never rings the subscriber twice.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from feedback_loop.calls import CallCentre, is_retryable, outbound_call_request
from feedback_loop.errors import AwsError, FeedbackLoopError
from feedback_loop.messages import EngagementMessage, decode

PlaceCall = Callable[[Mapping[str, Any]], str]


class CallDeferred(FeedbackLoopError):
    """Connect refused for now (throttled, over quota, internal): try again later."""

    def __init__(self, engagement_id: str, code: str) -> None:
        super().__init__(f"call for {engagement_id} deferred: {code}")
        self.engagement_id = engagement_id
        self.code = code


class CallRefused(FeedbackLoopError):
    """Connect refused this call for good (number not allowed, bad parameter, ...)."""

    def __init__(self, engagement_id: str, code: str) -> None:
        super().__init__(f"call for {engagement_id} refused: {code}")
        self.engagement_id = engagement_id
        self.code = code


@dataclass(frozen=True)
class PlacedCall:
    """A call Connect accepted."""

    engagement_id: str
    contact_id: str


def dial(body: str, centre: CallCentre, place: PlaceCall) -> PlacedCall:
    """Place the call of one engagement message.

    Raises :class:`~feedback_loop.errors.InvalidRecord` for a message that must never
    become a call, :class:`CallDeferred` for a refusal a later attempt can overcome and
    :class:`CallRefused` for one it cannot.
    """
    message = decode(body, EngagementMessage)
    request = outbound_call_request(message, centre)
    try:
        contact_id = place(request)
    except AwsError as error:
        if is_retryable(error.code):
            raise CallDeferred(message.engagement_id, error.code) from error
        raise CallRefused(message.engagement_id, error.code) from error
    return PlacedCall(message.engagement_id, contact_id)
