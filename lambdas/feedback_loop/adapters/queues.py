"""SQS sends that report which messages did not go, instead of raising.

``SendMessageBatch`` takes 10 entries a call and can refuse some of them (``Failed``)
while accepting the rest; a call can also fail as a whole. Either way the caller gets
the keys of the messages that were not sent, so it can fail only the records that
produced them.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from feedback_loop.adapters.aws import translated
from feedback_loop.ports import NotSent, OutgoingMessage

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient

SQS_BATCH_LIMIT = 10


class Queue:
    """One SQS queue (standard or FIFO) that messages are sent to in batches."""

    def __init__(self, sqs: "SQSClient", url: str) -> None:
        self._sqs = sqs
        self.url = url

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        """Hide a received message for ``seconds`` more (0: make it receivable now)."""
        with translated("sqs.ChangeMessageVisibility"):
            self._sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )

    def send(self, messages: Sequence[OutgoingMessage]) -> NotSent:
        """Send in chunks of 10; returns what was not sent (falsy when everything was)."""
        failed: set[str] = set()
        errors: list[str] = []
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            chunk = messages[start : start + SQS_BATCH_LIMIT]
            try:
                response = self._sqs.send_message_batch(
                    QueueUrl=self.url, Entries=[_entry(i, m) for i, m in enumerate(chunk)]
                )
            except ClientError as error:
                failed.update(message.key for message in chunk)
                errors.append(str(error.response.get("Error", {}).get("Code", "Unknown")))
                continue
            except BotoCoreError as error:
                failed.update(message.key for message in chunk)
                errors.append(type(error).__name__)
                continue
            for item in response.get("Failed", []):
                failed.add(chunk[int(item["Id"])].key)
                errors.append(str(item.get("Code", "Unknown")))
        return NotSent(frozenset(failed), tuple(errors))


def _entry(index: int, message: OutgoingMessage) -> Any:
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.body}
    if message.group_id is not None:
        entry["MessageGroupId"] = message.group_id
    if message.deduplication_id is not None:
        entry["MessageDeduplicationId"] = message.deduplication_id
    return entry
