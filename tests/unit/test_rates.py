"""Windowed failure counters: buckets, sliding windows and the rate recorded with an incident."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from feedback_loop.rates import (
    BUCKET_MINUTES,
    MAX_WINDOW_BUCKETS,
    Counts,
    Session,
    attribute_names,
    bucket_seconds,
    bucket_start,
    buckets_from_item,
    expired,
    fold,
    rates_at_failures,
    subtract,
    window_counts,
    window_size,
    window_starts,
)

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def at(minutes: float, failed: bool = False, order: int = 0) -> Session:
    return Session(T0 + timedelta(minutes=minutes), failed, order)


def test_fold_counts_sessions_and_failures_per_bucket():
    deltas = fold([at(0), at(1, failed=True), at(BUCKET_MINUTES + 1, failed=True)], 60)

    assert deltas == {
        bucket_start(T0, 60): Counts(2, 1),
        bucket_start(T0 + timedelta(minutes=BUCKET_MINUTES), 60): Counts(1, 1),
    }


def test_sessions_older_than_the_window_no_longer_count():
    buckets = fold([at(0, failed=True), at(10), at(30)], 60)

    inside = window_counts(buckets, T0 + timedelta(minutes=59), 60)
    after = window_counts(buckets, T0 + timedelta(minutes=60), 60)

    assert inside == Counts(3, 1)
    assert after == Counts(2, 0)


def test_a_data_window_is_six_times_a_voice_window():
    sessions = [at(0, failed=True), at(100)]
    three_hours_later = T0 + timedelta(hours=3)

    assert window_counts(fold(sessions, 60), three_hours_later, 60) == Counts()
    assert window_counts(fold(sessions, 360), three_hours_later, 360) == Counts(2, 1)


def test_buckets_are_five_minutes_per_started_hour_of_the_window():
    assert [bucket_seconds(w) // 60 for w in (1, 5, 60, 61, 90, 360, 1440)] == [
        5, 5, 5, 10, 10, 30, 120,
    ]  # fmt: skip


@given(st.integers(min_value=1, max_value=99999))
def test_no_window_spans_more_than_twelve_buckets(window):
    assert 1 <= window_size(window) <= MAX_WINDOW_BUCKETS == 12
    # and the buckets cover the window: at least window - bucket, at most window minutes
    covered = window_size(window) * bucket_seconds(window)
    assert window * 60 <= covered < window * 60 + bucket_seconds(window)


def test_a_six_hour_window_reaches_back_between_five_and_a_half_and_six_hours():
    # 10:00 is a bucket start; 15:59:59 is in the window's last 30-minute bucket (15:30)
    buckets = fold([at(0, failed=True), at(29), at(30)], 360)

    assert window_counts(buckets, T0 + timedelta(minutes=359), 360) == Counts(3, 1)
    assert window_counts(buckets, T0 + timedelta(minutes=360), 360) == Counts(1, 0)
    assert window_starts(T0 + timedelta(minutes=360), 360)[0] == bucket_start(
        T0 + timedelta(minutes=30), 360
    )


def test_each_incident_gets_the_rate_up_to_its_own_time_in_timestamp_order():
    # Given two earlier sessions stored, and a batch delivered out of time order
    before = fold([at(-20), at(-10, failed=True)], 60)
    batch = [at(7, failed=True, order=0), at(3, order=1), at(5, failed=True, order=2)]

    rates = rates_at_failures(before, batch, 60)

    assert [(r.session.moment, r.sessions, r.failures) for r in rates] == [
        (T0 + timedelta(minutes=5), 4, 2),
        (T0 + timedelta(minutes=7), 5, 3),
    ]
    assert rates[0].failure_rate == 2 / 4


def test_sessions_with_the_same_timestamp_count_in_arrival_order():
    batch = [at(1, failed=True, order=1), at(1, failed=True, order=0)]

    rates = rates_at_failures({}, batch, 60)

    assert [(r.session.order, r.sessions, r.failures) for r in rates] == [(0, 1, 1), (1, 2, 2)]


def test_the_state_before_a_batch_is_the_state_after_it_minus_the_batch():
    before = fold([at(0), at(1, failed=True)], 60)
    batch = [at(2, failed=True), at(9)]
    deltas = fold(batch, 60)
    after = {start: before.get(start, Counts()) + counts for start, counts in deltas.items()}
    after = {**before, **after}

    assert {k: v for k, v in subtract(after, fold(batch, 60)).items() if v != Counts()} == before


def test_expired_lists_buckets_older_than_the_window_of_the_newest_one():
    # The window ending in the 65-minute bucket holds the twelve buckets from minute 10.
    starts = [bucket_start(T0 + timedelta(minutes=m), 60) for m in (0, 5, 10, 60, 65)]

    assert expired(starts, 60) == starts[:2]
    assert expired([], 60) == []


def test_expired_counts_a_long_windows_buckets_in_its_own_bucket_size():
    # A 6 h window ending in the 07:00 bucket holds the twelve 30-minute buckets from 01:30.
    starts = [bucket_start(T0 + timedelta(hours=h), 360) for h in (0, 1, 1.5, 7)]

    assert expired(starts, 360) == starts[:2]


def test_buckets_round_trip_through_item_attributes():
    buckets = fold([at(0, failed=True), at(12), at(13)], 60)
    item = {"PhoneNumber": "+447700900123", "Kpi": "CALL_DROP", "ExpiresAt": 1, "Seq_shard": "9"}
    for start, counts in buckets.items():
        sessions_name, failures_name = attribute_names(start)
        item[sessions_name] = counts.sessions
        if counts.failures:
            item[failures_name] = counts.failures

    assert buckets_from_item(item) == buckets


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=600), st.booleans()), min_size=1, max_size=40
    ),
    st.sampled_from([5, 60, 61, 360, 1440]),
)
def test_a_rate_never_exceeds_one_and_counts_only_the_window(sessions, window):
    batch = [at(m, failed=f, order=i) for i, (m, f) in enumerate(sessions)]

    for rate in rates_at_failures({}, batch, window):
        in_window = [
            s
            for s in batch
            if (s.moment, s.order) <= (rate.session.moment, rate.session.order)
            and bucket_start(s.moment, window) in window_starts(rate.session.moment, window)
        ]
        assert rate.sessions == len(in_window)
        assert rate.failures == sum(s.failed for s in in_window)
        assert 0 < rate.failure_rate <= 1
