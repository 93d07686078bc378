"""Trigger_Connect: SQS FIFO ``engagement_trigger_queue.fifo`` → ``feedback_loop.dial``.

Exactly one call per engagement id: a Powertools idempotency record keyed by the
engagement id (the call's ``ClientToken``) stops a redelivered message before it
reaches Connect. It is kept for ``IDEMPOTENCY_TTL_SECONDS``, longer than any message
can wait or be redriven (queue retention, then the DLQ's 14 days): Connect's own
``ClientToken`` check only holds while the first call is still in progress.

Per message, in each subscriber's order (``SqsFifoPartialProcessor``,
``skip_group_on_error``): a placed call is done (``CallsStarted``); a call Connect
refused for now waits with back-off, its message hidden until then
(``ChangeMessageVisibility``, ``CallsThrottled``); a call refused for good is recorded
as a failed engagement and done (``CallsFailed``). The batch stops before the function
could time out, handing the rest back to the queue at once.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
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

from feedback_loop.adapters.connect import CALL_TIME_BUDGET_MS, CONNECT_CLIENT_CONFIG, ConnectCalls
from feedback_loop.adapters.queues import Queue
from feedback_loop.adapters.settings import load_settings
from feedback_loop.calls import CallCentre
from feedback_loop.dial import Deferred, DialPorts, Placed, dial
from feedback_loop.errors import FeedbackLoopError, InvalidRecord
from feedback_loop.observability import MetricUnit, logger, metrics
from feedback_loop.timeutil import format_utc

# Longer than a message can live: 4 days on the queue, then 14 in its DLQ (redrive).
IDEMPOTENCY_TTL_SECONDS = 21 * 24 * 60 * 60

processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False


def _utc_now() -> datetime:
    return datetime.now(UTC)


clock: Callable[[], datetime] = _utc_now


class NotNow(FeedbackLoopError):
    """This message goes back to the queue without a call (deferred, or out of time)."""


@dataclass(frozen=True)
class Settings:
    """Environment of this function (docs/ARCHITECTURE.md)."""

    connect_instance_id: str
    contact_flow_id: str
    source_phone_number: str
    idempotency_table: str
    engagement_trigger_queue_url: str
    engagement_update_queue_url: str


@dataclass(frozen=True)
class Dependencies:
    """What one cold start creates: the dial use case's ports and the queue to defer on."""

    ports: DialPorts
    calls: ConnectCalls
    triggers: Queue
    idempotency: IdempotencyConfig


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
    calls = ConnectCalls(boto3.client("connect", config=CONNECT_CLIENT_CONFIG))
    sqs = boto3.client("sqs")

    @idempotent_function(
        data_keyword_argument="request", persistence_store=persistence, config=config
    )
    def start_once(request: dict[str, Any]) -> str:
        contact_id = calls.start(request)
        metrics.add_metric(name="CallsStarted", unit=MetricUnit.Count, value=1)
        logger.info("Call started", extra={"contact_id": contact_id})
        return contact_id

    return Dependencies(
        ports=DialPorts(
            centre=CallCentre(
                instance_id=settings.connect_instance_id,
                contact_flow_id=settings.contact_flow_id,
                source_phone_number=settings.source_phone_number,
            ),
            place=lambda request: start_once(request=dict(request)),
            updates=Queue(sqs, settings.engagement_update_queue_url),
        ),
        calls=calls,
        triggers=Queue(sqs, settings.engagement_trigger_queue_url),
        idempotency=config,
    )


def _hand_back(deps: Dependencies, record: SQSRecord, seconds: int) -> None:
    try:
        deps.triggers.change_visibility(record.receipt_handle, seconds)
    except FeedbackLoopError:
        logger.exception("Could not change the message's visibility; it returns on its own")


def _record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    deps = _dependencies()
    if lambda_context.get_remaining_time_in_millis() < CALL_TIME_BUDGET_MS:
        _hand_back(deps, record, 0)
        raise NotNow("not enough time left in this invocation")
    attempt = int(record.attributes.approximate_receive_count or 1)
    try:
        outcome = dial(record.body, attempt, deps.ports, format_utc(clock()))
    except InvalidRecord as error:
        metrics.add_metric(name="CallsFailed", unit=MetricUnit.Count, value=1)
        logger.error(
            "Engagement message rejected",
            extra={"reason": error.reason, "detail": error.detail, "message_id": record.message_id},
        )
        raise
    if isinstance(outcome, Placed):
        return
    log_keys = {"engagement_id": outcome.engagement_id, "reason": outcome.code}
    if isinstance(outcome, Deferred):
        metrics.add_metric(name="CallsThrottled", unit=MetricUnit.Count, value=1)
        logger.warning(
            "Call deferred", extra={**log_keys, "retry_in_seconds": outcome.retry_in_seconds}
        )
        _hand_back(deps, record, outcome.retry_in_seconds)
        raise NotNow(f"deferred: {outcome.code}")
    metrics.add_metric(name="CallsFailed", unit=MetricUnit.Count, value=1)
    logger.error("Call refused by Connect; recorded as a failed engagement", extra=log_keys)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Place one call per engagement message; report the ones to try again."""
    _dependencies().idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=_record_handler, processor=processor, context=context
    )
