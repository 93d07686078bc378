"""Engage: one engagement message → a call placed, deferred with back-off, or refused for good.

Amazon Connect limits calls in two ways: concurrent active calls per instance (a call
holds its slot until it disconnects, a minute or two after it was placed) and the
request rate of ``StartOutboundVoiceContact``. Beyond either it refuses the call for
now; the engagement then waits with exponential back-off, keeping its subscriber's
place in the FIFO queue, so a burst is called at the pace the quotas allow and nothing
reaches the dead-letter queue for being throttled. A refusal no retry can overcome
(``calls.PERMANENT_ERRORS``) is recorded once, as a ``failed`` engagement in the lake
with Connect's error code as its reason, and the message is done.
"""

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from feedback_loop.calls import CallCentre, is_permanent, outbound_call_request
from feedback_loop.contract import Verdict
from feedback_loop.errors import AwsError
from feedback_loop.messages import EngagementMessage, decode, encode
from feedback_loop.ports import MessageQueue, OutgoingMessage

PlaceCall = Callable[[Mapping[str, Any]], str]

BACKOFF_BASE_SECONDS = 30
# A throttled engagement is tried again at most this long after its last attempt: Connect
# frees a call slot within minutes, and SQS caps a message's visibility at 12 hours.
BACKOFF_MAX_SECONDS = 900
BACKOFF_JITTER = 0.2


@dataclass(frozen=True)
class DialPorts:
    """Where calls go, how they are placed (idempotently), and where failures are recorded."""

    centre: CallCentre
    place: PlaceCall
    updates: MessageQueue


@dataclass(frozen=True)
class Placed:
    """Connect accepted the call."""

    engagement_id: str
    contact_id: str


@dataclass(frozen=True)
class Deferred:
    """Connect refused for now: try again in ``retry_in_seconds``."""

    engagement_id: str
    code: str
    retry_in_seconds: int


@dataclass(frozen=True)
class Refused:
    """Connect refused for good; the failure is recorded in the lake."""

    engagement_id: str
    code: str


DialOutcome = Placed | Deferred | Refused


def backoff_seconds(attempt: int, key: str) -> int:
    """Wait before the next try after the ``attempt``-th (1-based) refusal.

    Doubles from ``BACKOFF_BASE_SECONDS`` up to ``BACKOFF_MAX_SECONDS``, spread by up to
    ±``BACKOFF_JITTER`` with a jitter derived from ``key``, so engagements throttled
    together do not all come back in the same second (and a replay waits as long).
    """
    base = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1))
    digest = hashlib.sha256(f"{key}|{attempt}".encode()).digest()
    spread = (int.from_bytes(digest[:4], "big") / 2**32) * 2 - 1
    return max(1, min(BACKOFF_MAX_SECONDS, round(base * (1 + BACKOFF_JITTER * spread))))


def dial(body: str, attempt: int, ports: DialPorts, now: str) -> DialOutcome:
    """Place the call of one engagement message (its ``attempt``-th delivery).

    Raises :class:`~feedback_loop.errors.InvalidRecord` for a message that must never
    become a call, and :class:`~feedback_loop.errors.AwsError` when a refused call
    could not be recorded (the message is then retried).
    """
    message = decode(body, EngagementMessage)
    request = outbound_call_request(message, ports.centre)
    try:
        contact_id = ports.place(request)
    except AwsError as error:
        if not is_permanent(error.code):
            wait = backoff_seconds(attempt, message.engagement_id)
            return Deferred(message.engagement_id, error.code, wait)
        _record_failure(message, error.code, now, ports.updates)
        return Refused(message.engagement_id, error.code)
    return Placed(message.engagement_id, contact_id)


def _record_failure(message: EngagementMessage, code: str, now: str, updates: MessageQueue) -> None:
    failed = replace(message, decision=Verdict.FAILED, reason=code, decided_at=now)
    not_sent = updates.send([OutgoingMessage(key=message.engagement_id, body=encode(failed))])
    if not_sent:
        raise AwsError("sqs.SendMessageBatch", ", ".join(not_sent.errors) or "NotSent")
