"""Archive_probe_records: Firehose's transformation of ``probe_events`` into the probe archive.

Firehose (source: the Kinesis stream) invokes this function with a batch of records and
their ``kinesisRecordMetadata``; each valid probe record comes back ``Ok`` as one JSON
``probes`` row (``feedback_loop.archive``) with its ``dt`` partition key, which Firehose
converts to Parquet against the Glue table and writes under ``probes/dt=<date>/``. A record
``Ingest_probe_events`` would reject is ``Dropped`` here (the ingest handler keeps it in
``rejected/``), so the archive holds exactly the records that reached the counters.
Data transformation contract: https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html
"""

from collections import Counter
from collections.abc import Iterable
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
from feedback_loop.archive import StreamRecord, archive_record, partition_of
from feedback_loop.errors import InvalidRecord
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


def _stream_record(record: Any) -> tuple[str, StreamRecord]:
    metadata = record.metadata
    return record.record_id, StreamRecord(
        shard_id=metadata.shard_id,
        sequence_number=metadata.sequence_number,
        subsequence_number=int(metadata.subsequence_number or 0),
        arrival=datetime.fromtimestamp(metadata.approximate_arrival_timestamp / 1000, UTC),
        data=record.data_as_bytes,
    )


def transform(
    records: Iterable[tuple[str, StreamRecord]], key: bytes
) -> tuple[KinesisFirehoseDataTransformationResponse, Counter[str]]:
    """One response record per input record: ``Ok`` with the archive row, or ``Dropped``."""
    batch = list(records)
    response = KinesisFirehoseDataTransformationResponse()
    dropped: Counter[str] = Counter()
    if not batch:
        return response, dropped
    reference = max(source.arrival for _, source in batch)
    for firehose_id, source in batch:
        try:
            row = archive_record(source, reference, key)
        except InvalidRecord as error:
            dropped[error.reason] += 1
            response.add_record(
                KinesisFirehoseDataTransformationRecord(record_id=firehose_id, result="Dropped")
            )
            continue
        response.add_record(
            KinesisFirehoseDataTransformationRecord(
                record_id=firehose_id,
                data=base64_from_json(row),
                metadata=KinesisFirehoseDataTransformationRecordMetadata(
                    partition_keys={PARTITION_KEY: partition_of(row)}
                ),
            )
        )
    return response, dropped


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Firehose data-transformation entry point."""
    firehose = KinesisFirehoseEvent(event)
    response, dropped = transform(
        (_stream_record(record) for record in firehose.records), _pseudonym_key()
    )
    archived = len(response.records) - sum(dropped.values())
    metrics.add_metric(name="ProbeRecordsArchived", unit=MetricUnit.Count, value=archived)
    metrics.add_metric(
        name="ProbeRecordsNotArchived", unit=MetricUnit.Count, value=sum(dropped.values())
    )
    if dropped:
        logger.info("Invalid probe records not archived", extra={"reasons": dict(dropped)})
    return response.asdict()
