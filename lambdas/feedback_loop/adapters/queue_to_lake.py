"""The lake writers' shared body: an SQS batch of versioned messages → the lake.

``write_incident_to_S3`` and ``write_engagement_to_S3`` differ only in the
message kind, the lake prefix, the business-time field and the record builder;
everything else (pseudonyms, one object per batch and date, partial batch
response) lives here once.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic

import boto3
from aws_lambda_powertools.utilities.data_classes import SQSEvent

from feedback_loop.adapters.lake_writer import LakeWriter
from feedback_loop.adapters.secrets import load_pseudonym_key
from feedback_loop.adapters.settings import load_settings
from feedback_loop.errors import InvalidRecord
from feedback_loop.messages import Message, decode
from feedback_loop.observability import MetricUnit, metrics
from feedback_loop.records import write_messages
from feedback_loop.timeutil import parse_utc


@dataclass(frozen=True)
class LakeWriterSettings:
    """Environment of both lake writers (docs/ARCHITECTURE.md)."""

    lake_bucket: str
    pseudonym_secret_arn: str


@dataclass(frozen=True)
class LakeWriterDependencies:
    """What one cold start creates."""

    lake: LakeWriter
    pseudonym_key: bytes


def lake_writer_dependencies() -> LakeWriterDependencies:
    """Read the settings and create the clients; the handler caches the result."""
    settings = load_settings(LakeWriterSettings)
    return LakeWriterDependencies(
        lake=LakeWriter(boto3.client("s3"), settings.lake_bucket),
        pseudonym_key=load_pseudonym_key(
            boto3.client("secretsmanager"), settings.pseudonym_secret_arn
        ),
    )


@dataclass(frozen=True)
class QueueToLake(Generic[Message]):
    """How one kind of queue message becomes lake records under ``prefix``."""

    kind: type[Message]
    prefix: str
    time_field: str
    build: Callable[[Message, bytes], dict[str, Any]]
    written_metric: str

    def to_record(self, body: str, key: bytes) -> dict[str, Any]:
        """Decode one message into its lake record; raises :class:`InvalidRecord`."""
        message = decode(body, self.kind)
        try:
            parse_utc(getattr(message, self.time_field))
            return self.build(message, key)
        except (AttributeError, TypeError, ValueError) as error:
            raise InvalidRecord("wrong_type", str(error)) from error

    def handle(self, event: dict[str, Any], deps: LakeWriterDependencies) -> dict[str, Any]:
        """Write the batch; returns the partial batch response."""
        bodies = [(record.message_id, record.body) for record in SQSEvent(event).records]
        result = write_messages(
            bodies,
            partial(self.to_record, key=deps.pseudonym_key),
            self.time_field,
            partial(deps.lake.put_records, self.prefix, time_field=self.time_field),
        )
        metrics.add_metric(
            name=self.written_metric, unit=MetricUnit.Count, value=len(result.written)
        )
        return {"batchItemFailures": [{"itemIdentifier": item} for item in result.failed]}
