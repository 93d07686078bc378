"""The policy is the one place thresholds and contact rules are validated."""

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from feedback_loop.errors import ConfigError
from feedback_loop.policy import OutageRule, Policy, load_policy, policy_from_json


def test_defaults_are_the_reference_design_thresholds_and_windows():
    policy = load_policy({})

    assert policy.thresholds == {
        "CALL_DROP": 0.16,
        "CALL_QUALITY": 0.18,
        "LOW_BITRATE": 0.09,
        "VIDEO_STALLING": 0.11,
    }
    assert policy.windows_minutes == {
        "CALL_DROP": 60,
        "CALL_QUALITY": 60,
        "LOW_BITRATE": 360,
        "VIDEO_STALLING": 360,
    }
    assert policy.min_sessions <= 5


def test_partial_threshold_override_keeps_the_other_defaults():
    policy = load_policy({"thresholds": {"CALL_DROP": 0.3}})

    assert policy.thresholds["CALL_DROP"] == 0.3
    assert policy.thresholds["VIDEO_STALLING"] == 0.11


def test_deployment_only_keys_are_ignored():
    assert load_policy({"alarm_email": "ops@example.com"}) == Policy()


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"thresholds": {"CALL_DROP": 1.5}}, "thresholds.CALL_DROP"),
        ({"thresholds": {"SMS_FAIL": 0.1}}, "SMS_FAIL"),
        ({"windows_minutes": {"LOW_BITRATE": 0}}, "windows_minutes.LOW_BITRATE"),
        ({"min_sessions": "3"}, "min_sessions"),
        ({"min_sessions": 2.5}, "min_sessions"),
        ({"cooldown_minutes": -1}, "cooldown_minutes"),
        ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "quiet_hours.start"),
        ({"quiet_hours": "night"}, "quiet_hours"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"sentiment_alpha": True}, "sentiment_alpha"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_key(raw, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_policy(raw)


def test_round_trips_through_the_environment_variable():
    policy = load_policy({"min_sessions": 5, "quiet_hours": {"start": "22:00", "end": "07:30"}})

    assert policy_from_json(policy.to_json()) == policy


def test_absent_environment_variable_means_defaults_and_bad_json_is_named():
    assert policy_from_json(None) == Policy()
    with pytest.raises(ConfigError, match="POLICY_JSON"):
        policy_from_json("{not json")


def test_null_quiet_hours_disable_them():
    policy = load_policy({"quiet_hours": None})

    hours = policy.contact_rules.hours
    zones = (ZoneInfo("UTC"),)
    day = datetime(2026, 11, 25, tzinfo=UTC)
    assert all(hours.allows(day + timedelta(hours=h), zones) for h in range(24))
    assert json.loads(policy.to_json())["quiet_hours"] == {"start": "00:00", "end": "00:00"}


def test_the_contact_policy_keys_have_their_documented_defaults():
    policy = Policy()
    assert (policy.cooldown_minutes, policy.max_contacts, policy.max_contacts_days) == (1440, 2, 7)
    assert (policy.gather_minutes, policy.max_incident_age_hours) == (10, 24)
    assert (policy.voice_attempts, policy.retry_after_minutes, policy.answer_wait_minutes) == (
        2,
        120,
        15,
    )
    assert policy.outage == OutageRule(min_subscribers=20, window_minutes=30, sample_size=10)
    assert (policy.sms.enabled, policy.calls_per_minute, policy.blocked_days) == (False, 6, ())


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"max_contacts": 0}, "max_contacts"),
        ({"gather_minutes": 2000}, "gather_minutes"),
        ({"blocked_days": ["sunday"]}, "blocked_days"),
        ({"blocked_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}, "blocked_days"),
        ({"outage": {"min_subscribers": 1}}, "outage.min_subscribers"),
        ({"outage": {"size": 3}}, "outage"),
        ({"sms": {"enabled": "yes"}}, "sms.enabled"),
        ({"voice_attempts": 6}, "voice_attempts"),
        ({"calls_per_minute": 0}, "calls_per_minute"),
    ],
)
def test_bad_contact_policy_values_fail_naming_the_key(raw, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_policy(raw)


def test_the_nested_keys_round_trip_through_the_environment_variable():
    policy = load_policy(
        {"blocked_days": ["Sun", "sat"], "outage": {"sample_size": 5}, "sms": {"enabled": True}}
    )

    assert policy.blocked_days == ("sat", "sun")
    assert policy_from_json(policy.to_json()) == policy
