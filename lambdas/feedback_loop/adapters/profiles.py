"""``Subscriber_table`` as ingest needs it: the capped recent-incident list and dimensions.

Profiles are read for the batch's subscribers with incidents (``BatchGetItem``, 100
keys per call) and written with one conditional ``UpdateItem`` each (more for a batch
whose incidents exceed ``incidents.INCIDENTS_BUDGET``), guarded by ``IncidentsVersion`` so
two writers never interleave their updates.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from feedback_loop.adapters.aws import translated
from feedback_loop.adapters.dynamodb import conditional_update, from_item, to_attribute
from feedback_loop.contract import (
    INCIDENTS_VERSION,
    LAST_CHANGE,
    LAST_FEEDBACK,
    NEW_INCIDENTS,
    PHONE_NUMBER,
    SEEN_INCIDENTS,
    LastChange,
)
from feedback_loop.incidents import ProfileUpdate, ProfileWrite

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

BATCH_GET_LIMIT = 100
BATCH_GET_ATTEMPTS = 3


class ProfileStore:
    """``Subscriber_table``: the capped recent-incident list and latest dimensions."""

    def __init__(self, dynamodb: "DynamoDBClient", table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table

    def read(self, phone_numbers: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Stored replay guards (``SeenIncidents``, ``IncidentsVersion``) by phone number.

        A subscriber with no item yet maps to ``{}``.

        Subscribers DynamoDB left unprocessed after retries are missing from the result.
        """
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(phone_numbers), BATCH_GET_LIMIT):
            chunk = phone_numbers[start : start + BATCH_GET_LIMIT]
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{"PhoneNumber": {"S": phone}} for phone in chunk],
                    "ConsistentRead": True,
                    "ProjectionExpression": ", ".join(
                        (PHONE_NUMBER, SEEN_INCIDENTS, INCIDENTS_VERSION)
                    ),
                }
            }
            for _ in range(BATCH_GET_ATTEMPTS):
                with translated("dynamodb.BatchGetItem"):
                    response = self._dynamodb.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    profile = from_item(item)
                    found[profile["PhoneNumber"]] = profile
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                unprocessed = {k["PhoneNumber"]["S"] for k in request[self._table]["Keys"]}
                chunk = [phone for phone in chunk if phone not in unprocessed]
            for phone in chunk:
                found.setdefault(phone, {})
        return found

    def write(self, update: ProfileUpdate, seen_version: int | None) -> bool:
        """Write the batch's incidents; ``False`` if another writer changed them meanwhile.

        Each of ``update.writes`` is one ``UpdateItem`` (one stream record), bumping
        ``IncidentsVersion``; if one loses the race, the ones before it stay recorded and
        the retried batch finds their incidents in ``SeenIncidents``.
        """
        version = seen_version
        for write in update.writes:
            if not self._write_one(update, write, version):
                return False
            version = (version or 0) + 1
        return True

    def _write_one(self, update: ProfileUpdate, write: ProfileWrite, version: int | None) -> bool:
        values: dict[str, Any] = {
            ":new": to_attribute(write.new_incidents),
            ":seen": to_attribute(write.seen_incidents),
            ":change": {"S": LastChange.INCIDENT},
            ":next": {"N": str((version or 0) + 1)},
        }
        sets = [
            f"{NEW_INCIDENTS} = :new",
            f"{SEEN_INCIDENTS} = :seen",
            f"{LAST_CHANGE} = :change",
            f"{INCIDENTS_VERSION} = :next",
        ]
        for name, value in update.dimensions().items():
            sets.append(f"{name} = :{name.lower()}")
            values[f":{name.lower()}"] = {"S": value}
        if version is None:
            condition = f"attribute_not_exists({INCIDENTS_VERSION})"
        else:
            condition = f"{INCIDENTS_VERSION} = :version"
            values[":version"] = {"N": str(version)}
        # The last answer has reached the table's stream with the write that recorded it;
        # clearing it keeps the item within one write unit (docs/ARCHITECTURE.md).
        return conditional_update(
            self._dynamodb,
            TableName=self._table,
            Key={PHONE_NUMBER: {"S": update.phone_number}},
            UpdateExpression="SET " + ", ".join(sets) + f" REMOVE {LAST_FEEDBACK}",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
