"""How AWS meters what the handlers do: DynamoDB item sizes and capacity units, Kinesis KiB.

Shared by the dense-load bench (which measures items as the handlers leave them) and the
cost model (which prices the units). Every rule names the AWS document it follows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from feedback_loop.item_size import number_size

KIB = 1024
# DynamoDB: a write unit covers 1 KB of item, a read unit 4 KB (strongly consistent; an
# eventually consistent read costs half). "DynamoDB read and write operations",
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html
WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
# Storage is billed on the item size plus 100 bytes of indexing overhead per item
# ("DynamoDB item sizes and formats").
STORAGE_OVERHEAD_BYTES = 100


def value_size(value: Mapping[str, Any]) -> int:
    """Size of one low-level attribute value (``{"S": ...}``, ``{"M": {...}}``, ...).

    Rules of "DynamoDB item sizes and formats"
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
    strings and binaries count their bytes, numbers as ``feedback_loop.item_size`` does
    (the handlers keep items within a write unit by the same rule), null and
    Boolean 1 byte, a list or map 3 bytes plus 1 byte per element plus its elements
    (map keys count their UTF-8 bytes).
    """
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode("utf-8"))
    if kind == "B":
        return len(content)
    if kind == "N":
        return number_size(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in content)
    if kind == "M":
        return 3 + sum(
            1 + len(name.encode("utf-8")) + value_size(element) for name, element in content.items()
        )
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in content)
    if kind == "NS":
        return sum(number_size(n) for n in content)
    if kind == "BS":
        return sum(len(b) for b in content)
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    """Bytes of a low-level item: attribute names plus values (0 for no item)."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(before: int, after: int) -> int:
    """Write request units of one write: the larger of the item before and after, per KB.

    A write that changes nothing the size of (a failed condition, a delete of nothing)
    still costs at least one unit.
    """
    return max(1, math.ceil(max(before, after) / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    """Read request units of reading one item of ``size`` bytes (4 KB steps, min one step)."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


def kinesis_billed_kib(record_bytes: int) -> int:
    """KiB one record counts as on an on-demand stream: its size rounded up to 1 KiB.

    "Data-In ... multiplied by the size of each record rounded up to the nearest 1 KB
    (1,024 bytes)", https://aws.amazon.com/kinesis/data-streams/pricing/
    """
    return max(1, math.ceil(record_bytes / KIB))
