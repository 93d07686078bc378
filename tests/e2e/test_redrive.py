"""End to end: ``python -m simulator redrive`` brings dead-lettered work back exactly once.

The scenario's faults (S3 down, Connect refusing every call) dead-letter every lake write
and every call during the run. The redrive, with faults off, moves them back with
ops/redrive.py; each engagement is then called once, and the outcome is the fault-free
run's: the same subscribers asked about the same problems, the same cell ranking.
"""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_faults import CELLS, calls, ranking, scenario, summary

pytestmark = [pytest.mark.xdist_group("twin_b"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
OUTAGE = {"s3_error_rate": 1.0, "connect_throttle_rate": 1.0}
SQS_DLQS = (
    "incident_update_queue_dlq",
    "engagement_update_queue_dlq",
    "engagement_trigger_dlq.fifo",
)


def simulator(command: str, folder: Path, faults: dict[str, float]) -> subprocess.CompletedProcess:
    path = folder / "scenario.json"
    path.write_text(json.dumps(scenario(faults)), encoding="utf-8")
    args = [command, "--scenario", str(path), "--out", str(folder / "out"), "--seed", "3"]
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def outage_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("outage_run")
    assert simulator("run", folder, OUTAGE).returncode == 0
    return folder / "out"


@pytest.fixture(scope="module")
def redriven(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("redriven")
    result = simulator("redrive", folder, OUTAGE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "redrive engagement_trigger_dlq.fifo" in result.stdout
    return folder / "out"


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clean")
    assert simulator("run", folder, {}).returncode == 0
    return folder / "out"


def test_the_outage_dead_letters_without_calling_anyone(outage_run: Path) -> None:
    figures = summary(outage_run)

    assert figures["calls_started"] == 0
    assert (outage_run / "calls.jsonl").read_text(encoding="utf-8") == ""
    assert all(figures["dead_letter_queues"][name] > 0 for name in SQS_DLQS)
    assert figures["engagements_lost"] == 0


@pytest.mark.parametrize(
    "name",
    [
        "incident_update_queue_dlq",
        "engagement_update_queue_dlq",
        "engagement_trigger_dlq.fifo",
    ],
)
def test_every_dead_letter_queue_is_moved_back_and_processed(
    outage_run: Path, redriven: Path, name: str
) -> None:
    before = summary(outage_run)["dead_letter_queues"]
    report: dict[str, dict[str, Any]] = summary(redriven)["redriven"]

    assert report[name]["dead_lettered_before"] == before[name]
    assert report[name]["moved"] == before[name]
    assert report[name]["processed"] == before[name]
    assert report[name]["dead_lettered_after"] == 0


def test_each_redriven_engagement_is_called_once(redriven: Path, clean: Path) -> None:
    per_engagement = Counter(call["engagement_id"] for call in calls(redriven))

    assert summary(redriven)["dead_lettered"] == 0
    assert summary(redriven)["duplicate_calls"] == 0
    assert set(per_engagement.values()) == {1}
    # Everyone the fault-free run asked is asked, about every problem it asked about; the
    # calls held back through the outage gathered the later KPI into the same episode, so
    # the redriven run can ask about both in one call where the clean run made two.
    assert _asked(redriven) == _asked(clean)


def _asked(out: Path) -> dict[str, set[str]]:
    asked: dict[str, set[str]] = {}
    for call in calls(out):
        kpis = call["attributes"]["incident_types"].split(",")
        asked.setdefault(call["phone_number"], set()).update(kpis)
    return asked


def test_after_the_redrive_the_cells_rank_as_without_faults(redriven: Path, clean: Path) -> None:
    assert ranking(clean) == list(CELLS)
    assert ranking(redriven) == ranking(clean)


def test_a_bad_scenario_is_refused_with_the_field_named(tmp_path: Path) -> None:
    result = simulator("redrive", tmp_path, {"handler_crash_rate": 2})

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: scenario faults.handler_crash_rate: expected a number from 0 to 1, got 2"
    ]
