"""``Subscriber_table`` as the contact policy needs it: read the view, write the contact state.

The contact state (``Episode``, ``ContactHistory``) is written whole in one
``UpdateItem``, conditioned on ``ContactVersion`` being the version it was read at, so
the decision and the dialler never interleave their changes: the loser gets the current
item back and decides again. (An opt-out recorded meanwhile does not bump the version:
the dialler reads the profile again right before each contact.)
``LastChange`` is set to ``engagement`` so the stream filter does not wake
``Read_after_incident`` again, and ``NewIncidents`` (read from the stream already) is
removed.
"""

from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from feedback_loop.adapters.aws import aws_error, translated
from feedback_loop.adapters.dynamodb import condition_failed, from_item, to_attribute
from feedback_loop.contract import LAST_CHANGE, NEW_INCIDENTS, PHONE_NUMBER, LastChange
from feedback_loop.episodes import (
    CONTACT_HISTORY,
    CONTACT_VERSION,
    EPISODE,
    ContactState,
    SubscriberView,
)

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient


class ContactStore:
    """Conditional reads and writes of a subscriber's contact state."""

    def __init__(self, dynamodb: "DynamoDBClient", table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table

    def load(self, phone_number: str) -> SubscriberView | None:
        """The subscriber as the policy sees it now (``None``: no profile)."""
        with translated("dynamodb.GetItem"):
            response = self._dynamodb.get_item(
                TableName=self._table,
                Key={PHONE_NUMBER: {"S": phone_number}},
                ConsistentRead=True,
            )
        item = response.get("Item")
        return None if item is None else SubscriberView.from_profile(phone_number, from_item(item))

    def record(self, phone_number: str, state: ContactState) -> dict[str, Any] | None:
        """Write ``state`` if the item is still at ``state.version``; else return the item.

        The stored version becomes ``state.version + 1``.
        """
        values: dict[str, Any] = {
            ":history": to_attribute(list(state.history)),
            ":next": {"N": str(state.version + 1)},
            ":change": {"S": LastChange.ENGAGEMENT},
        }
        sets = [
            f"{CONTACT_HISTORY} = :history",
            f"{CONTACT_VERSION} = :next",
            f"{LAST_CHANGE} = :change",
        ]
        # The decision has read ``NewIncidents`` from the stream record of the write that
        # added them; clearing them keeps the item within one write unit.
        removes = [NEW_INCIDENTS]
        if state.episode is None:
            removes.append(EPISODE)
        else:
            sets.append(f"{EPISODE} = :episode")
            values[":episode"] = to_attribute(state.episode.to_item(phone_number))
        if state.version == 0:
            condition = f"attribute_not_exists({CONTACT_VERSION})"
        else:
            condition = f"{CONTACT_VERSION} = :seen"
            values[":seen"] = {"N": str(state.version)}
        expression = "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes)
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key={PHONE_NUMBER: {"S": phone_number}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise aws_error("dynamodb.UpdateItem", error) from error
            return from_item(cast(dict[str, Any], error.response).get("Item", {}))
        except BotoCoreError as error:
            raise aws_error("dynamodb.UpdateItem", error) from error
        return None
