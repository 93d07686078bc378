"""Queue messages are versioned JSON; ids are deterministic hashes."""

import json

import pytest

from feedback_loop import ids
from feedback_loop.errors import InvalidRecord, UnknownSchema
from feedback_loop.messages import EngagementMessage, IncidentMessage, decode, encode

RID = "shardId-000000000000:49590338271490256608559692538361571095921575989136580000"


def _incident(**overrides) -> IncidentMessage:
    values = {
        "incident_id": ids.incident_id("+447700900123", "CALL_DROP", "2026-11-25T10:15:03Z", RID),
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
        "record_id": RID,
    }
    values.update(overrides)
    return IncidentMessage(**values)


def test_message_round_trips_and_carries_schema_and_version():
    message = _incident()
    body = encode(message)

    assert json.loads(body)["schema"] == "incident"
    assert json.loads(body)["version"] == 2
    assert decode(body, IncidentMessage) == message


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not_json"),
        ("[1, 2]", "not_an_object"),
        (json.dumps({"schema": "incident", "version": 1}), "unknown_schema"),
        (json.dumps({"schema": "incident", "version": 3}), "unknown_schema"),
        (json.dumps({"schema": "engagement", "version": 2}), "unknown_schema"),
        (json.dumps({"schema": "incident", "version": 2, "phone_number": "+44"}), "missing_field"),
    ],
)
def test_consumers_reject_what_they_do_not_understand(body, reason):
    with pytest.raises(InvalidRecord) as error:
        decode(body, IncidentMessage)

    assert error.value.reason == reason


def test_an_incident_body_is_not_accepted_as_an_engagement():
    with pytest.raises(UnknownSchema):
        decode(encode(_incident()), EngagementMessage)


def test_engagement_id_is_a_deterministic_hash_of_subscriber_type_time_and_incident():
    phone, time = "+447700900123", "2026-11-25T10:15:03Z"
    incident = ids.incident_id(phone, "CALL_DROP", time, RID)
    first = ids.engagement_id(phone, "CALL_DROP", time, incident)

    assert first == ids.engagement_id(phone, "CALL_DROP", time, incident)
    assert len(first) == 32
    assert first != incident
    assert first != ids.engagement_id(phone, "CALL_DROP", "2026-11-25T10:15:04Z", incident)
    assert first != ids.engagement_id("+447700900124", "CALL_DROP", time, incident)
    assert first != ids.engagement_id(phone, "CALL_QUALITY", time, incident)
    assert first != ids.engagement_id(phone, "CALL_DROP", time, "another incident")


def test_incident_id_is_unique_per_stream_position_and_stable_across_deliveries():
    phone, time = "+447700900123", "2026-11-25T10:15:03Z"
    first = ids.incident_id(phone, "CALL_DROP", time, "shardId-000000000000:100")

    assert first == ids.incident_id(phone, "CALL_DROP", time, "shardId-000000000000:100")
    assert first != ids.incident_id(phone, "CALL_DROP", time, "shardId-000000000000:101")
    assert first != ids.incident_id(phone, "CALL_DROP", time, "shardId-000000000001:100")
