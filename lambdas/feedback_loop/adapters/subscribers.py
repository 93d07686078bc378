"""``Subscriber_table`` access for feedback: apply a rating once per contact, opt out, read.

DynamoDB cannot multiply inside an update expression, so the sentiment blend
needs the stored value: a consistent ``GetItem`` reads it, and a conditional
``UpdateItem`` writes the result only if ``FeedbackContacts`` is still what was
read (optimistic concurrency: every applied rating changes that list, so it
versions the sentiment) and does not contain this contact id (replay guard).
A lost race is retried from a fresh read.
"""

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from feedback_loop.adapters.aws import aws_error, translated
from feedback_loop.adapters.dynamodb import condition_failed
from feedback_loop.contract import LastChange
from feedback_loop.errors import FeedbackLoopError, InvalidRecord
from feedback_loop.ports import AppliedRating
from feedback_loop.sentiment import NEUTRAL, SentimentUpdate

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

MAX_FEEDBACK_CONTACTS = 20
MAX_ATTEMPTS = 3

_RATING_UPDATE = (
    "SET Sentiment = :sentiment, FeedbackContacts = :contacts, LastFeedback = :last, "
    "LastFeedbackAt = :at, LastChange = :change"
)
_NEW_CONTACT = "attribute_exists(PhoneNumber) AND NOT contains(FeedbackContacts, :cid)"


class ConcurrentFeedback(FeedbackLoopError):
    """Other ratings for the same subscriber kept winning the race; the flow may retry."""


def _number(value: Mapping[str, str] | None) -> float | None:
    return float(value["N"]) if value else None


def _string(value: Mapping[str, str] | None) -> str | None:
    return value["S"] if value else None


class DynamoSubscriberStore:
    """Implements ``feedback_loop.ports.SubscriberStore`` on a low-level DynamoDB client."""

    def __init__(self, dynamodb: "DynamoDBClient", table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def apply_rating(
        self,
        phone_number: str,
        contact_id: str,
        received_at: str,
        compute: Callable[[float | None], SentimentUpdate],
    ) -> AppliedRating:
        """Apply ``compute(stored sentiment)`` unless this contact was applied before.

        A replay returns the result recorded the first time (kept in
        ``LastFeedback`` for the latest contact) and writes nothing.
        """
        for _ in range(MAX_ATTEMPTS):
            item = self._get(phone_number, consistent=True)
            if item is None:
                raise InvalidRecord("unknown_subscriber", f"contact {contact_id}")
            seen = item.get("FeedbackContacts")
            contacts = [entry["S"] for entry in seen["L"]] if seen else []
            device, vendor = _string(item.get("Device")), _string(item.get("Vendor"))
            if contact_id in contacts:
                return _replay(item, contact_id, device, vendor)
            update = compute(_number(item.get("Sentiment")))
            values = {
                ":sentiment": {"N": repr(update.sentiment)},
                ":contacts": {
                    "L": [{"S": c} for c in [*contacts, contact_id][-MAX_FEEDBACK_CONTACTS:]]
                },
                ":last": {
                    "M": {
                        "ContactId": {"S": contact_id},
                        "PreviousSentiment": {"N": repr(update.previous)},
                        "Sentiment": {"N": repr(update.sentiment)},
                        "ChangeSentiment": {"N": repr(update.change)},
                        "At": {"S": received_at},
                    }
                },
                ":at": {"S": received_at},
                ":change": {"S": LastChange.FEEDBACK},
                ":cid": {"S": contact_id},
            }
            if seen:
                condition = f"{_NEW_CONTACT} AND FeedbackContacts = :seen"
                values[":seen"] = seen
            else:
                condition = f"{_NEW_CONTACT} AND attribute_not_exists(FeedbackContacts)"
            try:
                self._dynamodb.update_item(
                    TableName=self._table,
                    Key={"PhoneNumber": {"S": phone_number}},
                    UpdateExpression=_RATING_UPDATE,
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
            except ClientError as error:
                if condition_failed(error):
                    continue
                raise aws_error("dynamodb.UpdateItem", error) from error
            except BotoCoreError as error:
                raise aws_error("dynamodb.UpdateItem", error) from error
            return AppliedRating(update.sentiment, update, received_at, device, vendor, False)
        raise ConcurrentFeedback(
            f"gave up applying contact {contact_id} after {MAX_ATTEMPTS} tries"
        )

    def opt_out(self, phone_number: str, received_at: str) -> float | None:
        """Set ``OptedOut`` (idempotent); ``LastChange = feedback`` keeps the engagement asleep."""
        try:
            response = self._dynamodb.update_item(
                TableName=self._table,
                Key={"PhoneNumber": {"S": phone_number}},
                UpdateExpression=(
                    "SET OptedOut = :true, LastFeedbackAt = :at, LastChange = :change"
                ),
                ConditionExpression="attribute_exists(PhoneNumber)",
                ExpressionAttributeValues={
                    ":true": {"BOOL": True},
                    ":at": {"S": received_at},
                    ":change": {"S": LastChange.FEEDBACK},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if condition_failed(error):
                raise InvalidRecord(
                    "unknown_subscriber", "opt-out for an unknown subscriber"
                ) from error
            raise aws_error("dynamodb.UpdateItem", error) from error
        except BotoCoreError as error:
            raise aws_error("dynamodb.UpdateItem", error) from error
        return _number(response["Attributes"].get("Sentiment"))

    def current_sentiment(self, phone_number: str) -> float | None:
        """The stored sentiment (``None`` when absent or the subscriber is unknown)."""
        item = self._get(phone_number, consistent=False)
        return _number(item.get("Sentiment")) if item else None

    def _get(self, phone_number: str, *, consistent: bool) -> dict[str, Any] | None:
        with translated("dynamodb.GetItem"):
            response = self._dynamodb.get_item(
                TableName=self._table,
                Key={"PhoneNumber": {"S": phone_number}},
                ConsistentRead=consistent,
            )
        return response.get("Item")


def _replay(
    item: Mapping[str, Any], contact_id: str, device: str | None, vendor: str | None
) -> AppliedRating:
    current = _number(item.get("Sentiment"))
    current = NEUTRAL if current is None else current
    last = item.get("LastFeedback", {}).get("M", {})
    if _string(last.get("ContactId")) != contact_id:
        return AppliedRating(current, None, None, device, vendor, True)
    update = SentimentUpdate(
        previous=float(last["PreviousSentiment"]["N"]),
        sentiment=float(last["Sentiment"]["N"]),
        change=float(last["ChangeSentiment"]["N"]),
    )
    return AppliedRating(current, update, last["At"]["S"], device, vendor, True)
