"""Writes lake records: one gzip JSON Lines object per batch and date partition."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from feedback_loop.adapters.aws import translated
from feedback_loop.adapters.secrets import load_pseudonym_key
from feedback_loop.adapters.settings import load_settings
from feedback_loop.lake import encode_jsonl_gz, group_by_date, object_key

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client


class LakeWriter:
    """Puts records under ``<prefix>/dt=<business date>/`` in the lake bucket."""

    def __init__(self, s3: "S3Client", bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put_records(
        self,
        prefix: str,
        records: Iterable[Mapping[str, Any]],
        time_field: str,
        batch_id: str | None = None,
    ) -> list[str]:
        """Write ``records`` (one object per date of ``time_field``); returns the keys written.

        A deterministic ``batch_id`` names the objects, so writing the same batch
        again overwrites them instead of duplicating records.
        """
        keys = []
        for dt, group in sorted(group_by_date(records, time_field).items()):
            key = object_key(prefix, dt, batch_id)
            with translated("s3.PutObject"):
                self._s3.put_object(
                    Bucket=self._bucket,
                    Key=key,
                    Body=encode_jsonl_gz(group),
                    ContentType="application/x-ndjson",
                    ContentEncoding="gzip",
                )
            keys.append(key)
        return keys


@dataclass(frozen=True)
class LakeWriterSettings:
    """Environment of the lake-writing functions (docs/ARCHITECTURE.md)."""

    lake_bucket: str
    pseudonym_secret_arn: str


@dataclass(frozen=True)
class LakeWriterDependencies:
    """What a lake writer's cold start creates: the writer and the pseudonym key."""

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
