"""Incidents on the profile: one id per failed session, new ones only, bounded, replay-safe."""

from dataclasses import replace
from datetime import timedelta

import pytest

from feedback_loop.errors import InvalidRecord
from feedback_loop.ids import incident_id, short_id
from feedback_loop.incidents import (
    incident_from,
    incident_from_item,
    incident_item,
    new_incidents,
    profile_update,
)
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
SHARD = "shardId-000000000000"
SEQUENCE = 49590338271490256608559692538361571095921575989136588000


def incident_at(minute: int, position: int = 0):
    moment = RECORD.moment + timedelta(minutes=minute)
    record = replace(RECORD, timestamp=moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
    record_id = f"{SHARD}:{SEQUENCE + minute * 10 + position}"
    return incident_from(record, record_id, WindowRate(Session(moment, True), 3, 1), 60)


def test_an_incident_carries_its_window_rate_position_and_a_deterministic_id():
    record_id = f"{SHARD}:{SEQUENCE}"
    incident = incident_from(RECORD, record_id, WindowRate(Session(RECORD.moment, True), 3, 1), 60)

    assert incident.incident_id == incident_id(
        RECORD.phone_number, RECORD.event_type, RECORD.timestamp, record_id
    )
    assert (incident.sessions, incident.failures, incident.window_minutes) == (3, 1, 60)
    assert incident.failure_rate == round(1 / 3, 6)
    assert decode(encode(incident), IncidentMessage) == incident


def test_two_failed_sessions_in_the_same_second_are_two_incidents_on_the_profile():
    # Given two failed CALL_DROP sessions of one subscriber in the same second
    first, second = incident_at(0, position=0), incident_at(0, position=1)
    assert first.timestamp == second.timestamp

    update = profile_update(RECORD.phone_number, [], [first, second], RECORD, cap=20)

    # Then both are new incidents with distinct ids, and both are remembered
    ids = [item["IncidentId"] for item in update.new_incidents]
    assert ids == [first.incident_id, second.incident_id]
    assert len(set(ids)) == 2
    assert update.seen_incidents == [short_id(first.incident_id), short_id(second.incident_id)]


def test_a_replayed_batch_adds_nothing():
    incidents = [incident_at(0), incident_at(1)]
    first = profile_update(RECORD.phone_number, [], incidents, RECORD, cap=20)

    replay = profile_update(RECORD.phone_number, first.seen_incidents, incidents, RECORD, 20)

    assert replay is None


def test_only_the_incidents_not_seen_before_are_new_and_the_memory_stays_capped():
    seen: list[str] = []
    for batch in range(10):
        fresh = [incident_at(batch * 10 + i) for i in range(3)]
        update = profile_update(RECORD.phone_number, seen, [incident_at(0), *fresh], RECORD, 5)
        if batch:  # incident_at(0) is older than the memory after the first batches
            assert [item["IncidentId"] for item in update.new_incidents][-3:] == [
                i.incident_id for i in fresh
            ]
        seen = update.seen_incidents
        assert len(seen) <= 5


def test_new_incidents_come_back_from_the_item_oldest_first():
    late, early = incident_at(5), incident_at(1)
    items = [incident_item(late), incident_item(early)]

    assert new_incidents(RECORD.phone_number, items) == [early, late]
    assert new_incidents(RECORD.phone_number, None) == []


@pytest.mark.parametrize(
    "item",
    [
        {"IncidentId": "x", "EventType": "CALL_DROP"},
        {**incident_item(incident_at(0)), "EventType": "SMS"},
        {**incident_item(incident_at(0)), "Timestamp": "yesterday"},
        {**incident_item(incident_at(0)), "Sessions": "many"},
        "not a map",
    ],
)
def test_a_malformed_incident_is_rejected(item):
    with pytest.raises(InvalidRecord):
        incident_from_item(RECORD.phone_number, item)


def test_a_malformed_incident_list_is_rejected():
    with pytest.raises(InvalidRecord):
        new_incidents(RECORD.phone_number, "not a list")


def test_the_profile_takes_the_dimensions_of_the_newest_record():
    newest = replace(RECORD, cell="LDN-0099", device=None)

    update = profile_update(RECORD.phone_number, [], [incident_at(0)], newest, cap=20)

    assert (update.cell, update.device, update.vendor) == ("LDN-0099", None, "VendorA")
