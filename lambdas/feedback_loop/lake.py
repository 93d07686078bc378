"""Lake layout: one gzip JSON Lines object per batch, partitioned by business date."""

import gzip
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from feedback_loop.contract import LAKE_PREFIXES as PREFIXES


def object_key(prefix: str, dt: str, batch_id: str | None = None) -> str:
    """``<prefix>/dt=YYYY-MM-DD/<batch id>.jsonl.gz``; ``dt`` is the records' business date."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown lake prefix {prefix!r}; expected one of {PREFIXES}")
    return f"{prefix}/dt={dt}/{batch_id or uuid.uuid4().hex}.jsonl.gz"


def encode_jsonl_gz(records: Iterable[Mapping[str, Any]]) -> bytes:
    """Serialise records as gzip-compressed JSON Lines (sorted keys, UTF-8)."""
    lines = "".join(
        json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n" for record in records
    )
    return gzip.compress(lines.encode("utf-8"), mtime=0)


def decode_jsonl_gz(body: bytes) -> list[dict[str, Any]]:
    """Inverse of :func:`encode_jsonl_gz` (tests and the twin read the lake with it)."""
    return [json.loads(line) for line in gzip.decompress(body).decode("utf-8").splitlines() if line]


def group_by_date(
    records: Iterable[Mapping[str, Any]], time_field: str
) -> dict[str, list[Mapping[str, Any]]]:
    """Group records by the date part of ``time_field`` so each object holds one partition."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        groups[str(record[time_field])[:10]].append(record)
    return dict(groups)
