"""End to end under faults: nothing lost, nobody called twice, the same cells first.

One small scenario (subscribers over four cells, daytime, explicit answers) runs twice
through ``python -m simulator run``: fault-free, and with every ``faults`` rate at 0.2
(fixed seed). The faulty run must place the same calls and rank the cells the same way,
with every fault kind actually injected; the figures come from the outputs.
"""

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedback_loop.lake import decode_jsonl_gz
from simulator.scenario import FAULT_KEYS

pytestmark = [pytest.mark.xdist_group("twin"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SEED = "11"
# cell → (answer every subscriber there gives, number of subscribers)
CELLS = {"LDN-0001": ("1", 4), "LDN-0002": ("2", 3), "LDN-0003": ("4", 2), "LDN-0004": ("5", 5)}
FAULT_KINDS = {
    "duplicate_delivery_rate": "duplicate_delivery",
    "connect_throttle_rate": "connect_throttle",
    "s3_error_rate": "s3_error",
    "dynamodb_error_rate": "dynamodb_error",
    "handler_crash_rate": "handler_crash",
}


def _burst(phone: str, start: int, kpi: str, outcomes: str, cell: str) -> list[dict[str, Any]]:
    """Sessions one minute apart; ``outcomes`` is ``o`` (ok) / ``x`` (failed) per session."""
    return [
        {
            "timestamp": (DAY + timedelta(minutes=start + i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "phone_number": phone,
            "cell": cell,
            "event_type": kpi,
            "success": outcome == "o",
            "device": "Pixel 8",
            "vendor": "VendorA",
        }
        for i, outcome in enumerate(outcomes)
    ]


def scenario(faults: dict[str, float]) -> dict[str, Any]:
    """Every subscriber fails two KPIs above threshold and answers as their cell does."""
    events: list[Any] = []
    subscribers, answers = [], {}
    n = 0
    for cell, (answer, count) in CELLS.items():
        for _ in range(count):
            n += 1
            phone = f"+4477009{n:05d}"
            subscribers.append({"phone_number": phone, "cell": cell})
            answers[phone] = answer
            events += _burst(phone, 10 + n, "CALL_DROP", "ooxox", cell)
            events += _burst(phone, 200 + n, "VIDEO_STALLING", "oooxx", cell)
    events.sort(key=lambda event: event["timestamp"])
    return {
        "config": {"source_phone_number": "+442079460001"},
        "subscribers": subscribers,
        "probe_events": events,
        "answers": answers,
        "faults": faults,
    }


def run_twin_command(folder: Path, faults: dict[str, float]) -> Path:
    path = folder / "scenario.json"
    path.write_text(json.dumps(scenario(faults)), encoding="utf-8")
    out = folder / "out"
    command = ["run", "--scenario", str(path), "--out", str(out), "--seed", SEED]
    result = subprocess.run(
        [sys.executable, "-m", "simulator", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_twin_command(tmp_path_factory.mktemp("fault_free"), {})


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_twin_command(tmp_path_factory.mktemp("faulty"), dict.fromkeys(FAULT_KEYS, 0.2))


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def calls(out: Path) -> list[dict[str, Any]]:
    lines = (out / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]


def lake(out: Path, prefix: str) -> list[dict[str, Any]]:
    return [
        record
        for path in sorted((out / "lake" / prefix).rglob("*.jsonl.gz"))
        for record in decode_jsonl_gz(path.read_bytes())
    ]


def ranking(out: Path) -> list[str]:
    rows = json.loads((out / "cell_priority.json").read_text(encoding="utf-8"))
    return [row["cell"] for row in rows]


def test_the_fault_keys_tested_are_the_ones_the_scenario_accepts() -> None:
    assert set(FAULT_KINDS) == set(FAULT_KEYS)


def test_every_fault_kind_was_injected(faulty: Path) -> None:
    injected = summary(faulty)["faults_injected"]

    assert {kind: injected.get(kind, 0) > 0 for kind in FAULT_KINDS.values()} == dict.fromkeys(
        FAULT_KINDS.values(), True
    )


def test_the_fault_free_run_injects_nothing(clean: Path) -> None:
    assert summary(clean)["faults_injected"] == {}


def test_faults_reached_the_handlers(faulty: Path) -> None:
    """Crashes and Connect throttles surface in handler code and are retried by the source."""
    figures = summary(faulty)
    surfaced = figures["faults_surfaced"]
    sources = figures["event_sources"]

    assert surfaced.get("handler_crash", 0) > 0
    assert surfaced.get("connect_throttle", 0) > 0
    assert sum(source["function_errors"] for source in sources.values()) > 0
    assert sum(source["duplicates"] for source in sources.values()) > 0
    assert sources["Trigger_Connect"]["item_failures"] > 0


@pytest.mark.parametrize("run", ["clean", "faulty"])
def test_nobody_is_called_twice_and_no_engagement_is_lost(
    run: str, request: pytest.FixtureRequest
) -> None:
    out: Path = request.getfixturevalue(run)
    figures = summary(out)
    per_engagement = Counter(call["engagement_id"] for call in calls(out))
    engaged = {r["engagement_id"] for r in lake(out, "engagement") if r["decision"] == "engage"}

    assert figures["duplicate_calls"] == 0
    assert figures["engagements_lost"] == 0
    assert [e for e, count in per_engagement.items() if count > 1] == []
    assert engaged <= set(per_engagement)


def test_the_same_engagements_are_called(clean: Path, faulty: Path) -> None:
    clean_ids = {call["engagement_id"] for call in calls(clean)}

    assert clean_ids
    assert {call["engagement_id"] for call in calls(faulty)} == clean_ids


def test_the_same_feedback_counts_once(clean: Path, faulty: Path) -> None:
    # Lake delivery is at-least-once (a retried stream batch can write a record again), so
    # the analytics count each answer by its contact id; a repeat must be the same record.
    def by_contact(out: Path, prefix: str) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        for record in lake(out, prefix):
            assert records.setdefault(record["contact_id"], record) == record
        return records

    def ratings(out: Path) -> Counter[tuple[str, Any]]:
        return Counter(
            (r["engagement_id"], r["rating"]) for r in by_contact(out, "feedback").values()
        )

    assert ratings(faulty) == ratings(clean)
    assert len(by_contact(faulty, "sentiment")) == len(by_contact(clean, "sentiment"))


def test_the_cell_ranking_is_the_same(clean: Path, faulty: Path) -> None:
    assert ranking(clean) == list(CELLS)  # the unhappiest cell first, as answered
    assert ranking(faulty) == ranking(clean)
