"""``Contact_state``: counters the contact policy shares across subscribers.

Two kinds of item, keyed ``(Key, Window)`` and expiring by TTL (``ExpiresAt``):

* ``cell#<cell>`` / window start: the distinct subscribers of a cell who crossed a
  threshold in that window until its outage was declared (``Subscribers``, a string set,
  so a replay adds nothing, and no longer growing once it is no longer read),
  the ones sampled to be contacted during an outage (``Sampled``) and when its outage
  signal was sent (``Declared``);
* ``pacing`` / minute: the contacts started in that minute, against the budget;
* ``ratings#<cell>`` / period start: the rating budget's tally of the cell's ratings in
  the period (``Ratings``, ``Total`` and ``Squares`` of their sentiment changes), and
  ``rated#<engagement id>`` / period start: the mark that an engagement's rating is in
  it. Both are written in one transaction whose mark must be new, so a replayed answer
  adds nothing; every item stays a few dozen bytes.

Every change is one atomic ``UpdateItem`` (or one transaction); a budget or a sample is
claimed with a condition, so concurrent diallers never exceed it.
"""

import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from feedback_loop.adapters.aws import aws_error, translated
from feedback_loop.adapters.dynamodb import (
    condition_failed,
    conditional_update,
    from_attribute,
    to_attribute,
)
from feedback_loop.contact_policy import RatingTally
from feedback_loop.ports import CellWindow
from feedback_loop.timeutil import format_utc

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

# Items outlive their window by a day: long enough for any late decision or dial.
RETENTION = timedelta(days=1)
# Concurrent transactions on one ``ratings#<cell>`` item cancel each other with
# ``TransactionConflict`` ("Amazon DynamoDB Developer Guide, Transaction conflict handling
# in DynamoDB"); the SDK does not retry a cancelled transaction. Tried this often in all,
# with full-jitter back-off (at most 0.05 + 0.1 + 0.2 s asleep), before the batch fails.
CONFLICT_ATTEMPTS = 4
CONFLICT_BACKOFF_SECONDS = 0.05


class CellState:
    """Outage counts, outage samples, the pacing budget and the cells' rating tallies."""

    def __init__(
        self,
        dynamodb: "DynamoDBClient",
        table: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._sleep = sleep

    def _key(self, key: str, window: datetime) -> dict[str, Any]:
        return {"Key": {"S": key}, "Window": {"S": format_utc(window)}}

    def _expires(self, window: datetime) -> dict[str, str]:
        return {"N": str(int((window + RETENTION).timestamp()))}

    def count_subscriber(self, cell: str, window: datetime, subscriber: str) -> CellWindow:
        """Add ``subscriber`` to the cell's window until its outage is declared; returns the
        window as it is now.

        Once declared the set stops growing: nothing reads more of it than "at least the
        threshold", and a write costs a unit per KB of the item (DynamoDB Developer Guide,
        "Read/write capacity mode"), so 5,000 subscribers of one outage would make each
        later count cost about 80 units, all on one partition.
        """
        attributes: Mapping[str, Any]
        with translated("dynamodb.UpdateItem"):
            try:
                response = self._dynamodb.update_item(
                    TableName=self._table,
                    Key=self._key(f"cell#{cell}", window),
                    UpdateExpression="ADD Subscribers :s SET ExpiresAt = :exp",
                    ConditionExpression="attribute_not_exists(Declared)",
                    ExpressionAttributeValues={
                        ":s": {"SS": [subscriber]},
                        ":exp": self._expires(window),
                    },
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                attributes = response["Attributes"]
            except ClientError as error:
                if not condition_failed(error):
                    raise
                # Declared: the window as it stands (ReturnValuesOnConditionCheckFailure).
                failed: Mapping[str, Any] = error.response
                attributes = failed["Item"]
        return CellWindow(len(attributes["Subscribers"]["SS"]), "Declared" in attributes)

    def declare_outage(self, cell: str, window: datetime, at: datetime) -> None:
        """Note that the window's outage signal was sent (the first time is kept)."""
        with translated("dynamodb.UpdateItem"):
            self._dynamodb.update_item(
                TableName=self._table,
                Key=self._key(f"cell#{cell}", window),
                UpdateExpression="SET Declared = if_not_exists(Declared, :at), ExpiresAt = :exp",
                ExpressionAttributeValues={
                    ":at": {"S": format_utc(at)},
                    ":exp": self._expires(window),
                },
            )

    def subscribers(self, cell: str, window: datetime) -> int:
        """Distinct subscribers of the cell who crossed a threshold in the window."""
        with translated("dynamodb.GetItem"):
            response = self._dynamodb.get_item(
                TableName=self._table,
                Key=self._key(f"cell#{cell}", window),
                ConsistentRead=True,
                ProjectionExpression="Subscribers",
            )
        return len(response.get("Item", {}).get("Subscribers", {}).get("SS", []))

    def claim_sample(self, cell: str, window: datetime, subscriber: str, size: int) -> bool:
        """Take one of the outage's ``size`` sample slots (idempotent for the subscriber)."""
        return self._claim(
            self._key(f"cell#{cell}", window),
            "ADD Sampled :s SET ExpiresAt = :exp",
            "attribute_not_exists(Sampled) OR size(Sampled) < :size OR contains(Sampled, :one)",
            {
                ":s": {"SS": [subscriber]},
                ":one": {"S": subscriber},
                ":size": {"N": str(size)},
                ":exp": self._expires(window),
            },
        )

    def claim_pacing(self, minute: datetime, budget: int) -> bool:
        """Take one of the minute's ``budget`` contacts."""
        return self._claim(
            self._key("pacing", minute),
            "ADD Contacts :one SET ExpiresAt = :exp",
            "attribute_not_exists(Contacts) OR Contacts < :budget",
            {":one": {"N": "1"}, ":budget": {"N": str(budget)}, ":exp": self._expires(minute)},
        )

    def ratings(self, cell: str, period: datetime) -> RatingTally:
        """The cell's rating tally for the period (strongly consistent: a rating counted a
        moment ago counts)."""
        with translated("dynamodb.GetItem"):
            response = self._dynamodb.get_item(
                TableName=self._table,
                Key=self._key(f"ratings#{cell}", period),
                ConsistentRead=True,
                ProjectionExpression="Ratings, #t, Squares",
                ExpressionAttributeNames={"#t": "Total"},
            )
        item = response.get("Item", {})
        if not item:
            return RatingTally()
        return RatingTally(
            int(from_attribute(item["Ratings"])),
            float(from_attribute(item["Total"])),
            float(from_attribute(item["Squares"])),
        )

    def count_rating(
        self,
        cell: str,
        period: datetime,
        engagement_id: str,
        change: float,
        expires: datetime,
        mark_expires: datetime,
    ) -> bool:
        """Add the engagement's rating to the cell's tally unless it is there already.

        One ``TransactWriteItems``: the engagement's mark, on condition that it is new, and
        the tally's ``ADD`` (DynamoDB adds decimal numbers exactly). "Amazon DynamoDB API
        Reference, TransactWriteItems": the actions succeed or fail together, so a
        replayed answer is refused by its mark and changes nothing. A transaction cancelled
        by a concurrent writer of the tally (``TransactionConflict``) is tried again, a few
        times; the mark's ``ConditionalCheckFailed`` means the rating is counted already.
        """
        expires_at = {"N": str(int(expires.timestamp()))}
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": self._key(f"rated#{engagement_id}", period),
                    "UpdateExpression": "SET ExpiresAt = :exp",
                    "ConditionExpression": "attribute_not_exists(ExpiresAt)",
                    "ExpressionAttributeValues": {
                        ":exp": {"N": str(int(mark_expires.timestamp()))}
                    },
                }
            },
            {
                "Update": {
                    "TableName": self._table,
                    "Key": self._key(f"ratings#{cell}", period),
                    "UpdateExpression": "ADD Ratings :one, #t :change, Squares :square "
                    "SET ExpiresAt = :exp",
                    "ExpressionAttributeNames": {"#t": "Total"},
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":change": to_attribute(change),
                        ":square": to_attribute(change * change),
                        ":exp": expires_at,
                    },
                }
            },
        ]
        attempt = 1
        while True:
            try:
                self._dynamodb.transact_write_items(TransactItems=items)
                return True
            except ClientError as error:
                reasons = error.response.get("CancellationReasons", [])
                codes = [reason.get("Code") for reason in reasons]
                if codes and codes[0] == "ConditionalCheckFailed":
                    return False
                if "TransactionConflict" not in codes or attempt == CONFLICT_ATTEMPTS:
                    raise aws_error("dynamodb.TransactWriteItems", error) from error
            except BotoCoreError as error:
                raise aws_error("dynamodb.TransactWriteItems", error) from error
            self._sleep(random.uniform(0, CONFLICT_BACKOFF_SECONDS * 2 ** (attempt - 1)))
            attempt += 1

    def _claim(
        self, key: dict[str, Any], update: str, condition: str, values: dict[str, Any]
    ) -> bool:
        return conditional_update(
            self._dynamodb,
            TableName=self._table,
            Key=key,
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
