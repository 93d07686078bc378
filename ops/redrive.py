"""Move dead-lettered SQS messages back to their source queue without losing any.

AWS's own redrive (console "Start DLQ redrive", ``StartMessageMoveTask``) is the
first choice for standard queues; this tool covers the cases it does not (FIFO
DLQs where the API is unavailable, the local twin) and keeps FIFO order.

Safety rules: a message is deleted from the DLQ only after the source queue
accepted it; a message that could not be sent stays in the DLQ (it becomes
visible again after the visibility timeout); in a FIFO queue, once one message
of a group fails, the rest of that group is left in place so order is kept.

    python -m ops.redrive --dlq-url URL --source-url URL [--max-messages N]
"""

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

_RECEIVE_LIMIT = 10


@dataclass
class RedriveResult:
    """What a redrive did: messages moved, left in the DLQ, and why."""

    moved: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every message received from the DLQ reached the source queue."""
        return self.failed == 0


def _is_fifo(queue_url: str) -> bool:
    return queue_url.endswith(".fifo")


def _message_attributes(message: dict[str, Any]) -> dict[str, Any]:
    """Custom message attributes in the shape ``SendMessage`` accepts."""
    attributes = {}
    for name, value in message.get("MessageAttributes", {}).items():
        copied = {"DataType": value["DataType"]}
        for part in ("StringValue", "BinaryValue"):
            if part in value:
                copied[part] = value[part]
        attributes[name] = copied
    return attributes


def _send_request(message: dict[str, Any], source_url: str) -> dict[str, Any]:
    request: dict[str, Any] = {"QueueUrl": source_url, "MessageBody": message["Body"]}
    attributes = _message_attributes(message)
    if attributes:
        request["MessageAttributes"] = attributes
    if _is_fifo(source_url):
        request["MessageGroupId"] = message["Attributes"]["MessageGroupId"]
        # One id per DLQ message: a re-run after a crash between send and delete is
        # deduplicated by SQS, while a message that fails again and comes back to the
        # DLQ gets a new MessageId and therefore a fresh deduplication id.
        request["MessageDeduplicationId"] = f"redrive-{message['MessageId']}"
    return request


class _Run:
    """State of one redrive run: what was already tried, which FIFO groups are blocked."""

    def __init__(self, sqs: Any, dlq_url: str, source_url: str) -> None:
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.source_url = source_url
        self.result = RedriveResult()
        self.seen: set[str] = set()
        self.blocked_groups: set[str] = set()

    def handle(self, messages: list[dict[str, Any]]) -> bool:
        """Redrive one received batch; False when it held nothing new (time to stop).

        A message seen before in this run already failed (and blocked its FIFO
        group), so it is left where it is.
        """
        new = [message for message in messages if message["MessageId"] not in self.seen]
        for message in new:
            self.seen.add(message["MessageId"])
            self._move(message)
        return bool(new)

    def _move(self, message: dict[str, Any]) -> None:
        group = message.get("Attributes", {}).get("MessageGroupId")
        if group is not None and group in self.blocked_groups:
            self.result.failed += 1
            return
        try:
            self.sqs.send_message(**_send_request(message, self.source_url))
        except (ClientError, BotoCoreError) as error:
            self.result.failed += 1
            self.result.errors.append(f"{message['MessageId']}: {error}")
            if group is not None:
                self.blocked_groups.add(group)
            return
        self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"])
        self.result.moved += 1


def redrive(
    sqs: Any,
    dlq_url: str,
    source_url: str,
    *,
    max_messages: int | None = None,
    wait_seconds: int = 1,
    visibility_timeout: int = 60,
) -> RedriveResult:
    """Move up to ``max_messages`` (default: all) from ``dlq_url`` to ``source_url``.

    Messages are received in batches of up to 10, sent one by one (so FIFO order
    within a group is the DLQ's order) with their body and message attributes,
    and for FIFO with their ``MessageGroupId``. Stops when a receive comes back
    empty or holds only messages already tried in this run (a failed message is
    never retried within one run; it stays in the DLQ for the next).
    """
    if _is_fifo(dlq_url) != _is_fifo(source_url):
        raise ValueError("the DLQ and the source queue must both be FIFO or both standard")
    run = _Run(sqs, dlq_url, source_url)
    while max_messages is None or len(run.seen) < max_messages:
        limit = _RECEIVE_LIMIT
        if max_messages is not None:
            limit = min(limit, max_messages - len(run.seen))
        response = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=limit,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_timeout,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        if not run.handle(response.get("Messages", [])):
            break
    return run.result


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; uses the default AWS credentials and region of the environment."""
    import boto3

    parser = argparse.ArgumentParser(
        prog="python -m ops.redrive", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dlq-url", required=True, help="URL of the dead-letter queue to drain")
    parser.add_argument("--source-url", required=True, help="URL of the queue to send them back to")
    parser.add_argument("--max-messages", type=int, default=None, help="stop after this many")
    parser.add_argument("--region", default=None, help="AWS region (default: from the environment)")
    args = parser.parse_args(argv)
    sqs = boto3.client("sqs", region_name=args.region)
    result = redrive(sqs, args.dlq_url, args.source_url, max_messages=args.max_messages)
    print(json.dumps(asdict(result), indent=2))
    return 0 if result.complete else 1


if __name__ == "__main__":
    sys.exit(main())
