"""The probe archive's rows: the ingest handler's validation, pseudonyms, stream positions."""

import json
from datetime import UTC, datetime, timedelta

from feedback_loop.archive import StreamRecord, archive_batch, record_id
from feedback_loop.contract import LAKE_TABLES, PROBE_ARCHIVE
from feedback_loop.pseudonym import subscriber_id

KEY = b"unit-test-key"
ARRIVAL = datetime(2026, 11, 25, 23, 59, 59, 500000, tzinfo=UTC)


def _source(record: object, sequence: str = "101", sub: int = 0, late: float = 0) -> StreamRecord:
    data = record if isinstance(record, str) else json.dumps(record)
    return StreamRecord(
        "shardId-000000000002", sequence, sub, ARRIVAL + timedelta(seconds=late), data.encode()
    )


def _probe(**changes: object) -> dict:
    return {
        "timestamp": "2026-11-25T23:59:58+00:00",
        "phone_number": "+447700900123",
        "cell": "LDN-0042",
        "event_type": "VIDEO_STALLING",
        "success": True,
        **changes,
    }


def test_record_ids_add_the_sub_sequence_only_when_it_is_not_zero() -> None:
    assert record_id("shardId-000000000002", "4959") == "shardId-000000000002:4959"
    assert record_id("shardId-000000000002", "4959", 0) == "shardId-000000000002:4959"
    assert record_id("shardId-000000000002", "4959", 3) == "shardId-000000000002:4959:3"


def test_a_batch_keeps_its_order_and_says_why_a_record_is_not_archived() -> None:
    batch = [
        ("a", _source(_probe(), "101")),
        ("b", _source("not json", "102")),
        ("c", _source(_probe(phone_number="07700 900123"), "103")),
        ("d", _source(_probe(device="", vendor=None), "104", sub=2)),
    ]
    outcome = archive_batch(batch, KEY)
    assert [r.delivery_id for r in outcome.results] == ["a", "b", "c", "d"]
    assert outcome.archived == 2
    assert outcome.dropped_by_reason == {"not_json": 1, "bad_phone_number": 1}
    first, _, _, last = outcome.results
    assert first.row is not None and last.row is not None
    assert list(first.row) == list(LAKE_TABLES[PROBE_ARCHIVE].column_names)
    assert first.row["subscriber_id"] == subscriber_id(KEY, "+447700900123")
    assert first.row["timestamp"] == "2026-11-25T23:59:58Z"
    assert first.row["timestamp_epoch"] == int(
        datetime(2026, 11, 25, 23, 59, 58, tzinfo=UTC).timestamp()
    )
    assert first.row["arrival"] == "2026-11-25T23:59:59.500Z"
    assert first.partition == "2026-11-25"  # business date, not arrival date
    assert (last.row["device"], last.row["vendor"]) == (None, None)
    assert last.row["record_id"] == "shardId-000000000002:104:2"


def test_timestamps_are_judged_against_the_newest_arrival_of_the_batch() -> None:
    # 7 days before the newest arrival is the limit; the first record's own arrival is older
    old = _probe(timestamp="2026-11-18T23:59:58Z")
    batch = [("a", _source(old, "1", late=-3600)), ("b", _source(_probe(), "2", late=3))]
    outcome = archive_batch(batch, KEY)
    assert outcome.dropped_by_reason == {"timestamp_out_of_range": 1}
    assert archive_batch([], KEY).results == []
