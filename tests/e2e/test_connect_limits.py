"""End to end against Amazon Connect's limits: a burst of engagements, and a retried call.

* **Burst**: a few hundred subscribers cross a threshold within five minutes; the
  instance takes 10 concurrent calls (a new instance's quota) and the API 2 requests a
  second. Every engagement must be called exactly once, none dead-lettered, and the
  throttles Connect answered absorbed on the way (issue 8, finding 2).
* **A retry after the call ended**: ``Trigger_Connect`` times out right after Connect
  placed the call, before its idempotency record is saved. SQS redelivers after the
  visibility timeout, when the call is over, and Connect's ``ClientToken`` no longer
  holds (it returns the contact only while it is active): the subscriber must not be
  rung twice (issue 8, finding 6).
"""

import contextlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from simulator.api_calls import ApiError
from simulator.handler_time import FunctionTimedOut
from simulator.progress import Progress
from simulator.scenario import parse_scenario
from simulator.template import synthesize
from simulator.twin import Twin, _moto_session

pytestmark = [pytest.mark.xdist_group("twin_b"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
BURST_SUBSCRIBERS = 200
CALLER_ID = "+442079460001"


def _sessions(phone: str, start: datetime, outcomes: str, cell: str) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": (start + timedelta(seconds=20 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "phone_number": phone,
            "cell": cell,
            "event_type": "CALL_DROP",
            "success": outcome == "o",
        }
        for i, outcome in enumerate(outcomes)
    ]


def burst() -> dict[str, Any]:
    """200 subscribers, each three sessions, the third dropped: 200 engagements in 4 min."""
    events: list[dict[str, Any]] = []
    answers: dict[str, str] = {}
    for n in range(BURST_SUBSCRIBERS):
        phone = f"+4477009{n:05d}"
        start = DAY + timedelta(seconds=n)
        events += _sessions(phone, start, "oox", f"LDN-{n % 20:04d}")
        answers[phone] = "4"
    events.sort(key=lambda e: e["timestamp"])
    return {
        "config": {"source_phone_number": CALLER_ID},
        "probe_events": events,
        "answers": answers,
        "connect": {"concurrent_calls": 10, "api_rate": 2, "api_burst": 5},
    }


@pytest.fixture(scope="module")
def burst_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("burst")
    path = folder / "scenario.json"
    path.write_text(json.dumps(burst()), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "run", "--scenario", str(path), "--out", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


def test_the_burst_meets_connects_quotas(burst_run: dict[str, Any]) -> None:
    """The twin side: the quota holds and Connect refuses what is beyond it."""
    assert burst_run["engagements"] == BURST_SUBSCRIBERS
    assert burst_run["peak_concurrent_calls"] == 10
    assert burst_run["calls"]["limit_exceeded"] + burst_run["calls"]["throttled"] > 0
    assert burst_run["connect_refusals"] > 0
    assert burst_run["access_denied"] == 0


def test_a_burst_is_called_exactly_once_at_the_pace_the_quota_allows(
    burst_run: dict[str, Any],
) -> None:
    assert burst_run["engagements_lost"] == 0
    assert burst_run["duplicate_calls"] == 0
    assert burst_run["dead_lettered"] == 0
    assert burst_run["calls_started"] == BURST_SUBSCRIBERS
    assert burst_run["throttles_absorbed"] > 0


# --- a retry after the call ended ------------------------------------------------------------

RETRIED = "+447700900777"


@contextlib.contextmanager
def twin_in_process(document: dict[str, Any], out: Path) -> Iterator[Twin]:
    scenario = parse_scenario(document)
    template = synthesize(scenario.config)
    (out / "logs").mkdir(parents=True)
    with _moto_session():
        twin = Twin(scenario, template, out, seed=5)
        try:
            yield twin
        finally:
            twin.close()
            boto3.DEFAULT_SESSION = None


def retried_run(out: Path) -> tuple[list[str], Counter[str]]:
    """One engagement whose Trigger_Connect invocation times out right after placing the
    call; returns what timed out and how often each subscriber was rung."""
    document = {
        "config": {"source_phone_number": CALLER_ID},
        "probe_events": _sessions(RETRIED, DAY, "oox", "LDN-0001"),
        "answers": {RETRIED: "3"},
    }
    with twin_in_process(document, out) as twin:
        timed_out: list[str] = []
        placed: list[str] = []

        def time_out_after_placing(operation: str, params: dict[str, Any]) -> ApiError | None:
            """Trigger_Connect's first call after Connect placed the call never returns."""
            current = twin.runtime.current
            if current is None or current.spec.name != "Trigger_Connect":
                return None
            if operation == "connect.StartOutboundVoiceContact":
                placed.append(str(params.get("ClientToken")))
            elif placed and not timed_out:
                timed_out.append(operation)
                raise FunctionTimedOut("Task timed out after 30.00 seconds")
            return None

        twin.hooks.call_checks.insert(0, time_out_after_placing)
        twin.replay(Progress(0, "", enabled=False))
        return timed_out, Counter(call["phone_number"] for call in twin.contact_centre.records)


def test_the_handler_times_out_after_connect_placed_the_call(tmp_path: Path) -> None:
    timed_out, rung = retried_run(tmp_path)

    assert timed_out, "Trigger_Connect made no AWS call after placing the call"
    assert rung[RETRIED] >= 1


def test_a_retry_after_the_call_ended_does_not_ring_the_subscriber_again(tmp_path: Path) -> None:
    _, rung = retried_run(tmp_path)

    assert rung[RETRIED] == 1
