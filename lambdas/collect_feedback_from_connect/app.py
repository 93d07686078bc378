"""Collect_feedback_from_Connect: the contact flow's invocation → ``feedback_loop.feedback``.

Returns the flat string map the flow branches on (``result``). The answer is recorded
on the subscriber's profile only; the table's stream carries it to the lake
(``write_feedback_to_S3``), so nothing in the call depends on S3. A request that cannot
be recorded (missing parameters, unknown subscriber) answers ``rejected`` and is logged,
so the caller hears an apology instead of an error.

``clock`` gives the business time of the answer (the Connect event has no timestamp);
the local twin replaces it with its simulated clock.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import ConnectContactFlowEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedback_loop.adapters.settings import load_settings
from feedback_loop.adapters.subscribers import DynamoSubscriberStore
from feedback_loop.contract import Reason
from feedback_loop.errors import InvalidRecord
from feedback_loop.feedback import (
    INVALID,
    NO_RESPONSE,
    OPTED_OUT,
    RATED,
    REJECTED_RESULT,
    FeedbackRequest,
    parse_request,
    record_feedback,
)
from feedback_loop.observability import MetricUnit, logger, metrics
from feedback_loop.policy import Policy
from feedback_loop.ports import SubscriberStore


def _utc_now() -> datetime:
    return datetime.now(UTC)


clock: Callable[[], datetime] = _utc_now

_OUTCOME_METRICS = {
    RATED: "FeedbackRated",
    OPTED_OUT: "FeedbackOptedOut",
    NO_RESPONSE: "FeedbackNoResponse",
    INVALID: "FeedbackInvalid",
}


@dataclass(frozen=True)
class Settings:
    """Environment of this function (docs/ARCHITECTURE.md)."""

    subscriber_table: str
    policy: Policy


@dataclass(frozen=True)
class Dependencies:
    """What one cold start creates: the subscriber store and the policy."""

    store: SubscriberStore
    policy: Policy


@cache
def _dependencies() -> Dependencies:
    settings = load_settings(Settings)
    return Dependencies(
        store=DynamoSubscriberStore(boto3.client("dynamodb"), settings.subscriber_table),
        policy=settings.policy,
    )


def _request(event: ConnectContactFlowEvent) -> FeedbackRequest:
    try:
        contact = event.contact_data
        endpoint = contact.customer_endpoint
        return parse_request(
            contact.contact_id, endpoint.address if endpoint else None, event.parameters
        )
    except (KeyError, TypeError) as error:
        raise InvalidRecord(Reason.MALFORMED_EVENT, f"missing {error}") from error


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    """Record the answer of one contact; always answer the flow with a flat string map."""
    try:
        request = _request(ConnectContactFlowEvent(event))
        logger.append_keys(contact_id=request.contact_id, engagement_id=request.engagement_id)
        deps = _dependencies()
        result = record_feedback(
            request, store=deps.store, alpha=deps.policy.sentiment_alpha, now=clock()
        )
    except InvalidRecord as error:
        logger.warning("Feedback rejected", extra={"reason": error.reason, "detail": error.detail})
        metrics.add_metric(name="FeedbackRejected", unit=MetricUnit.Count, value=1)
        return REJECTED_RESULT.as_flow_response()
    logger.info(
        "Feedback recorded",
        extra={"outcome": result.outcome, "result": result.result, "replayed": result.replayed},
    )
    metric = "FeedbackReplayed" if result.replayed else _OUTCOME_METRICS[str(result.outcome)]
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    return result.as_flow_response()
