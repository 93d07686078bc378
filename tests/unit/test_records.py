"""Lake records: the right fields, and never a phone number."""

import json

import pytest

from feedback_loop.contract import LakeTable, Reason
from feedback_loop.errors import AwsError, InvalidRecord
from feedback_loop.lake_sink import write_batch
from feedback_loop.messages import EngagementMessage, IncidentMessage
from feedback_loop.pseudonym import subscriber_id
from feedback_loop.records import (
    MAX_REJECTED_PAYLOAD_CHARS,
    engagement_record,
    incident_record,
    rejected_record,
    update_records,
)

KEY = b"unit-test-key"
PHONE = "+447700900123"
INCIDENT = IncidentMessage(
    "i1",
    PHONE,
    "CALL_DROP",
    "2026-11-25T10:15:03Z",
    "LDN-0042",
    "Pixel 8",
    None,
    0.25,
    8,
    2,
    60,
    "shardId-000000000000:49590338271490256608559692538361571095921575989136580000",
)
ENGAGEMENT = EngagementMessage(
    "e1",
    "i1",
    PHONE,
    "CALL_DROP",
    "2026-11-25T10:15:03Z",
    "LDN-0042",
    None,
    "VendorA",
    0.25,
    0.16,
    "suppress",
    "quiet_hours",
    "2026-11-25T10:15:03Z",
)


def test_incident_record_has_the_lake_fields_and_a_pseudonym():
    record = incident_record(INCIDENT, KEY)

    assert set(record) == {
        "incident_id",
        "subscriber_id",
        "event_type",
        "timestamp",
        "cell",
        "device",
        "vendor",
        "failure_rate",
        "sessions",
        "failures",
        "window_minutes",
        "record_id",
    }
    assert record["subscriber_id"] == subscriber_id(KEY, PHONE)
    assert PHONE not in json.dumps(record)


def test_engagement_record_has_the_lake_fields_and_a_pseudonym():
    record = engagement_record(ENGAGEMENT, KEY)

    assert set(record) == {
        "engagement_id",
        "incident_id",
        "subscriber_id",
        "incident_type",
        "incident_time",
        "cell",
        "device",
        "vendor",
        "failure_rate",
        "threshold",
        "decision",
        "reason",
        "decided_at",
    }
    assert (record["decision"], record["reason"]) == ("suppress", "quiet_hours")
    assert PHONE not in json.dumps(record)


def test_rejected_payloads_are_pseudonymised_whatever_their_shape():
    payloads = [
        json.dumps({"phone_number": "07700 900123", "cell": "LDN-0042"}),
        json.dumps({"phone_number": 447700900123}),
        "not json at all, call +44 7700 900123",
        b"\xff" + PHONE.encode(),
    ]
    for payload in payloads:
        record = rejected_record(
            "probe_events", "shard-0:1", "bad", "2026-11-25T10:15:03Z", payload, KEY
        )
        text = json.dumps(record)
        assert "900123" not in text, text
        assert "sid:" in text


def test_a_rejected_payload_is_bounded():
    record = rejected_record("probe_events", "shard-0:1", "too_large", "t", "x" * 100_000, KEY)

    assert len(record["payload"]) == MAX_REJECTED_PAYLOAD_CHARS


DAY = LakeTable("incidents", "day", (("day", "string"),))


def _records(body: str) -> list:
    data = json.loads(body)
    if "day" not in data:
        raise InvalidRecord(Reason.MISSING_FIELD, "day")
    return [(DAY, {"day": data["day"]})]


class Lake:
    """Lake sink stand-in: keeps each put; fails the dates it is told to."""

    def __init__(self, failing_dates: tuple[str, ...] = ()) -> None:
        self.puts: list[list[dict]] = []
        self.failing_dates = failing_dates

    def put_records(self, prefix, records, time_field, batch_id=None):
        if records[0][time_field][:10] in self.failing_dates:
            raise AwsError("s3.PutObject", "SlowDown")
        self.puts.append(list(records))
        return [prefix]


def test_write_batch_puts_one_object_per_date_and_fails_only_the_bad_message():
    lake = Lake()
    bodies = [
        ("m1", json.dumps({"day": "2026-11-25T10:00:00Z"})),
        ("m2", json.dumps({"nope": 1})),
        ("m3", json.dumps({"day": "2026-11-26T00:00:01Z"})),
        ("m4", json.dumps({"day": "2026-11-25T23:59:59Z"})),
    ]

    result = write_batch(bodies, _records, lake)

    assert [item for item, _ in result.rejected] == ["m2"]
    assert result.records_failed == ["m2"]
    assert sorted(result.written) == ["m1", "m3", "m4"]
    assert sorted(len(put) for put in lake.puts) == [1, 2]


def test_a_failed_put_fails_every_message_of_that_object_only():
    lake = Lake(failing_dates=("2026-11-26",))
    bodies = [
        ("m1", json.dumps({"day": "2026-11-25T10:00:00Z"})),
        ("m2", json.dumps({"day": "2026-11-26T10:00:00Z"})),
        ("m3", json.dumps({"day": "2026-11-26T11:00:00Z"})),
    ]

    result = write_batch(bodies, _records, lake)

    assert result.written == ["m1"]
    assert sorted(result.failed) == ["m2", "m3"]
    assert result.errors and "SlowDown" in result.errors[0]


COUNT = {
    "count_id": "c" * 32,
    "cell": "LDN-0042",
    "incident_type": "CALL_DROP",
    "decision": "suppress",
    "reason": "min_sessions",
    "incidents": 3,
    "decided_at": "2026-11-25T10:20:00Z",
}


def _counts_body(*counts: object) -> str:
    return json.dumps({"schema": "decision_counts", "version": 2, "counts": list(counts)})


def test_decision_counts_become_one_record_each_with_no_subscriber_in_them():
    other = {**COUNT, "count_id": "d" * 32, "cell": "LDN-0007", "incidents": 1}
    records = update_records(_counts_body(COUNT, other), KEY)
    assert [(table.name, record) for table, record in records] == [
        ("decision_counts", COUNT),
        ("decision_counts", other),
    ]


@pytest.mark.parametrize(
    ("count", "reason"),
    [
        ({k: v for k, v in COUNT.items() if k != "incidents"}, Reason.MISSING_FIELD),
        ({**COUNT, "incidents": "3"}, Reason.WRONG_TYPE),
        ({**COUNT, "decided_at": "yesterday"}, Reason.WRONG_TYPE),
        ("3 incidents", Reason.WRONG_TYPE),
    ],
)
def test_a_counts_message_with_a_bad_count_is_rejected_whole(count, reason):
    with pytest.raises(InvalidRecord) as raised:
        update_records(_counts_body(COUNT, count), KEY)
    assert raised.value.reason == reason
