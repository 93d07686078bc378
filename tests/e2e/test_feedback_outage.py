"""End to end: S3 is down while subscribers answer; no answer may be lost (issue 8, finding 4).

Connect gives the flow's Lambda block one budget: up to three retries of a failed
invocation within ``InvocationTimeLimitSeconds`` (8 s), the function's own duration
counted. An S3 outage longer than that, if the rating is written to the lake inside the
call, leaves the rating in the table and nowhere in the lake. The scenario keeps S3 down
from before the first call until long after the last; ``python -m simulator redrive``
then plays the operator (faults off, every DLQ redriven). Durable feedback passes: the
call records the answer on the subscriber's profile only, and the lake writer on the
table's stream retries and dead-letters until S3 is back.
"""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedback_loop.lake import decode_jsonl_gz

pytestmark = [pytest.mark.xdist_group("twin_b"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
RATINGS = {f"+4477009005{n:02d}": str(1 + n % 5) for n in range(6)}
THANK_YOU = "Thank you, your answer has been recorded"


def scenario() -> dict[str, Any]:
    events = []
    for n, phone in enumerate(RATINGS):
        for i, outcome in enumerate("oox"):
            moment = DAY + timedelta(minutes=2 * n, seconds=20 * i)
            events.append(
                {
                    "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "phone_number": phone,
                    "cell": "LDN-0001",
                    "event_type": "CALL_DROP",
                    "success": outcome == "o",
                }
            )
    events.sort(key=lambda e: e["timestamp"])
    outage = {"service": "s3", "from": "2026-11-25T09:55:00Z", "until": "2026-11-25T11:30:00Z"}
    return {
        "config": {"source_phone_number": "+442079460001"},
        "probe_events": events,
        "answers": RATINGS,
        "faults": {"outages": [outage]},
    }


@pytest.fixture(scope="module")
def redriven(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("feedback_outage")
    path = folder / "scenario.json"
    path.write_text(json.dumps(scenario()), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "redrive",
            "--scenario",
            str(path),
            "--out",
            str(folder / "out"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "out"


def _calls(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "calls.jsonl").read_text().splitlines() if line]


def _lake(out: Path, prefix: str) -> list[dict[str, Any]]:
    return [
        record
        for path in sorted((out / "lake" / prefix).rglob("*.jsonl.gz"))
        for record in decode_jsonl_gz(path.read_bytes())
    ]


def test_the_outage_hit_the_calls_within_connects_lambda_budget(redriven: Path) -> None:
    summary = json.loads((redriven / "summary.json").read_text(encoding="utf-8"))
    calls = _calls(redriven)

    assert summary["faults_injected"].get("s3_outage", 0) > 0
    assert {c["phone_number"] for c in calls} == set(RATINGS)
    assert all(1 <= c["lambda_attempts"] <= 4 for c in calls)
    assert [c["input"] for c in calls] == [RATINGS[c["phone_number"]] for c in calls]


def test_every_answer_is_thanked_for_and_reaches_the_lake_after_the_outage(
    redriven: Path,
) -> None:
    calls = _calls(redriven)
    feedback = {(r["engagement_id"], r["rating"]) for r in _lake(redriven, "feedback")}

    assert all(c["prompts"][-1].startswith(THANK_YOU) for c in calls)
    assert {(c["engagement_id"], int(c["input"])) for c in calls} <= feedback
    assert len(_lake(redriven, "sentiment")) == len(calls)
