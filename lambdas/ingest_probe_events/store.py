"""DynamoDB access of Ingest_probe_events: windowed counters and subscriber profiles.

Counters (``Subscriber_counters``, one item per subscriber and KPI) take one
``UpdateItem`` per batch: ``ADD`` of the batch's bucket deltas and
``ReturnValues=ALL_NEW`` so the window is known without a read. Expired buckets
are pruned by one extra ``UpdateItem`` once more than
``STALE_BUCKETS_BEFORE_PRUNE`` of them have accumulated, so the item stays
bounded while the per-batch expression stays small (DynamoDB charges nothing
for its size, but it is parsed on every call).

Replays: Kinesis retries a batch from its lowest failed sequence number, so a
subscriber's records can arrive twice. The counter item keeps, per shard, the
highest sequence number it has applied (``Seq_<shardId>``); the update is
conditional on it, and records at or below it are not counted again.

Profiles (``Subscriber_table``) are read for the batch's subscribers with
incidents (``BatchGetItem``, 100 keys per call) and written with one
conditional ``UpdateItem`` each, guarded by ``IncidentsVersion`` so two
writers never interleave their incident lists.
"""

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from feedback_loop.contract import LastChange
from feedback_loop.incidents import ProfileUpdate
from feedback_loop.rates import (
    STALE_BUCKETS_BEFORE_PRUNE,
    Counts,
    Session,
    attribute_names,
    bucket_start,
    buckets_from_item,
    expired,
    fold,
)

BATCH_GET_LIMIT = 100
MAX_BUCKETS_PER_UPDATE = 40
BATCH_GET_ATTEMPTS = 3
SEQUENCE_WIDTH = 128

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(item) for item in value]
    return value


def to_attribute(value: Any) -> dict[str, Any]:
    """Serialise a Python value for the low-level client (floats become Decimals)."""
    return _serializer.serialize(_decimals(value))


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Deserialise a low-level item."""
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def padded(sequence_number: str) -> str:
    """Kinesis sequence numbers as fixed-width strings, so string order is numeric order."""
    return sequence_number.zfill(SEQUENCE_WIDTH)


def _first_chunk(pending: Sequence[tuple[str, Session]]) -> list[tuple[str, Session]]:
    """The longest prefix of ``pending`` touching at most ``MAX_BUCKETS_PER_UPDATE`` buckets."""
    seen: set[int] = set()
    for index, (_, session) in enumerate(pending):
        seen.add(bucket_start(session.moment))
        if len(seen) > MAX_BUCKETS_PER_UPDATE:
            return list(pending[:index])
    return list(pending)


class CounterStore:
    """``Subscriber_counters``: bucketed session and failure counts per subscriber and KPI."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table

    def add(
        self,
        phone_number: str,
        kpi: str,
        shard_id: str,
        sessions: Sequence[tuple[str, Session]],
        expires_at: int,
        window_minutes: int,
    ) -> dict[int, Counts]:
        """Count ``(sequence number, session)`` pairs not counted yet; returns all buckets.

        Normally one ``UpdateItem``; a batch spanning more than
        ``MAX_BUCKETS_PER_UPDATE`` buckets is split (in sequence order) to keep
        each update expression under DynamoDB's 4 KB limit.
        """
        key = {"PhoneNumber": {"S": phone_number}, "Kpi": {"S": kpi}}
        high_water: str | None = None
        latest: dict[str, Any] = {}
        pending = sorted(sessions, key=lambda pair: padded(pair[0]))
        while pending:
            chunk = _first_chunk(pending)
            try:
                response = self._dynamodb.update_item(
                    TableName=self._table,
                    Key=key,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    **self._counter_update(shard_id, chunk, expires_at, high_water),
                )
            except ClientError as error:
                if not _conditional_failure(error) or "Item" not in error.response:
                    raise
                # Counted by an earlier delivery (or a concurrent writer moved on):
                # skip what the stored high-water mark already covers.
                latest = from_item(error.response["Item"])
                high_water = str(latest[f"Seq_{shard_id}"])
                pending = [(seq, s) for seq, s in pending if padded(seq) > high_water]
                continue
            latest = from_item(response["Attributes"])
            high_water = padded(chunk[-1][0])
            pending = pending[len(chunk) :]
        buckets = buckets_from_item(latest)
        self._prune(key, buckets, window_minutes)
        return buckets

    @staticmethod
    def _counter_update(
        shard_id: str,
        sessions: Sequence[tuple[str, Session]],
        expires_at: int,
        high_water: str | None,
    ) -> dict[str, Any]:
        names = {"#hw": f"Seq_{shard_id}", "#exp": "ExpiresAt"}
        values: dict[str, Any] = {
            ":last": {"S": padded(max(seq for seq, _ in sessions))},
            ":exp": {"N": str(expires_at)},
        }
        adds = []
        for start, counts in sorted(fold(s for _, s in sessions).items()):
            sessions_name, failures_name = attribute_names(start)
            adds.append(f"{sessions_name} :s{start}")
            values[f":s{start}"] = {"N": str(counts.sessions)}
            if counts.failures:
                adds.append(f"{failures_name} :f{start}")
                values[f":f{start}"] = {"N": str(counts.failures)}
        if high_water is None:
            condition = "attribute_not_exists(#hw) OR #hw < :first"
            values[":first"] = {"S": padded(min(seq for seq, _ in sessions))}
        else:
            condition = "#hw = :seen"
            values[":seen"] = {"S": high_water}
        return {
            "UpdateExpression": f"ADD {', '.join(adds)} SET #hw = :last, #exp = :exp",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def _prune(self, key: dict[str, Any], buckets: Mapping[int, Counts], window: int) -> None:
        stale = expired(buckets, window)
        if len(stale) <= STALE_BUCKETS_BEFORE_PRUNE:
            return
        for first in range(0, len(stale), MAX_BUCKETS_PER_UPDATE):
            chunk = stale[first : first + MAX_BUCKETS_PER_UPDATE]
            names = [name for start in chunk for name in attribute_names(start)]
            self._dynamodb.update_item(
                TableName=self._table, Key=key, UpdateExpression="REMOVE " + ", ".join(names)
            )


class ProfileStore:
    """``Subscriber_table``: the capped recent-incident list and latest dimensions."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table

    def read(self, phone_numbers: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Stored incident lists by phone number (absent subscribers map to ``{}``).

        Subscribers DynamoDB left unprocessed after retries are missing from the result.
        """
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(phone_numbers), BATCH_GET_LIMIT):
            chunk = phone_numbers[start : start + BATCH_GET_LIMIT]
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{"PhoneNumber": {"S": phone}} for phone in chunk],
                    "ConsistentRead": True,
                    "ProjectionExpression": "PhoneNumber, RecentIncidents, IncidentsVersion",
                }
            }
            for _ in range(BATCH_GET_ATTEMPTS):
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
        """Write the batch's incidents; ``False`` if another writer changed the list meanwhile."""
        values: dict[str, Any] = {
            ":list": to_attribute(update.recent_incidents),
            ":id": {"S": update.latest["IncidentId"]},
            ":type": {"S": update.latest["EventType"]},
            ":time": {"S": update.latest["Timestamp"]},
            ":cell": {"S": update.cell},
            ":change": {"S": LastChange.INCIDENT},
            ":next": {"N": str((seen_version or 0) + 1)},
        }
        sets = [
            "RecentIncidents = :list",
            "LatestIncidentId = :id",
            "LatestIncidentType = :type",
            "LatestIncidentTime = :time",
            "Cell = :cell",
            "LastChange = :change",
            "IncidentsVersion = :next",
        ]
        for name, value in (("Device", update.device), ("Vendor", update.vendor)):
            if value is not None:
                sets.append(f"{name} = :{name.lower()}")
                values[f":{name.lower()}"] = {"S": value}
        if seen_version is None:
            condition = "attribute_not_exists(IncidentsVersion)"
        else:
            condition = "IncidentsVersion = :seen"
            values[":seen"] = {"N": str(seen_version)}
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key={"PhoneNumber": {"S": update.phone_number}},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _conditional_failure(error):
                return False
            raise
        return True
