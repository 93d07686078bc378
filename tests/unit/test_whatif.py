"""The what-if on local exports: loading, the offline contact policy, the figures, the CLI."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedback_loop.errors import InvalidRecord
from feedback_loop.ids import incident_id
from feedback_loop.policy import load_policy
from feedback_loop.probe import parse_probe_record
from feedback_loop.timeutil import parse_utc
from simulator.cli import main as cli
from simulator.export import export
from simulator.whatif import (
    Candidate,
    IncidentRow,
    LocalProbes,
    WhatIfError,
    contact_plan,
    estimate_connect_cost,
    figures,
    load_candidates,
)

CORPUS = Path(__file__).parents[1] / "reliability" / "corpus" / "probe_events.json"
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _record(phone: str, minute: float, kpi: str, success: bool, cell: str = "LDN-0001") -> dict:
    return {
        "timestamp": (START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "phone_number": phone,
        "cell": cell,
        "event_type": kpi,
        "success": success,
        "device": "Pixel 8",
        "vendor": "VendorA",
    }


def _write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _corpus_lines() -> tuple[list[str], list[str]]:
    """The bad-input corpus as JSON Lines (one-line cases), with each case's id."""
    corpus = json.loads(CORPUS.read_text(encoding="utf-8"))
    ids, lines = [], []
    for case in corpus["cases"]:
        if "raw_base64" in case:
            continue
        if "raw" in case:
            line = case["raw"]
        else:
            value = case["input"]
            if "pad_bytes" in case:
                value = {**value, "padding": "x" * case["pad_bytes"]}
            line = json.dumps(value)
        if line and "\n" not in line:
            ids.append(case["id"])
            lines.append(line)
    return ids, lines


def test_section4_records_are_validated_by_the_ingest_rules(tmp_path: Path) -> None:
    # Given every one-line case of the bad-input corpus as a JSON Lines export
    ids, lines = _corpus_lines()
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    reference = parse_utc(json.loads(CORPUS.read_text())["reference_time"])
    # When the what-if loads it
    probes = LocalProbes(path, tmp_path / "work")
    kept = {row[0] for row in probes.con.execute("SELECT record_id FROM probes").fetchall()}
    # Then it keeps exactly what parse_probe_record accepts, except for the check of a
    # timestamp against the Kinesis arrival, which an export does not carry
    disagree = []
    for number, (case, line) in enumerate(zip(ids, lines, strict=True), start=1):
        try:
            parse_probe_record(line, reference)
            accepted = True
        except InvalidRecord as error:
            accepted = error.reason == "timestamp_out_of_range"
        if accepted != (f"export:{number}" in kept):
            disagree.append(case)
    assert disagree == []
    assert probes.rejected == len(lines) - probes.records > 40


def test_a_parquet_export_with_a_mistyped_column_is_refused(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "bad.parquet"
    duckdb.connect().execute(
        "COPY (SELECT '2026-11-25T10:00:00Z' AS timestamp, 1 AS success) "
        f"TO '{path}' (FORMAT parquet)"
    )
    with pytest.raises(WhatIfError, match="column success is INTEGER, not BOOLEAN"):
        LocalProbes(path, tmp_path / "work")


def test_candidates_merge_over_cdk_json_and_name_a_bad_file(tmp_path: Path) -> None:
    good = tmp_path / "stricter.json"
    good.write_text(json.dumps({"thresholds": {"CALL_DROP": 0.3}, "min_sessions": 5}))
    (candidate,) = load_candidates([good])
    assert candidate.name == "stricter.json"
    assert candidate.policy.thresholds["CALL_DROP"] == 0.3
    assert candidate.policy.thresholds["CALL_QUALITY"] == 0.18  # merged, not replaced
    assert [c.name for c in load_candidates([])] == ["deployed defaults"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"min_sessions": 0}))
    with pytest.raises(WhatIfError, match=r"bad\.json: min_sessions must be between"):
        load_candidates([bad])


def _incident(sub: str, minute: float, kpi: str = "CALL_DROP", sessions: int = 4, cell: str = "A"):
    return IncidentRow(
        subscriber_id=sub,
        event_type=kpi,
        timestamp=(START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        record_id=f"shard:{int(minute * 60)}",
        cell=cell,
        device=None,
        vendor=None,
        failure_rate=0.5,
        sessions=sessions,
        failures=2,
    )


LONDON_A, LONDON_B, LONDON_C = "+447700900001", "+447700900002", "+447700900003"


def test_the_offline_policy_gathers_defers_and_keeps_the_gap_as_the_handlers_do() -> None:
    policy = load_policy({})
    rows = [
        _incident(LONDON_A, 0),  # 09:00 London: engaged, contacted after gathering
        _incident(LONDON_A, 5, "CALL_QUALITY"),  # joins the same episode: one call
        _incident(LONDON_A, 90, "LOW_BITRATE"),  # after the call: waits out the 24 h gap
        _incident(LONDON_B, 5, sessions=2),  # too few sessions to judge
        _incident(LONDON_C, 13 * 60),  # 22:00 London: deferred to 08:00, not dropped
    ]
    plan = contact_plan(rows, policy)

    assert sorted(
        (d.phone_number, d.incident.timestamp[11:16], d.reason) for d in plan.decisions
    ) == [
        (LONDON_A, "09:00", "above_threshold"),
        (LONDON_A, "09:05", "same_episode"),
        (LONDON_A, "10:30", "above_threshold"),
        (LONDON_B, "09:05", "min_sessions"),
        (LONDON_C, "22:00", "above_threshold"),
    ]
    assert [(c.phone_number, c.incident_types, c.at) for c in plan.contacts] == [
        (LONDON_A, ("CALL_DROP", "CALL_QUALITY"), START + timedelta(minutes=10)),
        (LONDON_C, ("CALL_DROP",), datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),
        # a day after the first call, the incident still younger than 24 h
        (LONDON_A, ("LOW_BITRATE",), START + timedelta(days=1, minutes=10)),
    ]
    assert plan.deferred == {"quiet_hours": 1, "contact_gap": 1}
    # the incidents carry the handler's ids (over the subscriber id the input has)
    first = plan.decisions[0]
    assert first.incident.incident_id == incident_id(
        LONDON_A, "CALL_DROP", rows[0].timestamp, "shard:0"
    )


def test_two_failures_in_the_same_second_are_one_call_about_one_episode() -> None:
    # Distinct incidents (issue 14 ids); the second joins the first's episode.
    twin = [_incident("a", 0), _incident("a", 0)]
    twin[1] = IncidentRow(**{**twin[1].__dict__, "record_id": "shard:1"})
    policy = load_policy({})
    plan = contact_plan(twin, policy)
    assert len({d.incident.incident_id for d in plan.decisions}) == 2
    result = figures(Candidate("c", {}, policy), 2, twin, plan)
    assert result["calls"] == 1 and result["distinct_subscribers_called"] == 1
    assert result["suppressed"] == {"same_episode": 1}


def test_an_outage_is_sampled_offline_as_the_dial_step_samples_it() -> None:
    policy = load_policy({"outage": {"min_subscribers": 5, "window_minutes": 30, "sample_size": 2}})
    rows = [_incident(f"+4477009002{n:02d}", n / 10, cell="OUT") for n in range(40)]
    plan = contact_plan(rows, policy)
    assert len(plan.contacts) == 2
    assert plan.dropped["cell_outage"] == 38
    assert plan.outages == {("OUT", "2026-11-25T09:00:00Z")}


def test_figures_count_calls_by_local_day_and_hour_and_rank_cells_by_subscribers() -> None:
    policy = load_policy({"timezone": "Asia/Tokyo", "quiet_hours": None})
    rows = [
        _incident("a", 0, cell="A"),
        _incident("b", 10, cell="B"),
        _incident("c", 20, cell="B"),
        _incident("f", 16 * 60, "CALL_QUALITY", cell="A"),  # 01:00 next day in Tokyo
        _incident("d", 30, sessions=1, cell="C"),
        _incident("e", 40, sessions=2, cell="B"),  # not called, but affected on B
    ]
    candidate = Candidate("tokyo.json", {"timezone": "Asia/Tokyo"}, policy)
    result = figures(candidate, 9, rows, contact_plan(rows, policy))
    assert result["incidents"] == 9
    assert result["incidents_above_threshold"] == 6
    assert (result["engagements"], result["calls"]) == (4, 4)
    assert result["distinct_subscribers_called"] == 4
    assert result["calls_per_day"] == {"2026-11-25": 3, "2026-11-26": 1}
    assert result["busiest_hour"] == {
        "hour": "2026-11-25T18:00",
        "calls": 3,
        "timezone": "Asia/Tokyo",
    }
    assert result["suppressed"] == {"min_sessions": 2}
    assert result["calls_in_local_quiet_hours"] == 0
    assert result["top_cells"] == ["B", "A", "C"]


def _day_of_records() -> list:
    records = []
    for n in range(6):
        phone = f"+4477009001{n:02d}"
        outcomes = "ooxox" if n % 2 else "ooxxx"
        records += [
            _record(phone, 60 + n + i, "CALL_DROP", o == "o", f"LDN-000{n % 3}")
            for i, o in enumerate(outcomes)
        ]
    records.sort(key=lambda r: r["timestamp"])
    return records


def test_whatif_command_writes_one_object_per_config_in_order(tmp_path: Path, capsys) -> None:
    export_path = _write_jsonl(tmp_path / "export.jsonl", [*_day_of_records(), "not a record"])
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"thresholds": {"CALL_DROP": 0.5}}))
    code = cli(
        [
            "whatif",
            "--probe-export",
            str(export_path),
            "--config",
            str(strict),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    results = json.loads((tmp_path / "out" / "whatif.json").read_text())
    assert [r["config"] for r in results] == ["strict.json"]
    (only,) = results
    for key in ("incidents", "engagements", "calls", "distinct_subscribers_called", "top_cells"):
        assert key in only
    assert only["probe_records"] == 30 and only["rejected_records"] == 1
    assert only["incidents"] == 15
    # 3 of 5 failed for three subscribers (0.6 > 0.5); 2 of 5 for the others (0.4)
    assert only["calls"] == only["distinct_subscribers_called"] == 3
    assert "| strict.json |" in capsys.readouterr().out
    assert not (tmp_path / "out" / "whatif-work").exists()


def test_export_streams_the_default_model_over_days(tmp_path: Path) -> None:
    parquet = export(60, 3, tmp_path / "probes.parquet", seed=5)
    lines = export(60, 3, tmp_path / "probes.jsonl", seed=5)
    assert parquet.records == lines.records > 60 * 3
    assert (parquet.cells, len(parquet.degraded_cells)) == (6, 1)
    records = [json.loads(line) for line in (tmp_path / "probes.jsonl").read_text().splitlines()]
    assert [r["timestamp"] for r in records] == sorted(r["timestamp"] for r in records)
    assert {r["timestamp"][:10] for r in records} == {"2026-11-25", "2026-11-26", "2026-11-27"}
    # one population: a subscriber keeps their device from day to day
    devices: dict[str, set] = {}
    for r in records:
        devices.setdefault(r["phone_number"], set()).add(r["device"])
    assert all(len(found) == 1 for found in devices.values())
    # both formats hold the same records, which the what-if reads alike
    a = LocalProbes(tmp_path / "probes.parquet", tmp_path / "a")
    b = LocalProbes(tmp_path / "probes.jsonl", tmp_path / "b")
    query = "SELECT * FROM probes ORDER BY record_id"
    assert a.con.execute(query).fetchall() == b.con.execute(query).fetchall()
    assert a.records == parquet.records and a.rejected == 0


def test_a_folder_of_parquet_files_arrives_in_file_name_then_row_order(tmp_path: Path) -> None:
    import duckdb

    export(40, 2, tmp_path / "all.parquet", seed=3)
    folder = tmp_path / "days"
    folder.mkdir()
    con = duckdb.connect()
    for name, day in (("b.parquet", "2026-11-26"), ("a.parquet", "2026-11-25")):
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{tmp_path / 'all.parquet'}') "
            f"WHERE timestamp LIKE '{day}%') TO '{folder / name}' (FORMAT parquet)"
        )
    one = LocalProbes(tmp_path / "all.parquet", tmp_path / "one")
    split = LocalProbes(folder, tmp_path / "split")
    query = "SELECT record_id, subscriber_id, timestamp, event_type FROM probes ORDER BY 1"
    assert split.con.execute(query).fetchall() == one.con.execute(query).fetchall()


def test_connect_cost_is_the_cost_models_price_of_the_mean_days_contacts() -> None:
    one = estimate_connect_cost({"2026-11-25": 100})
    assert one > 0
    assert estimate_connect_cost({"2026-11-25": 100, "2026-11-26": 300}) == pytest.approx(2 * one)
    assert estimate_connect_cost({}) == 0.0
