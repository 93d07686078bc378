"""Trigger_Connect: SQS FIFO engagements → ``StartOutboundVoiceContact``.

Exactly one call per engagement id, twice over: a Powertools idempotency
record keyed by the engagement id (``ClientToken``) stops a redelivered
message before it reaches Connect, and Connect itself deduplicates on the
``ClientToken`` if a timed-out request is retried.

Every failure is reported as a batch item failure, never swallowed: a
throttled call (``CallsThrottled``) is retried by SQS; a permanent one
(``CallsFailed``: bad message, number not allowed, ...) is logged with its
reason and reaches ``engagement_trigger_dlq.fifo`` after ``maxReceiveCount``,
where an operator can inspect and redrive it. ``skip_group_on_error`` fails
the rest of that subscriber's message group so calls stay in order, while
other subscribers' messages in the batch go ahead.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from feedback_loop.adapters.settings import load_settings
from feedback_loop.calls import CallCentre, is_retryable, outbound_call_request
from feedback_loop.errors import InvalidRecord
from feedback_loop.messages import EngagementMessage, decode
from feedback_loop.observability import MetricUnit, logger, metrics

IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60

processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False


@dataclass(frozen=True)
class Settings:
    """Environment of this function (docs/ARCHITECTURE.md)."""

    connect_instance_id: str
    contact_flow_id: str
    source_phone_number: str
    idempotency_table: str


@dataclass(frozen=True)
class Dependencies:
    """What one cold start creates: where calls go, the Connect client, the idempotent placer."""

    centre: CallCentre
    connect: Any
    idempotency: IdempotencyConfig
    place_call: Callable[..., dict[str, str]]


def _start_call(*, request: dict[str, Any], connect: Any) -> dict[str, str]:
    response = connect.start_outbound_voice_contact(**request)
    metrics.add_metric(name="CallsStarted", unit=MetricUnit.Count, value=1)
    logger.info("Call started", extra={"contact_id": response["ContactId"]})
    return {"contact_id": response["ContactId"]}


@cache
def _dependencies() -> Dependencies:
    settings = load_settings(Settings)
    config = IdempotencyConfig(
        event_key_jmespath="ClientToken",
        expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
        raise_on_no_idempotency_key=True,
    )
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table, boto3_client=boto3.client("dynamodb")
    )
    place_call = idempotent_function(
        data_keyword_argument="request", persistence_store=persistence, config=config
    )(_start_call)
    return Dependencies(
        centre=CallCentre(
            instance_id=settings.connect_instance_id,
            contact_flow_id=settings.contact_flow_id,
            source_phone_number=settings.source_phone_number,
        ),
        connect=boto3.client("connect"),
        idempotency=config,
        place_call=place_call,
    )


def _record_handler(record: SQSRecord) -> None:
    deps = _dependencies()
    try:
        message = decode(record.body, EngagementMessage)
        request = outbound_call_request(message, deps.centre)
    except InvalidRecord as error:
        metrics.add_metric(name="CallsFailed", unit=MetricUnit.Count, value=1)
        logger.error(
            "Engagement message rejected",
            extra={"reason": error.reason, "detail": error.detail, "message_id": record.message_id},
        )
        raise
    log_keys = {"engagement_id": message.engagement_id, "message_id": record.message_id}
    try:
        deps.place_call(request=request, connect=deps.connect)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        if is_retryable(code):
            metrics.add_metric(name="CallsThrottled", unit=MetricUnit.Count, value=1)
            logger.warning("Call deferred, SQS will retry", extra={"reason": code, **log_keys})
        else:
            metrics.add_metric(name="CallsFailed", unit=MetricUnit.Count, value=1)
            logger.error("Call refused by Connect", extra={"reason": code, **log_keys})
        raise


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Place one call per engagement message; report failed items for SQS to retry."""
    _dependencies().idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=_record_handler, processor=processor, context=context
    )
