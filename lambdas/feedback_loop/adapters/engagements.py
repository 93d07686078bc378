"""Records engagements on ``Subscriber_table`` with an optimistic, conditional write.

The whole ``Engagements`` map is written in one ``UpdateItem`` conditioned on
every field of it being as the decision saw it (and on the subscriber not
having opted out since), so two concurrent deliveries cannot both engage:
the loser gets the current item back and decides again. ``LastChange`` is set
to ``engagement`` so the stream filter does not wake this function again.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from feedback_loop.adapters.aws import aws_error
from feedback_loop.adapters.dynamodb import condition_failed, from_item, to_attribute
from feedback_loop.contract import EVENT_TYPES, LastChange
from feedback_loop.decision import CALLS_DAY, CALLS_TODAY, EngagementState

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

_FIELDS = (*EVENT_TYPES, CALLS_DAY, CALLS_TODAY)


class EngagementStore:
    """Conditional writes of the ``Engagements`` map."""

    def __init__(self, dynamodb: "DynamoDBClient", table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table

    def record(
        self,
        phone_number: str,
        seen: Mapping[str, Any] | None,
        state: EngagementState,
    ) -> dict[str, Any] | None:
        """Write ``state`` if the item still holds ``seen``; else return the current item."""
        names = {"#e": "Engagements"}
        values: dict[str, Any] = {
            ":state": to_attribute(state.to_item()),
            ":change": {"S": LastChange.ENGAGEMENT},
            ":true": {"BOOL": True},
        }
        conditions = ["(attribute_not_exists(OptedOut) OR OptedOut <> :true)"]
        if seen is None:
            conditions.append("attribute_not_exists(#e)")
        else:
            for index, field in enumerate(_FIELDS):
                names[f"#f{index}"] = field
                if field in seen:
                    values[f":v{index}"] = to_attribute(seen[field])
                    conditions.append(f"#e.#f{index} = :v{index}")
                else:
                    conditions.append(f"attribute_not_exists(#e.#f{index})")
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key={"PhoneNumber": {"S": phone_number}},
                UpdateExpression="SET #e = :state, LastChange = :change",
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise aws_error("dynamodb.UpdateItem", error) from error
            return from_item(error.response.get("Item", {}))
        except BotoCoreError as error:
            raise aws_error("dynamodb.UpdateItem", error) from error
        return None
