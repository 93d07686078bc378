"""The analytics SQL: what operations should fix first, whether a fix worked, over a date range.

Known answers on small hand-built lakes, run by DuckDB exactly as the twin runs them; every
file also parses as Trino SQL (Athena), with its two date parameters on the partition column.
"""

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from feedback_loop.contract import LAKE_TABLES
from feedback_loop.lake import encode_jsonl_gz, object_key
from simulator.analytics import (
    PARAMETERS,
    QUERIES,
    SQL_DIR,
    remediation_csv,
    run_analytics,
    write_outputs,
)
from simulator.whatif import SQL_FILE as WHATIF_SQL

DAY = "2026-11-25"
DAYS = ("2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27")


class Lake:
    """Builds a lake of records shaped by the contract, one object per prefix and day."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self._n = 0

    def _id(self, kind: str) -> str:
        self._n += 1
        return f"{kind}-{self._n}"

    def incidents(
        self,
        subscriber: str,
        cell: str,
        count: int = 1,
        *,
        day: str = DAY,
        hour: int = 10,
        device: str = "Pixel 8",
        vendor: str = "VendorA",
        kpi: str = "CALL_DROP",
    ) -> None:
        for n in range(count):
            incident_id = self._id("inc")
            self.objects["incidents", day].append(
                LAKE_TABLES["incidents"].record(
                    {
                        "incident_id": incident_id,
                        "record_id": f"shardId-000000000000:{incident_id}",
                        "subscriber_id": subscriber,
                        "event_type": kpi,
                        "timestamp": f"{day}T{hour:02d}:{n % 60:02d}:00Z",
                        "cell": cell,
                        "device": device,
                        "vendor": vendor,
                        "failure_rate": 0.3,
                        "sessions": 5,
                        "failures": 2,
                        "window_minutes": 60,
                    }
                )
            )

    def rated(
        self,
        subscriber: str,
        cell: str,
        rating: int,
        *,
        day: str = DAY,
        hour: int = 10,
        device: str = "Pixel 8",
        vendor: str = "VendorA",
        kpi: str = "CALL_DROP",
        previous: float = 0.0,
    ) -> None:
        """One rated call: its engagement, feedback and sentiment records (README's model)."""
        engagement, contact = self._id("eng"), self._id("contact")
        incident_time = f"{day}T{hour:02d}:00:00Z"
        score = (rating - 3) / 2
        sentiment = 0.5 * previous + 0.5 * score
        self.objects["engagement", day].append(
            LAKE_TABLES["engagement"].record(
                {
                    "engagement_id": engagement,
                    "incident_id": self._id("inc"),
                    "subscriber_id": subscriber,
                    "incident_type": kpi,
                    "incident_time": incident_time,
                    "cell": cell,
                    "device": device,
                    "vendor": vendor,
                    "failure_rate": 0.3,
                    "threshold": 0.16,
                    "decision": "engage",
                    "reason": "above_threshold",
                    "decided_at": f"{day}T{hour:02d}:00:01Z",
                }
            )
        )
        self.objects["feedback", day].append(
            LAKE_TABLES["feedback"].record(
                {
                    "contact_id": contact,
                    "engagement_id": engagement,
                    "subscriber_id": subscriber,
                    "incident_type": kpi,
                    "incident_time": incident_time,
                    "cell": cell,
                    "outcome": "rated",
                    "rating": rating,
                    "score": score,
                    "incident_weight": (5 - rating) / 4,
                    "received_at": f"{day}T{hour:02d}:05:00Z",
                }
            )
        )
        self.objects["sentiment", day].append(
            LAKE_TABLES["sentiment"].record(
                {
                    "contact_id": contact,
                    "engagement_id": engagement,
                    "subscriber_id": subscriber,
                    "cell": cell,
                    "device": device,
                    "vendor": vendor,
                    "incident_type": kpi,
                    "previous_sentiment": previous,
                    "sentiment": sentiment,
                    "change_sentiment": sentiment - previous,
                    "updated_at": f"{day}T{hour:02d}:05:00Z",
                }
            )
        )

    def affected(self, cell: str, count: int, *, prefix: str = "", **where: Any) -> list[str]:
        """``count`` subscribers with one incident each on ``cell``; returns their ids."""
        ids = [f"{prefix or cell}-s{n}" for n in range(count)]
        for subscriber in ids:
            self.incidents(subscriber, cell, **where)
        return ids

    def write(self, *, duplicate: bool = False) -> Path:
        """Write the objects (twice each with ``duplicate``: at-least-once delivery)."""
        for (prefix, day), records in self.objects.items():
            for copy in range(2 if duplicate else 1):
                path = self.root / object_key(prefix, day, f"batch{copy}")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(encode_jsonl_gz(records))
        return self.root


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def _by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def _order(rows: list[dict[str, Any]], key: str) -> list[str]:
    return [row[key] for row in rows]


# --- the estimate, its terms and the ranking ----------------------------------------------------


def test_every_row_shows_terms_that_multiply_out_to_its_estimated_loss(lake: Lake) -> None:
    # Given one cell: 4 subscribers affected, 2 of them rated 1 (change -0.5 each)
    subscribers = lake.affected("LDN-A", 4)
    for subscriber in subscribers[:2]:
        lake.rated(subscriber, "LDN-A", 1)

    (row,) = run_analytics(lake.write())["cell"]

    # Then the shrinkage estimate has nothing to shrink toward but itself (the network is this
    # cell), and its interval comes from the variance floor (one rating point, 0.25^2):
    #   spread2 = (2 * 0.0625 + 1 * 0) / (2 + 1), std error = sqrt(spread2 / (2 + 2))
    half_width = 1.645 * (2 * 0.0625 / 3 / 4) ** 0.5
    assert (row["subscribers"], row["answers"], row["ranked"]) == (4, 2, True)
    assert row["observed_change"] == pytest.approx(-0.5)
    assert row["change_sentiment"] == pytest.approx(-0.5)
    assert row["change_low"] == pytest.approx(-0.5 - half_width, abs=1e-6)
    assert row["change_high"] == pytest.approx(-0.5 + half_width, abs=1e-6)
    assert row["estimated_loss"] == pytest.approx(4 * 0.5)
    assert row["estimated_loss_low"] == pytest.approx(-4 * row["change_high"], abs=1e-5)
    assert row["estimated_loss_high"] == pytest.approx(-4 * row["change_low"], abs=1e-5)
    assert row["ranked_change"] == row["change_sentiment"]


def test_a_one_answer_cell_does_not_rank_above_a_cell_with_many_unhappy_answers(
    lake: Lake,
) -> None:
    # Given a big cell with a single very unhappy answer, and a smaller cell where eight of
    # ten affected subscribers answered, all unhappy
    lone = lake.affected("LDN-LONE", 30)
    lake.rated(lone[0], "LDN-LONE", 1)
    for subscriber in lake.affected("LDN-MANY", 10)[:8]:
        lake.rated(subscriber, "LDN-MANY", 2)

    rows = run_analytics(lake.write())["cell"]
    cells = _by(rows, "cell")

    # Then the one-answer cell is "not enough answers yet" and sorts after the ranked cell,
    # although its estimate alone (30 affected) would have put it first
    assert _order(rows, "cell") == ["LDN-MANY", "LDN-LONE"]
    assert cells["LDN-LONE"]["ranked"] is False
    assert cells["LDN-LONE"]["ranked_change"] is None
    assert cells["LDN-MANY"]["ranked"] is True
    assert cells["LDN-LONE"]["estimated_loss"] > cells["LDN-MANY"]["estimated_loss"]


def test_a_sampled_outage_cell_ranks_by_its_estimated_loss_for_everyone_affected(
    lake: Lake,
) -> None:
    # Given an outage cell where 60 subscribers were affected and only 3 were called (all rate 1),
    # and a cell of 12 affected subscribers who were all called and all rate 1
    for subscriber in lake.affected("LDN-OUTAGE", 60)[:3]:
        lake.rated(subscriber, "LDN-OUTAGE", 1)
    for subscriber in lake.affected("LDN-SMALL", 12):
        lake.rated(subscriber, "LDN-SMALL", 1)

    rows = run_analytics(lake.write())["cell"]
    outage = _by(rows, "cell")["LDN-OUTAGE"]

    # Then the outage ranks first: 60 x -0.5, although its answers sum to -1.5 against -6
    assert _order(rows, "cell") == ["LDN-OUTAGE", "LDN-SMALL"]
    assert outage["answers"] == 3
    assert outage["estimated_loss"] == pytest.approx(60 * 0.5)
    assert outage["estimated_loss_low"] > _by(rows, "cell")["LDN-SMALL"]["estimated_loss_high"]


def test_two_lucky_answers_do_not_top_the_list_the_conservative_bound_decides(
    lake: Lake,
) -> None:
    # Given two cells of 20 affected subscribers: on one only 2 answered (both rate 1), on the
    # other all 20 answered (half rate 1, half rate 2)
    for subscriber in lake.affected("LDN-LUCKY", 20)[:2]:
        lake.rated(subscriber, "LDN-LUCKY", 1)
    for n, subscriber in enumerate(lake.affected("LDN-STEADY", 20)):
        lake.rated(subscriber, "LDN-STEADY", 1 if n % 2 else 2)

    rows = run_analytics(lake.write())["cell"]
    lucky, steady = _by(rows, "cell")["LDN-LUCKY"], _by(rows, "cell")["LDN-STEADY"]

    # Then the two-answer cell has the larger estimate but the wider interval, and ranks second
    assert lucky["estimated_loss"] > steady["estimated_loss"]
    assert lucky["change_high"] - lucky["change_low"] > steady["change_high"] - steady["change_low"]
    assert _order(rows, "cell") == ["LDN-STEADY", "LDN-LUCKY"]


def test_unhappy_cell_with_fewer_incidents_ranks_above_busy_cell_rated_five(lake: Lake) -> None:
    # Given a busy cell (6 subscribers, 30 incidents, all rate 5), an unhappy cell (2 subscribers,
    # 4 incidents, both rate 1) and a quiet cell with incidents and no answers yet
    for n in range(6):
        lake.incidents(f"busy{n}", "LDN-BUSY", 5)
        lake.rated(f"busy{n}", "LDN-BUSY", 5)
    for n in range(2):
        lake.incidents(f"unhappy{n}", "LDN-UNHAPPY", 2, device="Galaxy S24", vendor="VendorB")
        lake.rated(f"unhappy{n}", "LDN-UNHAPPY", 1, device="Galaxy S24", vendor="VendorB")
    lake.affected("LDN-QUIET", 3)

    rows = run_analytics(lake.write())["cell"]
    cells = _by(rows, "cell")

    assert cells["LDN-BUSY"]["incidents"] > cells["LDN-UNHAPPY"]["incidents"]
    assert _order(rows, "cell") == ["LDN-UNHAPPY", "LDN-BUSY", "LDN-QUIET"]
    assert cells["LDN-UNHAPPY"]["change_sentiment"] < 0 < cells["LDN-BUSY"]["change_sentiment"]
    assert [cells[c]["ranked"] for c in ("LDN-UNHAPPY", "LDN-BUSY", "LDN-QUIET")] == [
        True,
        True,
        False,
    ]


def test_counts_are_distinct_and_survive_duplicate_lake_objects(lake: Lake) -> None:
    for n in range(6):
        lake.incidents(f"s{n}", "LDN-A", 5)
        lake.rated(f"s{n}", "LDN-A", 5)
    lake.rated("s0", "LDN-A", 1, previous=0.5, hour=11)

    cell = run_analytics(lake.write(duplicate=True))["cell"][0]

    assert (cell["subscribers"], cell["incidents"], cell["engagements"]) == (6, 30, 7)
    # s0 answered twice: one answer per subscriber, their net change (+0.5, then -0.75)
    assert cell["answers"] == 6
    assert cell["observed_change"] == pytest.approx((5 * 0.5 - 0.25) / 6)


def test_cell_by_kpi_estimates_each_kpi_on_its_own(lake: Lake) -> None:
    for subscriber in lake.affected("LDN-A", 3, kpi="CALL_DROP"):
        lake.rated(subscriber, "LDN-A", 1, kpi="CALL_DROP")
    for subscriber in lake.affected("LDN-A", 3, prefix="video", kpi="VIDEO_STALLING"):
        lake.rated(subscriber, "LDN-A", 5, kpi="VIDEO_STALLING")

    rows = run_analytics(lake.write())["cell_kpi"]

    assert [(r["cell"], r["kpi"]) for r in rows] == [
        ("LDN-A", "CALL_DROP"),
        ("LDN-A", "VIDEO_STALLING"),
    ]
    assert rows[0]["change_sentiment"] < 0 < rows[1]["change_sentiment"]
    assert rows[0]["subscribers"] == rows[1]["subscribers"] == 3


def test_a_record_without_a_kpi_counts_for_its_cell_but_has_no_cell_kpi_row(lake: Lake) -> None:
    lake.incidents("s1", "LDN-A")
    lake.incidents("s2", "LDN-A")
    lake.objects["incidents", DAY][-1]["event_type"] = None  # written outside the handlers

    results = run_analytics(lake.write())

    assert results["cell"][0]["subscribers"] == 2
    assert [(r["cell"], r["kpi"]) for r in results["cell_kpi"]] == [("LDN-A", "CALL_DROP")]


# --- device and vendor net of cell ------------------------------------------------------------


def test_a_device_common_on_a_bad_cell_but_fine_elsewhere_is_not_blamed(lake: Lake) -> None:
    # Given a bad cell where every affected subscriber rates 1: ten on "Common", four on "Other";
    # "Common" is fine elsewhere (no incidents). "Flaky" has a defect: on three healthy cells
    # its subscribers alone have incidents and rate 2.
    bad = {"vendor": "VendorA"}
    for n in range(10):
        lake.incidents(f"common{n}", "LDN-BAD", 3, device="Common", **bad)
        lake.rated(f"common{n}", "LDN-BAD", 1, device="Common", **bad)
    for n in range(4):
        lake.incidents(f"other{n}", "LDN-BAD", 3, device="Other", **bad)
        lake.rated(f"other{n}", "LDN-BAD", 1, device="Other", **bad)
    for n in range(6):
        cell = f"LDN-H{n % 3}"
        lake.incidents(f"flaky{n}", cell, device="Flaky", vendor="VendorB")
        lake.rated(f"flaky{n}", cell, 2, device="Flaky", vendor="VendorB")

    devices = run_analytics(lake.write())["device"]
    by_device = _by(devices, "device")
    common, flaky = by_device["Common"], by_device["Flaky"]

    # Then by its own answers "Common" looks worst, but compared within its cell it is no worse
    # than its neighbours; the defective device is the one ranked first
    assert common["change_sentiment"] < flaky["change_sentiment"]
    assert common["net_change"] == pytest.approx(0.0, abs=1e-9)
    assert common["net_change_low"] < 0 < common["net_change_high"]
    assert flaky["net_change_high"] < 0
    assert _order(devices, "device")[0] == "Flaky"
    assert flaky["net_loss"] == pytest.approx(-flaky["subscribers"] * flaky["net_change"])
    assert (common["compared"], flaky["compared"]) == (10, 6)


def test_a_vendor_that_never_varies_within_a_cell_is_not_ranked_net_of_cell(lake: Lake) -> None:
    # Given radio vendors one per cell: VendorA's cell is bad, VendorB's is fine
    for subscriber in lake.affected("LDN-A", 5, vendor="VendorA", device="Common"):
        lake.rated(subscriber, "LDN-A", 1, vendor="VendorA", device="Common")
    for subscriber in lake.affected("LDN-B", 5, vendor="VendorB", device="Other"):
        lake.rated(subscriber, "LDN-B", 4, vendor="VendorB", device="Other")

    vendors = run_analytics(lake.write())["vendor"]

    # Then nothing separates the vendor from its cell: no comparison, nothing ranked, and the
    # rows still carry the vendor's own estimate (worst first)
    assert [(v["vendor"], v["compared"], v["ranked"]) for v in vendors] == [
        ("VendorA", 0, False),
        ("VendorB", 0, False),
    ]
    assert vendors[0]["change_sentiment"] < 0 < vendors[1]["change_sentiment"]


# --- trends ------------------------------------------------------------------------------------


def test_trends_give_each_cell_its_days(lake: Lake) -> None:
    for n, day in enumerate(DAYS[:3]):
        for subscriber in lake.affected("LDN-A", 6 - 2 * n, prefix=f"d{n}", day=day):
            lake.rated(subscriber, "LDN-A", 1 + 2 * n, day=day)

    trends = run_analytics(lake.write())["cell_trends"]

    assert [(t["dt"], t["subscribers"], t["answers"]) for t in trends] == [
        (DAYS[0], 6, 6),
        (DAYS[1], 4, 4),
        (DAYS[2], 2, 2),
    ]
    assert [t["mean_change"] for t in trends] == pytest.approx([-0.5, 0.0, 0.5])


# --- fix effectiveness ---------------------------------------------------------------------------


def _fix_scenario(lake: Lake, *, controls_recover: bool) -> None:
    """Four days; LDN-FIX is fixed at noon on the second day. Two untouched degraded cells."""
    fixed_at = f"{DAYS[1]}T12:00:00Z"
    for d, day in enumerate(DAYS):
        for hour in (8, 16):
            after = f"{day}T{hour:02d}:00:00Z" >= fixed_at
            fix_incidents = 1 if after else 10
            lake.incidents(f"fix-{d}-{hour}", "LDN-FIX", fix_incidents, day=day, hour=hour)
            lake.rated(f"fix-{d}-{hour}", "LDN-FIX", 4 if after else 1, day=day, hour=hour)
            for cell in ("LDN-C1", "LDN-C2"):
                better = after and controls_recover
                lake.incidents(f"{cell}-{d}-{hour}", cell, 1 if better else 10, day=day, hour=hour)
                lake.rated(f"{cell}-{d}-{hour}", cell, 4 if better else 2, day=day, hour=hour)
    events = [{"cell": "LDN-FIX", "fixed_at": fixed_at, "note": "replaced a faulty antenna"}]
    (lake.root / "remediation").mkdir(parents=True, exist_ok=True)
    (lake.root / "remediation" / "fixes.csv").write_bytes(remediation_csv(events))


def test_a_fixed_cell_that_recovers_shows_a_positive_effect_against_untouched_cells(
    lake: Lake,
) -> None:
    _fix_scenario(lake, controls_recover=False)

    (fix,) = run_analytics(lake.write())["fix_effectiveness"]

    assert (fix["cell"], fix["note"], fix["control_cells"]) == (
        "LDN-FIX",
        "replaced a faulty antenna",
        2,
    )
    # Before: 1.5 days x 2 bursts of 10 incidents; after: 2.5 days x 2 bursts of 1
    assert (fix["incidents_before"], fix["incidents_after"]) == (30, 5)
    assert fix["incidents_per_day_before"] == pytest.approx(20)
    assert fix["incidents_per_day_after"] == pytest.approx(2)
    assert fix["incident_ratio"] < fix["incident_ratio_high"] < 1
    # Ratings: -1 before, +0.5 after; the untouched cells stay at -0.5
    assert (fix["score_before"], fix["score_after"]) == (-1.0, 0.5)
    assert fix["score_effect"] == pytest.approx(1.5)
    assert 0 < fix["score_effect_low"] < 1.5 < fix["score_effect_high"]


def test_a_fix_is_not_credited_with_a_recovery_the_whole_network_had(lake: Lake) -> None:
    _fix_scenario(lake, controls_recover=True)

    (fix,) = run_analytics(lake.write())["fix_effectiveness"]

    assert fix["score_after"] - fix["score_before"] == pytest.approx(1.5)
    assert fix["score_effect"] == pytest.approx(0.5)  # only what the fix added: -1 vs -0.5 before
    assert fix["incident_ratio_low"] < 1 < fix["incident_ratio_high"]


def test_no_remediation_events_no_rows(lake: Lake) -> None:
    lake.affected("LDN-A", 2)

    assert run_analytics(lake.write())["fix_effectiveness"] == []


# --- date ranges and partitions ----------------------------------------------------------------


def test_a_one_day_range_reads_only_that_days_partitions(lake: Lake) -> None:
    # Given two days of data, and a corrupt object in every table of the second day
    for day, rating in ((DAYS[0], 1), (DAYS[1], 5)):
        for subscriber in lake.affected("LDN-A", 3, prefix=day, day=day):
            lake.rated(subscriber, "LDN-A", rating, day=day)
    root = lake.write()
    for prefix in ("incidents", "engagement", "feedback", "sentiment"):
        (root / prefix / f"dt={DAYS[1]}" / "corrupt.jsonl.gz").write_bytes(b"not gzip at all")

    # When the first day alone is queried, the second day's objects are never opened
    results = run_analytics(root, DAYS[0], DAYS[0])

    assert results["period"] == {"start": DAYS[0], "end": DAYS[0]}
    (cell,) = results["cell"]
    assert (cell["subscribers"], cell["answers"], cell["observed_change"]) == (3, 3, -0.5)
    assert {t["dt"] for t in results["cell_trends"]} == {DAYS[0]}
    # ... and a range that includes the second day does read them
    with pytest.raises(duckdb.Error, match="corrupt"):
        run_analytics(root, DAYS[0], DAYS[1])


def test_the_period_defaults_to_the_lakes_first_and_last_day(lake: Lake) -> None:
    lake.affected("LDN-A", 1, day=DAYS[0])
    lake.affected("LDN-A", 2, prefix="later", day=DAYS[2])

    results = run_analytics(lake.write())

    assert results["period"] == {"start": DAYS[0], "end": DAYS[2]}
    assert results["cell"][0]["subscribers"] == 3


def test_an_empty_lake_gives_empty_results(tmp_path: Path) -> None:
    (tmp_path / "lake" / "incidents").mkdir(parents=True)

    results = run_analytics(tmp_path / "lake")

    assert {name: rows for name, rows in results.items() if name != "period"} == {
        "cell": [],
        "cell_kpi": [],
        "device": [],
        "vendor": [],
        "cell_trends": [],
        "fix_effectiveness": [],
    }


# --- outputs -----------------------------------------------------------------------------------


def test_write_outputs_writes_typed_json_arrays_named_by_the_design(
    lake: Lake, tmp_path: Path
) -> None:
    for subscriber in lake.affected("LDN-A", 3):
        lake.rated(subscriber, "LDN-A", 1)
    lake.affected("LDN-B", 1, device="Other")
    out = tmp_path / "out"

    write_outputs(run_analytics(lake.write()), out)

    for name, key in (("cell", "cell"), ("device", "device"), ("vendor", "vendor")):
        rows = json.loads((out / f"{name}_priority.json").read_text())
        assert rows, name
        for row in rows:
            assert isinstance(row[key], str)
            assert isinstance(row["subscribers"], int)
            assert isinstance(row["change_sentiment"], float)
            assert isinstance(row["ranked"], bool)
            assert "item" not in row and "breakdown" not in row
    cells = json.loads((out / "cell_priority.json").read_text())
    assert [(c["cell"], c["ranked"]) for c in cells] == [("LDN-A", True), ("LDN-B", False)]
    assert "net_change" not in cells[0] and "kpi" not in cells[0]
    assert "net_change" in json.loads((out / "device_priority.json").read_text())[0]
    for name in ("cell_kpi_priority", "cell_trends", "fix_effectiveness"):
        assert isinstance(json.loads((out / f"{name}.json").read_text()), list)


def test_remediation_csv_is_what_the_glue_table_reads() -> None:
    text = remediation_csv([{"cell": "LDN-1", "fixed_at": "2026-11-25T12:00:00Z", "note": "a, b"}])

    assert text.decode().splitlines() == ["cell,fixed_at,note", 'LDN-1,2026-11-25T12:00:00Z,"a, b"']


# --- the SQL itself: Athena's dialect, two date parameters on dt --------------------------------

SQL_FILES = sorted(SQL_DIR.glob("*.sql"))
# The what-if's detection takes its windows and thresholds too (test_detect_incidents_sql.py).
ANALYTICS_SQL_FILES = [path for path in SQL_FILES if path.name in QUERIES.values()]


def test_every_sql_file_is_run_by_the_twin_or_the_what_if() -> None:
    assert {path.name for path in SQL_FILES} == set(QUERIES.values()) | {WHATIF_SQL.name}


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
        r"\bread_csv",
        r"\bread_parquet",
        r"\bQUALIFY\b",
        r"\bEXCLUDE\b",
        r"\bGROUP\s+BY\s+ALL\b",
        r"\bILIKE\b",
        r"\bFROM\s+'",
        r"\bmain\.",
    ):
        assert not re.search(duckdb_only, code, re.IGNORECASE), duckdb_only
    assert re.search(r"\bORDER\s+BY\b", code, re.IGNORECASE), "results must be ordered"


@pytest.mark.parametrize("path", ANALYTICS_SQL_FILES, ids=lambda path: path.name)
def test_sql_takes_the_period_as_two_parameters_on_the_partition_column(path: Path) -> None:
    (statement,) = sqlglot.parse(path.read_text(), read="trino")
    placeholders = list(statement.find_all(exp.Placeholder))

    # Athena accepts ? only in a WHERE clause; both bound dt, first day then last day
    assert len(placeholders) == PARAMETERS
    (between,) = {id(p.parent): p.parent for p in placeholders}.values()
    assert isinstance(between, exp.Between)
    assert between.this.name == "dt"
    assert [between.args["low"], between.args["high"]] == placeholders
    assert between.find_ancestor(exp.Where) is not None
