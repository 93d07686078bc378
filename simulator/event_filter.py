"""Lambda event filtering (``FilterCriteria``) as the event-source mappings apply it.

The syntax is Lambda's (the EventBridge pattern subset): object keys nest; a leaf is a
list of alternatives, each an exact value or one of ``prefix``, ``suffix``,
``anything-but``, ``numeric``, ``exists``, ``equals-ignore-case``. A rule the syntax does
not have is a :class:`FilterError`, never a silent match.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from simulator.template import WiringError

_MISSING = object()


class FilterError(WiringError):
    """A filter pattern uses a rule the Lambda event-filtering syntax does not have."""


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """Lambda event filtering: does ``event`` match ``pattern``?

    Object keys nest; a leaf is a list of alternatives, each an exact value (string,
    number, null, boolean) or a rule: ``prefix``, ``suffix``, ``anything-but``,
    ``numeric``, ``exists``, ``equals-ignore-case``. An array in the event matches
    when any of its elements does.
    """
    if not isinstance(pattern, Mapping):
        raise FilterError(f"a filter pattern must be an object, got {pattern!r}")
    for key, rule in pattern.items():
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(rule, Mapping):
            if not isinstance(value, Mapping) or not matches(rule, value):
                return False
        elif isinstance(rule, list):
            if not any(_alternative(alternative, value) for alternative in rule):
                return False
        else:
            raise FilterError(f"filter rule for {key!r} must be an object or a list, got {rule!r}")
    return True


def _alternative(rule: Any, value: Any) -> bool:
    if isinstance(rule, Mapping) and "exists" in rule:
        return bool(rule["exists"]) == (value is not _MISSING and not isinstance(value, Mapping))
    if value is _MISSING:
        return False
    values = value if isinstance(value, list) else [value]
    if isinstance(rule, Mapping):
        return any(_operator(rule, v) for v in values)
    return any(_equal(rule, v) for v in values)


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual)
    return type(expected) is type(actual) and expected == actual


def _operator(rule: Mapping[str, Any], value: Any) -> bool:
    if len(rule) != 1:
        raise FilterError(f"a filter rule has exactly one operator, got {dict(rule)!r}")
    ((name, operand),) = rule.items()
    if name == "prefix":
        if isinstance(operand, Mapping):
            text = operand["equals-ignore-case"]
            return isinstance(value, str) and value.lower().startswith(text.lower())
        return isinstance(value, str) and value.startswith(operand)
    if name == "suffix":
        if isinstance(operand, Mapping):
            text = operand["equals-ignore-case"]
            return isinstance(value, str) and value.lower().endswith(text.lower())
        return isinstance(value, str) and value.endswith(operand)
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(operand).lower()
    if name == "anything-but":
        if isinstance(operand, Mapping):
            return not _operator(operand, value)
        excluded = operand if isinstance(operand, list) else [operand]
        return not any(_equal(item, value) for item in excluded)
    if name == "numeric":
        return _numeric(operand, value)
    raise FilterError(f"filter operator {name!r} is not supported")


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _numeric(conditions: Sequence[Any], value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if len(conditions) % 2:
        raise FilterError(f"numeric rule needs operator/value pairs, got {conditions!r}")
    for operator, operand in zip(conditions[::2], conditions[1::2], strict=True):
        if operator not in _COMPARE:
            raise FilterError(f"numeric operator {operator!r} is not supported")
        if not _COMPARE[operator](value, operand):
            return False
    return True


def passes_filters(patterns: Sequence[Mapping[str, Any]], event: Any) -> bool:
    """No patterns: everything passes; otherwise any one pattern must match (OR)."""
    return not patterns or any(matches(pattern, event) for pattern in patterns)


def json_or_raw(text: str) -> Any:
    """``text`` decoded as JSON when it is JSON (a message body as the filter sees it)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text
