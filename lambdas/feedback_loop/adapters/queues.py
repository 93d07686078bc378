"""Batched SQS sends that report which entries failed instead of raising."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SQS_BATCH_LIMIT = 10


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to send; ``key`` is the caller's handle to map failures back."""

    key: str
    body: str
    group_id: str | None = None
    deduplication_id: str | None = None


def send_batches(sqs: Any, queue_url: str, messages: Sequence[OutgoingMessage]) -> set[str]:
    """Send with ``SendMessageBatch`` in chunks of 10; returns the keys SQS did not accept."""
    failed: set[str] = set()
    for start in range(0, len(messages), SQS_BATCH_LIMIT):
        chunk = messages[start : start + SQS_BATCH_LIMIT]
        entries = []
        for index, message in enumerate(chunk):
            entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.body}
            if message.group_id is not None:
                entry["MessageGroupId"] = message.group_id
            if message.deduplication_id is not None:
                entry["MessageDeduplicationId"] = message.deduplication_id
            entries.append(entry)
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        failed.update(chunk[int(item["Id"])].key for item in response.get("Failed", []))
    return failed
