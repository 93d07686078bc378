"""``Subscriber_counters``: bucketed session and failure counts per subscriber and KPI.

One item per (subscriber, KPI) takes one ``UpdateItem`` per batch: ``ADD`` of the
batch's bucket deltas and ``ReturnValues=ALL_NEW`` so the window is known without a
read. Expired buckets are pruned by one extra ``UpdateItem`` once more than
``STALE_BUCKETS_BEFORE_PRUNE`` of them have accumulated, so the item stays bounded
while the per-batch expression stays small.

Replays: Kinesis retries a batch from its lowest failed sequence number, so a
subscriber's records can arrive twice. The item keeps, per shard, the highest
position it has applied (``Seq_<shardId>``); the update is conditional on it, and
records at or below it are not counted again. A position is the sequence number, plus
``:<subSequenceNumber>`` for the later records of a KPL aggregate (which share the
aggregate's sequence number).
"""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from feedback_loop.adapters.aws import aws_error, translated
from feedback_loop.adapters.dynamodb import condition_failed, from_item
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

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

MAX_BUCKETS_PER_UPDATE = 40
SEQUENCE_WIDTH = 128
# The KPL's sub-sequence numbers are 64-bit: 20 decimal digits.
SUBSEQUENCE_WIDTH = 20


def padded(position: str) -> str:
    """Stream positions as fixed-width strings, so string order is stream order.

    ``<sequence number>`` sorts before ``<same sequence number>:<sub>``, and a plain
    record's padded form is what the table already holds for it.
    """
    sequence_number, _, sub = position.partition(":")
    base = sequence_number.zfill(SEQUENCE_WIDTH)
    return f"{base}:{sub.zfill(SUBSEQUENCE_WIDTH)}" if sub else base


def _first_chunk(
    pending: Sequence[tuple[str, Session]], window_minutes: int
) -> list[tuple[str, Session]]:
    """The longest prefix of ``pending`` touching at most ``MAX_BUCKETS_PER_UPDATE`` buckets."""
    seen: set[int] = set()
    for index, (_, session) in enumerate(pending):
        seen.add(bucket_start(session.moment, window_minutes))
        if len(seen) > MAX_BUCKETS_PER_UPDATE:
            return list(pending[:index])
    return list(pending)


class CounterStore:
    """``Subscriber_counters``: bucketed session and failure counts per subscriber and KPI."""

    def __init__(self, dynamodb: "DynamoDBClient", table: str) -> None:
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
        """Count ``(position, session)`` pairs not counted yet; returns all buckets.

        Normally one ``UpdateItem``; a batch spanning more than
        ``MAX_BUCKETS_PER_UPDATE`` buckets is split (in sequence order) to keep
        each update expression under DynamoDB's 4 KB limit.
        """
        key = {"PhoneNumber": {"S": phone_number}, "Kpi": {"S": kpi}}
        high_water: str | None = None
        latest: dict[str, Any] = {}
        pending = sorted(sessions, key=lambda pair: padded(pair[0]))
        while pending:
            chunk = _first_chunk(pending, window_minutes)
            try:
                response = self._dynamodb.update_item(
                    TableName=self._table,
                    Key=key,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    **self._counter_update(shard_id, chunk, expires_at, high_water, window_minutes),
                )
            except BotoCoreError as error:
                raise aws_error("dynamodb.UpdateItem", error) from error
            except ClientError as error:
                if not condition_failed(error) or "Item" not in error.response:
                    raise aws_error("dynamodb.UpdateItem", error) from error
                # Counted by an earlier delivery (or a concurrent writer moved on):
                # skip what the stored high-water mark already covers.
                latest = from_item(cast(dict[str, Any], error.response)["Item"])
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
        window_minutes: int,
    ) -> dict[str, Any]:
        names = {"#hw": f"Seq_{shard_id}", "#exp": "ExpiresAt"}
        values: dict[str, Any] = {
            ":last": {"S": max(padded(seq) for seq, _ in sessions)},
            ":exp": {"N": str(expires_at)},
        }
        adds = []
        for start, counts in sorted(fold((s for _, s in sessions), window_minutes).items()):
            sessions_name, failures_name = attribute_names(start)
            adds.append(f"{sessions_name} :s{start}")
            values[f":s{start}"] = {"N": str(counts.sessions)}
            if counts.failures:
                adds.append(f"{failures_name} :f{start}")
                values[f":f{start}"] = {"N": str(counts.failures)}
        if high_water is None:
            condition = "attribute_not_exists(#hw) OR #hw < :first"
            values[":first"] = {"S": min(padded(seq) for seq, _ in sessions)}
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
            with translated("dynamodb.UpdateItem"):
                self._dynamodb.update_item(
                    TableName=self._table, Key=key, UpdateExpression="REMOVE " + ", ".join(names)
                )
