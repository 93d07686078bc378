"""Incidents on the profile: deterministic ids, a capped list, newest last, replay-safe."""

from dataclasses import replace
from datetime import timedelta

from feedback_loop.ids import incident_id
from feedback_loop.incidents import incident_from, merge_recent, profile_update
from feedback_loop.messages import IncidentMessage, decode, encode
from feedback_loop.probe import ProbeRecord
from feedback_loop.rates import Session, WindowRate

RECORD = ProbeRecord(
    timestamp="2026-11-25T10:15:03Z",
    phone_number="+447700900123",
    cell="LDN-0042",
    event_type="CALL_DROP",
    success=False,
    device="Pixel 8",
    vendor="VendorA",
)


def incident_at(minute: int):
    moment = RECORD.moment + timedelta(minutes=minute)
    record = replace(RECORD, timestamp=moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return incident_from(record, WindowRate(Session(moment, True), 3, 1), 60)


def test_an_incident_carries_its_window_rate_and_a_deterministic_id():
    incident = incident_from(RECORD, WindowRate(Session(RECORD.moment, True), 3, 1), 60)

    assert incident.incident_id == incident_id(
        RECORD.phone_number, RECORD.event_type, RECORD.timestamp
    )
    assert (incident.sessions, incident.failures, incident.window_minutes) == (3, 1, 60)
    assert incident.failure_rate == round(1 / 3, 6)
    message = decode(encode(incident), IncidentMessage)
    assert (message.phone_number, message.cell, message.timestamp) == (
        RECORD.phone_number,
        RECORD.cell,
        RECORD.timestamp,
    )


def test_the_recent_list_never_grows_past_the_cap_and_keeps_the_newest_last():
    stored = []
    for batch in range(10):
        new = [incident_at(batch * 10 + i) for i in range(3)]
        stored = merge_recent(stored, new, cap=5)
        assert len(stored) <= 5

    expected = [incident_at(90 + i).incident_id for i in range(3)]
    assert [item["IncidentId"] for item in stored][-3:] == expected
    assert [item["Timestamp"] for item in stored] == sorted(item["Timestamp"] for item in stored)


def test_a_replayed_batch_changes_nothing():
    incidents = [incident_at(0), incident_at(1)]
    first = profile_update(RECORD.phone_number, [], incidents, RECORD, cap=20)

    replay = profile_update(RECORD.phone_number, first.recent_incidents, incidents, RECORD, 20)

    assert replay is None


def test_an_out_of_order_incident_is_inserted_in_time_order():
    stored = merge_recent([], [incident_at(0), incident_at(10)], cap=20)

    update = profile_update(RECORD.phone_number, stored, [incident_at(5)], RECORD, cap=20)

    assert [item["Timestamp"] for item in update.recent_incidents] == [
        incident_at(m).timestamp for m in (0, 5, 10)
    ]
    assert update.latest["IncidentId"] == incident_at(10).incident_id


def test_the_profile_takes_the_dimensions_of_the_newest_record():
    newest = replace(RECORD, cell="LDN-0099", device=None)

    update = profile_update(RECORD.phone_number, [], [incident_at(0)], newest, cap=20)

    assert (update.cell, update.device, update.vendor) == ("LDN-0099", None, "VendorA")
