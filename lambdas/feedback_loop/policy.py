"""The runtime policy: thresholds, windows and contact rules.

It is the part of the ``feedback_loop`` config (``cdk.json``) the handlers need;
the stack passes it to them as ``POLICY_JSON``. Validation lives here so synth,
the handlers and the twin reject the same bad values with the same message.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedback_loop.contact_policy import (
    BUDGET_MODES,
    WEEKDAYS,
    CallingHours,
    ContactRules,
    RatingBudget,
)
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
    """Local-time interval in which nobody is contacted; ``start == end`` disables it."""

    start: str = "21:00"
    end: str = "08:00"


@dataclass(frozen=True)
class OutageRule:
    """When a cell's trouble is an outage, and how many of its subscribers to ask.

    At least ``min_subscribers`` distinct subscribers of one cell crossing a threshold
    within a ``window_minutes`` window is an outage: one cell-level signal, and at most
    ``sample_size`` of them are contacted (a deterministic random sample); the others are
    suppressed as ``cell_outage``.
    """

    min_subscribers: int = 20
    window_minutes: int = 30
    sample_size: int = 10


@dataclass(frozen=True)
class SmsRule:
    """The second channel: a text asking for the same 1-5 rating (when ``enabled``).

    It is used after ``voice_attempts`` unanswered calls, or first for subscribers whose
    profile prefers it; a reply is awaited ``reply_wait_hours``.
    """

    enabled: bool = False
    reply_wait_hours: int = 24


@dataclass(frozen=True)
class Policy:
    """Validated runtime policy (see docs/ARCHITECTURE.md, "Policy")."""

    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    windows_minutes: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_WINDOWS_MINUTES)
    )
    min_sessions: int = 3
    cooldown_minutes: int = 1440
    max_contacts: int = 2
    max_contacts_days: int = 7
    gather_minutes: int = 10
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    blocked_days: tuple[str, ...] = ()
    timezone: str = "UTC"
    max_incident_age_hours: int = 24
    calls_per_minute: int = 6
    voice_attempts: int = 2
    retry_after_minutes: int = 120
    answer_wait_minutes: int = 15
    outage: OutageRule = field(default_factory=OutageRule)
    sms: SmsRule = field(default_factory=SmsRule)
    max_recent_incidents: int = 8
    sentiment_alpha: float = 0.5
    rating_budget: RatingBudget = field(default_factory=RatingBudget)

    def to_json(self) -> str:
        """Serialise for the ``POLICY_JSON`` environment variable."""
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def contact_rules(self) -> ContactRules:
        """The per-subscriber contact rules (``feedback_loop.contact_policy``)."""
        return ContactRules(
            cooldown=timedelta(minutes=self.cooldown_minutes),
            max_contacts=self.max_contacts,
            max_contacts_window=timedelta(days=self.max_contacts_days),
            gather=timedelta(minutes=self.gather_minutes),
            max_incident_age=timedelta(hours=self.max_incident_age_hours),
            hours=CallingHours(self.quiet_hours.start, self.quiet_hours.end, self.blocked_days),
        )


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
    "max_contacts": {"low": 1, "high": 100, "integer": True},
    "max_contacts_days": {"low": 1, "high": 365, "integer": True},
    "gather_minutes": {"low": 0, "high": 24 * 60, "integer": True},
    # With the longest reply wait, an episode stays within the trigger queue's 14 days.
    "max_incident_age_hours": {"low": 1, "high": 7 * 24, "integer": True},
    "calls_per_minute": {"low": 1, "high": 10_000, "integer": True},
    "voice_attempts": {"low": 1, "high": 5, "integer": True},
    "retry_after_minutes": {"low": 1, "high": 7 * 24 * 60, "integer": True},
    "answer_wait_minutes": {"low": 1, "high": 24 * 60, "integer": True},
    "max_recent_incidents": {"low": 1, "high": 16, "integer": True},
    "sentiment_alpha": {"low": 0.01, "high": 1.0},
}
_OUTAGE: dict[str, dict[str, Any]] = {
    "min_subscribers": {"low": 2, "high": 100_000, "integer": True},
    "window_minutes": {"low": 1, "high": 24 * 60, "integer": True},
    "sample_size": {"low": 1, "high": 100_000, "integer": True},
}


def _blocked_days(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(d, str) for d in value):
        raise ConfigError(f"blocked_days must be a list of {list(WEEKDAYS)}, got {value!r}")
    days = tuple(day.lower() for day in value)
    unknown = sorted(set(days) - set(WEEKDAYS))
    if unknown:
        raise ConfigError(f"blocked_days has unknown days {unknown}; expected {list(WEEKDAYS)}")
    if len(set(days)) == len(WEEKDAYS):
        raise ConfigError("blocked_days blocks every day: nobody could ever be contacted")
    return tuple(day for day in WEEKDAYS if day in days)


def _outage(value: Any) -> OutageRule:
    if not isinstance(value, Mapping) or set(value) - set(_OUTAGE):
        raise ConfigError(f"outage must be an object with keys {list(_OUTAGE)}, got {value!r}")
    defaults = OutageRule()
    return OutageRule(
        **{
            name: _number(f"outage.{name}", value.get(name, getattr(defaults, name)), **bounds)
            for name, bounds in _OUTAGE.items()
        }
    )


def _sms(value: Any) -> SmsRule:
    if not isinstance(value, Mapping) or set(value) - {"enabled", "reply_wait_hours"}:
        raise ConfigError(
            f'sms must be {{"enabled": true|false, "reply_wait_hours": N}}, got {value!r}'
        )
    enabled = value.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"sms.enabled must be true or false, got {enabled!r}")
    wait = _number(
        "sms.reply_wait_hours", value.get("reply_wait_hours", 24), low=1, high=72, integer=True
    )
    return SmsRule(enabled=enabled, reply_wait_hours=wait)


# The period is aligned to the epoch, so it must divide the day to follow it.
_PERIOD_HOURS = (1, 2, 3, 4, 6, 8, 12, 24)
_BUDGET_NUMBERS: dict[str, dict[str, Any]] = {
    # One rating point moves sentiment by 0.25 at the default sentiment_alpha.
    "half_width": {"low": 0.01, "high": 1.0},
    # The map ranks a cell from two answers; fewer than that is no spread at all.
    "min_ratings": {"low": 2, "high": 10_000, "integer": True},
}


def _rating_budget(value: Any) -> RatingBudget:
    keys = ("enabled", "mode", *_BUDGET_NUMBERS, "period_hours")
    if not isinstance(value, Mapping) or set(value) - set(keys):
        raise ConfigError(f"rating_budget must be an object with keys {list(keys)}, got {value!r}")
    defaults = RatingBudget()
    enabled = value.get("enabled", defaults.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError(f"rating_budget.enabled must be true or false, got {enabled!r}")
    mode = value.get("mode", defaults.mode)
    if mode not in BUDGET_MODES:
        raise ConfigError(f"rating_budget.mode must be one of {list(BUDGET_MODES)}, got {mode!r}")
    period = value.get("period_hours", defaults.period_hours)
    if isinstance(period, bool) or period not in _PERIOD_HOURS:
        raise ConfigError(
            f"rating_budget.period_hours must be one of {list(_PERIOD_HOURS)}, got {period!r}"
        )
    numbers = {
        name: _number(f"rating_budget.{name}", value.get(name, getattr(defaults, name)), **bounds)
        for name, bounds in _BUDGET_NUMBERS.items()
    }
    return RatingBudget(enabled=enabled, mode=mode, period_hours=int(period), **numbers)


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
        blocked_days=_blocked_days(raw.get("blocked_days", [])),
        timezone=str(timezone),
        outage=_outage(raw.get("outage", {})),
        sms=_sms(raw.get("sms", {})),
        rating_budget=_rating_budget(raw.get("rating_budget", {})),
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
