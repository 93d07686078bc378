"""Figures of summary.json that come from the outside world's log: counted, not assumed."""

from boto3.dynamodb.types import TypeSerializer

from feedback_loop.calls import client_token
from feedback_loop.decision import own_engagement_id
from feedback_loop.incidents import incident_from, profile_update
from feedback_loop.policy import load_policy
from feedback_loop.probe import ProbeRecord
from feedback_loop.rates import Session, WindowRate
from simulator.outputs import (
    calls_in_local_quiet_hours,
    exactly_once_figures,
    parked_engagements,
    throttles_absorbed,
)
from simulator.scenario import Subscriber
from simulator.stream_pollers import DynamoDbStreamPoller

_serializer = TypeSerializer()

LONDON, NEW_YORK = "+447700900001", "+15550100001"


def _call(phone: str, time: str, engagement: str = "e1") -> dict[str, str]:
    return {"phone_number": phone, "time": time, "engagement_id": engagement}


def test_a_call_in_the_subscribers_own_night_counts_even_when_it_is_day_in_the_policy_zone() -> (
    None
):
    policy = load_policy({"timezone": "Europe/London"})
    subscribers = [
        Subscriber(LONDON, "LDN-0001"),
        Subscriber(NEW_YORK, "NYC-0001", timezone="America/New_York"),
    ]
    calls = [
        _call(LONDON, "2026-11-25T10:00:00Z"),  # 10:00 in London
        _call(NEW_YORK, "2026-11-25T10:00:00Z"),  # 05:00 in New York: quiet hours
        _call(LONDON, "2026-11-25T22:30:00Z"),  # 22:30 in London: quiet hours
    ]

    assert calls_in_local_quiet_hours(calls, subscribers, policy) == 2


def test_throttles_absorbed_are_those_whose_engagement_was_placed_afterwards() -> None:
    calls = [_call(LONDON, "2026-11-25T10:05:00Z", "e1")]
    at = 1795600800.0  # 2026-11-25T10:00:00Z
    # refusals carry the request's ClientToken: one per engagement and attempt
    e1, e2 = client_token("e1", 1), client_token("e2", 1)
    refusals = [(e1, at), (e1, at + 60), (e2, at), (e1, at + 3600)]

    assert throttles_absorbed(refusals, calls) == 2


def test_a_second_call_of_one_attempt_is_a_duplicate_and_a_parked_one_is_not_lost() -> None:
    retry = {**_call(LONDON, "2026-11-25T10:45:00Z", "e1"), "attributes": {"attempt": "2"}}
    calls = [
        _call(LONDON, "2026-11-25T10:05:00Z", "e1"),
        _call(LONDON, "2026-11-25T10:09:00Z", "e1"),  # attempt 1 again: a duplicate
        retry,  # the second attempt after no answer: not a duplicate
    ]
    engagement = [{"engagement_id": e, "decision": "engage"} for e in ("e1", "e2", "e3")] + [
        {"engagement_id": "e1", "decision": "closed"},
        {"engagement_id": "e4", "decision": "suppress"},
    ]
    dead_letters = {"engagement_trigger_dlq.fifo": ['{"engagement_id": "e2"}', "not json"]}

    assert exactly_once_figures(calls, engagement, dead_letters) == {
        "duplicate_calls": 1,
        "engagements_lost": 1,
    }


def test_an_engagement_whose_stream_record_is_parked_is_not_lost() -> None:
    # Given a Read_after_incident stream record given up to its on-failure queue: its
    # profile image holds a new incident (the twin keeps the record, the queue its range)
    record = ProbeRecord(
        timestamp="2026-11-25T10:15:03Z",
        phone_number=LONDON,
        cell="LDN-0042",
        event_type="CALL_DROP",
        success=False,
        device="Pixel 8",
        vendor="VendorA",
    )
    rate = WindowRate(Session(record.moment, True), 3, 2)
    incident = incident_from(record, "shardId-000000000000:4959", rate, 60)
    update = profile_update(LONDON, [], [incident], record, cap=8)
    assert update is not None
    image = {"PhoneNumber": LONDON, "NewIncidents": update.new_incidents, **update.dimensions()}
    poller = object.__new__(DynamoDbStreamPoller)
    poller.parked_records = [{"dynamodb": {"NewImage": _serializer.serialize(image)["M"]}}]
    parked = parked_engagements([poller], load_policy({}))
    engaged = own_engagement_id(LONDON, incident)
    assert parked == {engaged}

    # Then an engage decision that reached the lake before the record was parked is
    # waiting for the operator's redrive, not lost
    engagement = [{"engagement_id": engaged, "decision": "engage"}]
    assert exactly_once_figures([], engagement, {})["engagements_lost"] == 1
    assert exactly_once_figures([], engagement, {}, parked)["engagements_lost"] == 0
