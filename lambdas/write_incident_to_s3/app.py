"""write_incident_to_S3: ``incident_update_queue`` → ``incidents/`` in the lake.

One gzip JSON Lines object per batch and incident date; phone numbers are
replaced by ``subscriber_id``. A message that does not decode is reported
alone (retried, then the DLQ); a failed PutObject reports every message of
that object (see ``feedback_loop.adapters.queue_to_lake``).
"""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from feedback_loop.adapters.queue_to_lake import (
    LakeWriterDependencies,
    QueueToLake,
    lake_writer_dependencies,
)
from feedback_loop.messages import IncidentMessage
from feedback_loop.observability import logger, metrics
from feedback_loop.records import incident_record

SINK = QueueToLake(
    kind=IncidentMessage,
    prefix="incidents",
    time_field="timestamp",
    build=incident_record,
    written_metric="IncidentsWritten",
)


@cache
def _dependencies() -> LakeWriterDependencies:
    return lake_writer_dependencies()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS entry point; returns the partial batch response."""
    return SINK.handle(event, _dependencies())
