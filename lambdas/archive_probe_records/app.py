"""Archive_probe_records: Firehose's transformation of ``probe_events`` → ``feedback_loop.archive``.

Firehose (source: the Kinesis stream) invokes this function with a batch of records and
their ``kinesisRecordMetadata``; each valid probe record comes back ``Ok`` as one JSON
``probes`` row with its ``dt`` partition key, which Firehose converts to Parquet against
the Glue table and writes under ``probes/dt=<date>/``. A record ``Ingest_probe_events``
would reject is ``Dropped`` (the ingest handler keeps it in ``rejected/``), so the archive
holds exactly the records that reached the counters. Data transformation contract:
https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import (
    KinesisFirehoseDataTransformationRecord,
    KinesisFirehoseDataTransformationRecordMetadata,
    KinesisFirehoseDataTransformationResponse,
    KinesisFirehoseEvent,
)
from aws_lambda_powertools.utilities.serialization import base64_from_json
from aws_lambda_powertools.utilities.typing import LambdaContext

from feedback_loop.adapters.secrets import load_pseudonym_key
from feedback_loop.adapters.settings import load_settings
from feedback_loop.archive import ArchiveOutcome, StreamRecord, archive_batch
from feedback_loop.observability import MetricUnit, logger, metrics

PARTITION_KEY = "dt"


@dataclass(frozen=True)
class Settings:
    """Environment of this function (docs/ARCHITECTURE.md)."""

    pseudonym_secret_arn: str


@cache
def _pseudonym_key() -> bytes:
    settings = load_settings(Settings)
    return load_pseudonym_key(boto3.client("secretsmanager"), settings.pseudonym_secret_arn)


def _inputs(event: dict[str, Any]) -> list[tuple[str, StreamRecord]]:
    inputs = []
    for record in KinesisFirehoseEvent(event).records:
        metadata = record.metadata
        if metadata is None:
            # Direct PUT: no stream position, so no record_id; the stack never wires that.
            raise ValueError("Archive_probe_records needs a Kinesis stream as Firehose source")
        inputs.append(
            (
                record.record_id,
                StreamRecord(
                    shard_id=metadata.shard_id,
                    sequence_number=metadata.sequence_number,
                    subsequence_number=int(metadata.subsequence_number or 0),
                    arrival=datetime.fromtimestamp(
                        metadata.approximate_arrival_timestamp / 1000, UTC
                    ),
                    data=record.data_as_bytes,
                ),
            )
        )
    return inputs


def _response(outcome: ArchiveOutcome) -> dict[str, Any]:
    response = KinesisFirehoseDataTransformationResponse()
    for result in outcome.results:
        if result.row is None:
            response.add_record(
                KinesisFirehoseDataTransformationRecord(
                    record_id=result.delivery_id, result="Dropped"
                )
            )
            continue
        response.add_record(
            KinesisFirehoseDataTransformationRecord(
                record_id=result.delivery_id,
                data=base64_from_json(result.row),
                metadata=KinesisFirehoseDataTransformationRecordMetadata(
                    partition_keys={PARTITION_KEY: str(result.partition)}
                ),
            )
        )
    return response.asdict()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Firehose data-transformation entry point."""
    outcome = archive_batch(_inputs(event), _pseudonym_key())
    dropped = outcome.dropped_by_reason
    metrics.add_metric(name="ProbeRecordsArchived", unit=MetricUnit.Count, value=outcome.archived)
    metrics.add_metric(
        name="ProbeRecordsNotArchived", unit=MetricUnit.Count, value=sum(dropped.values())
    )
    if dropped:
        logger.info("Invalid probe records not archived", extra={"reasons": dict(dropped)})
    return _response(outcome)
