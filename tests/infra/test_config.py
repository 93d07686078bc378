"""The feedback_loop config: defaults, -c overrides, and clear failures on bad values."""

import json

import aws_cdk as cdk
import pytest

from feedback_loop.errors import ConfigError
from feedback_loop.policy import load_policy
from stacks.application import build_app
from stacks.config import (
    CONTEXT_KEY,
    KNOWN_KEYS,
    REPO_ROOT,
    cdk_json_context,
    config_from_context,
    load_config,
)

pytestmark = [pytest.mark.xdist_group("synth"), pytest.mark.slow]


def _cdk_json_block() -> dict:
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"][CONTEXT_KEY]


def test_cdk_json_names_every_known_key_and_validates() -> None:
    block = _cdk_json_block()
    assert set(block) == set(KNOWN_KEYS)
    config = load_config(block)
    assert config.policy == load_policy(block)
    assert config.max_concurrent_calls == block["max_concurrent_calls"]
    assert config.lake_retention_days == block["lake_retention_days"]


def test_missing_keys_take_the_cdk_json_defaults() -> None:
    assert load_config({}) == load_config(_cdk_json_block())


def test_command_line_context_strings_override_cdk_json() -> None:
    # Given what `cdk deploy -c min_sessions=4 -c thresholds='{"CALL_DROP": 0.3}'` passes
    app = cdk.App(
        context={
            **cdk_json_context(),
            "min_sessions": "4",
            "thresholds": '{"CALL_DROP": 0.3}',
            "timezone": "Europe/London",
            "alarm_email": "null",
        }
    )
    # When
    config, raw = config_from_context(app.node)
    # Then the strings are parsed, one threshold changes and the others keep cdk.json's values
    assert config.policy.min_sessions == 4
    assert config.policy.timezone == "Europe/London"
    assert config.policy.thresholds["CALL_DROP"] == 0.3
    defaults = _cdk_json_block()["thresholds"]
    assert config.policy.thresholds["CALL_QUALITY"] == defaults["CALL_QUALITY"]
    assert config.alarm_email is None
    assert raw["min_sessions"] == 4


def test_overrides_win_over_command_line() -> None:
    app = cdk.App(context={**cdk_json_context(), "min_sessions": "4"})
    config, _ = config_from_context(app.node, {"min_sessions": 2})
    assert config.policy.min_sessions == 2


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("min_sessions", "many"),
        ("thresholds", {"CALL_DROP": 1.5}),
        ("thresholds", {"DROPPED": 0.1}),
        ("quiet_hours", {"start": "25:00", "end": "08:00"}),
        ("timezone", "Mars/Olympus"),
        ("max_concurrent_calls", 1),
        ("ingest_parallelization_factor", 0),
        ("ingest_parallelization_factor", 11),
        ("lake_retention_days", 2.5),
        ("probe_archive_retention_days", 0),
        ("probe_archive_retention_days", 401),  # beyond the lake's own 400 days
        ("log_retention_days", 31),
        ("athena_scan_cutoff_gib", 0),
        ("athena_scan_cutoff_gib", 100_001),
        ("connect_instance_arn", "my-instance"),
        ("connect_instance_alias", "bad alias!"),
        ("source_phone_number", "07700900123"),
        ("phone_number_country_code", "gbr"),
        ("quicksight_principal_arn", "ops"),
        ("alarm_email", "not-an-address"),
        ("counters_capacity", 5),
        ("counters_capacity", {"write_units": 100}),
        ("counters_capacity", {"min_write_units": 100, "max_write_units": 50}),
        ("counters_capacity", {"target_utilization_percent": 95}),
        ("counters_capacity", {"max_write_units": 40_001}),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config({key: value})


def test_a_deployment_without_any_caller_id_is_refused() -> None:
    with pytest.raises(ConfigError, match="source_phone_number or phone_number_country_code"):
        load_config({"source_phone_number": None, "phone_number_country_code": None})


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match="min_session"):
        load_config({"min_session": 3})


def test_bad_value_fails_synth_with_the_key_named() -> None:
    with pytest.raises(ConfigError, match="lake_retention_days"):
        build_app({"lake_retention_days": -1}, checks=False)
