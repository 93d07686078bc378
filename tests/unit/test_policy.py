"""The policy is the one place thresholds and contact rules are validated."""

import json

import pytest

from feedback_loop.errors import ConfigError
from feedback_loop.policy import Policy, QuietHours, load_policy, policy_from_json


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


def test_null_quiet_hours_disables_them():
    policy = load_policy({"quiet_hours": None})

    assert not any(policy.quiet_hours.contains(f"{hour:02d}:00") for hour in range(24))
    assert json.loads(policy.to_json())["quiet_hours"] == {"start": "00:00", "end": "00:00"}


@pytest.mark.parametrize(
    ("start", "end", "inside", "outside"),
    [
        ("21:00", "08:00", ["21:00", "23:59", "00:00", "07:59"], ["08:00", "12:00", "20:59"]),
        ("12:00", "14:00", ["12:00", "13:59"], ["11:59", "14:00", "00:00"]),
    ],
)
def test_quiet_hours_include_start_exclude_end_and_may_wrap_midnight(start, end, inside, outside):
    hours = QuietHours(start=start, end=end)

    assert all(hours.contains(t) for t in inside)
    assert not any(hours.contains(t) for t in outside)
