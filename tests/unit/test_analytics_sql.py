"""The analytics SQL ranks what operations should fix first, and runs on Athena and DuckDB."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

from feedback_loop.lake import encode_jsonl_gz, object_key
from simulator.analytics import QUERIES, SQL_DIR, run_analytics, write_outputs

DAY = "2026-11-25"


def _put(lake: Path, prefix: str, records: list[dict[str, Any]], dt: str = DAY) -> None:
    path = lake / object_key(prefix, dt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jsonl_gz(records))


def _incident(n: int, subscriber: str, cell: str, device: str = "Pixel 8", vendor: str = "VendorA"):
    return {
        "incident_id": f"inc-{cell}-{n}",
        "subscriber_id": subscriber,
        "event_type": "CALL_DROP",
        "timestamp": f"{DAY}T10:{n % 60:02d}:00Z",
        "cell": cell,
        "device": device,
        "vendor": vendor,
        "failure_rate": 0.3,
        "sessions": 5,
        "failures": 2,
        "window_minutes": 60,
    }


def _engagement(subscriber: str, cell: str, device: str, vendor: str, decision: str = "engage"):
    return {
        "engagement_id": f"eng-{subscriber}",
        "incident_id": f"inc-{subscriber}",
        "subscriber_id": subscriber,
        "incident_type": "CALL_DROP",
        "incident_time": f"{DAY}T10:00:00Z",
        "cell": cell,
        "device": device,
        "vendor": vendor,
        "failure_rate": 0.3,
        "threshold": 0.16,
        "decision": decision,
        "reason": "above_threshold" if decision == "engage" else "cooldown",
        "decided_at": f"{DAY}T10:00:01Z",
    }


def _rating(subscriber: str, cell: str, device: str, vendor: str, rating: int):
    """Feedback + sentiment records of one rated call, using the documented sentiment model."""
    score = (rating - 3) / 2
    change = 0.5 * score
    common = {"contact_id": f"contact-{subscriber}", "engagement_id": f"eng-{subscriber}"}
    feedback = {
        **common,
        "subscriber_id": subscriber,
        "incident_type": "CALL_DROP",
        "incident_time": f"{DAY}T10:00:00Z",
        "cell": cell,
        "outcome": "rated",
        "rating": rating,
        "score": score,
        "incident_weight": (5 - rating) / 4,
        "received_at": f"{DAY}T10:05:00Z",
    }
    sentiment = {
        **common,
        "subscriber_id": subscriber,
        "cell": cell,
        "device": device,
        "vendor": vendor,
        "incident_type": "CALL_DROP",
        "previous_sentiment": 0.0,
        "sentiment": change,
        "change_sentiment": change,
        "updated_at": f"{DAY}T10:05:00Z",
    }
    return feedback, sentiment


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """Busy cell: 6 subscribers, 30 incidents, all rate 5 (not bothered), on Pixel 8 / VendorA.
    Unhappy cell: 2 subscribers, 4 incidents, both rate 1, on Galaxy S24 / VendorB.
    Quiet cell: 3 subscribers with incidents, no feedback yet."""
    lake = tmp_path / "lake"
    cells = {
        "LDN-BUSY": (6, 5, 5, "Pixel 8", "VendorA"),
        "LDN-UNHAPPY": (2, 2, 1, "Galaxy S24", "VendorB"),
        "LDN-QUIET": (3, 1, None, "Pixel 8", "VendorA"),
    }
    incidents, engagements, feedback, sentiment = [], [], [], []
    for cell, (subscribers, per_subscriber, rating, device, vendor) in cells.items():
        for s in range(subscribers):
            sid = f"{cell}-sub{s}"
            incidents += [
                _incident(s * 10 + n, sid, cell, device, vendor) for n in range(per_subscriber)
            ]
            if rating is not None:
                engagements.append(_engagement(sid, cell, device, vendor))
                fb, se = _rating(sid, cell, device, vendor, rating)
                feedback.append(fb)
                sentiment.append(se)
    # At-least-once delivery: the same incident and sentiment objects written twice.
    _put(lake, "incidents", incidents)
    _put(lake, "incidents", incidents[:7])
    _put(
        lake,
        "engagement",
        [*engagements, _engagement("x", "LDN-QUIET", "Pixel 8", "VendorA", "suppress")],
    )
    _put(lake, "feedback", feedback)
    _put(lake, "sentiment", sentiment)
    _put(lake, "sentiment", sentiment[:1])
    return lake


def test_unhappy_cell_with_fewer_incidents_ranks_above_busy_cell_rated_five(lake: Path) -> None:
    rows = run_analytics(lake)["cell"]
    order = [row["cell"] for row in rows]
    by_cell = {row["cell"]: row for row in rows}

    assert by_cell["LDN-BUSY"]["incidents"] > by_cell["LDN-UNHAPPY"]["incidents"]
    assert order.index("LDN-UNHAPPY") < order.index("LDN-BUSY")
    assert order[0] == "LDN-UNHAPPY"
    # No feedback yet is less urgent than unhappy subscribers, more than subscribers who are fine.
    assert order == ["LDN-UNHAPPY", "LDN-QUIET", "LDN-BUSY"]


def test_counts_are_distinct_and_survive_duplicate_lake_objects(lake: Path) -> None:
    by_cell = {row["cell"]: row for row in run_analytics(lake)["cell"]}

    busy = by_cell["LDN-BUSY"]
    assert (busy["subscribers"], busy["incidents"]) == (6, 30)
    assert (busy["engagements"], busy["feedback_received"], busy["ratings"]) == (6, 6, 6)
    assert busy["change_sentiment"] == pytest.approx(6 * 0.5)
    assert busy["avg_change_sentiment"] == pytest.approx(0.5)
    unhappy = by_cell["LDN-UNHAPPY"]
    assert (unhappy["subscribers"], unhappy["incidents"]) == (2, 4)
    assert unhappy["change_sentiment"] == pytest.approx(2 * -0.5)
    assert unhappy["priority"] == pytest.approx(-unhappy["change_sentiment"])
    quiet = by_cell["LDN-QUIET"]
    assert (quiet["subscribers"], quiet["engagements"], quiet["change_sentiment"]) == (3, 0, 0.0)


def test_device_and_vendor_rankings_follow_the_same_rule(lake: Path) -> None:
    results = run_analytics(lake)

    assert [row["device"] for row in results["device"]] == ["Galaxy S24", "Pixel 8"]
    assert [row["vendor"] for row in results["vendor"]] == ["VendorB", "VendorA"]
    vendor_a = next(row for row in results["vendor"] if row["vendor"] == "VendorA")
    assert vendor_a["subscribers"] == 9
    assert vendor_a["feedback_received"] == 6


def test_empty_and_missing_prefixes_give_empty_results(tmp_path: Path) -> None:
    (tmp_path / "lake" / "incidents").mkdir(parents=True)

    results = run_analytics(tmp_path / "lake")

    assert results == {"cell": [], "device": [], "vendor": []}


def test_cells_without_feedback_prefix_still_rank_by_subscribers(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _put(lake, "incidents", [_incident(n, f"s{n}", "LDN-A") for n in range(2)])
    _put(lake, "incidents", [_incident(n, f"s{n}", "LDN-B") for n in range(5)], dt="2026-11-26")

    rows = run_analytics(lake)["cell"]

    assert [(row["cell"], row["subscribers"]) for row in rows] == [("LDN-B", 5), ("LDN-A", 2)]
    assert all(row["change_sentiment"] == 0.0 for row in rows)


def test_write_outputs_writes_typed_json_arrays(lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    write_outputs(run_analytics(lake), out)

    cells = json.loads((out / "cell_priority.json").read_text())
    assert cells[0]["cell"] == "LDN-UNHAPPY"
    for row in cells:
        assert isinstance(row["cell"], str)
        assert isinstance(row["subscribers"], int)
        assert isinstance(row["change_sentiment"], float)
    for name in ("device_priority.json", "vendor_priority.json"):
        assert len(json.loads((out / name).read_text())) == 2


SQL_FILES = sorted(SQL_DIR.glob("*.sql"))


def test_every_query_the_twin_runs_is_a_sql_file() -> None:
    assert {path.name for path in SQL_FILES} >= set(QUERIES.values())


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda path: path.name)
def test_sql_is_one_trino_statement_without_duckdb_only_syntax(path: Path) -> None:
    text = path.read_text()
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())

    statements = sqlglot.parse(text, read="trino", error_level=ErrorLevel.RAISE)
    assert len([s for s in statements if s is not None]) == 1
    assert "::" not in code, "DuckDB cast syntax; use CAST(x AS type)"
    assert ";" not in code.strip().rstrip(";"), "one statement per file"
    for duckdb_only in (
        r"\bread_json",
        r"\bread_parquet",
        r"\bQUALIFY\b",
        r"\bEXCLUDE\b",
        r"\bGROUP\s+BY\s+ALL\b",
        r"\bILIKE\b",
        r"\bFROM\s+'",
        r"\bmain\.",
    ):
        assert not re.search(duckdb_only, code, re.IGNORECASE), duckdb_only
    assert re.search(r"\bORDER\s+BY\b", code, re.IGNORECASE), "results must be ranked"
