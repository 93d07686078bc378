"""Lake record builders (docs/ARCHITECTURE.md, "Lake records").

Every builder replaces the phone number by ``subscriber_id`` (keyed HMAC), so
no phone number reaches the lake, Athena or QuickSight.
"""

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from feedback_loop.contract import LAKE_TABLES, Reason
from feedback_loop.errors import InvalidRecord
from feedback_loop.lake_sink import LakeRecords
from feedback_loop.messages import (
    DecisionCount,
    DecisionCountsMessage,
    EngagementMessage,
    IncidentMessage,
    Message,
    OutageMessage,
    decode,
    schema_of,
)
from feedback_loop.pseudonym import redact, subscriber_id
from feedback_loop.timeutil import parse_utc

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
            "record_id": message.record_id,
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


def _message_records(
    body: str,
    kind: type[Message],
    table: str,
    build: Callable[[Message, bytes], dict[str, Any]],
    key: bytes,
) -> LakeRecords:
    """Decode a queue message and build its lake record; raises :class:`InvalidRecord`.

    A message can pass the schema check with a field of the wrong type (a number for a
    phone number, a time that does not parse): that is a bad message too, not a crash.
    """
    message = decode(body, kind)
    lake_table = LAKE_TABLES[table]
    try:
        record = build(message, key)
        parse_utc(record[lake_table.time_field])
    except (AttributeError, TypeError, ValueError) as error:
        raise InvalidRecord(Reason.WRONG_TYPE, str(error)) from error
    return [(lake_table, record)]


def incident_records(body: str, key: bytes) -> LakeRecords:
    """An ``incident`` message as its ``incidents/`` record."""
    return _message_records(body, IncidentMessage, "incidents", incident_record, key)


def outage_record(message: OutageMessage, key: bytes) -> dict[str, Any]:
    """``outages/`` record; partitioned by ``detected_at``. Cell-level: no subscriber in it."""
    return LAKE_TABLES["outages"].record(
        {
            "cell": message.cell,
            "window_start": message.window_start,
            "detected_at": message.detected_at,
            "subscribers": message.subscribers,
            "min_subscribers": message.min_subscribers,
            "sample_size": message.sample_size,
        }
    )


def decision_count_records(body: str) -> LakeRecords:
    """A ``decision_counts`` message as its ``decision_counts/`` records (one per count).

    Cell-level counts: no subscriber in them. A count that lacks a field or has one of the
    wrong type makes the whole message bad (it is one batch's counts, sent together).
    """
    message = decode(body, DecisionCountsMessage)
    table = LAKE_TABLES["decision_counts"]
    if not isinstance(message.counts, list):
        raise InvalidRecord(Reason.WRONG_TYPE, "counts is not a list")
    records: LakeRecords = []
    for item in message.counts:
        if not isinstance(item, dict):
            raise InvalidRecord(Reason.WRONG_TYPE, "a count is not an object")
        missing = [name for name in table.column_names if name not in item]
        if missing:
            raise InvalidRecord(Reason.MISSING_FIELD, ", ".join(missing))
        count = DecisionCount(**{name: item[name] for name in table.column_names})
        if not isinstance(count.incidents, int) or isinstance(count.incidents, bool):
            raise InvalidRecord(Reason.WRONG_TYPE, "incidents is not an integer")
        try:
            parse_utc(count.decided_at)
        except (AttributeError, TypeError, ValueError) as error:
            raise InvalidRecord(Reason.WRONG_TYPE, str(error)) from error
        records.append((table, table.record(asdict(count))))
    return records


def update_records(body: str, key: bytes) -> LakeRecords:
    """An ``engagement_update_queue`` message as its lake records: a decision
    (``engagement/``), an outage signal (``outages/``) or a batch's decision counts
    (``decision_counts/``)."""
    schema = schema_of(body)
    if schema == OutageMessage.SCHEMA:
        return _message_records(body, OutageMessage, "outages", outage_record, key)
    if schema == DecisionCountsMessage.SCHEMA:
        return decision_count_records(body)
    return _message_records(body, EngagementMessage, "engagement", engagement_record, key)
