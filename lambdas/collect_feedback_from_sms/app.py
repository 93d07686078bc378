"""Collect_feedback_from_SMS: two-way SMS replies (SNS) → ``feedback_loop.feedback``.

AWS End User Messaging SMS publishes each reply to the ``sms_replies`` topic as a JSON
document (``originationNumber``, ``messageBody``, ``inboundMessageId``, ...; "Example
of a two-way SMS message payload for Amazon SNS topics", End User Messaging SMS user
guide). The reply is bound to the subscriber's episode that was contacted by text and
recorded exactly like an answer to the voice flow (``record_feedback``: once per inbound
message id, the lake through the table's stream). An opt-out (an opt-out word anywhere
in the reply, ``texts.reply_digits``) from a number with a profile is recorded whatever
the subscriber's episode (``feedback.text_reply_request``), so it sets ``OptedOut`` as
the voice menu's 9 does and nobody calls or texts them again. Any other reply that
answers no text, or a number with no profile, is logged and counted, not retried; a
failure to record raises, so Lambda retries the asynchronous invocation and then keeps
it in ``sms_replies_dlq``.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import SNSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedback_loop.adapters.contacts import ContactStore
from feedback_loop.adapters.settings import load_settings
from feedback_loop.adapters.subscribers import DynamoSubscriberStore
from feedback_loop.contract import Reason, is_e164
from feedback_loop.episodes import Episode
from feedback_loop.errors import InvalidRecord
from feedback_loop.feedback import record_feedback, text_reply_request
from feedback_loop.observability import MetricUnit, logger, metrics
from feedback_loop.policy import Policy
from feedback_loop.texts import is_opt_out


def _utc_now() -> datetime:
    return datetime.now(UTC)


clock: Callable[[], datetime] = _utc_now


@dataclass(frozen=True)
class Settings:
    """Environment of this function (docs/ARCHITECTURE.md)."""

    subscriber_table: str
    policy: Policy


@dataclass(frozen=True)
class Dependencies:
    """What one cold start creates: the profile's two views and the policy."""

    contacts: ContactStore
    answers: DynamoSubscriberStore
    policy: Policy


@cache
def _dependencies() -> Dependencies:
    settings = load_settings(Settings)
    dynamodb = boto3.client("dynamodb")
    return Dependencies(
        contacts=ContactStore(dynamodb, settings.subscriber_table),
        answers=DynamoSubscriberStore(dynamodb, settings.subscriber_table),
        policy=settings.policy,
    )


def _reply(message: str) -> tuple[str, str, str]:
    try:
        payload: Any = json.loads(message)
    except json.JSONDecodeError as error:
        raise InvalidRecord(Reason.NOT_JSON, str(error)) from error
    if not isinstance(payload, dict):
        raise InvalidRecord(Reason.NOT_AN_OBJECT, type(payload).__name__)
    phone, body, message_id = (
        payload.get(key) for key in ("originationNumber", "messageBody", "inboundMessageId")
    )
    if not is_e164(phone):
        raise InvalidRecord(Reason.BAD_PHONE_NUMBER, "originationNumber is not E.164")
    if not isinstance(body, str) or not isinstance(message_id, str) or not message_id:
        raise InvalidRecord(Reason.MISSING_FIELD, "messageBody and inboundMessageId")
    return str(phone), body, message_id


def _episode(deps: Dependencies, phone: str, body: str) -> Episode | None:
    """The subscriber's episode; none for an opt-out when their contact state cannot be read
    (the opt-out is then recorded about no engagement rather than lost)."""
    try:
        view = deps.contacts.load(phone)
    except InvalidRecord as error:
        if not is_opt_out(body):
            raise
        logger.warning("Contact state unreadable; opt-out recorded", extra={"reason": error.reason})
        return None
    return None if view is None else view.contact.episode


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    """Record each reply of the SNS event (one per record)."""
    deps = _dependencies()
    for record in SNSEvent(event).records:
        try:
            phone, body, message_id = _reply(record.sns.message)
            request = text_reply_request(message_id, phone, body, _episode(deps, phone, body))
            result = record_feedback(
                request, store=deps.answers, alpha=deps.policy.sentiment_alpha, now=clock()
            )
        except InvalidRecord as error:
            logger.warning("SMS reply not recorded", extra={"reason": error.reason})
            metrics.add_metric(name="FeedbackRejected", unit=MetricUnit.Count, value=1)
            continue
        logger.info(
            "SMS reply recorded",
            extra={
                "outcome": result.outcome,
                "replayed": result.replayed,
                "message_id": message_id,
            },
        )
        metrics.add_metric(name="TextRepliesRecorded", unit=MetricUnit.Count, value=1)
