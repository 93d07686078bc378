"""Lambda's SQS poller (standard and FIFO queues).

It uses moto's real ReceiveMessage / DeleteMessageBatch / ChangeMessageVisibility, so
receive counts, FIFO group locking, deduplication and redrive to the DLQ are moto's.
moto's visibility timeout runs on wall time, which would make retries depend on how
fast the machine is. So the poller receives with a 12-hour visibility timeout, remembers
when each failed message would become visible again on the *simulated* clock (the
queue's ``VisibilityTimeout`` after the receive) and then makes it visible with
``ChangeMessageVisibility(0)``. Retries and dead-lettering are therefore deterministic.
A handler that changes a message's visibility itself (back-off on a throttle) is heard
the same way: :class:`VisibilityChanges` records when it asked the message to reappear,
on the simulated clock, and that time wins over the queue's timeout if the message fails.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simulator.api_calls import ApiError
from simulator.clock import SimClock
from simulator.event_filter import json_or_raw, passes_filters
from simulator.event_sources import Poller, failed_item_ids
from simulator.provision import EventSourceSpec, QueueInfo
from simulator.runtime import Runtime

IN_FLIGHT_SECONDS = 43000  # just under SQS's 12-hour maximum visibility timeout
# A received message stays hidden at most 12 hours in all, counted from the receive; SQS
# rejects a ChangeMessageVisibility that would go beyond (Amazon SQS API Reference,
# ChangeMessageVisibility: "If you try to extend the visibility timeout beyond the maximum,
# your request is rejected").
MAX_VISIBILITY_SECONDS = 43200


def _sqs_record(message: Mapping[str, Any], queue: QueueInfo, region: str) -> dict[str, Any]:
    """The Lambda SQS event record of a ReceiveMessage result."""
    attributes = dict(message.get("Attributes", {}))
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: str(v) for k, v in attributes.items()},
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": (
                    base64.b64encode(value["BinaryValue"]).decode()
                    if "BinaryValue" in value
                    else None
                ),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


@dataclass
class _Hidden:
    visible_at: float
    receipt_handle: str


class VisibilityChanges:
    """Handlers' ``ChangeMessageVisibility`` requests, on the simulated clock.

    The twin answers those calls here instead of moto (whose visibility runs on wall
    time): the message stays hidden in moto and its poller makes it visible at the
    simulated time asked for.
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.visible_at: dict[str, float] = {}
        self._received_at: dict[str, float] = {}

    def received(self, receipt_handle: str) -> None:
        """Note when a message was received: its 12 hours of visibility count from then."""
        self._received_at[receipt_handle] = self._now()

    def change(self, params: dict[str, Any]) -> dict[str, Any]:
        """Answer ``ChangeMessageVisibility``, refusing a timeout SQS would refuse."""
        handle = params["ReceiptHandle"]
        timeout = int(params["VisibilityTimeout"])
        now = self._now()
        if not 0 <= timeout <= MAX_VISIBILITY_SECONDS:
            reason = f"Must be between 0 and {MAX_VISIBILITY_SECONDS}"
        elif now - self._received_at.get(handle, now) + timeout > MAX_VISIBILITY_SECONDS:
            reason = (
                "Total VisibilityTimeout for the message is beyond the limit "
                f"[{MAX_VISIBILITY_SECONDS} seconds]"
            )
        else:
            self.visible_at[handle] = now + timeout
            return {}
        raise ApiError(
            "InvalidParameterValue",
            f"Value {timeout} for parameter VisibilityTimeout is invalid. Reason: {reason}.",
        )

    def change_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        """Answer ``ChangeMessageVisibilityBatch``: each entry succeeds or fails on its own."""
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in params.get("Entries", []):
            try:
                self.change(entry)
            except ApiError as error:
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": True,
                        "Code": error.code,
                        "Message": error.message,
                    }
                )
            else:
                successful.append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}


class SqsPoller(Poller):
    """Polls one queue like Lambda's SQS poller (standard or FIFO)."""

    def __init__(
        self,
        spec: EventSourceSpec,
        queue: QueueInfo,
        runtime: Runtime,
        clock: SimClock,
        sqs: Any,
        depth: Callable[[QueueInfo], int],
        duplicate: Callable[[], bool] = lambda: False,
        visibility: VisibilityChanges | None = None,
    ) -> None:
        super().__init__(spec, runtime, clock, sqs)
        self.queue = queue
        self._visibility = visibility or VisibilityChanges(lambda: clock.now)
        self._depth = depth
        self._duplicate = duplicate
        self._first_seen: float | None = None
        self._hidden: list[_Hidden] = []

    def next_deadline(self) -> float | None:
        deadlines = [h.visible_at for h in self._hidden]
        if self._first_seen is not None:
            deadlines.append(self._first_seen + self.spec.window_seconds)
        return min(deadlines) if deadlines else None

    def _release_due(self) -> bool:
        now = self.clock.now
        due = [h for h in self._hidden if h.visible_at <= now]
        if not due:
            return False
        self._hidden = [h for h in self._hidden if h.visible_at > now]
        for start in range(0, len(due), 10):
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h.receipt_handle, "VisibilityTimeout": 0}
                    for i, h in enumerate(due[start : start + 10])
                ],
            )
        return True

    def pump(self) -> bool:
        changed = self._release_due()
        if not self.spec.enabled:
            return changed
        depth = self._depth(self.queue)
        if depth == 0:
            self._first_seen = None
            return changed
        now = self.clock.now
        if self._first_seen is None:
            self._first_seen = now
        if depth < self.spec.batch_size and now < self._first_seen + self.spec.window_seconds:
            return changed
        messages = self._receive()
        self._first_seen = None
        if not messages:
            return changed or self._depth(self.queue) != depth
        self._deliver(messages)
        return True

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < self.spec.batch_size:
            asked = min(10, self.spec.batch_size - len(messages))
            response = self.sqs.receive_message(
                QueueUrl=self.queue.url,
                MaxNumberOfMessages=asked,
                VisibilityTimeout=IN_FLIGHT_SECONDS,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            for message in received:
                self._visibility.received(message["ReceiptHandle"])
            messages.extend(received)
            if len(received) < asked:  # moto returns every receivable message up to the max
                break
        return messages

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        records = [_sqs_record(m, self.queue, self.region) for m in messages]
        handles = {r["messageId"]: r["receiptHandle"] for r in records}
        kept = [
            r for r in records if passes_filters(self.spec.filter_patterns, self._filter_view(r))
        ]
        self.stats.filtered_out += len(records) - len(kept)
        failed: set[str] = set()
        if kept:
            outcome = self.invoke({"Records": kept}, len(kept))
            ids = [r["messageId"] for r in kept]
            reported = failed_item_ids(outcome, ids, self.spec.report_item_failures)
            failed = set(ids if reported is None else reported)
            self.stats.item_failures += len(failed) if reported is not None else 0
            for record in kept:
                if record["messageId"] not in failed and self._duplicate():
                    self.stats.duplicates += 1
                    self.invoke({"Records": [record]}, 1)
        done = [m for m in handles if m not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handles[mid]}
                    for i, mid in enumerate(done[start : start + 10])
                ],
            )
        visible_at = self.clock.now + self.queue.visibility_timeout
        asked = self._visibility.visible_at
        self._hidden.extend(
            _Hidden(asked.pop(handles[mid], visible_at), handles[mid]) for mid in failed
        )

    @staticmethod
    def _filter_view(record: Mapping[str, Any]) -> dict[str, Any]:
        return {**record, "body": json_or_raw(record["body"])}
