"""The twin's operations report: one self-contained HTML page plus the cell map as a PNG.

It shows what the QuickSight analysis shows in the account: a tree/heat map of cells
(size = distinct subscribers with incidents, colour = change in sentiment), the ranked
cells, the device and vendor breakdowns and the engagement funnel.
"""

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import squarify
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Rectangle

HEADLINES = (
    ("probe_events", "Probe events"),
    ("rejected_records", "Rejected records"),
    ("incidents", "Incidents"),
    ("engagements", "Engagements"),
    ("calls_started", "Calls started"),
    ("feedback_received", "Feedback received"),
    ("dead_lettered", "Dead-lettered"),
)
FUNNEL = (
    ("probe_events", "Probe events"),
    ("incidents", "Incidents"),
    ("engagements", "Engagements"),
    ("calls_started", "Calls started"),
    ("feedback_received", "Feedback received"),
)
TOP_CELLS = 15
HIGHLIGHTED = 5
CMAP = "RdYlGn"

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0; background: #f4f5f7; color: #1f2933; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; border-bottom: 2px solid #d9dde3; padding-bottom: 4px; }
p.lead { color: #52606d; margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 12px; }
.card { background: #fff; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 3px #0002; }
.card .value { font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .label { font-size: 13px; color: #52606d; }
.card.alert .value { color: #b42318; }
figure { margin: 0; background: #fff; border-radius: 8px; padding: 12px;
         box-shadow: 0 1px 3px #0002; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 13px; color: #52606d; margin-top: 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 14px;
        box-shadow: 0 1px 3px #0002; border-radius: 8px; overflow: hidden; }
th, td { padding: 6px 10px; text-align: right; font-variant-numeric: tabular-nums; }
th { background: #e4e7eb; font-weight: 600; }
td.name, th.name { text-align: left; }
tr:nth-child(even) td { background: #f8f9fa; }
.chip { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px;
        vertical-align: middle; border: 1px solid #0003; }
h3 { font-size: 16px; margin: 18px 0 8px; }
.funnel .step { display: grid; grid-template-columns: 170px 1fr 190px; align-items: center;
                gap: 12px; margin: 6px 0; }
.funnel .bar { background: #3e7cb1; height: 22px; border-radius: 4px; min-width: 3px; }
.funnel .count { font-variant-numeric: tabular-nums; font-size: 14px; }
.funnel .rate { color: #52606d; font-size: 13px; }
.note { font-size: 13px; color: #52606d; }
details { margin-top: 12px; }
"""


def _number(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _signed(value: Any) -> str:
    return "&ndash;" if value is None else f"{float(value):+.2f}"


def _norm(values: Sequence[float]) -> TwoSlopeNorm:
    """Diverging scale centred at 0 and symmetric, so equal colours mean equal change."""
    limit = max((abs(v) for v in values), default=0.0) or 1.0
    return TwoSlopeNorm(vmin=-limit, vcenter=0.0, vmax=limit)


def _hex(rgba: Sequence[float]) -> str:
    return "#" + "".join(f"{round(channel * 255):02x}" for channel in rgba[:3])


def render_cell_map(cells: Sequence[Mapping[str, Any]], path: Path) -> bytes:
    """Draw the cell tree/heat map to ``path`` and return the PNG bytes.

    One rectangle per cell with incidents, area = distinct subscribers, colour = total
    change in sentiment (red = worse, green = better, centred at 0). The most urgent cells
    are outlined and the biggest ones labelled.
    """
    shown = sorted(
        (c for c in cells if (c.get("subscribers") or 0) > 0),
        key=lambda c: (-c["subscribers"], c["cell"]),
    )
    fig, ax = plt.subplots(figsize=(13, 7.2), dpi=110)
    norm = _norm([float(c.get("change_sentiment") or 0.0) for c in shown])
    cmap = plt.get_cmap(CMAP)
    if shown:
        width, height = 100.0, 60.0
        sizes = squarify.normalize_sizes([c["subscribers"] for c in shown], width, height)
        rects = squarify.squarify(sizes, 0, 0, width, height)
        urgent = {c["cell"] for c in cells[:HIGHLIGHTED] if float(c.get("priority") or 0) > 0}
        labelled = 0
        for cell, rect in zip(shown, rects, strict=True):
            change = float(cell.get("change_sentiment") or 0.0)
            ax.add_patch(
                Rectangle(
                    (rect["x"], rect["y"]),
                    rect["dx"],
                    rect["dy"],
                    facecolor=cmap(norm(change)),
                    edgecolor="white",
                    linewidth=0.6,
                )
            )
            if cell["cell"] in urgent:
                ax.add_patch(
                    Rectangle(
                        (rect["x"] + 0.15, rect["y"] + 0.15),
                        rect["dx"] - 0.3,
                        rect["dy"] - 0.3,
                        fill=False,
                        edgecolor="#111",
                        linewidth=2.2,
                    )
                )
            if labelled < 40 and rect["dx"] > 4.2 and rect["dy"] > 2.6:
                labelled += 1
                big = rect["dx"] > 7 and rect["dy"] > 4
                red, green, blue, _ = cmap(norm(change))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                ax.text(
                    rect["x"] + rect["dx"] / 2,
                    rect["y"] + rect["dy"] / 2,
                    f"{cell['cell']}\n{cell['subscribers']} subs\n{change:+.1f}"
                    if big
                    else cell["cell"],
                    ha="center",
                    va="center",
                    fontsize=8.5 if big else 6.5,
                    color="white" if dark else "#111",
                )
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
    else:
        ax.text(0.5, 0.5, "No incidents in the lake", ha="center", va="center", fontsize=16)
    ax.set_axis_off()
    ax.set_title(
        "Cells by distinct subscribers with incidents (area) and change in sentiment (colour)",
        fontsize=13,
        loc="left",
    )
    colorbar = fig.colorbar(
        plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.035, pad=0.015
    )
    colorbar.set_label(
        "Change in sentiment (sum over the cell's feedback)\nred = subscribers unhappier, "
        "green = happier, yellow = no change",
        fontsize=10,
    )
    if shown:
        ax.text(
            0,
            height + 1.2,
            f"Black outline: the {HIGHLIGHTED} most urgent cells. "
            f"{len(shown)} cells with incidents.",
            fontsize=9,
            va="top",
            color="#333",
        )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    png = buffer.getvalue()
    Path(path).write_bytes(png)
    return png


def _cards(summary: Mapping[str, Any]) -> str:
    cards = []
    for key, label in HEADLINES:
        alert = " alert" if key == "dead_lettered" and summary.get(key) else ""
        cards.append(
            f'<div class="card{alert}" id="{key}"><div class="value">{_number(summary.get(key))}'
            f'</div><div class="label">{label}</div></div>'
        )
    return '<div class="cards">' + "".join(cards) + "</div>"


def _table(rows: Sequence[Mapping[str, Any]], name_key: str, heading: str, limit: int) -> str:
    if not rows:
        return '<p class="note">No data yet.</p>'
    norm = _norm([float(r.get("change_sentiment") or 0.0) for r in rows])
    cmap = plt.get_cmap(CMAP)
    head = (
        f'<tr><th>#</th><th class="name">{heading}</th><th>Subscribers</th><th>Incidents</th>'
        "<th>Engagements</th><th>Feedback</th><th>Avg change</th><th>Change in sentiment</th>"
        "<th>Priority</th></tr>"
    )
    body = []
    for rank, row in enumerate(rows[:limit], start=1):
        change = float(row.get("change_sentiment") or 0.0)
        chip = f'<span class="chip" style="background:{_hex(cmap(norm(change)))}"></span>'
        body.append(
            f"<tr><td>{rank}</td><td class='name'>{html.escape(str(row.get(name_key)))}</td>"
            f"<td>{_number(row.get('subscribers'))}</td><td>{_number(row.get('incidents'))}</td>"
            f"<td>{_number(row.get('engagements'))}</td>"
            f"<td>{_number(row.get('feedback_received'))}</td>"
            f"<td>{_signed(row.get('avg_change_sentiment'))}</td>"
            f"<td>{chip}{_signed(change)}</td><td>{_signed(row.get('priority'))}</td></tr>"
        )
    more = (
        f'<p class="note">Showing {limit} of {len(rows)}; all rows are in '
        f"{name_key}_priority.json.</p>"
        if len(rows) > limit
        else ""
    )
    return f"<table>{head}{''.join(body)}</table>{more}"


def _funnel(summary: Mapping[str, Any]) -> str:
    counts = [(label, summary.get(key)) for key, label in FUNNEL]
    top = max((c or 0 for _, c in counts), default=0)
    steps = []
    previous = None
    for label, count in counts:
        value = count or 0
        width = 100 * math.log10(1 + value) / math.log10(1 + top) if top else 0
        rate = (
            f"{100 * value / previous:.1f}% of previous step"
            if previous
            else ("" if previous is None else "&ndash;")
        )
        steps.append(
            f'<div class="step"><div>{label}</div><div><div class="bar" style="width:{width:.1f}%">'
            f'</div></div><div><span class="count">{_number(count)}</span> '
            f'<span class="rate">{rate}</span></div></div>'
        )
        previous = value
    return (
        '<div class="funnel">'
        + "".join(steps)
        + '<p class="note">Bar lengths use a log scale so every step stays visible.</p></div>'
    )


def _api_calls(summary: Mapping[str, Any]) -> str:
    calls = summary.get("api_calls")
    if not isinstance(calls, Mapping) or not calls:
        return ""
    rows = "".join(
        f"<tr><td class='name'>{html.escape(str(op))}</td><td>{_number(n)}</td></tr>"
        for op, n in sorted(calls.items(), key=lambda item: (-item[1], item[0]))
    )
    return (
        f"<details><summary>AWS API calls made by the handlers ({len(calls)} operations)"
        f'</summary><table><tr><th class="name">Operation</th><th>Calls</th></tr>{rows}'
        "</table></details>"
    )


def render_html(summary: Mapping[str, Any], results: Mapping[str, Any], png: bytes) -> str:
    """The report page with the cell map embedded, so it can be mailed or archived alone."""
    cells = results.get("cell", [])
    top = cells[0] if cells else None
    lead = (
        f"Fix first: <strong>{html.escape(str(top['cell']))}</strong> &mdash; "
        f"{_number(top.get('subscribers'))} subscribers with incidents, change in sentiment "
        f"{_signed(top.get('change_sentiment'))}."
        if top
        else "No cells with incidents yet."
    )
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Subscriber Feedback Loop &ndash; network priority report</title>
<style>{CSS}</style></head>
<body><main>
<h1>Subscriber Feedback Loop &ndash; network priority report</h1>
<p class="lead">{lead}</p>
{_cards(summary)}
<h2>Cell map</h2>
<figure><img alt="Tree map of cells: area is distinct subscribers with incidents, colour is change
 in sentiment" src="data:image/png;base64,{image}">
<figcaption>Priority = how much the cell's subscribers' sentiment fell (&minus;sum of change in
sentiment); ties are broken by distinct subscribers with incidents. Cells whose subscribers were
not bothered rank below cells whose subscribers are unhappy, however many incidents they had.
</figcaption></figure>
<h2>Cells to fix first</h2>
{_table(cells, "cell", "Cell", TOP_CELLS)}
<h2>Devices and vendors</h2>
<h3>By device</h3>
{_table(results.get("device", []), "device", "Device", 12)}
<h3>By vendor</h3>
{_table(results.get("vendor", []), "vendor", "Vendor", 12)}
<h2>Engagement funnel</h2>
{_funnel(summary)}
{_api_calls(summary)}
</main></body></html>
"""


def write_report(
    out_dir: Path, summary: Mapping[str, Any], results: Mapping[str, Any]
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.png`` (the cell map) to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png_path = out_dir / "report.png"
    png = render_cell_map(results.get("cell", []), png_path)
    html_path = out_dir / "report.html"
    html_path.write_text(render_html(summary, results, png), encoding="utf-8")
    return html_path, png_path
