"""End to end: ``python -m simulator run`` on small scenarios, judged by the twin's outputs.

One scenario (a morning of traffic on a few cells) is run once through the real
command; each test reads what it needs from ``calls.jsonl``, ``summary.json``,
``cell_priority.json`` and the lake copy. All times are daytime UTC (the default
policy's quiet hours are 21:00-08:00).
"""

import json
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedback_loop.lake import decode_jsonl_gz

pytestmark = [pytest.mark.xdist_group("twin"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CALLER_ID = "+442079460001"

ENGAGED = "+447700900101"  # fails CALL_DROP above threshold, rates 4
CONTENT = "+447700900102"  # fails once in twelve sessions: below the threshold
OPT_OUT = "+447700900103"  # presses 9 on the first call, has a second bad KPI later
TWO_KPIS = "+447700900104"  # CALL_DROP then CALL_QUALITY incidents within five minutes
NOT_BOTHERED = [f"+4477009002{i:02d}" for i in range(4)]  # busy cell, all rate 5
UNHAPPY = [f"+4477009003{i:02d}" for i in range(2)]  # quieter cell, all rate 1
CALM_CELL, ANGRY_CELL = "LDN-0100", "LDN-0200"
BROKEN_CLOCK = "+447700900401"  # a probe whose clock says 2031
STALE = "+447700900402"  # a record delivered eight days after its session


def _session(phone: str, minute: float, kpi: str, success: bool, cell: str) -> dict[str, Any]:
    moment = DAY + timedelta(minutes=minute)
    return {
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "phone_number": phone,
        "cell": cell,
        "event_type": kpi,
        "success": success,
        "device": "Pixel 8",
        "vendor": "VendorA",
    }


def _burst(phone: str, start: float, kpi: str, outcomes: str, cell: str) -> list[dict[str, Any]]:
    """Sessions one minute apart; ``outcomes`` is a string of ``o`` (ok) and ``x`` (failed)."""
    return [
        _session(phone, start + i, kpi, outcome == "o", cell) for i, outcome in enumerate(outcomes)
    ]


def scenario() -> dict[str, Any]:
    """A morning on a few cells, built so every expectation below follows from the policy."""
    events: list[dict[str, Any]] = []
    events += _burst(ENGAGED, 60, "CALL_DROP", "ooxox", "LDN-0001")
    events += _burst(CONTENT, 60, "CALL_DROP", "oooooooooxoo", "LDN-0001")
    events += _burst(OPT_OUT, 70, "CALL_DROP", "ooxx", "LDN-0002")
    events += _burst(OPT_OUT, 150, "VIDEO_STALLING", "ooxx", "LDN-0002")
    events += _burst(TWO_KPIS, 90, "CALL_DROP", "oox", "LDN-0003")
    events += _burst(TWO_KPIS, 93, "CALL_QUALITY", "oox", "LDN-0003")
    for n, phone in enumerate(NOT_BOTHERED):
        events += _burst(phone, 100 + n, "CALL_DROP", "ooxxx", CALM_CELL)
    for n, phone in enumerate(UNHAPPY):
        events += _burst(phone, 100 + n, "CALL_DROP", "oox", ANGRY_CELL)
    events.append("not a probe record")
    events.sort(key=lambda e: e["timestamp"] if isinstance(e, dict) else "")
    # Delivered last, whatever they claim: the feed is never re-sorted.
    events.append(
        {
            **_session(BROKEN_CLOCK, 0, "CALL_DROP", False, "LDN-0001"),
            "timestamp": "2031-01-01T00:00:00Z",
        }
    )
    events.append(_session(STALE, -8 * 24 * 60, "CALL_DROP", False, "LDN-0001"))
    answers = {ENGAGED: "4", OPT_OUT: "9", TWO_KPIS: "3"}
    answers.update({phone: "5" for phone in NOT_BOTHERED})
    answers.update({phone: "1" for phone in UNHAPPY})
    return {
        "config": {"source_phone_number": CALLER_ID},
        "probe_events": events,
        "answers": answers,
    }


def run_simulator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", "run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("twin")
    path = folder / "scenario.json"
    path.write_text(json.dumps(scenario()), encoding="utf-8")
    result = run_simulator("--scenario", str(path), "--out", str(folder / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Report:" in result.stdout
    return folder / "out"


def _calls(out: Path) -> list[dict[str, Any]]:
    lines = (out / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]


def _calls_by_phone(out: Path) -> dict[str, list[dict[str, Any]]]:
    by_phone: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in _calls(out):
        by_phone[call["phone_number"]].append(call)
    return by_phone


def test_subscribers_above_threshold_are_called_and_those_below_are_not(outputs: Path) -> None:
    calls = _calls_by_phone(outputs)

    assert [c["attributes"]["incident_type"] for c in calls[ENGAGED]] == ["CALL_DROP"]
    assert calls[ENGAGED][0]["input"] == "4"
    assert CONTENT not in calls


def test_an_opted_out_subscriber_is_never_called_again(outputs: Path) -> None:
    calls = _calls_by_phone(outputs)

    assert len(calls[OPT_OUT]) == 1
    assert calls[OPT_OUT][0]["input"] == "9"
    engagements = _lake(outputs, "engagement")
    later = [
        e
        for e in engagements
        if e["incident_type"] == "VIDEO_STALLING" and e["incident_time"] > calls[OPT_OUT][0]["time"]
    ]
    assert later, "the second KPI of the opted-out subscriber was never evaluated"
    assert {e["decision"] for e in later} == {"suppress"}
    assert {e["reason"] for e in later} == {"opted_out"}


def test_two_kpis_within_five_minutes_are_one_call_about_both(outputs: Path) -> None:
    # One contact per episode across KPIs (the contact policy): the first incident names
    # the engagement, the call's incident_types lists both, in the order they came.
    (call,) = _calls_by_phone(outputs)[TWO_KPIS]

    assert call["attributes"]["incident_type"] == "CALL_DROP"
    assert call["attributes"]["incident_types"] == "CALL_DROP,CALL_QUALITY"


def test_unhappy_cell_ranks_above_a_busier_cell_whose_subscribers_were_not_bothered(
    outputs: Path,
) -> None:
    ranking = json.loads((outputs / "cell_priority.json").read_text(encoding="utf-8"))
    rows = {row["cell"]: (index, row) for index, row in enumerate(ranking)}
    incidents = Counter(i["cell"] for i in _lake(outputs, "incidents"))

    assert incidents[CALM_CELL] > incidents[ANGRY_CELL]
    assert rows[ANGRY_CELL][0] < rows[CALM_CELL][0]
    assert rows[ANGRY_CELL][1]["change_sentiment"] < 0 < rows[CALM_CELL][1]["change_sentiment"]
    assert rows[ANGRY_CELL][1]["subscribers"] == len(UNHAPPY)


def test_api_call_counts_match_the_calls_the_handlers_made(outputs: Path) -> None:
    summary = json.loads((outputs / "summary.json").read_text(encoding="utf-8"))
    api = summary["api_calls"]
    # The probe archive's objects are written by the emulated Firehose, not by a handler.
    lake_objects = [
        p for p in (outputs / "lake").rglob("*") if p.is_file() and "probes" not in p.parts
    ]

    assert api["connect.StartOutboundVoiceContact"] == summary["calls_started"]
    assert summary["calls_started"] == len(_calls(outputs))
    assert api["s3.PutObject"] == len(lake_objects)
    assert summary["probe_events"] == len(scenario()["probe_events"])
    assert summary["rejected_records"] == 3
    assert summary["dead_lettered"] == 0


def test_records_are_judged_on_arrival_not_on_the_time_the_probe_claims(outputs: Path) -> None:
    """A clock years ahead arrives now and is out of range; a session delivered eight days
    late is too old. Neither may count towards anyone's failure rate."""
    rejected = Counter(r["reason"] for r in _lake(outputs, "rejected"))
    incident_times = {i["timestamp"] for i in _lake(outputs, "incidents")}

    assert rejected["timestamp_out_of_range"] == 2
    assert not any(t.startswith("2031") for t in incident_times)
    assert min(incident_times) >= DAY.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_every_call_is_a_voice_call_that_took_time_and_nothing_was_denied(outputs: Path) -> None:
    summary = json.loads((outputs / "summary.json").read_text(encoding="utf-8"))
    calls = _calls(outputs)

    assert {c["channel"] for c in calls} == {"voice"}
    assert all(c["ended"] > c["time"] and c["duration_seconds"] > 10 for c in calls)
    assert summary["access_denied"] == 0
    assert summary["access_denied_calls"] == []
    assert 1 <= summary["peak_concurrent_calls"] <= 10


def test_summary_counts_what_reached_the_lake(outputs: Path) -> None:
    summary = json.loads((outputs / "summary.json").read_text(encoding="utf-8"))

    assert summary["incidents"] == len({i["incident_id"] for i in _lake(outputs, "incidents")})
    assert summary["feedback_received"] == len(_lake(outputs, "feedback"))
    assert (outputs / "report.html").stat().st_size > 0
    assert (outputs / "report.png").stat().st_size > 0


def test_a_scenario_with_a_wrong_format_names_the_field_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"probe_events": [], "subscribers": "everyone"}), encoding="utf-8")

    result = run_simulator("--scenario", str(path), "--out", str(tmp_path / "out"))

    assert result.returncode == 2
    assert "subscribers" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_day_with_nobody_to_call_still_writes_an_empty_call_log(tmp_path: Path) -> None:
    path = tmp_path / "calm.json"
    calm = _burst(CONTENT, 60, "CALL_DROP", "oooooooooxoo", "LDN-0001")
    path.write_text(json.dumps({"probe_events": calm}), encoding="utf-8")

    result = run_simulator("--scenario", str(path), "--out", str(tmp_path / "out"))

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "calls.jsonl").read_text(encoding="utf-8") == ""
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert (summary["incidents"], summary["calls_started"]) == (1, 0)


def _lake(out: Path, prefix: str) -> list[dict[str, Any]]:
    return [
        record
        for path in sorted((out / "lake" / prefix).rglob("*.jsonl.gz"))
        for record in decode_jsonl_gz(path.read_bytes())
    ]
