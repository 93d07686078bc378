"""write_engagement_to_S3: ``engagement_update_queue`` → ``engagement/`` in the lake.

One gzip JSON Lines object per batch and decision date; phone numbers are
replaced by ``subscriber_id``. A message that does not decode is reported
alone (retried, then the DLQ); a failed PutObject reports every message of
that object.
"""

from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedback_loop.adapters.lake_writer import LakeWriter
from feedback_loop.adapters.secrets import load_pseudonym_key
from feedback_loop.adapters.settings import load_settings
from feedback_loop.errors import InvalidRecord
from feedback_loop.messages import EngagementMessage, decode
from feedback_loop.observability import MetricUnit, logger, metrics
from feedback_loop.records import engagement_record, write_messages
from feedback_loop.timeutil import parse_utc

PREFIX = "engagement"
TIME_FIELD = "decided_at"


@dataclass(frozen=True)
class Settings:
    """Environment of this function (docs/ARCHITECTURE.md)."""

    lake_bucket: str
    pseudonym_secret_arn: str


@dataclass(frozen=True)
class Dependencies:
    """What one cold start creates."""

    lake: LakeWriter
    pseudonym_key: bytes


@cache
def _dependencies() -> Dependencies:
    settings = load_settings(Settings)
    return Dependencies(
        lake=LakeWriter(boto3.client("s3"), settings.lake_bucket),
        pseudonym_key=load_pseudonym_key(
            boto3.client("secretsmanager"), settings.pseudonym_secret_arn
        ),
    )


def to_record(body: str, key: bytes) -> dict[str, Any]:
    """Decode one message into its lake record; raises :class:`InvalidRecord`."""
    message = decode(body, EngagementMessage)
    try:
        parse_utc(message.decided_at)
        return engagement_record(message, key)
    except (AttributeError, TypeError, ValueError) as error:
        raise InvalidRecord("wrong_type", str(error)) from error


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS entry point; returns the partial batch response."""
    deps = _dependencies()
    bodies = [(record.message_id, record.body) for record in SQSEvent(event).records]
    result = write_messages(
        bodies,
        partial(to_record, key=deps.pseudonym_key),
        TIME_FIELD,
        partial(deps.lake.put_records, PREFIX, time_field=TIME_FIELD),
    )
    metrics.add_metric(name="EngagementsWritten", unit=MetricUnit.Count, value=len(result.written))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in result.failed]}
