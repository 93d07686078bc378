"""Trigger_Connect: SQS FIFO ``engagement_trigger_queue.fifo`` → ``feedback_loop.dial``.

Exactly one call per engagement id, twice over: a Powertools idempotency record keyed
by the engagement id (the ``ClientToken``) stops a redelivered message before it
reaches Connect, and Connect itself returns the running contact for a repeated token.

Every failure is reported as a batch item failure: a throttled call
(``CallsThrottled``) is retried by SQS; a permanent one (``CallsFailed``) is logged
with its reason. ``skip_group_on_error`` fails the rest of that subscriber's message
group so calls stay in order, while other subscribers' messages go ahead.
"""

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

from feedback_loop.adapters.connect import ConnectCalls
from feedback_loop.adapters.settings import load_settings
from feedback_loop.calls import CallCentre
from feedback_loop.dial import CallDeferred, CallRefused, PlaceCall, dial
from feedback_loop.errors import InvalidRecord
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
    """What one cold start creates: where calls go, the Connect adapter, the idempotent placer."""

    centre: CallCentre
    calls: ConnectCalls
    idempotency: IdempotencyConfig
    place_call: PlaceCall


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
    calls = ConnectCalls(boto3.client("connect"))

    @idempotent_function(
        data_keyword_argument="request", persistence_store=persistence, config=config
    )
    def start_once(request: dict[str, Any]) -> str:
        contact_id = calls.start(request)
        metrics.add_metric(name="CallsStarted", unit=MetricUnit.Count, value=1)
        logger.info("Call started", extra={"contact_id": contact_id})
        return contact_id

    return Dependencies(
        centre=CallCentre(
            instance_id=settings.connect_instance_id,
            contact_flow_id=settings.contact_flow_id,
            source_phone_number=settings.source_phone_number,
        ),
        calls=calls,
        idempotency=config,
        place_call=lambda request: start_once(request=dict(request)),
    )


def _record_handler(record: SQSRecord) -> None:
    deps = _dependencies()
    try:
        dial(record.body, deps.centre, deps.place_call)
    except InvalidRecord as error:
        metrics.add_metric(name="CallsFailed", unit=MetricUnit.Count, value=1)
        logger.error(
            "Engagement message rejected",
            extra={"reason": error.reason, "detail": error.detail, "message_id": record.message_id},
        )
        raise
    except CallDeferred as error:
        metrics.add_metric(name="CallsThrottled", unit=MetricUnit.Count, value=1)
        logger.warning(
            "Call deferred, SQS will retry",
            extra={"reason": error.code, "engagement_id": error.engagement_id},
        )
        raise
    except CallRefused as error:
        metrics.add_metric(name="CallsFailed", unit=MetricUnit.Count, value=1)
        logger.error(
            "Call refused by Connect",
            extra={"reason": error.code, "engagement_id": error.engagement_id},
        )
        raise


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Place one call per engagement message; report failed items for SQS to retry."""
    _dependencies().idempotency.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=_record_handler, processor=processor, context=context
    )
