"""The second channel in the twin: AWS End User Messaging SMS and the subscribers' replies.

``Trigger_Connect`` texts a subscriber with ``SendTextMessage`` (answered here instead of
by moto, which does not model the service). Each text is a line of ``calls.jsonl`` with
``channel`` ``sms``. The subscriber answers as the scenario says for every prompt: a
digit is texted back ``REPLY_DELAY_SECONDS`` later, anything else (``none``,
``no_answer``) is no reply. A reply reaches the function subscribed to the replies topic
the way End User Messaging delivers it: an SNS notification whose message is the two-way
SMS payload (``originationNumber``, ``destinationNumber``, ``messageBody``,
``inboundMessageId``, ...), invoked asynchronously with Lambda's two retries.
"""

from __future__ import annotations

import heapq
import itertools
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from feedback_loop.episodes import Episode
from feedback_loop.timeutil import format_utc
from simulator.runtime import Invocation

TEXT_OPERATION = "pinpoint-sms-voice-v2.SendTextMessage"
REPLY_DELAY_SECONDS = 300.0
ASYNC_ATTEMPTS = 3  # Lambda's asynchronous invocation: the first try and two retries
DIGITS = frozenset("123459")


def _iso(epoch: float) -> str:
    return format_utc(datetime.fromtimestamp(epoch, UTC))


class TextCentre:
    """Sends texts and delivers the replies, on the simulated clock."""

    def __init__(
        self,
        subscriber: Callable[[str, dict[str, str]], str],
        invoke: Callable[[dict[str, Any], float], Invocation],
        log: Callable[[dict[str, Any]], None],
        episode: Callable[[str], Episode | None],
        topic_arn: str,
    ) -> None:
        self._subscriber = subscriber
        self._invoke = invoke
        self._log = log
        self._episode = episode
        self._topic_arn = topic_arn
        self._pending: list[tuple[float, int, dict[str, Any]]] = []
        self._order = itertools.count()
        self.sent = 0
        self.replies = 0
        self.reply_errors = 0

    def send_text_message(self, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        """Answer ``SendTextMessage``: log the text, and schedule the reply if one comes."""
        phone = str(params["DestinationPhoneNumber"])
        message_id = str(uuid.UUID(int=next(self._order) + (1 << 96)))
        episode = self._episode(phone)
        answer = self._subscriber(phone, {})
        replied = answer in DIGITS
        self._log(
            {
                "phone_number": phone,
                "time": _iso(now),
                "channel": "sms",
                "engagement_id": "" if episode is None else episode.engagement_id,
                "attributes": {"attempt": "1"},
                "outcome": "replied" if replied else "no_reply",
                "input": answer if replied else "",
                "text": str(params.get("MessageBody", "")),
                "message_id": message_id,
                "origination_identity": str(params.get("OriginationIdentity", "")),
            }
        )
        self.sent += 1
        if replied:
            payload = {
                "originationNumber": phone,
                "destinationNumber": str(params.get("OriginationIdentity", "")),
                "messageKeyword": "KEYWORD",
                "messageBody": answer,
                "inboundMessageId": f"reply-{message_id}",
                "previousPublishedMessageId": message_id,
            }
            at = now + REPLY_DELAY_SECONDS
            heapq.heappush(self._pending, (at, next(self._order), payload))
        return {"MessageId": message_id}

    def next_deadline(self) -> float | None:
        """When the next reply arrives."""
        return self._pending[0][0] if self._pending else None

    def pump(self, now: float) -> bool:
        """Deliver every reply due by ``now``; True when one was delivered."""
        delivered = False
        while self._pending and self._pending[0][0] <= now:
            at, _, payload = heapq.heappop(self._pending)
            event = self._sns_event(payload, at)
            for _ in range(ASYNC_ATTEMPTS):
                if self._invoke(event, at).error is None:
                    break
            else:
                self.reply_errors += 1
            self.replies += 1
            delivered = True
        return delivered

    def _sns_event(self, payload: Mapping[str, Any], at: float) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": f"{self._topic_arn}:{uuid.uuid4()}",
                    "Sns": {
                        "Type": "Notification",
                        "MessageId": str(uuid.uuid4()),
                        "TopicArn": self._topic_arn,
                        "Subject": None,
                        "Message": json.dumps(payload),
                        "Timestamp": _iso(at),
                        "SignatureVersion": "1",
                        "Signature": "",
                        "SigningCertUrl": "",
                        "UnsubscribeUrl": "",
                        "MessageAttributes": {},
                    },
                }
            ]
        }
