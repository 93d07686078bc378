"""Validation of probe session records (the format: docs/PRODUCERS.md, "The probe record").

A record that fails here can never succeed, so the caller rejects it with the
machine-readable ``reason`` of :class:`InvalidRecord` instead of retrying it.

Accepted time range, relative to a reference time the caller takes from the
batch itself (the newest Kinesis arrival time, never the wall clock):

* at most ``MAX_FUTURE`` (1 day) ahead - probes may have skewed clocks, but a
  session from next week is a broken clock, and it would poison the counters;
* at most ``MAX_PAST`` (7 days) behind - beyond the longest KPI window (6 h)
  a session no longer changes any rate an engagement could depend on, and
  7 days covers a probe that buffered its output over a long outage.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from feedback_loop.contract import EVENT_TYPES, Reason, is_e164
from feedback_loop.errors import InvalidRecord
from feedback_loop.timeutil import format_utc, parse_utc

MAX_RECORD_BYTES = 4096
MAX_FUTURE = timedelta(days=1)
MAX_PAST = timedelta(days=7)
MAX_CELL_LENGTH = 64
MAX_DIMENSION_LENGTH = 128


@dataclass(frozen=True)
class ProbeRecord:
    """One valid probe session; ``timestamp`` is normalised to ``YYYY-MM-DDTHH:MM:SSZ``."""

    timestamp: str
    phone_number: str
    cell: str
    event_type: str
    success: bool
    device: str | None = None
    vendor: str | None = None

    @property
    def moment(self) -> datetime:
        """The session time as an aware UTC datetime."""
        return parse_utc(self.timestamp)


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    if name not in data or data[name] is None:
        raise InvalidRecord(Reason.MISSING_FIELD, name)
    value = data[name]
    # bool is an int subclass and "false" is a str: check the exact type.
    if type(value) is not kind:
        raise InvalidRecord(Reason.WRONG_TYPE, f"{name} must be {kind.__name__}")
    return value


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRecord(Reason.WRONG_TYPE, f"{name} must be a string")
    if len(value) > MAX_DIMENSION_LENGTH:
        raise InvalidRecord(Reason.TOO_LONG, f"{name} longer than {MAX_DIMENSION_LENGTH}")
    return value


def _timestamp(text: str, reference: datetime) -> str:
    try:
        moment = parse_utc(text)
    except ValueError as error:
        raise InvalidRecord(Reason.BAD_TIMESTAMP, str(error)) from error
    if moment > reference + MAX_FUTURE or moment < reference - MAX_PAST:
        raise InvalidRecord(
            Reason.TIMESTAMP_OUT_OF_RANGE,
            f"{text} is not within {MAX_PAST} before/{MAX_FUTURE} after",
        )
    return format_utc(moment)


def parse_probe_record(raw: bytes | str, reference: datetime) -> ProbeRecord:
    """Decode and validate one JSON probe record; unknown extra fields are ignored."""
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > MAX_RECORD_BYTES:
        raise InvalidRecord(Reason.TOO_LARGE, f"{size} bytes > {MAX_RECORD_BYTES}")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidRecord(Reason.NOT_JSON, str(error)) from error
    if not isinstance(data, dict):
        raise InvalidRecord(Reason.NOT_AN_OBJECT, type(data).__name__)

    phone_number = _field(data, "phone_number", str)
    if not is_e164(phone_number):
        raise InvalidRecord(Reason.BAD_PHONE_NUMBER, "not E.164")
    event_type = _field(data, "event_type", str)
    if event_type not in EVENT_TYPES:
        raise InvalidRecord(Reason.UNKNOWN_EVENT_TYPE, event_type[:40])
    cell = _field(data, "cell", str).strip()
    if not cell:
        raise InvalidRecord(Reason.MISSING_FIELD, "cell")
    if len(cell) > MAX_CELL_LENGTH:
        raise InvalidRecord(Reason.TOO_LONG, f"cell longer than {MAX_CELL_LENGTH}")
    return ProbeRecord(
        timestamp=_timestamp(_field(data, "timestamp", str), reference),
        phone_number=phone_number,
        cell=cell,
        event_type=event_type,
        success=_field(data, "success", bool),
        device=_optional_text(data, "device"),
        vendor=_optional_text(data, "vendor"),
    )
