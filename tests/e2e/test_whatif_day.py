"""End to end on the default day: the archive the twin wrote, the SQL, and the what-if.

One twin run of the default day (seed 7) with the stricter candidate config of
``docs/examples/whatif-stricter.json``; every subscriber answers the first call with a 3,
as the what-if assumes (nobody opts out, nobody needs a second attempt: the answers are
what the what-if cannot know in advance). Then:

* parity: ``sql/detect_incidents.sql`` over the twin's ``probes/`` archive finds exactly the
  incidents ``Ingest_probe_events`` wrote to ``incidents/`` (subscriber, KPI, time, the
  stream record, rate, sessions, failures), with the config's windows;
* ``python -m simulator whatif`` on the day's probe export, with the deployed config and the
  stricter one: the stricter makes fewer calls, and its figures are the twin's: decisions,
  first contacts (the what-if counts no retries), suppressions, calls per day and hour.
"""

import json
import subprocess
import sys
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import pytest

from feedback_loop.lake import decode_jsonl_gz
from simulator.scenario import default_scenario
from simulator.whatif import LocalProbes, detection_parameters, detection_sql, load_candidates

pytestmark = [pytest.mark.xdist_group("twin_b"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
STRICTER = EXAMPLES / "whatif-stricter.json"
DEPLOYED = EXAMPLES / "whatif-deployed.json"


def _lake(out: Path, prefix: str) -> list[dict[str, Any]]:
    return [
        record
        for path in sorted((out / "lake" / prefix).rglob("*.jsonl.gz"))
        for record in decode_jsonl_gz(path.read_bytes())
    ]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The default day through the twin with the stricter config, and its probe export."""
    folder = tmp_path_factory.mktemp("whatif_day")
    scenario = default_scenario(7)
    scenario.config = json.loads(STRICTER.read_text())
    scenario.answers = {s.phone_number: "3" for s in scenario.subscribers}
    (folder / "scenario.json").write_text(json.dumps(scenario.to_dict()))
    export = folder / "probes.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in scenario.probe_events))
    out = folder / "out"
    subprocess.run(
        [sys.executable, "-m", "simulator", "run", "--scenario", str(folder / "scenario.json"),
         "--out", str(out)],
        cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return {"out": out, "export": export, "folder": folder}


@pytest.fixture(scope="module")
def whatif(day: dict[str, Path]) -> list[dict[str, Any]]:
    out = day["folder"] / "whatif"
    subprocess.run(
        [sys.executable, "-m", "simulator", "whatif", "--probe-export", str(day["export"]),
         "--config", str(DEPLOYED), "--config", str(STRICTER), "--out", str(out)],
        cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads((out / "whatif.json").read_text())


def _key(row: dict[str, Any]) -> tuple:
    return (
        row["subscriber_id"],
        row["event_type"],
        row["timestamp"],
        row["sessions"],
        row["failures"],
        round(row["failure_rate"], 6),
    )


def _sql_incidents(day: dict[str, Path], tmp_path: Path) -> list[dict[str, Any]]:
    (candidate,) = load_candidates([STRICTER])
    archive = LocalProbes(day["out"] / "lake" / "probes", tmp_path)
    result = archive.con.execute(
        detection_sql(),
        detection_parameters(candidate.policy, archive.period(), every_incident=True),
    )
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def test_the_sql_finds_exactly_the_incidents_the_handler_wrote(day, tmp_path) -> None:
    handler = _lake(day["out"], "incidents")
    sql = _sql_incidents(day, tmp_path)
    assert len(handler) > 500
    assert Counter(_key(r) for r in sql) == Counter(_key(r) for r in handler)
    summary = json.loads((day["out"] / "summary.json").read_text())
    assert summary["incidents"] == len(sql)


def test_the_sql_names_the_stream_record_each_incident_came_from(day, tmp_path) -> None:
    handler = {(_key(r), r["record_id"]) for r in _lake(day["out"], "incidents")}
    assert {(_key(r), r["record_id"]) for r in _sql_incidents(day, tmp_path)} == handler


def test_the_archive_holds_every_accepted_record_once(day, tmp_path) -> None:
    summary = json.loads((day["out"] / "summary.json").read_text())
    archive = LocalProbes(day["out"] / "lake" / "probes", tmp_path)
    distinct = archive.con.execute("SELECT COUNT(DISTINCT record_id) FROM probes").fetchone()[0]
    assert archive.records == distinct == summary["probe_events"] - summary["rejected_records"]
    text = json.dumps(archive.con.execute("SELECT * FROM probes LIMIT 1000").fetchall())
    assert "+447700" not in text


def test_the_archive_counts_the_bytes_of_the_rows_it_was_given(day) -> None:
    # The cost model prices Firehose's dynamic partitioning on these bytes: the rows as
    # Archive_probe_records returned them (JSON), which the Parquet rows reproduce.
    summary = json.loads((day["out"] / "summary.json").read_text())
    stats = summary["delivery_streams"]["probe_archive"]
    objects = str(day["out"] / "lake" / "probes" / "*" / "*.parquet")
    cursor = duckdb.connect().execute(
        "SELECT * EXCLUDE (dt) FROM read_parquet(?, hive_partitioning = true)", [objects]
    )
    columns = [column[0] for column in cursor.description]
    rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    assert len(rows) == stats["rows_delivered"] > 0
    assert stats["bytes_transformed"] == sum(len(json.dumps(row)) for row in rows)


def test_the_stricter_config_makes_fewer_calls(whatif) -> None:
    deployed, stricter = whatif
    assert (deployed["config"], stricter["config"]) == (DEPLOYED.name, STRICTER.name)
    assert deployed["incidents"] == stricter["incidents"] > 0
    assert 0 < stricter["calls"] < deployed["calls"]
    assert stricter["distinct_subscribers_called"] < deployed["distinct_subscribers_called"]


def test_the_stricter_figures_are_the_twins(day, whatif) -> None:
    # The what-if replays the same policy code without AWS: the twin's decisions, its
    # first contacts, and its suppressions (when deciding and right before dialling).
    _, predicted = whatif
    out = day["out"]
    summary = json.loads((out / "summary.json").read_text())
    steps = _lake(out, "engagement")
    engaged = {r["engagement_id"] for r in steps if r["decision"] == "engage"}
    # a suppression of an engaged episode is the dial step's (stale, cell_outage); the
    # others are decisions on arrival, as are engage and merged
    dialled_out = {
        (r["engagement_id"], r["reason"])
        for r in steps
        if r["decision"] == "suppress" and r["engagement_id"] in engaged
    }
    decisions = {
        (r["engagement_id"], r["incident_id"]): r
        for r in steps
        if r["decision"] in ("engage", "merged")
        or (r["decision"] == "suppress" and r["engagement_id"] not in engaged)
    }
    # thin incidents (fewer sessions than min_sessions) are counted in decision_counts/, not
    # recorded one by one: they are the above-threshold incidents of incidents/ with too few
    # sessions (nobody opts out here, so no earlier rule claims them), and the counts add up
    (candidate,) = load_candidates([STRICTER])
    policy = candidate.policy
    threshold = {kpi: Fraction(str(value)) for kpi, value in policy.thresholds.items()}
    thin = {
        (None, r["incident_id"]): {**r, "decision": "suppress", "reason": "min_sessions"}
        for r in _lake(out, "incidents")
        if r["sessions"] < policy.min_sessions
        and Fraction(r["failures"], r["sessions"]) > threshold[r["event_type"]]
    }
    counted = _lake(out, "decision_counts")
    assert {r["reason"] for r in counted} == {"min_sessions"}
    assert sum(r["incidents"] for r in counted) == len(thin)
    decisions |= thin
    calls = [json.loads(line) for line in (out / "calls.jsonl").read_text().splitlines()]
    first = [c for c in calls if c["attributes"]["attempt"] == "1"]
    assert predicted["probe_records"] == summary["probe_events"] - summary["rejected_records"]
    assert predicted["rejected_records"] == summary["rejected_records"]
    assert predicted["incidents"] == summary["incidents"]
    assert predicted["engagements"] == summary["engagements"] == len(engaged)
    assert predicted["calls"] == len(first) == len({c["engagement_id"] for c in first})
    assert predicted["distinct_subscribers_called"] == len({c["phone_number"] for c in first})
    not_contacted = Counter(
        r["reason"] for r in decisions.values() if r["decision"] != "engage"
    ) + Counter(reason for _, reason in dialled_out)
    assert predicted["suppressed"] == dict(not_contacted)
    assert predicted["calls_in_local_quiet_hours"] == summary["calls_in_local_quiet_hours"] == 0
    assert predicted["calls_per_day"] == dict(Counter(c["time"][:10] for c in first))
    hours = Counter(c["time"][:13] + ":00" for c in first)
    busiest = min(hours.items(), key=lambda item: (-item[1], item[0]))
    assert (predicted["busiest_hour"]["hour"], predicted["busiest_hour"]["calls"]) == busiest
    # every decision is on an above-threshold incident: cells by distinct affected subscribers
    affected: dict[str, set] = defaultdict(set)
    for r in decisions.values():
        affected[r["cell"]].add(r["subscriber_id"])
    counts = Counter(r["cell"] for r in decisions.values())
    ranked = sorted(affected, key=lambda c: (-len(affected[c]), -counts[c], c))
    assert predicted["top_cells"] == ranked[: len(predicted["top_cells"])]
    assert predicted["incidents_above_threshold"] == len(decisions)
