"""sql/detect_incidents.sql finds the incidents Ingest_probe_events finds, with the same rates.

The handler's side is its own domain code (``feedback_loop.rates``) driven the way
``Ingest_probe_events`` drives it: batch by batch, each subscriber's KPI counted on top of
what earlier batches stored. The SQL must agree for any split of the feed into batches.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

from feedback_loop.contract import EVENT_TYPES, LAKE_TABLES, PROBE_ARCHIVE
from feedback_loop.policy import Policy, load_policy
from feedback_loop.rates import Counts, Session, fold, rates_at_failures
from simulator.whatif import Period, detection_parameters, detection_sql

START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
DAY = "2026-11-25"
SHARD = "shardId-000000000000"


def _row(sub: str, kpi: str, moment: datetime, success: bool, seq: int, sub_seq: int = 0):
    record_id = f"{SHARD}:{seq}" + (f":{sub_seq}" if sub_seq else "")
    return {
        "record_id": record_id,
        "arrival": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "subscriber_id": sub,
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "timestamp_epoch": int(moment.timestamp()),
        "cell": "LDN-0001",
        "event_type": kpi,
        "success": success,
        "device": None,
        "vendor": None,
    }


def _detect(
    rows: list[dict[str, Any]], policy: Policy, *, every: bool = True, report_from: str = DAY
) -> dict[str, tuple[int, int, float]]:
    """``record_id -> (sessions, failures, rate)`` of the incidents the SQL returns."""
    con = duckdb.connect()
    columns = dict(LAKE_TABLES[PROBE_ARCHIVE].engine_columns("duckdb"))
    typed = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
    con.execute(f"CREATE TABLE probes ({typed}, dt VARCHAR)")
    if rows:
        con.executemany(
            f"INSERT INTO probes VALUES ({', '.join('?' * (len(columns) + 1))})",
            [[row[name] for name in columns] + [row["timestamp"][:10]] for row in rows],
        )
    period = Period("2026-11-18", "2026-12-31", report_from)
    result = con.execute(
        detection_sql(), detection_parameters(policy, period, every_incident=every)
    )
    names = [d[0] for d in result.description]
    found = {}
    for values in result.fetchall():
        row = dict(zip(names, values, strict=True))
        found[row["record_id"]] = (row["sessions"], row["failures"], row["failure_rate"])
    return found


def _handler(
    rows: list[dict[str, Any]], batches: list[int], policy: Policy
) -> dict[str, tuple[int, int]]:
    """The handler's figures: ``rows`` in arrival order, cut into batches of these sizes."""
    stored: dict[tuple[str, str], dict[int, Counts]] = {}
    found: dict[str, tuple[int, int]] = {}
    start = 0
    for size in [*batches, len(rows)]:
        batch = rows[start : start + size]
        start += len(batch)
        groups: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
        for order, row in enumerate(batch):
            groups.setdefault((row["subscriber_id"], row["event_type"]), []).append((order, row))
        for key, items in groups.items():
            sessions = [
                Session(datetime.fromtimestamp(r["timestamp_epoch"], UTC), not r["success"], o)
                for o, r in items
            ]
            before = stored.get(key, {})
            by_order = {o: r for o, r in items}
            window = policy.windows_minutes[key[1]]
            for rate in rates_at_failures(before, sessions, window):
                found[by_order[rate.session.order]["record_id"]] = (rate.sessions, rate.failures)
            after = dict(before)
            for bucket, counts in fold(sessions, window).items():
                after[bucket] = after.get(bucket, Counts()) + counts
            stored[key] = after
        if start >= len(rows):
            break
    return found


def test_the_sql_parses_as_trino() -> None:
    assert sqlglot.parse_one(detection_sql(), read="trino") is not None


def test_the_window_arithmetic_divides_nothing_so_athena_and_duckdb_agree() -> None:
    # Trino divides decimals at the operands' scale (61 / 60.0 is 1.0) and DuckDB in DOUBLE,
    # so the parity tests, which run on DuckDB, could not see a division that Athena
    # rounds: the bucket arithmetic is integer-only, and the one division is the rate's.
    tree = sqlglot.parse_one(detection_sql(), read="trino")
    divisions = [node.sql("trino") for node in tree.find_all(sqlglot.exp.Div)]
    decimals = [
        node.sql()
        for node in tree.find_all(sqlglot.exp.Literal)
        if node.is_number and "." in node.this
    ]
    assert divisions == ["CAST(failures AS DOUBLE) / sessions"]
    assert decimals == []


def test_parameters_follow_the_order_the_sql_header_lists() -> None:
    policy = load_policy(
        {"windows_minutes": {"LOW_BITRATE": 120}, "thresholds": {"CALL_DROP": 0.2}}
    )
    params = detection_parameters(policy, Period("2026-11-18", "2026-11-30", DAY))
    assert params[:2] == ["2026-11-18", "2026-11-30"]
    assert params[2:6] == [policy.windows_minutes[kpi] for kpi in EVENT_TYPES] == [60, 60, 120, 360]
    assert params[6] == DAY
    assert params[7:] == [Decimal("0.2"), Decimal("0.18"), Decimal("0.09"), Decimal("0.11")]
    assert detection_sql().count("?") == len(params)


def test_a_failure_is_rated_over_the_buckets_of_its_window() -> None:
    # Given a 60-minute window: the bucket of 11:02 and the 11 before it, 10:05 to 11:04:59
    policy = load_policy({})
    rows = [
        _row("a", "CALL_DROP", START + timedelta(minutes=3), False, 1),  # 10:03: out
        _row("a", "CALL_DROP", START + timedelta(minutes=5), True, 2),  # 10:05: in
        _row("a", "CALL_DROP", START + timedelta(minutes=62), False, 3),  # 11:02: the incident
    ]
    found = _detect(rows, policy)
    # Then the 10:03 failure is its own incident and the 11:02 one counts 10:05 and itself
    assert found[f"{SHARD}:3"][:2] == (2, 1)
    assert found[f"{SHARD}:1"][:2] == (1, 1)
    assert found == {
        k: (*v, pytest.approx(v[1] / v[0])) for k, v in _handler(rows, [], policy).items()
    }


def test_same_second_sessions_count_in_arrival_order_by_numeric_sequence() -> None:
    # Sequence 9 arrived before sequence 10 although "10" < "9" as text.
    policy = load_policy({})
    rows = [
        _row("a", "CALL_DROP", START, False, 9),
        _row("a", "CALL_DROP", START, True, 10),
        _row("a", "CALL_DROP", START, False, 11, sub_seq=2),
    ]
    found = _detect(rows, policy)
    assert found[f"{SHARD}:9"][:2] == (1, 1)
    assert found[f"{SHARD}:11:2"][:2] == (3, 2)


def test_a_record_firehose_delivered_twice_counts_once() -> None:
    policy = load_policy({})
    first = _row("a", "CALL_DROP", START, True, 1)
    failure = _row("a", "CALL_DROP", START + timedelta(minutes=1), False, 2)
    found = _detect([first, first, failure, failure], policy)
    assert found == {f"{SHARD}:2": (2, 1, 0.5)}


def test_thresholds_are_strict_and_per_kpi() -> None:
    # 1 failure in 5 sessions = 0.2: above CALL_DROP 0.16, not above a 0.2 threshold.
    rows = [_row("a", "CALL_DROP", START + timedelta(minutes=i), i != 4, i + 1) for i in range(5)]
    assert list(_detect(rows, load_policy({}), every=False)) == [f"{SHARD}:5"]
    stricter = load_policy({"thresholds": {"CALL_DROP": 0.2}})
    assert _detect(rows, stricter, every=False) == {}


def test_earlier_days_feed_the_window_but_report_from_chooses_the_incidents() -> None:
    policy = load_policy({})
    late = datetime(2026, 11, 24, 23, 58, tzinfo=UTC)
    rows = [
        _row("a", "CALL_DROP", late, False, 1),
        _row("a", "CALL_DROP", late + timedelta(minutes=4), False, 2),
    ]
    assert _detect(rows, policy) == {f"{SHARD}:2": (2, 2, 1.0)}


def test_each_kpi_uses_its_own_window_parameter() -> None:
    rows = [
        _row("a", "LOW_BITRATE", START, False, 1),
        _row("a", "LOW_BITRATE", START + timedelta(minutes=100), False, 2),
    ]
    assert _detect(rows, load_policy({}))[f"{SHARD}:2"][:2] == (2, 2)  # 360-minute window
    short = load_policy({"windows_minutes": {"LOW_BITRATE": 30}})
    assert _detect(rows, short)[f"{SHARD}:2"][:2] == (1, 1)


def test_a_six_hour_window_counts_whole_thirty_minute_buckets() -> None:
    # Given the default 360-minute LOW_BITRATE window: 30-minute buckets, twelve of them, so
    # at 16:10 the window starts at 10:30 (the bucket of 16:00 and the 11 before it)
    policy = load_policy({})
    rows = [
        _row("a", "LOW_BITRATE", START + timedelta(minutes=29), False, 1),  # 10:29: out
        _row("a", "LOW_BITRATE", START + timedelta(minutes=30), True, 2),  # 10:30: in
        _row("a", "LOW_BITRATE", START + timedelta(minutes=370), False, 3),  # 16:10
    ]
    found = _detect(rows, policy)
    assert found[f"{SHARD}:3"][:2] == (2, 1)
    assert {k: v[:2] for k, v in found.items()} == _handler(rows, [1], policy)


feeds = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["CALL_DROP", "LOW_BITRATE"]),
        st.sampled_from([0, 0, 1, 40, 299, 300, 900, 1799, 3000]),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(
    feed=feeds,
    cuts=st.lists(st.integers(1, 15), max_size=6),
    windows=st.sampled_from([1, 2, 5, 7, 60, 61, 251, 360, 1441]),
    data_window=st.sampled_from([60, 90, 360]),
)
def test_any_timestamp_ordered_feed_gives_the_handlers_incidents(
    feed, cuts, windows, data_window
) -> None:
    policy = load_policy({"windows_minutes": {"CALL_DROP": windows, "LOW_BITRATE": data_window}})
    moment = START
    rows = []
    for seq, (sub, kpi, step, success) in enumerate(feed):
        moment += timedelta(seconds=step)
        rows.append(_row(sub, kpi, moment, success, 95 + 7 * seq))
    expected = _handler(rows, cuts, policy)
    found = _detect(rows, policy)
    assert {k: v[:2] for k, v in found.items()} == expected
    for sessions, failures, rate in found.values():
        assert rate == failures / sessions
