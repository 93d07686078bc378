"""Writes lake records: one gzip JSON Lines object per batch and date partition."""

from collections.abc import Iterable, Mapping
from typing import Any

from feedback_loop.lake import encode_jsonl_gz, group_by_date, object_key


class LakeWriter:
    """Puts records under ``<prefix>/dt=<business date>/`` in the lake bucket."""

    def __init__(self, s3: Any, bucket: str) -> None:
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
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=encode_jsonl_gz(group),
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
            )
            keys.append(key)
        return keys
