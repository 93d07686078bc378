"""The report is one self-contained page an operator can open anywhere, with the views of the
dashboard: the cell map, ranked cells with intervals, cells waiting for answers, devices and
vendors net of cell, trends and whether each fix worked."""

import base64
import html
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from simulator.report import GREY, render_cell_map, write_report

SUMMARY = {
    "probe_events": 73456,
    "rejected_records": 368,
    "incidents": 1913,
    "engagements": 701,
    "calls_started": 698,
    "feedback_received": 504,
    "dead_lettered": 2,
    "api_calls": {"sqs.SendMessageBatch": 120, "s3.PutObject": 51},
}
DAYS = ("2026-11-24", "2026-11-25", "2026-11-26")


def _row(key: str, name: str, subscribers: int, answers: int, change: float) -> dict:
    """A priority row with the terms priority.sql returns (interval +/- 0.1)."""
    return {
        key: name,
        "ranked": answers >= 2,
        "subscribers": subscribers,
        "incidents": subscribers * 3,
        "engagements": answers + 1,
        "answers": answers,
        "observed_change": change,
        "change_sentiment": change,
        "change_low": change - 0.1,
        "change_high": change + 0.1,
        "estimated_loss": -subscribers * change,
        "estimated_loss_low": -subscribers * (change + 0.1),
        "estimated_loss_high": -subscribers * (change - 0.1),
    }


def _device(name: str, net: float | None, compared: int) -> dict:
    row = _row("device", name, 40, compared, -0.3)
    net_terms = {
        "compared": compared,
        "net_change": net,
        "net_change_low": None if net is None else net - 0.05,
        "net_change_high": None if net is None else net + 0.05,
        "net_loss": None if net is None else -40 * net,
        "net_loss_low": None if net is None else -40 * (net + 0.05),
        "net_loss_high": None if net is None else -40 * (net - 0.05),
    }
    return row | net_terms


def _trend(cell: str, day: str, n: int) -> dict:
    return {
        "cell": cell,
        "dt": day,
        "subscribers": 10 - n,
        "incidents": 30,
        "answers": 4,
        "mean_change": -0.4 + 0.1 * n,
    }


@pytest.fixture
def results() -> dict:
    cells = [
        _row("cell", "LDN-0042", 40, 25, -0.42),
        _row("cell", "LDN-0007", 9, 4, -0.25),
    ]
    cells += [_row("cell", f"LDN-{n:04d}", 1 + n % 7, 2, 0.05 * (n % 3)) for n in range(100, 140)]
    cells += [_row("cell", f"LDN-{n:04d}", 1 + n % 5, n % 2, -0.2) for n in range(500, 620)]
    return {
        "period": {"start": DAYS[0], "end": DAYS[-1]},
        "cell": cells,
        "cell_kpi": [_row("cell", "LDN-0042", 30, 12, -0.4) | {"kpi": "VIDEO_STALLING"}],
        "device": [_device("Moto G54", -0.2, 18), _device("Galaxy A54", 0.0, 10)],
        "vendor": [_device("VendorA", None, 0) | {"vendor": "VendorA", "ranked": False}],
        "cell_trends": [
            _trend(cell, day, n) for cell in ("LDN-0042", "LDN-0007") for n, day in enumerate(DAYS)
        ],
        "fix_effectiveness": [
            {
                "cell": "LDN-0042",
                "fixed_at": "2026-11-25T12:00:00Z",
                "note": "replaced <antenna>",
                "control_cells": 12,
                "incidents_per_day_before": 20.0,
                "incidents_per_day_after": 2.0,
                "control_incidents_per_cell_day_before": 3.0,
                "control_incidents_per_cell_day_after": 3.0,
                "incident_ratio": 0.1,
                "incident_ratio_low": 0.05,
                "incident_ratio_high": 0.2,
                "score_before": -1.0,
                "score_after": 0.5,
                "control_score_before": -0.5,
                "control_score_after": -0.5,
                "score_effect": 1.5,
                "score_effect_low": 1.1,
                "score_effect_high": 1.9,
            }
        ],
    }


def _text(page: str) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _section(page: str, heading: str) -> str:
    """The page from ``heading`` to the next heading of the same or a higher level."""
    start = page.index(heading)
    following = re.search(r"<h[23]>", page[start + len(heading) :])
    return page[start : start + len(heading) + (following.start() if following else len(page))]


def test_report_is_self_contained(tmp_path: Path, results: dict) -> None:
    html_path, _ = write_report(tmp_path, SUMMARY, results)
    page = html_path.read_text()

    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page, re.IGNORECASE)
    assert len(references) == 2, "the cell map and the trends are embedded"
    assert all(ref.startswith("data:") for ref in references), references
    assert not re.search(r"https?://", page)
    assert "<style>" in page
    assert "@import" not in page


def test_report_embeds_the_same_cell_map_it_writes_as_png(tmp_path: Path, results: dict) -> None:
    html_path, png_path = write_report(tmp_path, SUMMARY, results)
    png = png_path.read_bytes()

    assert png_path == tmp_path / "report.png"
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    embedded = re.search(r'src="data:image/png;base64,([^"]+)"', html_path.read_text()).group(1)
    assert base64.b64decode(embedded) == png


def _grey_pixels(png: bytes) -> int:
    grey = tuple(int(GREY[i : i + 2], 16) for i in (1, 3, 5))
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(count for count, colour in image.getcolors(1 << 24) if colour == grey)


def test_cell_map_greys_the_cells_without_enough_answers(tmp_path: Path, results: dict) -> None:
    ranked = [c for c in results["cell"] if c["ranked"]]

    with_waiting = render_cell_map(results["cell"], tmp_path / "a.png")
    only_ranked = render_cell_map(ranked, tmp_path / "b.png")

    assert _grey_pixels(with_waiting) > 20_000
    assert _grey_pixels(only_ranked) == 0


def test_report_leads_with_the_top_ranked_cell_and_its_conservative_bound(
    tmp_path: Path, results: dict
) -> None:
    page = write_report(tmp_path, SUMMARY, results)[0].read_text()
    text = _text(page)

    for key, value in SUMMARY.items():
        if isinstance(value, int):
            assert re.search(rf'id="{key}"><div class="value">{value:,}<', page), key
    assert "Fix first: LDN-0042 — 40 subscribers affected, 25 answered" in text
    assert "estimated loss 16.80" in text and "at least 12.80" in text
    assert f"Period {DAYS[0]} to {DAYS[-1]}" in text


def test_ranked_cells_show_their_terms_and_the_waiting_cells_stand_apart(
    tmp_path: Path, results: dict
) -> None:
    page = write_report(tmp_path, SUMMARY, results)[0].read_text()
    ranked = _text(_section(page, 'id="ranked-cells"'))
    waiting = _text(_section(page, "Not enough answers yet"))

    assert ranked.index("LDN-0042") < ranked.index("LDN-0007")
    assert "-0.42 -0.52 to -0.32" in ranked  # mean change and its interval
    assert "16.80 12.80 to 20.80" in ranked  # estimated loss and its interval
    waiting_cells = {c["cell"] for c in results["cell"] if not c["ranked"]}
    assert not waiting_cells & set(re.findall(r"LDN-\d{4}", ranked))
    assert "120 cells have incidents but fewer answers" in waiting
    assert set(re.findall(r"LDN-\d{4}", waiting)) <= waiting_cells
    assert "LDN-0504" in waiting  # five affected, the most among them


def test_devices_and_vendors_are_shown_net_of_cell(tmp_path: Path, results: dict) -> None:
    page = write_report(tmp_path, SUMMARY, results)[0].read_text()
    devices = _text(_section(page, "By device"))
    vendors = _text(_section(page, "By vendor"))

    assert devices.index("Moto G54") < devices.index("Galaxy A54")
    assert "-0.20 -0.25 to -0.15" in devices
    assert "No vendor could be compared" in vendors
    assert "not enough comparisons" in vendors


def test_trends_need_two_days(tmp_path: Path, results: dict) -> None:
    several = write_report(tmp_path / "a", SUMMARY, results)[0].read_text()
    one_day = results | {"cell_trends": [t for t in results["cell_trends"] if t["dt"] == DAYS[0]]}
    single = write_report(tmp_path / "b", SUMMARY, one_day)[0].read_text()

    assert 'alt="Daily trends of the top cells"' in several
    assert "trends need at least two" in _text(single)


def test_fix_effectiveness_shows_before_after_and_the_verdict(
    tmp_path: Path, results: dict
) -> None:
    page = write_report(tmp_path, SUMMARY, results)[0].read_text()
    fixes = _text(_section(page, "Did the fixes work?"))

    assert "replaced <antenna>" in fixes
    assert "20 \u2192 2" in fixes and "\u00d70.10" in fixes  # arrow, times sign
    assert "+1.50 +1.10 to +1.90" in fixes
    assert "recovered" in fixes
    no_effect = results["fix_effectiveness"][0] | {
        "score_effect_low": -0.2,
        "incident_ratio_high": 1.4,
    }
    page = write_report(tmp_path, SUMMARY, results | {"fix_effectiveness": [no_effect]})[0]
    assert "no clear effect yet" in _text(page.read_text())


def test_report_with_an_empty_lake_still_renders(tmp_path: Path) -> None:
    html_path, png_path = write_report(
        tmp_path, {"probe_events": 0}, {"cell": [], "device": [], "vendor": []}
    )

    page = html_path.read_text()
    assert "No cells with incidents yet" in page
    assert "No remediation events in this period" in page
    assert png_path.read_bytes().startswith(b"\x89PNG")


def test_the_funnel_lists_every_suppression_and_deferral_reason_and_the_outages(
    tmp_path: Path, results: dict
) -> None:
    summary = {
        **SUMMARY,
        "engagement_decisions": {
            "engage:above_threshold": 12,
            "suppress:cell_outage": 7,
            "deferred:quiet_hours": 3,
            "merged:same_episode": 2,
        },
        "outages": [{"cell": "LDN-0009", "window_start": "2026-11-25T10:00:00Z"}],
    }
    html_path, _ = write_report(tmp_path, summary, results)

    steps = _text(_section(html_path.read_text(), "<h3>Every decision and contact step"))
    assert "suppress cell_outage 7" in steps and "deferred quiet_hours 3" in steps
    assert steps.index("engage above_threshold") < steps.index("suppress cell_outage")
    assert "Cell outages declared" in steps and "LDN-0009 at 2026-11-25T10:00:00Z" in steps
