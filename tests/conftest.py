"""Session-wide hooks: the reliability figures table at the end of every run that had them.

``tests/reliability`` counts what its tests observe (inputs, rejections,
duplicates, calls, dead-lettered and redriven messages). This file prints the
table because it is loaded by the pytest-xdist controller too, where the
reliability conftest is not: each worker hands its figures over in
``workeroutput`` and they are added up here.
"""

import json
import sys
from collections import Counter
from typing import Any

import pytest

_ROWS = (
    ("inputs tried", "inputs_tried"),
    ("rejected with reason", "rejected_with_reason"),
    ("processed", "processed"),
    ("duplicates injected", "duplicates_injected"),
    ("duplicate calls placed (must be 0)", "duplicate_calls_placed"),
    ("duplicate sentiment updates (must be 0)", "duplicate_updates"),
    ("engagements lost (must be 0)", "engagements_lost"),
    ("messages dead-lettered", "dead_lettered"),
    ("  ... then redriven and processed", "redriven"),
)
_from_workers: list[dict[str, Any]] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    figures = getattr(node, "workeroutput", {}).get("reliability_figures")
    if figures:
        _from_workers.append(json.loads(figures))


def _observed() -> tuple[Counter, Counter]:
    parts = list(_from_workers)
    local = sys.modules.get("reliability_harness")
    if local is not None:
        parts.append(local.FIGURES.as_dict())
    totals: Counter = Counter()
    reasons: Counter = Counter()
    for part in parts:
        reasons.update(part.get("reasons", {}))
        totals.update({name: value for name, value in part.items() if name != "reasons"})
    return totals, reasons


def pytest_terminal_summary(terminalreporter: Any) -> None:
    totals, reasons = _observed()
    if not any(totals.values()):
        return
    width = max(len(label) for label, _ in _ROWS)
    terminalreporter.write_sep("=", "reliability figures (observed by tests/reliability)")
    for label, name in _ROWS:
        terminalreporter.write_line(f"{label:<{width}}  {totals[name]:>6}")
    listed = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items()))
    terminalreporter.write_line(f"rejection reasons: {listed}")
