"""Every read the twin makes into moto's in-memory backends, in one place.

The event-source emulator must know whether polling would return anything (a FIFO
message behind an in-flight one of its group, the newest record of a shard) without
changing state, and the summary counts what waits in dead-letter queues without
receiving it. The AWS APIs cannot answer either without side effects, so these functions
read moto's models directly. The lake copy reads object bodies there too: a ``GetObject``
per object through botocore and moto cost seconds of every run and checked nothing.
Everything that changes state goes through the AWS API.
Kinesis retention is the one write: records the only consumer has read are dropped early.
A moto upgrade that moves these internals breaks this module only.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.provision import ACCOUNT_ID, Estate, QueueInfo


def moto_queue_depth(queue: QueueInfo) -> int:
    """Messages of ``queue`` a ReceiveMessage could return now, read from moto.

    That is ApproximateNumberOfMessages (the visible ones), less, on a FIFO queue, those
    waiting behind an in-flight message of their group: polling for them would return
    nothing until that message is deleted or becomes visible again.
    """
    from moto.sqs.models import sqs_backends

    region = queue.arn.split(":")[3]
    model = sqs_backends[ACCOUNT_ID][region].queues[queue.name]
    visible = model.messages
    if not model.fifo_queue:
        return len(visible)
    busy = {m.group_id for m in model.pending_messages if not m.visible}
    return sum(1 for m in visible if m.group_id not in busy)


def moto_kinesis_latest(region: str) -> Callable[[str], dict[str, int]]:
    """Newest sequence number per shard of a stream in moto (-1 when a shard is empty)."""
    from moto.kinesis.models import kinesis_backends

    def peek(stream_name: str) -> dict[str, int]:
        stream = kinesis_backends[ACCOUNT_ID][region].streams[stream_name]
        return {
            shard_id: next(reversed(shard.records)) if shard.records else -1
            for shard_id, shard in stream.shards.items()
        }

    return peek


def moto_kinesis_trim(region: str) -> Callable[[str, str, int], None]:
    """Drop records up to a checkpoint from moto's shard: retention, done early.

    moto scans a shard from its first record on every GetRecords and PutRecords, which
    makes a day of traffic quadratic. The only consumer has read (and buffered) these
    records, so nothing can observe their removal. The newest record stays, because moto
    numbers the next record after it.
    """
    from moto.kinesis.models import kinesis_backends

    def trim(stream_name: str, shard_id: str, up_to: int) -> None:
        records = kinesis_backends[ACCOUNT_ID][region].streams[stream_name].shards[shard_id].records
        newest = next(reversed(records), None)
        for sequence in [s for s in records if s <= up_to and s != newest]:
            del records[sequence]

    return trim


def moto_stream_latest(region: str) -> Callable[[str], int]:
    """Newest sequence number of a DynamoDB table's stream in moto (-1 when empty)."""
    from moto.dynamodb.models import dynamodb_backends

    def peek(stream_arn: str) -> int:
        table_name = stream_arn.split(":", 5)[5].split("/")[1]
        shard = dynamodb_backends[ACCOUNT_ID][region].tables[table_name].stream_shard
        if shard is None or not shard.items:
            return -1
        return shard.starting_sequence_number + len(shard.items) - 1

    return peek


def dead_letter_bodies(estate: Estate) -> dict[str, list[str]]:
    """Bodies of every message waiting in a DLQ or on-failure destination, by queue name.

    Reads moto's backend (visible and in-flight messages alike) without receiving, so
    looking changes nothing.
    """
    from moto.sqs.models import sqs_backends

    targets = {q.dlq_arn for q in estate.queues.values() if q.dlq_arn}
    targets |= {s.on_failure_arn for s in estate.event_sources if s.on_failure_arn}
    bodies: dict[str, list[str]] = {}
    for queue in estate.queues.values():
        if queue.arn in targets:
            region = queue.arn.split(":")[3]
            backend = sqs_backends[ACCOUNT_ID][region].queues[queue.name]
            bodies[queue.name] = [message.body for message in backend._messages]
    return bodies


def moto_object_body(bucket: str, key: str) -> bytes:
    """The current version's body of S3 object ``key`` in ``bucket``, read from moto.

    What ``GetObject`` without a version id returns; the twin only reads objects a
    listing has just returned."""
    from moto.s3.models import s3_backends

    stored = s3_backends[ACCOUNT_ID]["aws"].get_object(bucket, key)
    if stored is None:
        raise KeyError(f"s3://{bucket}/{key}")
    body: bytes = stored.value
    return body
