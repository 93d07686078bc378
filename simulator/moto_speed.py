"""Memoised lookups in moto's request path: the same answers, without repeating the work.

Profiling the default day (``python -m cProfile -m simulator run``) put about a fifth of the
twin's time in moto's response serializer and a few per cent in its dispatch, recomputing
per request what depends only on the model:

- ``XFormedAttributePicker`` finds each response member of a result by asking six alias
  providers for the member's possible names. For a plain ``dict`` result (DynamoDB's items
  and attribute values) their answers depend only on the member name and its shape (name,
  type, serialization name) and the parent structure's (name, type): that is what they read.
  The names are computed once per such combination; the lookup in the result, and the
  response transformers, run as before.
- ``BaseResponse.call_action`` lists the response class's methods with
  ``inspect.getmembers`` on every request; classes do not change, so once per class.
- DynamoDB's ``UpdateItem`` parses its update expression twice per request (the request
  check, then the backend) and every batch sends the same few expressions. The parsed tree
  is only read (``find_clauses``) or deep-copied before it is changed (the validators), so
  one parse per expression string serves every request; an invalid one still raises.

Installed once per process by the twin; the handlers' calls still go through botocore and
moto in full. Like :mod:`simulator.moto_internals`, this is the place a moto upgrade that
moves these internals breaks.
"""

from __future__ import annotations

import functools
from typing import Any

_installed = False


def speed_up_moto() -> None:
    """Install the memoised lookups (idempotent)."""
    global _installed
    if _installed:
        return
    import moto.core.responses as responses
    from moto.core import serialize
    from moto.dynamodb.parsing.expressions import (  # type: ignore[attr-defined]
        UpdateExpressionParser,
    )

    responses.method_names_from_class = functools.cache(responses.method_names_from_class)  # type: ignore[assignment]
    parse = functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make)
    UpdateExpressionParser.make = staticmethod(parse)  # type: ignore[method-assign,assignment]
    picker = serialize.XFormedAttributePicker
    picker.__call__ = _dict_aware_call(picker.__call__, serialize)  # type: ignore[method-assign]
    _installed = True


def _described(shape: Any) -> tuple[Any, ...] | None:
    """What the alias providers read of a member's shape."""
    if shape is None:
        return None
    return (shape.name, shape.type_name, shape.serialization.get("name"))


def _dict_aware_call(original: Any, serialize: Any) -> Any:
    """``AttributePicker.__call__`` with the possible keys of a ``dict`` result memoised."""
    keys_of: dict[tuple[Any, ...], tuple[str, ...]] = {}
    providers = serialize.DEFAULT_ALIAS_PROVIDERS
    get_value, missing = serialize.get_value, serialize.MISSING

    def call(self: Any, context: Any) -> Any:
        obj = context.obj
        if type(obj) is not dict or self.alias_providers is not providers:
            return original(self, context)
        shape = context.shape
        parent = getattr(shape, "parent", None)
        service = context.service_model
        memo = (
            None if service is None else service.service_name,
            context.key,
            _described(shape),
            None if parent is None else (parent.name, parent.type_name),
        )
        keys = keys_of.get(memo)
        if keys is None:
            keys = keys_of[memo] = tuple(self.get_possible_keys(context))
        for possible_key in keys:
            value = get_value(obj, possible_key, missing)
            if value is not missing:
                break
        else:
            value = None
        key_path = f"{context.key_path}.{context.key}"
        for transform_path, transform in self.response_transformers.items():
            if key_path.endswith(transform_path):
                return transform(value)
        return value

    return call
