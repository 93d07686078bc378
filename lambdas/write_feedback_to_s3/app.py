"""write_feedback_to_S3: ``Subscriber_table`` stream (answers) → ``feedback/`` and ``sentiment/``.

The feedback function records each answer on the subscriber's profile only
(``LastFeedback``, ``LastChange = feedback``); this function, filtered to those changes,
writes their lake records with the same use case as the other lake writers
(``feedback_loop.lake_sink``). A malformed image can never succeed: it is dropped with a
log line (the answer is not kept elsewhere: the subscriber's next ingest write removes
``LastFeedback`` from the profile). A failed write reports the records of that object;
Lambda retries from the first, bisects, and finally sends the range to the on-failure
queue, from which it must be replayed within the stream's 24 h retention.

With the rating budget enabled (``rating_budget``), each rating is also added to its
cell's tally in ``Contact_state``, once per engagement however often the stream delivers
it (``feedback.count_ratings``); a failed count is retried like a failed lake write.
"""

import hashlib
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedback_loop.adapters.cell_state import CellState
from feedback_loop.adapters.lake_writer import LakeWriter, lake_writer_dependencies
from feedback_loop.adapters.settings import load_settings
from feedback_loop.errors import ConfigError
from feedback_loop.feedback import count_ratings, feedback_records
from feedback_loop.lake_sink import write_batch
from feedback_loop.observability import logger, metrics, report_lake_batch
from feedback_loop.policy import Policy


@dataclass(frozen=True)
class RatingSettings:
    """The rating budget's part of the environment (the table only when it is enabled)."""

    policy: Policy
    contact_state_table: str = ""


@dataclass(frozen=True)
class Dependencies:
    """The lake writer, and the cells' tallies when the rating budget is enabled."""

    lake: LakeWriter
    pseudonym_key: bytes
    policy: Policy
    cells: CellState | None


@cache
def _dependencies() -> Dependencies:
    settings = load_settings(RatingSettings)
    cells = None
    if settings.policy.rating_budget.enabled:
        if not settings.contact_state_table:
            raise ConfigError(
                "rating_budget.enabled needs environment variable CONTACT_STATE_TABLE"
            )
        cells = CellState(boto3.client("dynamodb"), settings.contact_state_table)
    lake = lake_writer_dependencies()
    return Dependencies(lake.lake, lake.pseudonym_key, settings.policy, cells)


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
    failed = set(outcome.failed)
    if deps.cells is not None:
        counted = count_ratings(images, deps.cells, deps.policy)
        metrics.add_metric(name="RatingsCounted", unit=MetricUnit.Count, value=counted.counted)
        if counted.failed:
            logger.warning("ratings not counted; retried", extra={"records": len(counted.failed)})
        failed |= set(counted.failed)
    order = [sequence for sequence, _ in images]
    return {"batchItemFailures": [{"itemIdentifier": item} for item in order if item in failed]}
