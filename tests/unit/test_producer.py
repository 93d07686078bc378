"""The probe feed: arrival is when the feed delivers a record, not what the probe claims."""

import json
from datetime import UTC, datetime

import pytest

from simulator.producer import PLAUSIBLE_AHEAD, ArrivalError, arrival_times, record_bytes


def at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def probe(timestamp: object, **extra: object) -> dict[str, object]:
    return {"timestamp": timestamp, "phone_number": "+447700900123", **extra}


def test_records_arrive_in_list_order_at_their_own_time_when_it_is_plausible() -> None:
    feed = [probe("2026-11-25T10:00:00Z"), probe("2026-11-25T10:05:00Z")]

    assert arrival_times(feed) == [at("2026-11-25T10:00:00Z"), at("2026-11-25T10:05:00Z")]


def test_a_late_record_arrives_after_its_predecessor_not_at_its_old_timestamp() -> None:
    """Out of order in the feed stays out of order: arrival never goes backwards."""
    feed = [probe("2026-11-25T10:05:00Z"), probe("2026-11-25T09:00:00Z")]

    assert arrival_times(feed) == [at("2026-11-25T10:05:00Z")] * 2


def test_a_broken_clock_years_ahead_arrives_now_with_the_previous_record() -> None:
    feed = [
        probe("2026-11-25T10:00:00Z"),
        probe("2031-01-01T00:00:00Z"),
        probe("2026-11-25T10:01:00Z"),
    ]

    assert arrival_times(feed) == [
        at("2026-11-25T10:00:00Z"),
        at("2026-11-25T10:00:00Z"),
        at("2026-11-25T10:01:00Z"),
    ]


def test_a_timestamp_just_within_a_day_ahead_is_believed_and_beyond_is_not() -> None:
    start = at("2026-11-25T10:00:00Z")
    within = datetime.fromtimestamp(start + PLAUSIBLE_AHEAD, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    beyond = datetime.fromtimestamp(start + PLAUSIBLE_AHEAD + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert (
        arrival_times([probe("2026-11-25T10:00:00Z"), probe(within)])[1] == start + PLAUSIBLE_AHEAD
    )
    assert arrival_times([probe("2026-11-25T10:00:00Z"), probe(beyond)])[1] == start


@pytest.mark.parametrize("bad", ["garbage", 42, None, probe("25/11/2026"), probe(1795600000)])
def test_a_record_without_a_usable_time_arrives_with_its_neighbours(bad: object) -> None:
    feed = [bad, probe("2026-11-25T10:00:00Z"), bad, probe("2026-11-25T10:02:00Z")]

    assert arrival_times(feed) == [at("2026-11-25T10:00:00Z")] * 3 + [at("2026-11-25T10:02:00Z")]


def test_an_explicit_arrival_wins_and_is_not_put_on_the_stream() -> None:
    late = probe("2026-11-25T08:00:00Z", arrival="2026-11-25T10:30:00Z")
    feed = [probe("2026-11-25T10:00:00Z"), late, probe("2026-11-25T10:10:00Z")]

    assert arrival_times(feed) == [
        at("2026-11-25T10:00:00Z"),
        at("2026-11-25T10:30:00Z"),
        at("2026-11-25T10:30:00Z"),
    ]
    assert json.loads(record_bytes(late)) == probe("2026-11-25T08:00:00Z")
    assert record_bytes("not json") == b"not json"


def test_an_explicit_arrival_cannot_go_back_in_the_feed() -> None:
    feed = [
        probe("2026-11-25T10:00:00Z"),
        probe("2026-11-25T10:01:00Z", arrival="2026-11-25T09:00:00Z"),
    ]

    with pytest.raises(ArrivalError, match=r"probe_events\[1\]\.arrival"):
        arrival_times(feed)
