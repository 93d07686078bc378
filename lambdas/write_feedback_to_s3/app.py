"""write_feedback_to_S3: ``Subscriber_table`` stream (answers) → ``feedback/`` and ``sentiment/``.

The feedback function records each answer on the subscriber's profile only
(``LastFeedback``, ``LastChange = feedback``); this function, filtered to those changes,
writes their lake records with the same use case as the other lake writers
(``feedback_loop.lake_sink``). A malformed image can never succeed: it is dropped with a
log line (the answer stays on the profile). A failed write reports the records of that
object; Lambda retries from the first, bisects, and finally sends the range to the
on-failure queue, so no answer is lost to an S3 outage.
"""

import hashlib
from functools import cache, partial
from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedback_loop.adapters.lake_writer import LakeWriterDependencies, lake_writer_dependencies
from feedback_loop.feedback import feedback_records
from feedback_loop.lake_sink import write_batch
from feedback_loop.observability import logger, metrics, report_lake_batch


@cache
def _dependencies() -> LakeWriterDependencies:
    return lake_writer_dependencies()


def _images(event: dict[str, Any]) -> list[tuple[str, Any]]:
    images = []
    for record in DynamoDBStreamEvent(event).records:
        stream = record.dynamodb
        if stream is None:
            continue
        try:
            image = stream.new_image
        except (TypeError, ValueError, KeyError):
            image = None
        images.append((str(stream.sequence_number), image))
    return images


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """DynamoDB stream entry point; returns the partial batch response."""
    deps = _dependencies()
    images = _images(event)
    # Objects are named after the batch's records, so a retried batch overwrites its own.
    batch_id = hashlib.sha256("|".join(seq for seq, _ in images).encode()).hexdigest()[:32]
    outcome = write_batch(
        images, partial(feedback_records, key=deps.pseudonym_key), deps.lake, batch_id=batch_id
    )
    report_lake_batch(outcome, "FeedbackWritten")
    return {"batchItemFailures": [{"itemIdentifier": item} for item in outcome.failed]}
