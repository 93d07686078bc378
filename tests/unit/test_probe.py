"""Probe record validation: what is accepted, and the reason an operator sees otherwise."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from feedback_loop.errors import InvalidRecord
from feedback_loop.probe import MAX_FUTURE, MAX_PAST, MAX_RECORD_BYTES, parse_probe_record

REFERENCE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GOOD = {
    "timestamp": "2026-11-25T10:15:03Z",
    "phone_number": "+447700900123",
    "cell": "LDN-0042",
    "event_type": "CALL_DROP",
    "success": False,
    "device": "Pixel 8",
    "vendor": "VendorA",
}


def parse(**changes):
    record = {**GOOD, **changes}
    return parse_probe_record(
        json.dumps({k: v for k, v in record.items() if v is not ...}), REFERENCE
    )


def reason_of(raw) -> str:
    with pytest.raises(InvalidRecord) as caught:
        parse_probe_record(raw, REFERENCE)
    return caught.value.reason


def test_a_valid_record_is_parsed_with_every_field():
    record = parse()

    assert record.phone_number == GOOD["phone_number"]
    assert record.event_type == GOOD["event_type"]
    assert record.success is False
    assert (record.cell, record.device, record.vendor) == ("LDN-0042", "Pixel 8", "VendorA")
    assert record.moment == datetime(2026, 11, 25, 10, 15, 3, tzinfo=UTC)


def test_optional_dimensions_may_be_absent_and_unknown_fields_are_ignored():
    record = parse(device=..., vendor=..., probe_version="7.2")

    assert record.device is None and record.vendor is None


def test_timestamps_with_an_offset_are_normalised_to_utc():
    assert parse(timestamp="2026-11-25T11:15:03+01:00").timestamp == "2026-11-25T10:15:03Z"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not utf-8", "not_json"),
        ("timestamp=2026-11-25", "not_json"),
        ("[1, 2]", "not_an_object"),
        (json.dumps({**GOOD, "phone_number": None}), "missing_field"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "cell"}), "missing_field"),
        (json.dumps({**GOOD, "cell": "   "}), "missing_field"),
        (json.dumps({**GOOD, "success": "false"}), "wrong_type"),
        (json.dumps({**GOOD, "success": 0}), "wrong_type"),
        (json.dumps({**GOOD, "phone_number": 447700900123}), "wrong_type"),
        (json.dumps({**GOOD, "device": 8}), "wrong_type"),
        (json.dumps({**GOOD, "phone_number": "07700 900123"}), "bad_phone_number"),
        (json.dumps({**GOOD, "phone_number": "+0447700900123"}), "bad_phone_number"),
        (json.dumps({**GOOD, "phone_number": "+4477009001234567"}), "bad_phone_number"),
        (json.dumps({**GOOD, "event_type": "call_drop"}), "unknown_event_type"),
        (json.dumps({**GOOD, "timestamp": "2026-11-25T10:15:03"}), "bad_timestamp"),
        (json.dumps({**GOOD, "timestamp": "yesterday"}), "bad_timestamp"),
        (json.dumps({**GOOD, "vendor": "V" * 500}), "too_long"),
        (json.dumps({**GOOD, "pad": "x" * MAX_RECORD_BYTES}), "too_large"),
    ],
)
def test_bad_records_are_rejected_with_a_stable_reason(raw, reason):
    assert reason_of(raw) == reason


def test_the_accepted_time_range_is_relative_to_the_reference_not_the_clock():
    edge_future = REFERENCE + MAX_FUTURE
    edge_past = REFERENCE - MAX_PAST
    fmt = "%Y-%m-%dT%H:%M:%SZ"

    assert parse(timestamp=edge_future.strftime(fmt)).moment == edge_future
    assert parse(timestamp=edge_past.strftime(fmt)).moment == edge_past
    for moment in (edge_future + timedelta(seconds=1), edge_past - timedelta(seconds=1)):
        assert reason_of(json.dumps({**GOOD, "timestamp": moment.strftime(fmt)})) == (
            "timestamp_out_of_range"
        )


def test_the_reason_detail_never_contains_the_phone_number():
    with pytest.raises(InvalidRecord) as caught:
        parse(phone_number="07700 900123")

    assert "900123" not in str(caught.value)
