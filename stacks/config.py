"""Typed model of the ``feedback_loop`` context in ``cdk.json``.

One place turns the raw context (``cdk.json``, ``cdk deploy -c key=value``, or a twin
scenario's ``config``) into validated settings, so synth, the deployed handlers and the
twin reject the same bad values with a message naming the key.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedback_loop.contract import E164
from feedback_loop.errors import ConfigError
from feedback_loop.policy import POLICY_KEYS, Policy, load_policy

CONTEXT_KEY = "feedback_loop"
REPO_ROOT = Path(__file__).resolve().parent.parent

DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    "connect_instance_arn": None,
    "connect_instance_alias": None,
    "source_phone_number": None,
    "phone_number_country_code": "GB",
    "max_concurrent_calls": 5,
    "ingest_parallelization_factor": 10,
    "sms_origination_identity": None,
    "tts_voice": "Amy",
    "quicksight_principal_arn": None,
    "alarm_email": None,
    "lake_retention_days": 400,
    "probe_archive_retention_days": 35,
    "log_retention_days": 30,
    "athena_scan_cutoff_gib": 100,
    "counters_capacity": None,
}
KNOWN_KEYS = (*POLICY_KEYS, *DEPLOYMENT_DEFAULTS)
# Per-KPI maps given on the command line are merged over cdk.json, not replacing it.
_MERGED_KEYS = ("thresholds", "windows_minutes")

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
_CONNECT_ARN = re.compile(r"^arn:aws[a-z-]*:connect:[a-z0-9-]+:\d{12}:instance/[0-9a-f-]{36}$")
_CONNECT_ALIAS = re.compile(r"^(?!d-)[A-Za-z0-9]([A-Za-z0-9-]{0,60}[A-Za-z0-9])?$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SMS_IDENTITY = re.compile(
    r"^arn:aws[a-z-]*:sms-voice:[a-z0-9-]+:\d{12}:(phone-number|pool)/[A-Za-z0-9_-]+$"
)
# Amazon Polly voice names are one capitalised word (Amy, Joanna, Aditi, ...).
_VOICE = re.compile(r"^[A-Z][a-zA-Z]{1,30}$")
_QUICKSIGHT_ARN = re.compile(r"^arn:aws[a-z-]*:quicksight:[a-z0-9-]+:\d{12}:(user|group)/.+$")


@dataclass(frozen=True)
class CountersCapacity:
    """Provisioned write capacity with auto scaling for ``Subscriber_counters``.

    Ingest writes the counters table about once per probe record and reads nothing from
    it, so at steady high volume provisioned write units cost less than on-demand requests
    (docs/SCALE.md prices both); auto scaling follows the daily profile, but a burst above
    the provisioned units is throttled until it catches up (ingest retries the batch).
    """

    min_write_units: int
    max_write_units: int
    target_utilization_percent: int
    read_units: int


# Keys of ``counters_capacity`` with their defaults (null = on-demand, the default).
COUNTERS_CAPACITY_DEFAULTS = {
    "min_write_units": 100,
    "max_write_units": 40_000,
    "target_utilization_percent": 70,
    "read_units": 5,
}


@dataclass(frozen=True)
class FeedbackLoopConfig:
    """Validated deployment settings plus the runtime :class:`Policy`."""

    policy: Policy
    connect_instance_arn: str | None
    connect_instance_alias: str | None
    source_phone_number: str | None
    phone_number_country_code: str | None
    max_concurrent_calls: int
    ingest_parallelization_factor: int
    sms_origination_identity: str | None
    tts_voice: str
    quicksight_principal_arn: str | None
    alarm_email: str | None
    lake_retention_days: int
    probe_archive_retention_days: int
    log_retention_days: int
    athena_scan_cutoff_gib: int
    counters_capacity: "CountersCapacity | None"

    @property
    def connect_instance_id(self) -> str | None:
        """The instance id part of ``connect_instance_arn`` (None when the stack creates one)."""
        return self.connect_instance_arn.rsplit("/", 1)[-1] if self.connect_instance_arn else None


def parse_context_value(value: Any) -> Any:
    """Decode a ``-c key=value`` string (JSON numbers, objects, null) and keep plain words."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _optional_text(raw: Mapping[str, Any], key: str, pattern: re.Pattern[str], hint: str) -> Any:
    value = raw.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(f"{key} must be {hint} or null, got {value!r}")
    return value


def _whole(raw: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ConfigError(f"{key} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{key} must be between {low} and {high}, got {value!r}")
    return int(value)


def _counters_capacity(value: Any) -> CountersCapacity | None:
    """``counters_capacity``: null for on-demand, else provisioned writes with auto scaling."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"counters_capacity must be null (on-demand) or an object with keys "
            f"{list(COUNTERS_CAPACITY_DEFAULTS)}, got {value!r}"
        )
    unknown = sorted(set(value) - set(COUNTERS_CAPACITY_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown counters_capacity keys {unknown}; known: {list(COUNTERS_CAPACITY_DEFAULTS)}"
        )
    merged = {
        f"counters_capacity.{key}": value.get(key, default)
        for key, default in COUNTERS_CAPACITY_DEFAULTS.items()
    }
    # A table's default write quota is 40,000 units ("Service, account, and table quotas
    # in Amazon DynamoDB"); a target utilization must lie between 20 and 90 percent
    # (aws_dynamodb AutoscaledCapacityOptions, as DynamoDB auto scaling accepts).
    low = _whole(merged, "counters_capacity.min_write_units", 1, 40_000)
    high = _whole(merged, "counters_capacity.max_write_units", 1, 40_000)
    if high < low:
        raise ConfigError(
            f"counters_capacity.max_write_units ({high}) must be at least min_write_units ({low})"
        )
    return CountersCapacity(
        min_write_units=low,
        max_write_units=high,
        target_utilization_percent=_whole(
            merged, "counters_capacity.target_utilization_percent", 20, 90
        ),
        read_units=_whole(merged, "counters_capacity.read_units", 1, 40_000),
    )


def load_config(raw: Mapping[str, Any] | None = None) -> FeedbackLoopConfig:
    """Validate a (partial) ``feedback_loop`` mapping; missing keys take their defaults.

    Raises :class:`ConfigError` naming the first bad or unknown key.
    """
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(KNOWN_KEYS))
    if unknown:
        raise ConfigError(f"unknown feedback_loop config keys {unknown}; known: {list(KNOWN_KEYS)}")
    merged = {**DEPLOYMENT_DEFAULTS, **raw}
    log_retention = _whole(merged, "log_retention_days", 1, 3653)
    if log_retention not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"log_retention_days must be one of {list(LOG_RETENTION_DAYS)}, got {log_retention!r}"
        )
    policy = load_policy(merged)
    sms_identity = _optional_text(
        merged,
        "sms_origination_identity",
        _SMS_IDENTITY,
        "the ARN of an AWS End User Messaging phone number or pool",
    )
    if policy.sms.enabled and not sms_identity:
        raise ConfigError(
            "sms.enabled needs sms_origination_identity: the ARN of the End User Messaging "
            "phone number (or pool) the texts are sent from and replies arrive at"
        )
    if not merged.get("source_phone_number") and not merged.get("phone_number_country_code"):
        raise ConfigError(
            "source_phone_number or phone_number_country_code must be set: Trigger_Connect "
            "needs a caller id (a number claimed in the Connect instance, or a country in "
            "which the stack claims one)"
        )
    lake_retention = _whole(merged, "lake_retention_days", 1, 3650)
    archive_retention = _whole(merged, "probe_archive_retention_days", 1, 3650)
    if archive_retention > lake_retention:
        raise ConfigError(
            f"probe_archive_retention_days ({archive_retention}) must not exceed "
            f"lake_retention_days ({lake_retention}): the lake's own expiry would cut it short"
        )
    return FeedbackLoopConfig(
        policy=policy,
        connect_instance_arn=_optional_text(
            merged, "connect_instance_arn", _CONNECT_ARN, "an Amazon Connect instance ARN"
        ),
        connect_instance_alias=_optional_text(
            merged, "connect_instance_alias", _CONNECT_ALIAS, "a Connect alias (letters, digits, -)"
        ),
        source_phone_number=_optional_text(
            merged, "source_phone_number", E164, "an E.164 phone number"
        ),
        phone_number_country_code=_optional_text(
            merged, "phone_number_country_code", _COUNTRY, "an ISO 3166 two-letter country code"
        ),
        # The SQS event source's MaximumConcurrency: AWS accepts 2 to 1000.
        max_concurrent_calls=_whole(merged, "max_concurrent_calls", 2, 1000),
        # The Kinesis event source's ParallelizationFactor: AWS accepts 1 to 10.
        ingest_parallelization_factor=_whole(merged, "ingest_parallelization_factor", 1, 10),
        sms_origination_identity=sms_identity,
        tts_voice=_optional_text(merged, "tts_voice", _VOICE, "an Amazon Polly voice name")
        or "Amy",
        quicksight_principal_arn=_optional_text(
            merged, "quicksight_principal_arn", _QUICKSIGHT_ARN, "a QuickSight user or group ARN"
        ),
        alarm_email=_optional_text(merged, "alarm_email", _EMAIL, "an e-mail address"),
        lake_retention_days=lake_retention,
        probe_archive_retention_days=archive_retention,
        log_retention_days=log_retention,
        athena_scan_cutoff_gib=_whole(merged, "athena_scan_cutoff_gib", 1, 100_000),
        counters_capacity=_counters_capacity(merged.get("counters_capacity")),
    )


def cdk_json_context(path: Path = REPO_ROOT / "cdk.json") -> dict[str, Any]:
    """The ``context`` of ``cdk.json`` (config and feature flags) for synth without the CLI."""
    return dict(json.loads(path.read_text(encoding="utf-8"))["context"])


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply overrides key by key; per-KPI maps are merged so one threshold can be changed."""
    merged = dict(base)
    for key, value in overrides.items():
        if (
            key in _MERGED_KEYS
            and isinstance(value, Mapping)
            and isinstance(merged.get(key), Mapping)
        ):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def config_from_context(
    context: Any, overrides: Mapping[str, Any] | None = None
) -> tuple[FeedbackLoopConfig, dict[str, Any]]:
    """Read the config from a construct's context (``try_get_context``), then ``overrides``.

    ``cdk deploy -c min_sessions=4`` arrives as a top-level context string; every known key
    is looked up that way and parsed. Returns the validated config and the raw merged map.
    """
    base = parse_context_value(context.try_get_context(CONTEXT_KEY)) or {}
    if not isinstance(base, Mapping):
        raise ConfigError(f"context {CONTEXT_KEY} must be an object, got {base!r}")
    command_line = {
        key: parse_context_value(value)
        for key in KNOWN_KEYS
        if (value := context.try_get_context(key)) is not None
    }
    raw = merge_overrides(merge_overrides(base, command_line), overrides or {})
    return load_config(raw), raw
