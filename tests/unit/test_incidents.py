"""Incidents on the profile: one id per failed session, new ones only, bounded, replay-safe."""

from dataclasses import replace
from datetime import timedelta

import pytest

from feedback_loop.errors import InvalidRecord
from feedback_loop.ids import incident_id, short_id
from feedback_loop.incidents import (
    INCIDENTS_BUDGET,
    incident_from,
    incident_from_item,
    incident_item,
    new_incidents,
    profile_update,
)
from feedback_loop.item_size import item_size
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
    update = profile_update(RECORD.phone_number, [], [late, early], RECORD, cap=8)
    image = {"NewIncidents": update.new_incidents, **update.dimensions()}

    found = new_incidents(RECORD.phone_number, image, {"CALL_DROP": 60})

    # Everything the decision reads comes back; the stream position stays in the lake.
    assert found == [replace(early, record_id=""), replace(late, record_id="")]
    assert new_incidents(RECORD.phone_number, {}) == []


def test_an_entry_leaves_out_the_dimensions_its_write_sets_and_states_the_others():
    # Given a batch whose newest record names no device, and an incident on another cell
    moved = replace(incident_at(0), cell="LDN-0001")
    newest = replace(RECORD, device=None)

    update = profile_update(RECORD.phone_number, [], [moved, incident_at(1)], newest, cap=8)

    # Then the entries state what differs from the write's own dimensions (or is not set
    # by it, so an older top-level device is never taken for theirs)
    first, second = update.new_incidents
    assert (first["Cell"], first["Device"]) == ("LDN-0001", "Pixel 8")
    assert "Cell" not in second and "Vendor" not in second and second["Device"] == "Pixel 8"
    image = {"NewIncidents": update.new_incidents, **update.dimensions(), "Device": "Old"}
    cells = [(i.cell, i.device, i.vendor) for i in new_incidents(RECORD.phone_number, image)]
    assert cells == [("LDN-0001", "Pixel 8", "VendorA"), ("LDN-0042", "Pixel 8", "VendorA")]


def test_a_batch_too_big_for_one_write_unit_is_written_in_several_and_each_is_replay_safe():
    # Given one subscriber with 30 failed sessions in one batch
    incidents = [incident_at(minute) for minute in range(30)]

    update = profile_update(RECORD.phone_number, [], incidents, RECORD, cap=8)

    # Then every incident is written once, in order, over several writes within the budget
    assert len(update.writes) > 1
    ids = [entry["IncidentId"] for entry in update.new_incidents]
    assert ids == [incident.incident_id for incident in incidents]
    for write in update.writes:
        part = {"NewIncidents": write.new_incidents, "SeenIncidents": write.seen_incidents}
        assert item_size({**part, **update.dimensions()}) <= INCIDENTS_BUDGET
    # And a retry after the first write finds its incidents and writes only the rest
    retry = profile_update(
        RECORD.phone_number, update.writes[0].seen_incidents, incidents, RECORD, cap=8
    )
    assert retry.new_incidents == update.new_incidents[len(update.writes[0].new_incidents) :]


def test_ids_kept_by_older_versions_still_recognise_a_replay():
    incidents = [incident_at(0)]
    stored_long = [incidents[0].incident_id[:16]]

    assert profile_update(RECORD.phone_number, stored_long, incidents, RECORD, cap=8) is None


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
        new_incidents(RECORD.phone_number, {"NewIncidents": "not a list"})


def test_the_profile_takes_the_dimensions_of_the_newest_record():
    newest = replace(RECORD, cell="LDN-0099", device=None)

    update = profile_update(RECORD.phone_number, [], [incident_at(0)], newest, cap=20)

    assert (update.cell, update.device, update.vendor) == ("LDN-0099", None, "VendorA")
