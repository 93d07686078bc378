"""The decision on each above-threshold incident: thresholds, opt-outs, episodes, gap and cap."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from feedback_loop.decision import ENGAGE, MERGED, SUPPRESS, Decision, decide, decide_all
from feedback_loop.engage import decision_counts
from feedback_loop.episodes import CLOSED, ContactState, Episode, SubscriberView
from feedback_loop.errors import InvalidRecord
from feedback_loop.ids import engagement_id, incident_id
from feedback_loop.incidents import Incident
from feedback_loop.policy import load_policy
from feedback_loop.timeutil import format_utc

PHONE = "+447700900123"
POLICY = load_policy({"quiet_hours": {"start": "21:00", "end": "08:00"}, "timezone": "UTC"})
NOW = datetime(2026, 11, 25, 10, 20, tzinfo=UTC)


def incident(kpi="CALL_DROP", time="2026-11-25T10:15:03Z", sessions=8, failures=2, position=0):
    record_id = f"shardId-000000000000:{time}:{position}"
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


def view(**changes) -> SubscriberView:
    return replace(SubscriberView(PHONE), **changes)


def outcome(item, subscriber=None, policy=POLICY, now=NOW):
    decision, _ = decide(item, subscriber or view(), policy, now)
    return None if decision is None else (decision.decision, decision.reason)


def test_a_rate_exactly_at_the_threshold_does_not_engage():
    # CALL_DROP threshold 0.16 = 4 / 25
    assert outcome(incident(sessions=25, failures=4)) is None


def test_a_rate_just_above_the_threshold_engages_and_opens_an_episode():
    decision, after = decide(incident(sessions=24, failures=4), view(), POLICY, NOW)

    assert (decision.decision, decision.reason) == (ENGAGE, "above_threshold")
    episode = after.contact.episode
    assert episode.engagement_id == decision.engagement_id
    assert (episode.incident_types, episode.status) == (("CALL_DROP",), "open")


def test_each_kpi_uses_its_own_threshold():
    # 1/10 = 0.10: above LOW_BITRATE 0.09, below VIDEO_STALLING 0.11
    assert outcome(incident("LOW_BITRATE", sessions=10, failures=1))[0] == ENGAGE
    assert outcome(incident("VIDEO_STALLING", sessions=10, failures=1)) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"opted_out": True}, "opted_out"),
        ({"do_not_contact": True}, "do_not_contact"),
    ],
)
def test_an_opted_out_or_do_not_contact_subscriber_is_never_engaged(changes, reason):
    decision, after = decide(incident(), view(**changes), POLICY, NOW)

    assert (decision.decision, decision.reason) == (SUPPRESS, reason)
    assert after.contact.episode is None


def test_too_few_sessions_suppresses():
    policy = replace(POLICY, min_sessions=5)
    assert outcome(incident(sessions=4, failures=2), policy=policy) == (SUPPRESS, "min_sessions")
    assert outcome(incident(sessions=5, failures=2), policy=policy) == (ENGAGE, "above_threshold")


def test_an_incident_decided_after_its_age_limit_is_stale():
    late = NOW + timedelta(hours=25)
    assert outcome(incident(), now=late) == (SUPPRESS, "stale")


def test_incidents_of_several_kpis_in_one_episode_become_one_engagement():
    # Given a subscriber whose calls drop and whose video stalls within minutes
    drop = incident("CALL_DROP", "2026-11-25T10:15:03Z")
    stall = incident("VIDEO_STALLING", "2026-11-25T10:17:40Z", sessions=10, failures=3)

    decisions, after = decide_all([stall, drop], view(), POLICY, NOW)

    # Then the first opens the episode and the second joins it: one contact for both
    assert [(d.decision, d.reason) for d in decisions] == [
        (ENGAGE, "above_threshold"),
        (MERGED, "same_episode"),
    ]
    assert decisions[0].engagement_id == decisions[1].engagement_id
    assert after.contact.episode.incident_types == ("CALL_DROP", "VIDEO_STALLING")


def test_two_failed_sessions_in_the_same_second_join_one_episode():
    first, second = incident(position=0), incident(position=1)

    decisions, after = decide_all([first, second], view(), POLICY, NOW)

    assert [d.decision for d in decisions] == [ENGAGE, MERGED]
    assert len(after.contact.episode.incident_keys) == 2


def test_a_closed_episode_does_not_absorb_a_new_incident():
    _, opened = decide(incident(), view(), POLICY, NOW)
    closed = opened.contact.with_episode(replace(opened.contact.episode, status=CLOSED))

    later = incident("CALL_QUALITY", "2026-11-25T10:30:00Z")
    decision, _ = decide(later, view(contact=closed), POLICY, NOW + timedelta(minutes=15))

    assert (decision.decision, decision.reason) == (ENGAGE, "above_threshold")


def test_an_open_episode_past_the_age_limit_does_not_absorb_a_new_incident():
    # Its trigger never went out (parked in a dead-letter queue): it will never be contacted
    _, opened = decide(incident(), view(), POLICY, NOW)

    later = incident("CALL_QUALITY", "2026-11-26T11:00:00Z")
    decision, after = decide(later, opened, POLICY, NOW + timedelta(hours=25))

    assert (decision.decision, decision.reason) == (ENGAGE, "above_threshold")
    assert after.contact.episode.incident_types == ("CALL_QUALITY",)


def test_a_contact_the_gap_would_push_past_the_age_limit_is_suppressed_now():
    # Contacted an hour ago: the next contact may come in 23 h, the incident is stale in 24 h
    history = (format_utc(NOW - timedelta(hours=1)),)
    subscriber = view(contact=ContactState(history=history))
    assert outcome(incident(), subscriber) == (ENGAGE, "above_threshold")

    # With a 12-hour age limit it could never be asked about: suppressed as contact_gap
    short = replace(POLICY, max_incident_age_hours=12)
    assert outcome(incident(), subscriber, policy=short) == (SUPPRESS, "contact_gap")


def test_the_cap_suppresses_when_it_cannot_reopen_in_time():
    history = (format_utc(NOW - timedelta(days=2)), format_utc(NOW - timedelta(days=1)))
    capped = view(contact=ContactState(history=history))
    assert outcome(incident(), capped) == (SUPPRESS, "contact_cap")


def test_a_replayed_incident_is_decided_the_same_without_changing_the_state():
    drop, stall = incident(), incident("VIDEO_STALLING", "2026-11-25T10:17:40Z", 10, 3)
    decisions, after = decide_all([drop, stall], view(), POLICY, NOW)

    again, unchanged = decide_all([drop, stall], after, POLICY, NOW)

    assert [(d.decision, d.reason, d.replayed) for d in again] == [
        (ENGAGE, "above_threshold", True),
        (MERGED, "same_episode", True),
    ]
    assert [d.engagement_id for d in again] == [d.engagement_id for d in decisions]
    assert unchanged == after


def test_the_engagement_id_is_deterministic_and_in_the_message():
    decision, _ = decide(incident(), view(), POLICY, NOW)
    message = decision.to_message()

    item = incident()
    assert message.engagement_id == engagement_id(
        PHONE, "CALL_DROP", "2026-11-25T10:15:03Z", item.incident_id
    )
    assert message.engagement_id != message.incident_id
    assert (message.threshold, message.decided_at) == (0.16, format_utc(NOW))


def test_the_episode_round_trips_through_the_profile_item():
    _, after = decide(incident(), view(), POLICY, NOW)
    episode = after.contact.episode

    assert Episode.from_item(episode.to_item(PHONE), PHONE) == episode
    profile = {
        "PhoneNumber": PHONE,
        "Episode": episode.to_item(PHONE),
        "ContactHistory": [],
        "ContactVersion": 3,
    }
    assert ContactState.from_profile(profile) == ContactState(episode, (), 3)


@pytest.mark.parametrize("field", ["Tried", "Until"])
def test_an_episode_with_an_unreadable_time_is_malformed(field):
    """A stored attempt or deferral time that does not parse is caught where the episode is
    read, as every other field is, not later inside the dialler's wait."""
    _, after = decide(incident(), view(), POLICY, NOW)
    stored = {**after.contact.episode.to_item(PHONE), field: "yesterday"}

    with pytest.raises(InvalidRecord) as raised:
        Episode.from_item(stored, PHONE)

    assert raised.value.reason == "malformed_image"


def _thin(position: int) -> Decision:
    """A ``suppress: min_sessions`` decision (counted, not sent one by one)."""
    return Decision(
        phone_number=PHONE,
        incident=incident(sessions=2, failures=2, position=position),
        decision=SUPPRESS,
        reason="min_sessions",
        threshold=0.1,
        engagement_id=f"e{position}",
        decided_at=format_utc(NOW),
    )


def test_a_records_counts_keep_their_ids_whatever_else_is_counted_with_it():
    # Given one stream record's counted decision, counted alone and then (a different
    # batch) next to another record's
    alone = decision_counts("333300000000000001", [_thin(1)])
    together = [
        *decision_counts("333300000000000000", [_thin(0)]),
        *decision_counts("333300000000000001", [_thin(1)]),
    ]

    # Then its count is the same one, and the two records' counts are distinct
    assert alone[0] in together
    assert len({count.count_id for count in together}) == 2
    assert [count.incidents for count in together] == [1, 1]
