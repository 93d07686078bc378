"""Trigger_Connect: SQS FIFO ``engagement_trigger_queue.fifo`` → ``feedback_loop.dial``.

Each engagement message carries one episode; every delivery takes it one step further
(see ``feedback_loop.dial``): a contact is made, the message is held back until a later
moment (hidden with ``ChangeMessageVisibility``, keeping the subscriber's place in the
FIFO queue), or the episode is closed and the message is done. Messages are handled in
each subscriber's order (``SqsFifoPartialProcessor``, ``skip_group_on_error``).

Exactly one contact per attempt: a Powertools idempotency record keyed by the attempt's
``ClientToken`` (``<engagement id>-<attempt>``; texts ``<engagement id>-sms``) stops a
redelivered step before it reaches Connect. It is kept for ``IDEMPOTENCY_TTL_SECONDS``,
longer than any message can wait or be redriven (the queue's 14 days of retention, then
the DLQ's 14): Connect's own ``ClientToken`` check only holds while the first call is in progress.
The batch stops before the function could time out, handing the rest back at once.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import single_metric
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedback_loop.adapters.cell_state import CellState
from feedback_loop.adapters.connect import CALL_TIME_BUDGET_MS, CONNECT_CLIENT_CONFIG, ConnectCalls
from feedback_loop.adapters.contacts import ContactStore
from feedback_loop.adapters.queues import Queue
from feedback_loop.adapters.settings import load_settings
from feedback_loop.adapters.sms import SMS_CLIENT_CONFIG, TextSender
from feedback_loop.calls import CallCentre
from feedback_loop.contract import Verdict
from feedback_loop.dial import DialPorts, Done, dial
from feedback_loop.errors import FeedbackLoopError, InvalidRecord
from feedback_loop.observability import MetricUnit, logger, metrics
from feedback_loop.policy import Policy

# Longer than a message can live: 14 days on the trigger queue, then 14 more in its DLQ
# (a FIFO queue's DLQ restarts the message's retention clock: Amazon SQS Developer Guide,
# "Setting-up dead-letter queue retention"), and a day for the redrive.
IDEMPOTENCY_TTL_SECONDS = 29 * 24 * 60 * 60

processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False


def _utc_now() -> datetime:
    return datetime.now(UTC)


clock: Callable[[], datetime] = _utc_now


class NotNow(FeedbackLoopError):
    """This message goes back to the queue for later (held, or out of time)."""


@dataclass(frozen=True)
class Settings:
    """Environment of this function (docs/ARCHITECTURE.md)."""

    connect_instance_id: str
    contact_flow_id: str
    source_phone_number: str
    idempotency_table: str
    subscriber_table: str
    contact_state_table: str
    engagement_trigger_queue_url: str
    engagement_update_queue_url: str
    policy: Policy
    sms_origination_identity: str | None = None


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
    dynamodb = boto3.client("dynamodb")
    once: Callable[[Callable[..., str]], Callable[..., str]] = idempotent_function(
        data_keyword_argument="request", persistence_store=persistence, config=config
    )

    @once
    def start_once(request: dict[str, Any]) -> str:
        contact_id = calls.start(request)
        metrics.add_metric(name="CallsStarted", unit=MetricUnit.Count, value=1)
        logger.info("Call started", extra={"contact_id": contact_id})
        return contact_id

    texts = None
    if settings.policy.sms.enabled and settings.sms_origination_identity:
        sender = TextSender(
            boto3.client("pinpoint-sms-voice-v2", config=SMS_CLIENT_CONFIG),
            settings.sms_origination_identity,
        )

        @once
        def text_once(request: dict[str, Any]) -> str:
            message_id = sender.send(request["phone_number"], request["text"])
            metrics.add_metric(name="TextsSent", unit=MetricUnit.Count, value=1)
            return message_id

        def texts(phone: str, text: str, key: str) -> str:
            return text_once(request={"ClientToken": key, "phone_number": phone, "text": text})

    return Dependencies(
        ports=DialPorts(
            centre=CallCentre(
                instance_id=settings.connect_instance_id,
                contact_flow_id=settings.contact_flow_id,
                source_phone_number=settings.source_phone_number,
            ),
            place=lambda request: start_once(request=dict(request)),
            send_text=texts,
            contacts=ContactStore(dynamodb, settings.subscriber_table),
            cells=CellState(dynamodb, settings.contact_state_table),
            updates=Queue(sqs, settings.engagement_update_queue_url),
            policy=settings.policy,
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
    delivery = int(record.attributes.approximate_receive_count or 1)
    try:
        outcome = dial(record.body, delivery, deps.ports, clock())
    except InvalidRecord as error:
        metrics.add_metric(name="CallsFailed", unit=MetricUnit.Count, value=1)
        logger.error(
            "Engagement message rejected",
            extra={"reason": error.reason, "detail": error.detail, "message_id": record.message_id},
        )
        raise
    log_keys = {"engagement_id": outcome.engagement_id, "reason": outcome.reason}
    if outcome.recorded is not None:
        decision, reason = outcome.recorded
        with single_metric(name="ContactSteps", unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="decision", value=decision)
            metric.add_dimension(name="reason", value=reason)
    if isinstance(outcome, Done):
        if outcome.recorded is not None and outcome.recorded[0] == Verdict.FAILED:
            metrics.add_metric(name="CallsFailed", unit=MetricUnit.Count, value=1)
            logger.error("Contact refused for good; the engagement is closed", extra=log_keys)
        else:
            logger.info("Episode done", extra=log_keys)
        return
    if outcome.throttled:
        metrics.add_metric(name="CallsThrottled", unit=MetricUnit.Count, value=1)
        logger.warning("Contact refused for now", extra={**log_keys, "retry_in": outcome.seconds})
    else:
        logger.info("Episode held", extra={**log_keys, "seconds": outcome.seconds})
    _hand_back(deps, record, outcome.seconds)
    raise NotNow(f"held: {outcome.reason}")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Place one call per engagement message; report the ones to try again."""
    _dependencies().idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=_record_handler, processor=processor, context=context
    )
