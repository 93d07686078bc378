"""Typed handler settings read from environment variables, validated at cold start."""

import os
from dataclasses import MISSING, fields
from typing import Any, TypeVar

from feedback_loop.errors import ConfigError
from feedback_loop.policy import Policy, policy_from_json

Settings = TypeVar("Settings")


def load_settings(kind: type[Settings]) -> Settings:
    """Build the dataclass ``kind`` from the environment variable named after each field.

    A field ``lake_bucket`` reads ``LAKE_BUCKET``; a field typed :class:`Policy`
    reads ``POLICY_JSON``; a field typed ``int`` must hold a whole number. A missing
    variable raises :class:`ConfigError` naming it, unless the field has a default (an
    optional feature's setting); so does a field typed ``int`` that holds something else.
    """
    values: dict[str, Any] = {}
    for field in fields(kind):  # type: ignore[arg-type]
        if field.type in (Policy, "Policy"):
            values[field.name] = policy_from_json(os.environ.get("POLICY_JSON"))
            continue
        name = field.name.upper()
        value = os.environ.get(name)
        if value and field.type in (int, "int"):
            values[field.name] = _whole(name, value)
        elif value:
            values[field.name] = value
        elif field.default is MISSING:
            raise ConfigError(f"environment variable {name} is not set")
    return kind(**values)


def _whole(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name} is not a whole number: {value!r}") from None
