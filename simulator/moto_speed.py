"""Memoised lookups in moto's request path: the same answers, without repeating the work.

Profiling the default day (``python -m cProfile -m simulator run``) put about a fifth of the
twin's time in moto's response serializer and a few per cent in its dispatch, recomputing
per request what depends only on the model:

- ``XFormedAttributePicker`` finds each response member of a result by asking six alias
  providers for the member's possible names. For a plain ``dict`` result (DynamoDB's items
  and attribute values) their answers depend only on the member name and its shape (name,
  type, serialization name) and the parent structure's (name, type): that is what they read.
  The names are computed once per such combination; the lookup in the result, and the
  response transformers, run as before. The serializer asks the picker once per member
  of every structure (ten for each DynamoDB attribute value, one of them present), each
  time building an ``AttributePickerContext`` and joining its path: for a ``dict`` result
  and the same picker it looks the memoised names up directly (``dict.get`` is what
  ``get_value`` does for a ``dict`` and an undotted name), and joins the path only when
  the picker has response transformers to match it against.
- ``BaseResponse.call_action`` lists the response class's methods with
  ``inspect.getmembers`` on every request; classes do not change, so once per class.
- DynamoDB's ``UpdateItem`` parses its update expression twice per request (the request
  check, then the backend) and every batch sends the same few expressions. The parsed tree
  is only read (``find_clauses``) or deep-copied before it is changed (the validators), so
  one parse per expression string serves every request; an invalid one still raises.
- Each ``UpdateItem`` then deep-copies that tree and walks it with ten validators
  (``UpdateExpressionValidator``). The tree's nodes are plain objects of an ``ABCMeta``
  class, so ``copy.deepcopy`` goes through ``__reduce_ex__`` for every node and every
  ``isinstance`` of the walk through ``ABCMeta.__instancecheck__``. A node gets a
  ``__deepcopy__`` that builds the same copy directly (as moto already does for
  ``DynamoType`` and ``Item``), and the walk asks "is this a node, is it one this
  validator processes" once per class (no class is registered as a virtual subclass);
  every validator still visits every node, in the same order, with the same hooks. The
  same goes for ``find_clauses`` (which two validators call on every clause node): whether
  it descends into a child is decided once per class.

- Every ``UpdateItem`` with a condition parses it twice (the request check, then the
  backend), each time lexing the string with patterns compiled per token. The tokens
  depend on the string alone: it is lexed once, and each parse gets new tokens (fresh
  ``children`` lists) to build its tree from; a string that does not lex still raises.
- SQS asks ``unix_time`` for the time whenever it looks at whether a message is visible
  or delayed, and ``unix_time`` rebuilt the epoch (``utcfromtimestamp(0)``) each time;
  the epoch is a constant, computed once.

Installed once per process by the twin; the handlers' calls still go through botocore and
moto in full. Like :mod:`simulator.moto_internals`, this is the place a moto upgrade that
moves these internals breaks.
"""

from __future__ import annotations

import functools
from collections import deque
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
    base = serialize.ResponseSerializer
    base.get_value = _dict_aware_get_value(base.get_value, serialize)  # type: ignore[method-assign]
    _speed_up_update_validation()
    _speed_up_condition_lexing()
    _speed_up_unix_time()
    _installed = True


def _speed_up_unix_time() -> None:
    """``unix_time`` with the epoch computed once (``utcfromtimestamp(0)`` is a constant)."""
    from moto.core import utils

    epoch = utils.utcfromtimestamp(0)

    def unix_time(dt: Any = None) -> float:
        dt = dt or utils.utcnow()  # looked up per call, as moto does (a test may patch it)
        delta = dt - epoch
        return (delta.days * 86400) + (delta.seconds + (delta.microseconds / 1e6))  # type: ignore[no-any-return]

    utils.unix_time = unix_time


def _speed_up_condition_lexing() -> None:
    """Lex each condition expression string once; every parse gets fresh tokens."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    parser_class = ConditionExpressionParser
    original = parser_class._lex_condition_expression

    @functools.lru_cache(maxsize=1024)
    def tokens_of(expression: str) -> tuple[tuple[Any, ...], ...]:
        parser = parser_class(expression, None, None)
        return tuple((n.nonterminal, n.kind, n.text, n.value) for n in original(parser))

    def lex(self: Any) -> Any:
        expression = self.condition_expression
        if type(self) is not parser_class or type(expression) is not str:
            return original(self)
        node = self.Node
        return deque(
            node(nonterminal=t, kind=k, text=x, value=v, children=[])
            for t, k, x, v in tokens_of(expression)
        )

    parser_class._lex_condition_expression = lex  # type: ignore[method-assign]


_ATOMIC = (type(None), str, int, float, bool, bytes)


def _speed_up_update_validation() -> None:
    """A direct ``__deepcopy__`` for AST nodes and a walk that classifies each class once."""
    import copy

    from moto.dynamodb.parsing import ast_nodes

    node_class = ast_nodes.Node  # type: ignore[attr-defined]
    deepcopy = copy.deepcopy

    def node_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        # What copy.deepcopy does for a plain object (``__reduce_ex__(4)``: a new
        # instance of the class, its ``__dict__`` deep-copied into it), minus the
        # round trips for the immutable leaves and the lists of children.
        cls = self.__class__
        result = cls.__new__(cls)
        memo[id(self)] = result
        state = {}
        for name, value in self.__dict__.items():
            kind = type(value)
            if kind in _ATOMIC:
                state[name] = value
            elif kind is list and id(value) not in memo:
                copied: list[Any] = []
                memo[id(value)] = copied
                for element in value:
                    copied.append(element if type(element) in _ATOMIC else deepcopy(element, memo))
                state[name] = copied
            else:
                state[name] = deepcopy(value, memo)
        result.__dict__.update(state)
        return result

    node_class.__deepcopy__ = node_deepcopy

    is_node: dict[type, bool] = {}
    processed: dict[tuple[type, type], bool] = {}
    traverser = ast_nodes.DepthFirstTraverser  # type: ignore[attr-defined]
    plain_hook = traverser.pre_processing_of_child
    plain_kinds = traverser.nodes_to_be_processed

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        kind = type(node)
        node_ = is_node.get(kind)
        if node_ is None:
            node_ = is_node[kind] = isinstance(node, node_class)
        if not node_:
            return node
        parent_node = node.parent
        if node.children is not None:
            hooked = type(self).pre_processing_of_child is not plain_hook
            for i, child_node in enumerate(node.children):
                if hooked:
                    self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        if type(self).nodes_to_be_processed is plain_kinds:
            memo = (type(self), kind)
            wanted = processed.get(memo)
            if wanted is None:
                wanted = processed[memo] = isinstance(node, self.nodes_to_be_processed())
        else:
            wanted = isinstance(node, self.nodes_to_be_processed())
        if wanted:
            node = self.process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    traverser.traverse_node_recursively = traverse_node_recursively

    # ``find_clauses`` descends into a child that is an ``Expression`` or an
    # ``UpdateExpressionFunction``; which classes those are is decided once per class.
    nested = (ast_nodes.Expression, ast_nodes.UpdateExpressionFunction)  # type: ignore[attr-defined]
    descends: dict[type, bool] = {}

    def find_clauses(self: Any, clause_types: Any) -> list[Any]:
        clauses: list[Any] = []
        for child in self.children or []:
            kind = type(child)
            if kind in clause_types:
                clauses.append(child)
                continue
            descend = descends.get(kind)
            if descend is None:
                descend = descends[kind] = isinstance(child, nested)
            if descend:
                clauses.extend(child.find_clauses(clause_types))
        return clauses

    node_class.find_clauses = find_clauses


def _described(shape: Any) -> tuple[Any, ...] | None:
    """What the alias providers read of a member's shape."""
    if shape is None:
        return None
    return (shape.name, shape.type_name, shape.serialization.get("name"))


_KEYS_OF: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _dict_aware_get_value(original: Any, serialize: Any) -> Any:
    """``ResponseSerializer.get_value`` for a ``dict`` result, without the per-member context."""
    keys_of = _KEYS_OF
    providers = serialize.DEFAULT_ALIAS_PROVIDERS
    picker_class = serialize.XFormedAttributePicker
    get_value, missing = serialize.get_value, serialize.MISSING

    def fast(self: Any, value: Any, key: str, shape: Any) -> Any:
        picker = self._value_picker
        if (
            type(value) is not dict
            or type(picker) is not picker_class
            or picker.alias_providers is not providers
        ):
            return original(self, value, key, shape)
        service = self.operation_model.service_model
        parent = getattr(shape, "parent", None)
        memo = (
            None if service is None else service.service_name,
            key,
            _described(shape),
            None if parent is None else (parent.name, parent.type_name),
        )
        keys = keys_of.get(memo)
        if keys is None:
            context = serialize.AttributePickerContext(
                obj=value,
                key=key,
                shape=shape,
                operation_model=self.operation_model,
                service_model=service,
                key_path=".".join(self.path),
            )
            keys = keys_of[memo] = tuple(picker.get_possible_keys(context))
        for possible_key in keys:
            found = (
                get_value(value, possible_key, missing)
                if "." in possible_key
                else value.get(possible_key, missing)
            )
            if found is not missing:
                break
        else:
            found = None
        transformers = picker.response_transformers
        if transformers:
            key_path = f"{'.'.join(self.path)}.{key}"
            for transform_path, transform in transformers.items():
                if key_path.endswith(transform_path):
                    return transform(found)
        return found

    return fast


def _dict_aware_call(original: Any, serialize: Any) -> Any:
    """``AttributePicker.__call__`` with the possible keys of a ``dict`` result memoised."""
    keys_of = _KEYS_OF
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
