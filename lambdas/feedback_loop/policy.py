"""The runtime policy: thresholds, windows and contact rules.

It is the part of the ``feedback_loop`` config (``cdk.json``) the handlers need;
the stack passes it to them as ``POLICY_JSON``. Validation lives here so synth,
the handlers and the twin reject the same bad values with the same message.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedback_loop.contract import EVENT_TYPES
from feedback_loop.errors import ConfigError

DEFAULT_THRESHOLDS = {
    "CALL_DROP": 0.16,
    "CALL_QUALITY": 0.18,
    "LOW_BITRATE": 0.09,
    "VIDEO_STALLING": 0.11,
}
DEFAULT_WINDOWS_MINUTES = {
    "CALL_DROP": 60,
    "CALL_QUALITY": 60,
    "LOW_BITRATE": 360,
    "VIDEO_STALLING": 360,
}
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class QuietHours:
    """Local-time interval in which nobody is called; ``start == end`` disables it."""

    start: str = "21:00"
    end: str = "08:00"

    def contains(self, hhmm: str) -> bool:
        """True when local time ``hhmm`` falls in the interval (which may wrap midnight)."""
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= hhmm < self.end
        return hhmm >= self.start or hhmm < self.end


@dataclass(frozen=True)
class Policy:
    """Validated runtime policy (see docs/ARCHITECTURE.md, "Policy")."""

    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    windows_minutes: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_WINDOWS_MINUTES)
    )
    min_sessions: int = 3
    cooldown_minutes: int = 1440
    max_calls_per_day: int = 3
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    timezone: str = "UTC"
    max_recent_incidents: int = 20
    sentiment_alpha: float = 0.5

    def to_json(self) -> str:
        """Serialise for the ``POLICY_JSON`` environment variable."""
        return json.dumps(asdict(self), sort_keys=True)


POLICY_KEYS = tuple(Policy.__dataclass_fields__)


def _number(name: str, value: Any, *, low: float, high: float, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if integer and int(value) != value:
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value!r}")
    return int(value) if integer else float(value)


def _per_kpi(name: str, value: Any, defaults: Mapping[str, Any], **bounds: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be an object keyed by event type, got {value!r}")
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise ConfigError(f"{name} has unknown event types {unknown}; expected {list(EVENT_TYPES)}")
    merged = dict(defaults)
    merged.update({kpi: _number(f"{name}.{kpi}", v, **bounds) for kpi, v in value.items()})
    return merged


def _quiet_hours(value: Any) -> QuietHours:
    if value is None:
        return QuietHours(start="00:00", end="00:00")
    if not isinstance(value, Mapping) or set(value) - {"start", "end"}:
        raise ConfigError(
            f'quiet_hours must be {{"start": "HH:MM", "end": "HH:MM"}} or null, got {value!r}'
        )
    hours = QuietHours(**{k: value.get(k, getattr(QuietHours, k)) for k in ("start", "end")})
    for part in ("start", "end"):
        text = getattr(hours, part)
        if not isinstance(text, str) or not _HHMM.match(text):
            raise ConfigError(f"quiet_hours.{part} must be HH:MM (24 h), got {text!r}")
    return hours


_SCALARS: dict[str, dict[str, Any]] = {
    "min_sessions": {"low": 1, "high": 1000, "integer": True},
    "cooldown_minutes": {"low": 0, "high": 90 * 24 * 60, "integer": True},
    "max_calls_per_day": {"low": 1, "high": 100, "integer": True},
    "max_recent_incidents": {"low": 1, "high": 200, "integer": True},
    "sentiment_alpha": {"low": 0.01, "high": 1.0},
}


def load_policy(raw: Mapping[str, Any] | None = None) -> Policy:
    """Build a :class:`Policy` from a (partial) mapping; unknown keys are ignored by design.

    The mapping is usually the whole ``feedback_loop`` config, which also holds
    deployment-only keys. Raises :class:`ConfigError` naming the bad key.
    """
    raw = dict(raw or {})
    defaults = Policy()
    timezone = raw.get("timezone", defaults.timezone)
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ConfigError(f"timezone must be an IANA time zone name, got {timezone!r}") from error
    scalars = {
        name: _number(name, raw.get(name, getattr(defaults, name)), **bounds)
        for name, bounds in _SCALARS.items()
    }
    return Policy(
        thresholds=_per_kpi(
            "thresholds", raw.get("thresholds", {}), DEFAULT_THRESHOLDS, low=0.0, high=1.0
        ),
        windows_minutes=_per_kpi(
            "windows_minutes",
            raw.get("windows_minutes", {}),
            DEFAULT_WINDOWS_MINUTES,
            low=1,
            high=7 * 24 * 60,
            integer=True,
        ),
        quiet_hours=(
            _quiet_hours(raw["quiet_hours"]) if "quiet_hours" in raw else defaults.quiet_hours
        ),
        timezone=str(timezone),
        **scalars,
    )


def policy_from_json(text: str | None) -> Policy:
    """Parse ``POLICY_JSON``; an absent variable means the reference-design defaults."""
    if not text:
        return Policy()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"POLICY_JSON is not valid JSON: {error}") from error
    return load_policy(raw)
