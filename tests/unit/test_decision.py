"""Engagement decision and contact policy boundaries."""

from dataclasses import replace

import pytest

from feedback_loop.decision import (
    ENGAGE,
    SUPPRESS,
    EngagementState,
    decide,
    decide_all,
)
from feedback_loop.ids import engagement_id, incident_id
from feedback_loop.incidents import Incident
from feedback_loop.policy import Policy, load_policy

PHONE = "+447700900123"
POLICY = load_policy({"quiet_hours": {"start": "21:00", "end": "08:00"}, "timezone": "UTC"})


def incident(kpi="CALL_DROP", time="2026-11-25T10:15:03Z", sessions=8, failures=2):
    record_id = f"shardId-000000000000:{time}"
    return Incident(
        incident_id=incident_id(PHONE, kpi, time, record_id),
        phone_number=PHONE,
        event_type=kpi,
        timestamp=time,
        cell="LDN-0042",
        device="Pixel 8",
        vendor="VendorA",
        failure_rate=failures / sessions,
        sessions=sessions,
        failures=failures,
        window_minutes=60,
        record_id=record_id,
    )


def outcome(item, state=None, opted_out=False, policy: Policy = POLICY):
    decision, _ = decide(PHONE, item, state or EngagementState(), opted_out, policy)
    return None if decision is None else (decision.decision, decision.reason)


def test_a_rate_exactly_at_the_threshold_does_not_engage():
    # CALL_DROP threshold 0.16 = 4 / 25
    assert outcome(incident(sessions=25, failures=4)) is None


def test_a_rate_just_above_the_threshold_engages():
    assert outcome(incident(sessions=24, failures=4)) == (ENGAGE, "above_threshold")


def test_each_kpi_uses_its_own_threshold():
    # 1/10 = 0.10: above LOW_BITRATE 0.09, below VIDEO_STALLING 0.11
    assert outcome(incident("LOW_BITRATE", sessions=10, failures=1))[0] == ENGAGE
    assert outcome(incident("VIDEO_STALLING", sessions=10, failures=1)) is None


def test_too_few_sessions_suppresses():
    policy = replace(POLICY, min_sessions=5)

    assert outcome(incident(sessions=4, failures=2), policy=policy) == (SUPPRESS, "min_sessions")
    assert outcome(incident(sessions=5, failures=2), policy=policy) == (ENGAGE, "above_threshold")


def test_an_opted_out_subscriber_is_never_engaged():
    assert outcome(incident(), opted_out=True) == (SUPPRESS, "opted_out")


@pytest.mark.parametrize(
    ("time", "quiet"),
    [
        ("2026-11-25T20:59:59Z", False),
        ("2026-11-25T21:00:00Z", True),
        ("2026-11-25T23:30:00Z", True),
        ("2026-11-26T03:00:00Z", True),
        ("2026-11-26T07:59:00Z", True),
        ("2026-11-26T08:00:00Z", False),
    ],
)
def test_quiet_hours_wrap_past_midnight(time, quiet):
    expected = (SUPPRESS, "quiet_hours") if quiet else (ENGAGE, "above_threshold")

    assert outcome(incident(time=time)) == expected


def test_quiet_hours_are_in_the_policy_time_zone():
    tokyo = replace(POLICY, timezone="Asia/Tokyo")  # UTC+9: 13:00Z is 22:00 local

    assert outcome(incident(time="2026-11-25T13:00:00Z"))[0] == ENGAGE
    assert outcome(incident(time="2026-11-25T13:00:00Z"), policy=tokyo) == (SUPPRESS, "quiet_hours")


def test_the_cooldown_is_per_kpi():
    state = EngagementState({"CALL_DROP": "2026-11-25T09:00:00Z"}, "2026-11-25", 1)
    policy = replace(POLICY, cooldown_minutes=120)

    assert outcome(incident(time="2026-11-25T10:59:59Z"), state, policy=policy) == (
        SUPPRESS,
        "cooldown",
    )
    assert outcome(incident(time="2026-11-25T11:00:00Z"), state, policy=policy)[0] == ENGAGE
    assert (
        outcome(incident("CALL_QUALITY", time="2026-11-25T10:00:00Z"), state, policy=policy)[0]
        == ENGAGE
    )


def test_the_daily_cap_counts_engagements_of_the_local_day():
    policy = replace(POLICY, max_calls_per_day=2, cooldown_minutes=0)
    state = EngagementState({"CALL_QUALITY": "2026-11-25T09:00:00Z"}, "2026-11-25", 2)

    assert outcome(incident(time="2026-11-25T12:00:00Z"), state, policy=policy) == (
        SUPPRESS,
        "daily_cap",
    )
    assert outcome(incident(time="2026-11-26T12:00:00Z"), state, policy=policy)[0] == ENGAGE


def test_two_incidents_within_five_minutes_are_both_engaged_in_time_order():
    later = incident("LOW_BITRATE", time="2026-11-25T10:19:00Z", sessions=10, failures=2)
    earlier = incident("CALL_DROP", time="2026-11-25T10:15:03Z")

    decisions, state = decide_all(PHONE, [later, earlier], EngagementState(), False, POLICY)

    assert [(d.incident.event_type, d.decision) for d in decisions] == [
        ("CALL_DROP", ENGAGE),
        ("LOW_BITRATE", ENGAGE),
    ]
    assert state.calls_today == 2
    assert state.last_by_kpi == {"CALL_DROP": earlier.timestamp, "LOW_BITRATE": later.timestamp}


def test_a_second_incident_of_the_same_kpi_in_one_update_is_in_cooldown():
    first = incident(time="2026-11-25T10:15:03Z")
    second = incident(time="2026-11-25T10:18:00Z")

    decisions, _ = decide_all(PHONE, [first, second], EngagementState(), False, POLICY)

    assert [(d.decision, d.reason) for d in decisions] == [
        (ENGAGE, "above_threshold"),
        (SUPPRESS, "cooldown"),
    ]


def test_a_decision_already_recorded_is_replayed_as_engage_without_changing_state():
    item = incident()
    _, state = decide(PHONE, item, EngagementState(), False, POLICY)

    decision, again = decide(PHONE, item, state, False, POLICY)

    assert (decision.decision, decision.replayed) == (ENGAGE, True)
    assert again == state


def test_the_engagement_id_is_deterministic_and_in_the_message():
    decision, _ = decide(PHONE, incident(), EngagementState(), False, POLICY)
    message = decision.to_message()

    item = incident()
    assert message.engagement_id == engagement_id(
        PHONE, "CALL_DROP", "2026-11-25T10:15:03Z", item.incident_id
    )
    assert message.engagement_id != message.incident_id
    assert (message.threshold, message.decided_at) == (0.16, message.incident_time)


def test_the_engagement_state_round_trips_through_the_item():
    state = EngagementState({"CALL_DROP": "2026-11-25T10:15:03Z"}, "2026-11-25", 2)

    assert EngagementState.from_item(state.to_item()) == state
    assert EngagementState.from_item(None) == EngagementState()
