"""write_engagement_to_S3: ``engagement_update_queue`` → ``engagement/``, ``outages/`` and
``decision_counts/``.

The use case is ``feedback_loop.lake_sink``: one gzip JSON Lines object per batch and
date, phone numbers replaced by ``subscriber_id``. A message that does not decode is
reported alone (retried, then the DLQ); a failed PutObject reports every message of
that object.
"""

from functools import cache, partial
from typing import Any

from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedback_loop.adapters.lake_writer import LakeWriterDependencies, lake_writer_dependencies
from feedback_loop.lake_sink import write_batch
from feedback_loop.observability import logger, metrics, report_lake_batch
from feedback_loop.records import update_records


@cache
def _dependencies() -> LakeWriterDependencies:
    return lake_writer_dependencies()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS entry point; returns the partial batch response."""
    deps = _dependencies()
    messages = [(record.message_id, record.body) for record in SQSEvent(event).records]
    outcome = write_batch(messages, partial(update_records, key=deps.pseudonym_key), deps.lake)
    report_lake_batch(outcome, "EngagementsWritten")
    return {"batchItemFailures": [{"itemIdentifier": item} for item in outcome.records_failed]}
