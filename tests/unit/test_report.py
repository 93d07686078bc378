"""The report is one self-contained page an operator can open anywhere, with the cell map."""

import base64
import re
from pathlib import Path

import pytest

from simulator.report import write_report

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


def _row(name_key: str, name: str, subscribers: int, change: float) -> dict:
    return {
        name_key: name,
        "subscribers": subscribers,
        "incidents": subscribers * 3,
        "engagements": subscribers,
        "feedback_received": subscribers // 2,
        "ratings": subscribers // 2,
        "change_sentiment": change,
        "avg_change_sentiment": change / max(1, subscribers // 2),
        "priority": -change,
    }


@pytest.fixture
def results() -> dict:
    cells = [_row("cell", "LDN-0042", 40, -14.25), _row("cell", "LDN-0007", 9, -0.5)]
    cells += [_row("cell", f"LDN-{n:04d}", 1 + n % 7, 0.25 * (n % 3)) for n in range(100, 260)]
    return {
        "cell": cells,
        "device": [_row("device", "Moto G54", 42, -2.9), _row("device", "Pixel 8", 90, 3.3)],
        "vendor": [_row("vendor", "VendorB", 276, -1.0), _row("vendor", "VendorA", 284, 9.0)],
    }


def test_report_is_self_contained(tmp_path: Path, results: dict) -> None:
    html_path, _ = write_report(tmp_path, SUMMARY, results)
    page = html_path.read_text()

    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page, re.IGNORECASE)
    assert references, "the cell map must be embedded"
    assert all(ref.startswith("data:") for ref in references), references
    assert not re.search(r"https?://", page)
    assert "<style>" in page
    assert "@import" not in page


def test_report_embeds_the_same_cell_map_it_writes_as_png(tmp_path: Path, results: dict) -> None:
    html_path, png_path = write_report(tmp_path, SUMMARY, results)
    png = png_path.read_bytes()

    assert png_path == tmp_path / "report.png"
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000, "a treemap of 160 cells is not a blank picture"
    embedded = re.search(r'src="data:image/png;base64,([^"]+)"', html_path.read_text()).group(1)
    assert base64.b64decode(embedded) == png


def test_report_shows_headline_numbers_top_cell_and_breakdowns(
    tmp_path: Path, results: dict
) -> None:
    page = write_report(tmp_path, SUMMARY, results)[0].read_text()
    text = re.sub(r"<[^>]+>", " ", page)

    for key, value in SUMMARY.items():
        if isinstance(value, int):
            assert re.search(rf'id="{key}"><div class="value">{value:,}<', page), key
    top = results["cell"][0]["cell"]
    assert f"Fix first: {top}" in re.sub(r"\s+", " ", text)
    assert text.index(top) < text.index(results["cell"][1]["cell"])
    for row in results["device"] + results["vendor"]:
        assert row.get("device", row.get("vendor")) in text
    for step in ("Probe events", "Incidents", "Engagements", "Calls started", "Feedback received"):
        assert step in text
    assert "sqs.SendMessageBatch" in text


def test_report_with_an_empty_lake_still_renders(tmp_path: Path) -> None:
    html_path, png_path = write_report(
        tmp_path, {"probe_events": 0}, {"cell": [], "device": [], "vendor": []}
    )

    assert "No cells with incidents yet" in html_path.read_text()
    assert png_path.read_bytes().startswith(b"\x89PNG")
