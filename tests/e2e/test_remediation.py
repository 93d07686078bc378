"""End to end: three days on two degraded cells; one is fixed at noon on the second day.

The twin runs the scenario through ``python -m simulator run`` with the ``remediation`` key;
the fix effectiveness, the trends and the report must show that the fixed cell recovered
against the cell nobody fixed. All bursts are in daytime UTC (quiet hours are 21:00-08:00).
"""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from twin_cli import run_scenario

pytestmark = [pytest.mark.xdist_group("twin"), pytest.mark.slow]

START = datetime(2026, 11, 24, tzinfo=UTC)
FIXED, UNTOUCHED = "LDN-0100", "LDN-0200"
FIXED_AT = "2026-11-25T12:00:00Z"


def _phone(group: int, n: int) -> str:
    return f"+4477009{group:02d}{n:03d}"


def _burst(phone: str, cell: str, day: int, hour: int, outcomes: str) -> list[dict[str, Any]]:
    """CALL_DROP sessions a minute apart; ``outcomes``: ``o`` ok, ``x`` failed. Each arrives
    when it happened: the feed is quiet for a day in between, longer than the twin's
    plausible gap between a record and the one before it (docs/TWIN.md, "Arrival")."""
    start = START + timedelta(days=day, hours=hour)
    return [
        {
            "timestamp": (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "arrival": (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "phone_number": phone,
            "cell": cell,
            "event_type": "CALL_DROP",
            "success": outcome == "o",
            "device": "Pixel 8",
            "vendor": "VendorA",
        }
        for i, outcome in enumerate(outcomes)
    ]


def scenario() -> dict[str, Any]:
    """Before the fix both cells drop most calls and their subscribers rate 1 and 2; after it,
    the fixed cell drops one call in five (still above the threshold, so people are called)
    and its subscribers rate 4, while the untouched cell stays as bad as before."""
    events: list[dict[str, Any]] = []
    answers: dict[str, str] = {}
    groups = (
        (1, FIXED, 0, "oxxxx", "1"),  # day 1, before the fix
        (2, FIXED, 2, "oooox", "4"),  # day 3, after the fix
        (3, UNTOUCHED, 0, "oxxxx", "2"),
        (4, UNTOUCHED, 2, "oxxxx", "2"),
    )
    for group, cell, day, outcomes, answer in groups:
        for n in range(5):
            phone = _phone(group, n)
            events += _burst(phone, cell, day, 9 + n, outcomes)
            answers[phone] = answer
    events.sort(key=lambda event: event["timestamp"])
    return {
        "description": "Three days; LDN-0100 fixed at noon on the second day",
        "config": {"source_phone_number": "+442079460001"},
        "probe_events": events,
        "answers": answers,
        "remediation": [{"cell": FIXED, "fixed_at": FIXED_AT, "note": "replaced the antenna"}],
    }


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_scenario(tmp_path_factory.mktemp("remediation"), scenario())


def _json(out: Path, name: str) -> Any:
    return json.loads((out / name).read_text(encoding="utf-8"))


def test_the_fix_is_in_the_lake_where_operators_upload_it(outputs: Path) -> None:
    (csv_file,) = (outputs / "lake" / "remediation").glob("*.csv")

    assert csv_file.read_text().splitlines() == [
        "cell,fixed_at,note",
        f"{FIXED},{FIXED_AT},replaced the antenna",
    ]


def test_the_fixed_cell_recovered_against_the_untouched_one(outputs: Path) -> None:
    (fix,) = _json(outputs, "fix_effectiveness.json")

    assert (fix["cell"], fix["fixed_at"], fix["control_cells"]) == (FIXED, FIXED_AT, 1)
    assert (fix["incidents_before"], fix["incidents_after"]) == (20, 5)
    assert fix["incident_ratio_high"] < 1
    assert (fix["answers_before"], fix["answers_after"]) == (5, 5)
    assert (fix["score_before"], fix["score_after"]) == (-1.0, 0.5)
    assert (fix["control_score_before"], fix["control_score_after"]) == (-0.5, -0.5)
    assert fix["score_effect"] == pytest.approx(1.5)
    assert fix["score_effect_low"] > 0


def test_trends_show_the_fixed_cell_day_by_day(outputs: Path) -> None:
    trends = [t for t in _json(outputs, "cell_trends.json") if t["cell"] == FIXED]

    assert [(t["dt"], t["subscribers"], t["mean_change"]) for t in trends] == [
        ("2026-11-24", 5, -0.5),
        ("2026-11-26", 5, 0.25),
    ]


def test_the_report_shows_the_recovery_and_the_trends(outputs: Path) -> None:
    page = (outputs / "report.html").read_text(encoding="utf-8")
    fixes = page[page.index("Did the fixes work?") : page.index("Engagement funnel")]

    assert 'alt="Daily trends of the top cells"' in page
    assert FIXED in fixes and "replaced the antenna" in fixes
    assert re.search(r"recovered", fixes)
    assert "Period 2026-11-24 to 2026-11-26" in page
