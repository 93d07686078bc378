"""Record: a batch of queue messages or stream images → lake objects.

Each item becomes one or more lake records; records are grouped into one object per
lake table and business date. An item that does not decode is returned as rejected
(it can never succeed: the caller fails it alone so it reaches its DLQ after its
retries); when writing an object fails, every item with a record in it fails and is
retried, and the items of the other objects are done.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from feedback_loop.contract import LakeTable
from feedback_loop.errors import AwsError, InvalidRecord
from feedback_loop.ports import LakeSink

LakeRecords = list[tuple[LakeTable, dict[str, Any]]]
Payload = TypeVar("Payload")


@dataclass
class LakeBatchOutcome:
    """Item ids written, failed (to retry) and rejected (with why), and the write errors."""

    written: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    rejected: list[tuple[str, InvalidRecord]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def records_failed(self) -> list[str]:
        """Every item id to report as a batch item failure."""
        return [*(item for item, _ in self.rejected), *self.failed]


def write_batch(
    items: Sequence[tuple[str, Payload]],
    to_records: Callable[[Payload], LakeRecords],
    lake: LakeSink,
    batch_id: str | None = None,
) -> LakeBatchOutcome:
    """Decode ``(item id, payload)`` pairs with ``to_records`` and write them to ``lake``."""
    outcome = LakeBatchOutcome()
    objects: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    tables: dict[str, LakeTable] = {}
    for item_id, payload in items:
        try:
            records = to_records(payload)
        except InvalidRecord as error:
            outcome.rejected.append((item_id, error))
            continue
        for table, record in records:
            tables[table.name] = table
            objects[(table.name, str(record[table.time_field])[:10])].append((item_id, record))
    failed: set[str] = set()
    for (name, _date), pairs in sorted(objects.items()):
        table = tables[name]
        try:
            lake.put_records(name, [r for _, r in pairs], table.time_field, batch_id=batch_id)
        except AwsError as error:
            outcome.errors.append(str(error))
            failed.update(item_id for item_id, _ in pairs)
    rejected = {item_id for item_id, _ in outcome.rejected}
    for item_id, _ in items:
        if item_id in rejected:
            continue
        (outcome.failed if item_id in failed else outcome.written).append(item_id)
    return outcome
