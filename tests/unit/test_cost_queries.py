"""How often a dashboard query reads each lake table, and what that means at a size."""

from dataclasses import replace
from pathlib import Path

import pytest

import simulator.cost as cost
from simulator.cost.model import Assumptions
from simulator.cost.prices import load_prices
from simulator.cost.queries import SQL_DIR, dashboard_table_reads, table_reads
from tests.cost_fixtures import tiny_inputs, tiny_volumes


def test_a_step_is_read_again_wherever_it_is_referenced() -> None:
    sql = """
        WITH a AS (SELECT * FROM t WHERE dt BETWEEN ? AND ?),
        b AS (SELECT * FROM a UNION ALL SELECT * FROM a)
        SELECT * FROM b JOIN u ON b.k = u.k WHERE b.x IN (SELECT x FROM a)
    """
    # b holds a twice, and the filter's subquery reads a once more
    assert table_reads(sql) == {"t": 3, "u": 1}


def test_a_step_nobody_references_reads_nothing() -> None:
    assert table_reads("WITH a AS (SELECT * FROM t) SELECT 1 FROM u") == {"u": 1}


def test_a_step_named_like_a_table_reads_the_table_in_its_own_body() -> None:
    sql = "WITH incidents AS (SELECT * FROM incidents) SELECT * FROM incidents, incidents AS i"
    assert table_reads(sql) == {"incidents": 2}


def test_a_step_sees_only_the_steps_before_it() -> None:
    # a refers to b before b is defined: that b is a table
    sql = "WITH a AS (SELECT * FROM b), b AS (SELECT * FROM t) SELECT * FROM a, b"
    assert table_reads(sql) == {"b": 1, "t": 1}


def test_a_step_inside_a_step_does_not_leak_out() -> None:
    sql = """
        WITH a AS (WITH t AS (SELECT * FROM u) SELECT * FROM t)
        SELECT * FROM a JOIN t ON true
    """
    assert table_reads(sql) == {"u": 1, "t": 1}


def test_names_match_steps_whatever_their_case_but_not_across_a_schema() -> None:
    sql = "WITH Recent AS (SELECT * FROM t) SELECT * FROM recent, sentimentdb.recent"
    assert table_reads(sql) == {"t": 1, "recent": 1}


def test_a_query_that_does_not_parse_is_refused_with_its_file(tmp_path: Path) -> None:
    for path in SQL_DIR.glob("*.sql"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "priority.sql").write_text("SELEC cell FROM incidents", encoding="utf-8")
    with pytest.raises(ValueError, match=r"priority\.sql: cannot parse"):
        dashboard_table_reads(tmp_path)


def test_the_dashboards_queries_are_every_sql_file_but_the_what_ifs() -> None:
    reads = dashboard_table_reads()
    assert set(reads) == {p.name for p in SQL_DIR.glob("*.sql")} - {"detect_incidents.sql"}
    # priority.sql unions its three tables in one step, so every reference reads all three;
    # it refers to that step through others 15 times (31 when its last steps referred to
    # estimates twice, once per measure)
    assert reads["priority.sql"] == dict.fromkeys(("incidents", "engagement", "sentiment"), 15)


def _tiny_dashboard(
    monkeypatch: pytest.MonkeyPatch, subscribers: int, cutoff: int
) -> dict[str, object]:
    monkeypatch.setattr(
        cost,
        "dashboard_table_reads",
        lambda: {
            "cells.sql": {"incidents": 3, "engagement": 3},
            "fixes.sql": {"incidents": 1, "remediation": 2},
        },
    )
    inputs = tiny_inputs()
    assumptions = replace(Assumptions(), athena_queries_per_day=10)
    volumes = tiny_volumes(subscribers, inputs, assumptions)
    return cost.dashboard_query(inputs, volumes, assumptions, cutoff, load_prices())


def test_each_query_is_sized_once_per_table_and_at_most_per_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 10M subscribers of the tiny day: 100M records, 10M incidents of 100 B (1 GB) and 10M
    # decisions of 50 B (0.5 GB) a day; the queries read 7 days
    query = _tiny_dashboard(monkeypatch, 10_000_000, cutoff=20)
    gib = 1024**3
    cells, fixes = query["queries"]
    assert cells == {
        "sql": "cells.sql",
        "table_reads": {"engagement": 3, "incidents": 3},
        "gib_read_once": round(1.5e9 * 7 / gib, 2),
        "gib_at_most": round(3 * 1.5e9 * 7 / gib, 2),
    }
    # remediation (operators' uploads) is not sized
    assert (fixes["gib_read_once"], fixes["gib_at_most"]) == (round(1e9 * 7 / gib, 2),) * 2
    assert (query["largest_read_once"], query["gib_read_once"]) == ("cells.sql", 9.78)
    assert (query["largest_at_most"], query["gib_at_most"]) == ("cells.sql", 29.34)
    assert (query["within_cutoff"], query["within_cutoff_at_most"]) == (True, False)
    # 10 queries a day, each reading as much as the largest at most: $5 a TB scanned, and
    # $0.00042 a GET for 3 x 7 days of objects (10 incidents or 5 decisions an object)
    objects = 3 * 7 * (10e6 / 10 + 10e6 / 5)
    month = 10 * 730 / 24
    assert query["monthly_usd_at_most"] == pytest.approx(
        3 * 1.5e9 * 7 * month / 1024**4 * 5.0 + objects * month * 0.00042 / 1000, abs=0.01
    )


def test_a_query_past_the_cutoff_even_read_once_fails_both_verdicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    query = _tiny_dashboard(monkeypatch, 10_000_000, cutoff=5)
    assert (query["within_cutoff"], query["within_cutoff_at_most"]) == (False, False)


def test_a_small_query_is_billed_the_athena_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    # 100 subscribers: 10 KB of incidents a day, far below Athena's 10 MB a query
    query = _tiny_dashboard(monkeypatch, 100, cutoff=20)
    month = 10 * 730 / 24
    objects = 3 * 7 * (100 / 10 + 100 / 5)
    assert query["monthly_usd_at_most"] == pytest.approx(
        10 * 1024**2 * month / 1024**4 * 5.0 + objects * month * 0.00042 / 1000, abs=0.01
    )
