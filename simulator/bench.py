"""``python -m simulator bench``: where the twin's time goes on the default day, counted.

Runs the default scenario exactly as ``make demo`` does (template cache included, so a
clean clone pays for the first synth here too) into a temporary directory, then prints
wall seconds per phase, probe events per second, invocations per function, and AWS
calls per probe event by operation: the handlers' calls (``api_calls`` in
``summary.json``) and the twin's own (putting the records, polling, copying the lake),
each with the wall time answering it took (moto or an interception, and the twin's checks;
:class:`simulator.api_calls.CallTimer`). Every figure is measured or counted during the
run, none is estimated.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any, TextIO

from simulator.scenario import default_scenario


def run_bench(seed: int = 7, stream: TextIO = sys.stdout) -> dict[str, Any]:
    """Run the default scenario for ``seed``, print the figures and return them."""
    from simulator.twin import run_twin  # moto and the analytics: only when running

    started = time.monotonic()
    scenario = default_scenario(seed)
    generated = time.monotonic() - started
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as out:
        result = run_twin(scenario, out, seed, progress=False)
    total = time.monotonic() - started
    summary = result.summary
    events = max(summary["probe_events"], 1)
    figures: dict[str, Any] = {
        "scenario": scenario.description,
        "probe_events": summary["probe_events"],
        "wall_seconds": {
            "scenario": round(generated, 2),
            **result.phases,
            "total": round(total, 2),
        },
        "probe_events_per_second": {
            "replay": round(events / max(result.phases.get("replay", 0.0), 1e-9), 1),
            "end_to_end": round(events / total, 1),
        },
        "invocations": {
            name: figures["invocations"] for name, figures in summary["invocations"].items()
        },
        "handler_calls": summary["api_calls"],
        "emulator_calls": {op: calls for op, (calls, _) in result.emulator_call_time.items()},
        "handler_call_time": _rounded(result.handler_call_time),
        "emulator_call_time": _rounded(result.emulator_call_time),
    }
    _print(figures, events, stream)
    return figures


def _print(figures: Mapping[str, Any], events: int, stream: TextIO) -> None:
    wall = figures["wall_seconds"]
    rate = figures["probe_events_per_second"]
    lines = [
        figures["scenario"],
        "",
        "wall seconds",
        *(f"  {name:<18} {seconds:8.2f}" for name, seconds in wall.items()),
        "",
        f"probe events          {figures['probe_events']}",
        f"  per second replay   {rate['replay']:8.1f}",
        f"  per second overall  {rate['end_to_end']:8.1f}",
        "",
        "invocations",
        *(f"  {name:<32} {count:8d}" for name, count in figures["invocations"].items()),
    ]
    for title, calls, timed in (
        ("handler AWS calls", figures["handler_calls"], figures["handler_call_time"]),
        ("twin's own AWS calls", figures["emulator_calls"], figures["emulator_call_time"]),
    ):
        lines += ["", f"{title} (count, per probe event, ms to answer each, seconds in all)"]
        rows = [(op, n, *timed.get(op, (0, 0.0))) for op, n in calls.items()]
        timed_calls = sum(times for times, _ in timed.values())
        spent_in_all = sum(spent for _, spent in timed.values())
        rows.append(("total", sum(calls.values()), timed_calls, spent_in_all))
        lines += [
            f"  {op:<40} {n:8d} {n / events:9.4f} {spent / max(times, 1) * 1000:8.2f} {spent:8.1f}"
            for op, n, times, spent in rows
        ]
    stream.write("\n".join(lines) + "\n")


def _rounded(timed: Mapping[str, tuple[int, float]]) -> dict[str, tuple[int, float]]:
    return {name: (calls, round(seconds, 6)) for name, (calls, seconds) in timed.items()}
