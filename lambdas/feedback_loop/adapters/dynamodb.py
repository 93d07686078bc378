"""The one way the adapters read and write DynamoDB items with the low-level client.

Values go in through boto3's ``TypeSerializer`` (floats as exact decimals) and come
back as plain ``int``/``float``, so domain code never sees ``Decimal``. A failed
condition is an answer, not an outage: :func:`condition_failed` tells them apart.
"""

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from feedback_loop.adapters.aws import aws_error, error_code

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_decimals(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, set):
        return {_plain(item) for item in value}
    return value


def to_attribute(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB attribute value."""
    return cast(dict[str, Any], _serializer.serialize(_decimals(value)))


def to_item(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A mapping as a DynamoDB item (or key)."""
    return {name: to_attribute(value) for name, value in values.items()}


def from_attribute(value: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as plain Python (numbers as int or float)."""
    return _plain(_deserializer.deserialize(cast(Any, dict(value))))


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a plain dict."""
    return {name: from_attribute(value) for name, value in item.items()}


def condition_failed(error: ClientError) -> bool:
    """True when the call was refused because its ``ConditionExpression`` did not hold."""
    return error_code(error) == CONDITIONAL_CHECK_FAILED


def conditional_update(dynamodb: Any, **params: Any) -> bool:
    """``UpdateItem`` with a ``ConditionExpression``: False when the condition did not hold
    (another writer moved on), :class:`AwsError` for any other failure."""
    try:
        dynamodb.update_item(**params)
    except ClientError as error:
        if condition_failed(error):
            return False
        raise aws_error("dynamodb.UpdateItem", error) from error
    except BotoCoreError as error:
        raise aws_error("dynamodb.UpdateItem", error) from error
    return True
