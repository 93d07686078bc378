"""Scenarios for the local twin: loading and validating scenario files, and the default day.

A scenario file is ``{"config", "subscribers", "probe_events", "answers", "faults",
"connect"}`` plus the optional ``remediation`` (fixes an operator records; docs/TWIN.md);
only ``probe_events`` is required. Everything the twin itself
interprets is validated here with a one-line message naming the field. Probe events are
deliberately *not* validated: rejecting bad probe records is the product's job, so a
scenario may contain malformed ones on purpose and the twin feeds them as they are.
"""

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedback_loop.contract import EVENT_TYPES, is_e164
from feedback_loop.episodes import CHANNELS
from feedback_loop.errors import ConfigError, FeedbackLoopError
from feedback_loop.policy import POLICY_KEYS, load_policy
from feedback_loop.timeutil import format_utc, parse_utc
from simulator.producer import ArrivalError, arrival_times
from stacks.config import CONTEXT_KEY, cdk_json_context

ANSWERS = ("1", "2", "3", "4", "5", "9", "none", "no_answer")
TOP_LEVEL_KEYS = (
    "description",
    "config",
    "subscribers",
    "probe_events",
    "answers",
    "faults",
    "connect",
    "remediation",
)
OUTAGE_SERVICES = ("s3", "dynamodb", "sqs", "secretsmanager", "connect", "kinesis")


class ScenarioError(FeedbackLoopError):
    """A scenario file the twin cannot run; the message names the offending field."""


@dataclass(frozen=True)
class Outage:
    """A window of simulated time ``[start, end)`` in which ``service`` answers every call
    with its "unavailable" error (epoch seconds)."""

    service: str
    start: float
    end: float


@dataclass(frozen=True)
class Faults:
    """Probabilities (0..1) with which the twin injects AWS-side failures, and outages."""

    duplicate_delivery_rate: float = 0.0
    connect_throttle_rate: float = 0.0
    s3_error_rate: float = 0.0
    dynamodb_error_rate: float = 0.0
    handler_crash_rate: float = 0.0
    sqs_send_error_rate: float = 0.0
    sqs_batch_entry_failure_rate: float = 0.0
    secretsmanager_error_rate: float = 0.0
    outages: tuple[Outage, ...] = ()


FAULT_KEYS = tuple(f.name for f in fields(Faults) if f.name.endswith("_rate"))


@dataclass(frozen=True)
class ConnectQuotas:
    """The Amazon Connect quotas the simulated instance enforces (docs/TWIN.md).

    ``concurrent_calls``: "Concurrent active calls per instance" (10 on a new instance);
    ``api_rate`` / ``api_burst``: the token bucket of the StartOutboundVoiceContact API
    (requests per second and burst; the Connect admin guide's "API throttling quotas"
    default of 2 and 5 for the Connect API). Beyond them the call is refused.
    """

    concurrent_calls: int = 10
    api_rate: float = 2.0
    api_burst: int = 5


CONNECT_KEYS = tuple(f.name for f in fields(ConnectQuotas))


@dataclass(frozen=True)
class Subscriber:
    """A subscriber of the scenario: home cell and the optional device/vendor dimensions."""

    phone_number: str
    cell: str
    device: str | None = None
    vendor: str | None = None
    timezone: str | None = None
    # The preferred channel customer care recorded (ops.contact_preferences), on the
    # profile before the run; ``timezone`` is where they are, which the handlers learn only
    # from the number.
    channel: str | None = None


@dataclass
class Scenario:
    """A validated scenario.

    ``degraded_cells`` / ``degraded_devices`` are the generator's ground truth (what the
    analytics should surface); they are never written to the lake or the scenario file.
    """

    probe_events: list[Any]
    config: dict[str, Any] = field(default_factory=dict)
    subscribers: list[Subscriber] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    connect: ConnectQuotas = field(default_factory=ConnectQuotas)
    description: str = ""
    remediation: list[dict[str, str]] = field(default_factory=list)
    degraded_cells: tuple[str, ...] = ()
    degraded_devices: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The scenario in file format (round-trips through :func:`parse_scenario`)."""
        return {
            "description": self.description,
            "config": dict(self.config),
            "subscribers": [
                {k: v for k, v in vars(s).items() if v is not None} for s in self.subscribers
            ],
            "probe_events": list(self.probe_events),
            "answers": dict(self.answers),
            "faults": {
                **{name: getattr(self.faults, name) for name in FAULT_KEYS},
                "outages": [
                    {"service": o.service, "from": _iso(o.start), "until": _iso(o.end)}
                    for o in self.faults.outages
                ],
            },
            "connect": {name: getattr(self.connect, name) for name in CONNECT_KEYS},
            "remediation": [dict(event) for event in self.remediation],
        }


def _iso(epoch: float) -> str:
    return format_utc(datetime.fromtimestamp(epoch, UTC))


def _deployment_keys() -> set[str]:
    """Keys of the ``feedback_loop`` object in cdk.json: the names a scenario may override."""
    try:
        return set(cdk_json_context()[CONTEXT_KEY])
    except (OSError, KeyError, json.JSONDecodeError) as error:
        raise ScenarioError(
            f"cannot read the {CONTEXT_KEY} config from cdk.json: {error}"
        ) from error


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _config(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"config: expected an object, got {_show(raw)}")
    unknown = sorted(set(raw) - set(POLICY_KEYS) - _deployment_keys())
    if unknown:
        raise ScenarioError(f"config: unknown keys {unknown}; use the names in cdk.json")
    try:
        load_policy(raw)
    except ConfigError as error:
        raise ScenarioError(f"config.{error}") from error
    return dict(raw)


def _optional_text(where: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise ScenarioError(f"{where}: expected a non-empty string, got {_show(value)}")


def _subscribers(raw: Any) -> list[Subscriber]:
    if not isinstance(raw, list):
        raise ScenarioError(f"subscribers: expected a list, got {_show(raw)}")
    result: list[Subscriber] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"subscribers[{index}]"
        if not isinstance(item, Mapping):
            raise ScenarioError(f"{where}: expected an object, got {_show(item)}")
        allowed = {"phone_number", "cell", "device", "vendor", "timezone", "channel"}
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise ScenarioError(f"{where}: unknown keys {unknown}")
        for key in ("phone_number", "cell"):
            if key not in item:
                raise ScenarioError(f"{where}.{key}: missing")
        phone = item["phone_number"]
        if not is_e164(phone):
            raise ScenarioError(
                f"{where}.phone_number: expected E.164 like +447700900123, got {_show(phone)}"
            )
        if phone in seen:
            raise ScenarioError(f"{where}.phone_number: duplicate {_show(phone)}")
        seen.add(phone)
        result.append(
            Subscriber(
                phone_number=phone,
                cell=str(_optional_text(f"{where}.cell", item["cell"])),
                device=_optional_text(f"{where}.device", item.get("device")),
                vendor=_optional_text(f"{where}.vendor", item.get("vendor")),
                timezone=_timezone(f"{where}.timezone", item.get("timezone")),
                channel=_channel(f"{where}.channel", item.get("channel")),
            )
        )
    return result


def _channel(where: str, value: Any) -> str | None:
    if value is None or value in CHANNELS:
        return value
    raise ScenarioError(f"{where}: expected one of {', '.join(CHANNELS)}, got {_show(value)}")


def _timezone(where: str, value: Any) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        ZoneInfo(value)
    except (ValueError, ZoneInfoNotFoundError) as error:
        raise ScenarioError(
            f"{where}: expected an IANA time zone name, got {_show(value)}"
        ) from error
    return value


def _answers(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"answers: expected an object keyed by phone number, got {_show(raw)}")
    for phone, answer in raw.items():
        where = f"answers[{_show(phone)}]"
        if not is_e164(phone):
            raise ScenarioError(f"{where}: key must be an E.164 phone number like +447700900123")
        if answer not in ANSWERS:
            raise ScenarioError(
                f'{where}: expected "1".."5", "9", "none" or "no_answer", got {_show(answer)}'
            )
    return dict(raw)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _faults(raw: Any) -> Faults:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"faults: expected an object, got {_show(raw)}")
    known = [*FAULT_KEYS, "outages"]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ScenarioError(f"faults: unknown keys {unknown}; expected some of {known}")
    rates = {name: value for name, value in raw.items() if name != "outages"}
    for name, value in rates.items():
        if not _is_number(value) or not 0 <= value <= 1:
            raise ScenarioError(f"faults.{name}: expected a number from 0 to 1, got {_show(value)}")
    return Faults(
        **{name: float(value) for name, value in rates.items()},
        outages=_outages(raw.get("outages", [])),
    )


def _outages(raw: Any) -> tuple[Outage, ...]:
    if not isinstance(raw, list):
        raise ScenarioError(f"faults.outages: expected a list, got {_show(raw)}")
    outages = []
    for index, item in enumerate(raw):
        where = f"faults.outages[{index}]"
        if not isinstance(item, Mapping) or set(item) != {"service", "from", "until"}:
            raise ScenarioError(
                f'{where}: expected {{"service", "from", "until"}}, got {_show(item)}'
            )
        if item["service"] not in OUTAGE_SERVICES:
            service = _show(item["service"])
            raise ScenarioError(
                f"{where}.service: expected one of {list(OUTAGE_SERVICES)}, got {service}"
            )
        moments = []
        for key in ("from", "until"):
            try:
                moments.append(parse_utc(item[key]).timestamp())
            except (TypeError, ValueError) as error:
                raise ScenarioError(
                    f"{where}.{key}: expected an ISO time like 2026-11-25T10:15:00Z, "
                    f"got {_show(item[key])}"
                ) from error
        if moments[1] <= moments[0]:
            raise ScenarioError(f"{where}: until must be after from")
        outages.append(Outage(item["service"], moments[0], moments[1]))
    return tuple(outages)


def _connect(raw: Any) -> ConnectQuotas:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"connect: expected an object, got {_show(raw)}")
    unknown = sorted(set(raw) - set(CONNECT_KEYS))
    if unknown:
        raise ScenarioError(
            f"connect: unknown keys {unknown}; expected some of {list(CONNECT_KEYS)}"
        )
    for name, value in raw.items():
        whole = name != "api_rate"
        if not _is_number(value) or value <= 0 or (whole and value != int(value)):
            kind = "a whole number" if whole else "a number"
            raise ScenarioError(f"connect.{name}: expected {kind} above 0, got {_show(value)}")
    defaults = ConnectQuotas()
    return ConnectQuotas(
        concurrent_calls=int(raw.get("concurrent_calls", defaults.concurrent_calls)),
        api_rate=float(raw.get("api_rate", defaults.api_rate)),
        api_burst=int(raw.get("api_burst", defaults.api_burst)),
    )


def _remediation(raw: Any) -> list[dict[str, str]]:
    """Fixes on cells, ``{"cell", "fixed_at", "note"?}``; ``fixed_at`` normalised to UTC ``Z``."""
    if not isinstance(raw, list):
        raise ScenarioError(f"remediation: expected a list, got {_show(raw)}")
    events = []
    for index, item in enumerate(raw):
        where = f"remediation[{index}]"
        if not isinstance(item, Mapping):
            raise ScenarioError(f"{where}: expected an object, got {_show(item)}")
        unknown = sorted(set(item) - {"cell", "fixed_at", "note"})
        if unknown:
            raise ScenarioError(f"{where}: unknown keys {unknown}")
        cell = _optional_text(f"{where}.cell", item.get("cell"))
        if cell is None:
            raise ScenarioError(f"{where}.cell: missing")
        try:
            fixed_at = datetime.fromisoformat(str(item.get("fixed_at")))
        except ValueError:
            fixed_at = None
        if fixed_at is None or fixed_at.tzinfo is None:
            raise ScenarioError(
                f"{where}.fixed_at: expected an ISO time with a zone like 2026-11-25T12:00:00Z, "
                f"got {_show(item.get('fixed_at'))}"
            )
        note = item.get("note", "")
        if not isinstance(note, str):
            raise ScenarioError(f"{where}.note: expected a string, got {_show(note)}")
        stamp = fixed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        events.append({"cell": cell, "fixed_at": stamp, "note": note})
    return events


def parse_scenario(raw: Any) -> Scenario:
    """Validate a decoded scenario document; raises :class:`ScenarioError` naming the field."""
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"scenario: expected a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ScenarioError(
            f"scenario: unknown keys {unknown}; expected some of {list(TOP_LEVEL_KEYS)}"
        )
    if "probe_events" not in raw:
        raise ScenarioError("probe_events: missing")
    if not isinstance(raw["probe_events"], list):
        raise ScenarioError(
            f"probe_events: expected a list, got {type(raw['probe_events']).__name__}"
        )
    try:
        arrival_times(raw["probe_events"])
    except ArrivalError as error:
        raise ScenarioError(str(error)) from error
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ScenarioError(f"description: expected a string, got {_show(description)}")
    return Scenario(
        probe_events=list(raw["probe_events"]),
        config=_config(raw.get("config", {})),
        subscribers=_subscribers(raw.get("subscribers", [])),
        answers=_answers(raw.get("answers", {})),
        faults=_faults(raw.get("faults", {})),
        connect=_connect(raw.get("connect", {})),
        description=description,
        remediation=_remediation(raw.get("remediation", [])),
    )


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; any problem is one :class:`ScenarioError` line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(f"{path}: cannot read scenario file: {error}") from error
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ScenarioError(
            f"{path}: not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from error
    return parse_scenario(raw)


# --- the default scenario -------------------------------------------------------------------

DEFAULT_DAY = datetime(2026, 11, 25, tzinfo=UTC)
FIRST_PHONE = 447700900000
VENDORS = ("VendorA", "VendorB", "VendorC")
# Device models with their market share; one of them gets a data-session defect.
DEVICES = {
    "iPhone 15": 16,
    "iPhone 14": 14,
    "iPhone 13": 10,
    "Galaxy S24": 12,
    "Galaxy A54": 11,
    "Pixel 8": 8,
    "Pixel 7a": 6,
    "Moto G54": 7,
    "Xperia 10 V": 4,
    "Nokia G42": 5,
}
# Healthy per-session failure probabilities: far below the thresholds (0.16/0.18/0.09/0.11).
HEALTHY_FAILURE = {
    "CALL_DROP": 0.006,
    "CALL_QUALITY": 0.008,
    "LOW_BITRATE": 0.01,
    "VIDEO_STALLING": 0.008,
}
# Share of sessions a degraded cell fails: well above every KPI threshold, and enough that
# the people living there rate their service below 3 under the behaviour model.
DEGRADED_RANGE = (0.35, 0.6)
DEGRADED_DEVICE_FAILURE = {"LOW_BITRATE": 0.2, "VIDEO_STALLING": 0.22}
# Relative activity by UTC hour: quiet at night, peaks at lunch and in the evening.
HOURLY_ACTIVITY = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.5, 3, 4, 4, 4, 4.5,
                   5, 4.5, 4, 4, 4.5, 5.5, 6, 6, 5.5, 4.5, 3, 2)  # fmt: skip
# Bursts of use per subscriber and day (most are light users), and sessions per burst,
# all within BURST_MINUTES so a burst fills even the 1-hour voice window to min_sessions.
BURSTS_PER_DAY = {1: 45, 2: 35, 3: 15, 4: 5}
SESSIONS_PER_BURST = (3, 5)
BURST_MINUTES = 40
VOICE = ("CALL_DROP", "CALL_QUALITY")
DATA = ("LOW_BITRATE", "VIDEO_STALLING")


def _cell_id(index: int) -> str:
    return f"LDN-{index + 1:04d}"


def _malformed(rng: random.Random, good: dict[str, Any]) -> Any:
    """A broken variant of a good record, of one of the kinds the ingest handler must reject."""
    kind = rng.randrange(7)
    bad = dict(good)
    if kind == 0:
        return rng.choice(["not a record", 42, None, ["+447700900001", "CALL_DROP"], True])
    if kind == 1:
        bad["phone_number"] = rng.choice(["07700 900123", "+44abc", "", "447700900123"])
    elif kind == 2:
        bad["event_type"] = rng.choice(["SMS_FAILURE", "call_drop", "", "HANDOVER_FAIL"])
    elif kind == 3:
        del bad[rng.choice(["timestamp", "phone_number", "cell", "event_type", "success"])]
    elif kind == 4:
        bad["success"] = rng.choice(["false", 0, "no", None])
    elif kind == 5:
        bad["timestamp"] = rng.choice(
            ["25/11/2026 10:15", "yesterday", 1795600000, "2026-11-25T10:15:03"]
        )
    else:
        bad["cell"] = rng.choice([42, None, "", ["LDN-0001"]])
    return bad


@dataclass(frozen=True)
class City:
    """The default scenario's world: cells (popularity, vendor region), degraded cells (their
    per-KPI failure share) and the device model with a data-session defect."""

    cell_ids: list[str]
    cell_vendor: dict[str, str]
    popularity: list[float]
    cell_failure: dict[str, dict[str, float]]
    degraded_device: str

    @property
    def degraded_cells(self) -> list[str]:
        """The badly degraded cells, sorted."""
        return sorted(self.cell_failure)


@dataclass(frozen=True)
class Person:
    """A subscriber of the default scenario with where they use the network."""

    index: int
    subscriber: Subscriber
    work: str


def city(rng: random.Random, cells: int, degraded: int) -> City:
    """Cells over a city split into three vendor regions; a few popular ones degraded."""
    cell_ids = [_cell_id(i) for i in range(cells)]
    columns = max(1, round(math.sqrt(cells * 4 / 3)))
    cell_vendor = {
        cell: VENDORS[min(2, (i % columns) * 3 // columns)] for i, cell in enumerate(cell_ids)
    }
    popularity = [rng.lognormvariate(0, 0.6) for _ in cell_ids]
    busy_cells = [cell for _, cell in sorted(zip(popularity, cell_ids, strict=True), reverse=True)]
    degraded_cells = sorted(rng.sample(busy_cells[: max(degraded, cells // 10)], degraded))
    cell_failure = {
        cell: {kpi: round(rng.uniform(*DEGRADED_RANGE), 3) for kpi in EVENT_TYPES}
        for cell in degraded_cells
    }
    degraded_device = rng.choice([d for d in DEVICES if DEVICES[d] <= 8])
    return City(cell_ids, cell_vendor, popularity, cell_failure, degraded_device)


def person(rng: random.Random, world: City, index: int) -> Person:
    """Subscriber ``index``: home cell by popularity, a device by market share, and for a
    quarter of them a work cell elsewhere."""
    phone = f"+{FIRST_PHONE + index}"
    home = rng.choices(world.cell_ids, weights=world.popularity)[0]
    device = rng.choices(list(DEVICES), weights=list(DEVICES.values()))[0]
    subscriber = Subscriber(phone, home, device, world.cell_vendor[home])
    work = rng.choices(world.cell_ids, weights=world.popularity)[0] if rng.random() < 0.25 else home
    return Person(index, subscriber, work)


def day_sessions(
    rng: random.Random, world: City, who: Person
) -> list[tuple[int, int, str, str, bool, str]]:
    """One day of ``who``'s sessions: ``(second of day, index, cell, kpi, success, device)``."""
    home, device = who.subscriber.cell, str(who.subscriber.device)
    sessions = []
    bursts = rng.choices(list(BURSTS_PER_DAY), weights=list(BURSTS_PER_DAY.values()))[0]
    for _ in range(bursts):
        hour = rng.choices(range(24), weights=HOURLY_ACTIVITY)[0]
        start = hour * 3600 + rng.randrange(3600)
        roll = rng.random()
        if roll < 0.05:
            cell = rng.choice(world.cell_ids)
        elif 9 <= hour < 17 and roll < 0.8:
            cell = who.work
        else:
            cell = home
        kpis = VOICE if rng.random() < 0.5 else DATA
        for _ in range(rng.randint(*SESSIONS_PER_BURST)):
            second = min(start + rng.randrange(BURST_MINUTES * 60), 86399)
            kpi = rng.choice(kpis)
            p_fail = max(
                HEALTHY_FAILURE[kpi],
                world.cell_failure.get(cell, {}).get(kpi, 0.0),
                DEGRADED_DEVICE_FAILURE.get(kpi, 0.0) if device == world.degraded_device else 0.0,
            )
            sessions.append((second, who.index, cell, kpi, rng.random() >= p_fail, device))
    return sessions


def probe_record(
    day: datetime,
    second: int,
    phone: str,
    cell: str,
    kpi: str,
    success: bool,
    device: str,
    vendor: str,
) -> dict[str, Any]:
    """A section-4 probe record of the default scenario."""
    return {
        "timestamp": (day + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "phone_number": phone,
        "cell": cell,
        "event_type": kpi,
        "success": success,
        "device": device,
        "vendor": vendor,
    }


def default_scenario(
    seed: int = 7,
    *,
    subscribers: int = 2000,
    cells: int = 200,
    degraded: int = 5,
    day: datetime = DEFAULT_DAY,
) -> Scenario:
    """A realistic day of probe records over a city, deterministic for ``seed``.

    Subscribers live on a home cell (cells differ in popularity), some commute to a work
    cell by day, and a few sessions happen anywhere. Usage comes in one to four short bursts
    a day (three to five calls or video sessions within 40 minutes), more by day than by
    night, so the KPI windows see enough sessions to judge. A handful of popular cells are
    badly degraded (35-60% of sessions fail: bad enough that the people living there are
    unhappy, not just above a KPI threshold); one device model has a data-session defect.
    ``vendor`` is the radio vendor of the cell the session ran on (the city is split into
    three vendor regions). About 0.5% of the records are malformed in varied ways to
    exercise rejection.
    """
    rng = random.Random(seed)
    world = city(rng, cells, degraded)
    people: list[Subscriber] = []
    sessions: list[tuple[int, int, str, str, bool, str]] = []
    for n in range(subscribers):
        who = person(rng, world, n)
        people.append(who.subscriber)
        sessions += day_sessions(rng, world, who)
    sessions.sort()
    vendor_of = world.cell_vendor
    records: list[Any] = [
        probe_record(day, second, people[n].phone_number, cell, kpi, ok, device, vendor_of[cell])
        for second, n, cell, kpi, ok, device in sessions
    ]
    good = list(records)
    for _ in range(len(good) // 200):
        position = rng.randrange(len(records))
        records.insert(position, _malformed(rng, good[min(position, len(good) - 1)]))

    return Scenario(
        probe_events=records,
        subscribers=people,
        description=(
            f"Default day {day:%Y-%m-%d}: {subscribers} subscribers, {cells} cells, "
            f"{degraded} degraded cells, seed {seed}"
        ),
        degraded_cells=tuple(world.degraded_cells),
        degraded_devices=(world.degraded_device,),
    )
