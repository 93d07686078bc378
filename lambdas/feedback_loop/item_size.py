"""DynamoDB's item size rule, for code that must keep an item within one write unit.

A write costs one write unit per started KB of the larger of the item before and after it
("DynamoDB read and write operations", Amazon DynamoDB Developer Guide), so an item that
grows past 1,024 bytes doubles the price of every write to it. The sizes follow "DynamoDB
item sizes and formats"
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
attribute names and strings count their UTF-8 bytes; a number 1 byte per two significant
digits plus 1 (leading and trailing zeroes trimmed); null and Boolean 1 byte; a list or
map 3 bytes plus 1 byte per element plus its elements (a map's keys count like names).
Values are plain Python, as the adapters hand them to ``TypeSerializer`` (floats go in as
the decimal of their ``repr``).
"""

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

WRITE_UNIT_BYTES = 1024


def number_size(text: str) -> int:
    """Bytes of a DynamoDB number written as ``text``."""
    digits = format(abs(Decimal(text)).normalize(), "f").replace(".", "").strip("0")
    return math.ceil(max(len(digits), 1) / 2) + 1


def value_size(value: Any) -> int:
    """Bytes of one attribute value (without its name)."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float | Decimal):
        return number_size(repr(value) if isinstance(value, float) else str(value))
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, Mapping):
        return 3 + sum(1 + len(str(k).encode("utf-8")) + value_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(1 + value_size(element) for element in value)
    raise TypeError(f"no DynamoDB size for {type(value).__name__}")


def item_size(attributes: Mapping[str, Any]) -> int:
    """Bytes of an item (or of some of its attributes): names plus values."""
    return sum(len(name.encode("utf-8")) + value_size(v) for name, v in attributes.items())
