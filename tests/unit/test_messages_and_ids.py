"""Queue messages are versioned JSON; ids are deterministic hashes."""

import json

import pytest

from feedback_loop import ids
from feedback_loop.errors import InvalidRecord, UnknownSchema
from feedback_loop.messages import EngagementMessage, IncidentMessage, decode, encode


def _incident(**overrides) -> IncidentMessage:
    values = {
        "incident_id": ids.incident_id("+447700900123", "CALL_DROP", "2026-11-25T10:15:03Z"),
        "phone_number": "+447700900123",
        "event_type": "CALL_DROP",
        "timestamp": "2026-11-25T10:15:03Z",
        "cell": "LDN-0042",
        "device": "Pixel 8",
        "vendor": "VendorA",
        "failure_rate": 0.25,
        "sessions": 4,
        "failures": 1,
        "window_minutes": 60,
    }
    values.update(overrides)
    return IncidentMessage(**values)


def test_message_round_trips_and_carries_schema_and_version():
    message = _incident()
    body = encode(message)

    assert json.loads(body)["schema"] == "incident"
    assert json.loads(body)["version"] == 1
    assert decode(body, IncidentMessage) == message


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not_json"),
        ("[1, 2]", "not_an_object"),
        (json.dumps({"schema": "incident", "version": 2}), "unknown_schema"),
        (json.dumps({"schema": "engagement", "version": 1}), "unknown_schema"),
        (json.dumps({"schema": "incident", "version": 1, "phone_number": "+44"}), "missing_field"),
    ],
)
def test_consumers_reject_what_they_do_not_understand(body, reason):
    with pytest.raises(InvalidRecord) as error:
        decode(body, IncidentMessage)

    assert error.value.reason == reason


def test_an_incident_body_is_not_accepted_as_an_engagement():
    with pytest.raises(UnknownSchema):
        decode(encode(_incident()), EngagementMessage)


def test_engagement_id_is_a_deterministic_hash_of_subscriber_type_and_time():
    first = ids.engagement_id("+447700900123", "CALL_DROP", "2026-11-25T10:15:03Z")

    assert first == ids.engagement_id("+447700900123", "CALL_DROP", "2026-11-25T10:15:03Z")
    assert len(first) == 32
    assert first != ids.engagement_id("+447700900123", "CALL_DROP", "2026-11-25T10:15:04Z")
    assert first != ids.engagement_id("+447700900124", "CALL_DROP", "2026-11-25T10:15:03Z")
    assert first != ids.engagement_id("+447700900123", "CALL_QUALITY", "2026-11-25T10:15:03Z")
