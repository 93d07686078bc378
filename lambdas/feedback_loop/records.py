"""Lake record builders (docs/ARCHITECTURE.md, "Lake records").

Every builder replaces the phone number by ``subscriber_id`` (keyed HMAC), so
no phone number reaches the lake, Athena or QuickSight.
"""

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from feedback_loop.contract import LAKE_TABLES
from feedback_loop.errors import InvalidRecord
from feedback_loop.messages import EngagementMessage, IncidentMessage
from feedback_loop.observability import MetricUnit, logger, metrics
from feedback_loop.pseudonym import redact, subscriber_id

# A rejected payload is kept for diagnosis, not replay: bound what one bad
# record can put into the lake.
MAX_REJECTED_PAYLOAD_CHARS = 8192


def incident_record(message: IncidentMessage, key: bytes) -> dict[str, Any]:
    """``incidents/`` record; partitioned by ``timestamp``."""
    return LAKE_TABLES["incidents"].record(
        {
            "incident_id": message.incident_id,
            "subscriber_id": subscriber_id(key, message.phone_number),
            "event_type": message.event_type,
            "timestamp": message.timestamp,
            "cell": message.cell,
            "device": message.device,
            "vendor": message.vendor,
            "failure_rate": message.failure_rate,
            "sessions": message.sessions,
            "failures": message.failures,
            "window_minutes": message.window_minutes,
        }
    )


def engagement_record(message: EngagementMessage, key: bytes) -> dict[str, Any]:
    """``engagement/`` record; partitioned by ``decided_at``."""
    return LAKE_TABLES["engagement"].record(
        {
            "engagement_id": message.engagement_id,
            "incident_id": message.incident_id,
            "subscriber_id": subscriber_id(key, message.phone_number),
            "incident_type": message.incident_type,
            "incident_time": message.incident_time,
            "cell": message.cell,
            "device": message.device,
            "vendor": message.vendor,
            "failure_rate": message.failure_rate,
            "threshold": message.threshold,
            "decision": message.decision,
            "reason": message.reason,
            "decided_at": message.decided_at,
        }
    )


def _numbers_as_text(value: Any) -> Any:
    """Long integers become strings so a phone number sent as a JSON number is redacted too."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**7:
        return str(value)
    if isinstance(value, dict):
        return {k: _numbers_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_text(item) for item in value]
    return value


def rejected_record(
    source: str, record_id: str, reason: str, received_at: str, payload: bytes | str, key: bytes
) -> dict[str, Any]:
    """``rejected/`` record: the payload (parsed when it is JSON) with phone numbers pseudonymised.

    ``record_id`` says where the original is (for Kinesis ``<shard id>:<sequence number>``,
    so an operator can read it back from the stream) and tells a retried reject from a
    new one. The payload is truncated to ``MAX_REJECTED_PAYLOAD_CHARS`` before redaction.
    """
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    text = text[:MAX_REJECTED_PAYLOAD_CHARS]
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = text
    return LAKE_TABLES["rejected"].record(
        {
            "source": source,
            "record_id": record_id,
            "reason": reason,
            "received_at": received_at,
            "payload": redact(key, _numbers_as_text(parsed)),
        }
    )


@dataclass(frozen=True)
class LakeBatchResult:
    """Outcome of writing a batch of queue messages to the lake."""

    written: list[str]
    failed: list[str]


def write_messages(
    bodies: Sequence[tuple[str, str]],
    decode_record: Callable[[str], dict[str, Any]],
    time_field: str,
    put: Callable[[list[dict[str, Any]]], object],
) -> LakeBatchResult:
    """Decode ``(message id, body)`` pairs and ``put`` one object per business date.

    A message that does not decode fails alone (it can never succeed: it goes to
    the DLQ after its retries); when ``put`` raises, every message of that object
    fails and is retried.
    """
    by_date: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    failed: list[str] = []
    for message_id, body in bodies:
        try:
            record = decode_record(body)
        except InvalidRecord as error:
            logger.warning(
                "Rejected queue message",
                extra={"message_id": message_id, "reason": error.reason, "detail": error.detail},
            )
            metrics.add_metric(name="RejectedMessages", unit=MetricUnit.Count, value=1)
            failed.append(message_id)
            continue
        by_date[str(record[time_field])[:10]].append((message_id, record))
    written: list[str] = []
    for _dt, pairs in sorted(by_date.items()):
        ids = [message_id for message_id, _ in pairs]
        try:
            put([record for _, record in pairs])
        except Exception:
            logger.exception("Lake write failed", extra={"messages": len(ids)})
            failed.extend(ids)
            continue
        written.extend(ids)
    return LakeBatchResult(written=written, failed=failed)
