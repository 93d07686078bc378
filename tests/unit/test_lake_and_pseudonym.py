"""Lake layout and pseudonyms: partitioned gzip JSON Lines without phone numbers."""

import pytest

from feedback_loop.lake import decode_jsonl_gz, encode_jsonl_gz, group_by_date, object_key
from feedback_loop.pseudonym import redact, subscriber_id

KEY = b"test-key"


def test_object_keys_are_partitioned_by_business_date():
    key = object_key("incidents", "2026-11-25", "batch1")

    assert key == "incidents/dt=2026-11-25/batch1.jsonl.gz"
    with pytest.raises(ValueError, match="unknown lake prefix"):
        object_key("tmp", "2026-11-25")


def test_jsonl_gzip_round_trip_is_byte_stable():
    records = [{"b": 1, "a": "é"}, {"a": 2}]

    assert decode_jsonl_gz(encode_jsonl_gz(records)) == records
    assert encode_jsonl_gz(records) == encode_jsonl_gz(records)


def test_records_are_grouped_per_date_of_the_time_field():
    groups = group_by_date(
        [
            {"timestamp": "2026-11-24T23:59:59Z"},
            {"timestamp": "2026-11-25T00:00:00Z"},
            {"timestamp": "2026-11-25T10:00:00Z"},
        ],
        "timestamp",
    )

    assert {dt: len(items) for dt, items in groups.items()} == {"2026-11-24": 1, "2026-11-25": 2}


def test_subscriber_id_is_keyed_and_stable():
    assert subscriber_id(KEY, "+447700900123") == subscriber_id(KEY, "+447700900123")
    assert subscriber_id(KEY, "+447700900123") != subscriber_id(b"other", "+447700900123")
    assert "447700900123" not in subscriber_id(KEY, "+447700900123")


def test_redact_removes_phone_numbers_anywhere_in_an_unknown_payload():
    payload = {
        "phone_number": "+447700900123",
        "raw": '{"phone_number": "447700900999", "cell": "LDN-1"}',
        "list": ["call +44 7700 900555 now"],
        "+447700900777": 1,
        "date_shaped": "4477-00-90 0123 447",
    }

    text = str(redact(KEY, payload))

    for digits in ("447700900123", "447700900999", "7700 900555", "447700900777", "4477-00"):
        assert digits not in text
    assert "LDN-1" in text


def test_redact_keeps_timestamps_readable():
    payload = '{"timestamp": "2026-11-25T10:15:03Z", "phone_number": "+447700900123"}'

    redacted = redact(KEY, payload)

    assert "2026-11-25T10:15:03Z" in redacted
    assert "447700900123" not in redacted
