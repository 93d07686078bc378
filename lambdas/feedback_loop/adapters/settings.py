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
    reads ``POLICY_JSON``. A missing variable raises :class:`ConfigError` naming it,
    unless the field has a default (an optional feature's setting).
    """
    values: dict[str, Any] = {}
    for field in fields(kind):  # type: ignore[arg-type]
        if field.type in (Policy, "Policy"):
            values[field.name] = policy_from_json(os.environ.get("POLICY_JSON"))
            continue
        name = field.name.upper()
        value = os.environ.get(name)
        if value:
            values[field.name] = value
        elif field.default is MISSING:
            raise ConfigError(f"environment variable {name} is not set")
    return kind(**values)
