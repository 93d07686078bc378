"""The twin's operations report: one self-contained HTML page plus the cell map as a PNG.

It shows what the QuickSight dashboard shows in the account: the cell tree map (size =
subscribers affected, colour = estimated mean change in sentiment, grey where there are not
enough answers yet), the ranked cells with their intervals, the cells still waiting for
answers, devices and vendors net of cell, trends per day, whether each fix worked, and the
engagement funnel.
"""

import base64
import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates
import matplotlib.pyplot as plt
import squarify
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Patch, Rectangle

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
WAITING_CELLS = 10
HIGHLIGHTED = 5
TREND_CELLS = 5
CMAP = "RdYlGn"
GREY = "#c9ccd1"

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
td .range { color: #52606d; font-size: 12px; }
.chip { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px;
        vertical-align: middle; border: 1px solid #0003; }
h3 { font-size: 16px; margin: 18px 0 8px; }
.funnel .step { display: grid; grid-template-columns: 170px 1fr 190px; align-items: center;
                gap: 12px; margin: 6px 0; }
.funnel .bar { background: #3e7cb1; height: 22px; border-radius: 4px; min-width: 3px; }
.funnel .count { font-variant-numeric: tabular-nums; font-size: 14px; }
.funnel .rate { color: #52606d; font-size: 13px; }
.note { font-size: 13px; color: #52606d; }
.good { color: #1a7f37; font-weight: 600; }
.bad { color: #b42318; font-weight: 600; }
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


def _range(low: Any, high: Any, fmt: Callable[[Any], str] = _signed) -> str:
    """An interval under its estimate, e.g. ``-0.49 to -0.25``."""
    if low is None or high is None:
        return ""
    return f'<br><span class="range">{fmt(low)} to {fmt(high)}</span>'


def _norm(values: Sequence[float]) -> TwoSlopeNorm:
    """Diverging scale centred at 0 and symmetric, so equal colours mean equal change."""
    limit = max((abs(v) for v in values), default=0.0) or 1.0
    return TwoSlopeNorm(vmin=-limit, vcenter=0.0, vmax=limit)


def _hex(rgba: Sequence[float]) -> str:
    return "#" + "".join(f"{round(channel * 255):02x}" for channel in rgba[:3])


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _cell_colour(cell: Mapping[str, Any], norm: TwoSlopeNorm) -> Any:
    if not cell.get("ranked"):
        return GREY
    return plt.get_cmap(CMAP)(norm(float(cell.get("change_sentiment") or 0.0)))


def render_cell_map(cells: Sequence[Mapping[str, Any]], path: Path) -> bytes:
    """Draw the cell tree map to ``path`` and return the PNG bytes.

    One rectangle per cell with incidents: area = subscribers affected, colour = estimated mean
    change in sentiment (red = worse, green = better, centred at 0), grey where there are not
    enough answers yet to rank the cell. The most urgent ranked cells are outlined.
    """
    shown = sorted(
        (c for c in cells if (c.get("subscribers") or 0) > 0),
        key=lambda c: (-c["subscribers"], c["cell"]),
    )
    fig, ax = plt.subplots(figsize=(13, 7.2), dpi=110)
    norm = _norm([float(c.get("change_sentiment") or 0.0) for c in shown if c.get("ranked")])
    cmap = plt.get_cmap(CMAP)
    if shown:
        width, height = 100.0, 60.0
        sizes = squarify.normalize_sizes([c["subscribers"] for c in shown], width, height)
        rects = squarify.squarify(sizes, 0, 0, width, height)
        urgent = {c["cell"] for c in cells[:HIGHLIGHTED] if c.get("ranked")}
        labelled = 0
        for cell, rect in zip(shown, rects, strict=True):
            colour = _cell_colour(cell, norm)
            ax.add_patch(
                Rectangle(
                    (rect["x"], rect["y"]),
                    rect["dx"],
                    rect["dy"],
                    facecolor=colour,
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
                red, green, blue = matplotlib.colors.to_rgb(colour)
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                change = (
                    f"{float(cell['change_sentiment']):+.2f}" if cell.get("ranked") else "too few"
                )
                ax.text(
                    rect["x"] + rect["dx"] / 2,
                    rect["y"] + rect["dy"] / 2,
                    f"{cell['cell']}\n{cell['subscribers']} affected\n{change}"
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
        "Cells by subscribers affected (area) and estimated mean change in sentiment (colour)",
        fontsize=13,
        loc="left",
    )
    colorbar = fig.colorbar(
        plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.035, pad=0.015
    )
    colorbar.set_label(
        "Estimated mean change in sentiment per affected subscriber\nred = unhappier, "
        "green = happier, yellow = no change",
        fontsize=10,
    )
    if any(not c.get("ranked") for c in shown):
        ax.legend(
            handles=[Patch(facecolor=GREY, label="not enough answers yet")],
            loc="upper left",
            bbox_to_anchor=(0, -0.005),
            frameon=False,
            fontsize=9,
        )
    if shown:
        ax.text(
            100.0,
            61.2,
            f"Black outline: the {HIGHLIGHTED} most urgent ranked cells. "
            f"{len(shown)} cells with incidents.",
            fontsize=9,
            va="top",
            ha="right",
            color="#333",
        )
    fig.tight_layout()
    png = _png(fig)
    Path(path).write_bytes(png)
    return png


def render_trends(trends: Sequence[Mapping[str, Any]], cells: Sequence[str]) -> bytes | None:
    """Daily subscribers affected and mean change for ``cells``; None with fewer than two days."""
    days = sorted({t["dt"] for t in trends})
    if len(days) < 2 or not cells:
        return None
    fig, (affected, change) = plt.subplots(1, 2, figsize=(13, 4.2), dpi=110)
    by_cell = {(t["cell"], t["dt"]): t for t in trends}
    dates = [date.fromisoformat(day) for day in days]  # a day without records keeps its gap
    for cell in cells:
        rows = [by_cell.get((cell, day), {}) for day in days]
        affected.plot(dates, [r.get("subscribers", 0) for r in rows], marker="o", label=cell)
        change.plot(dates, [r.get("mean_change") for r in rows], marker="o", label=cell)
    affected.set_title("Subscribers affected per day", loc="left", fontsize=12)
    change.set_title("Mean change in sentiment of the day's answers", loc="left", fontsize=12)
    change.axhline(0, color="#888", linewidth=0.8)
    for ax in (affected, change):
        ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%Y-%m-%d"))
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.grid(alpha=0.3)
    affected.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _cards(summary: Mapping[str, Any]) -> str:
    cards = []
    for key, label in HEADLINES:
        alert = " alert" if key == "dead_lettered" and summary.get(key) else ""
        cards.append(
            f'<div class="card{alert}" id="{key}"><div class="value">{_number(summary.get(key))}'
            f'</div><div class="label">{label}</div></div>'
        )
    return '<div class="cards">' + "".join(cards) + "</div>"


# A table column: heading and how a row shows in it.
Column = tuple[str, Callable[[Mapping[str, Any]], str]]


def _table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], table_id: str, names: int = 2
) -> str:
    """A table whose first ``names`` columns are names (left-aligned), the rest figures."""
    if not rows:
        return '<p class="note">No rows for this period.</p>'
    head = "".join(
        f'<th class="name">{title}</th>' if i < names else f"<th>{title}</th>"
        for i, (title, _) in enumerate(columns)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="name">{show(row)}</td>' if i < names else f"<td>{show(row)}</td>"
            for i, (_, show) in enumerate(columns)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def _name(key: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda row: html.escape(str(row.get(key)))


def _estimate(key: str, interval: str | None = None) -> Callable[[Mapping[str, Any]], str]:
    """``key`` with its 90% interval (``<interval>_low`` .. ``<interval>_high``)."""
    low, high = f"{interval or key}_low", f"{interval or key}_high"
    return lambda row: _signed(row.get(key)) + _range(row.get(low), row.get(high))


def _loss(prefix: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda row: (
        _number(row.get(prefix))
        + _range(row.get(f"{prefix}_low"), row.get(f"{prefix}_high"), _number)
    )


def _chip(norm: TwoSlopeNorm) -> Callable[[Mapping[str, Any]], str]:
    def show(row: Mapping[str, Any]) -> str:
        colour = _hex(matplotlib.colors.to_rgba(_cell_colour(row, norm)))
        return f'<span class="chip" style="background:{colour}"></span>' + _estimate(
            "change_sentiment", "change"
        )(row)

    return show


def _rank_cells(cells: Sequence[Mapping[str, Any]]) -> str:
    ranked = [{**c, "rank": n} for n, c in enumerate((c for c in cells if c.get("ranked")), 1)]
    norm = _norm([float(c.get("change_sentiment") or 0.0) for c in ranked])
    columns: list[Column] = [
        ("#", lambda row: str(row["rank"])),
        ("Cell", _name("cell")),
        ("Affected", lambda row: _number(row.get("subscribers"))),
        ("Answers", lambda row: _number(row.get("answers"))),
        ("Mean change (90% interval)", _chip(norm)),
        ("Estimated loss (interval)", _loss("estimated_loss")),
        ("Incidents", lambda row: _number(row.get("incidents"))),
        ("Calls decided", lambda row: _number(row.get("engagements"))),
    ]
    more = (
        f'<p class="note">Showing {TOP_CELLS} of {len(ranked)} ranked cells; every row is in '
        "cell_priority.json.</p>"
        if len(ranked) > TOP_CELLS
        else ""
    )
    return _table(ranked[:TOP_CELLS], columns, "ranked-cells") + more


def _waiting_cells(cells: Sequence[Mapping[str, Any]]) -> str:
    waiting = sorted(
        (c for c in cells if not c.get("ranked")),
        key=lambda c: (-(c.get("subscribers") or 0), c["cell"]),
    )
    columns: list[Column] = [
        ("Cell", _name("cell")),
        ("Affected", lambda row: _number(row.get("subscribers"))),
        ("Answers", lambda row: _number(row.get("answers"))),
        ("Incidents", lambda row: _number(row.get("incidents"))),
        ("Calls decided", lambda row: _number(row.get("engagements"))),
    ]
    note = (
        f'<p class="note">{len(waiting)} cells have incidents but fewer answers than the '
        f"ranking needs; the {min(WAITING_CELLS, len(waiting))} with most subscribers affected "
        "are shown. They sort after every ranked cell in cell_priority.json.</p>"
    )
    return (
        note + _table(waiting[:WAITING_CELLS], columns, "waiting-cells", names=1) if waiting else ""
    )


def _cell_kpis(rows: Sequence[Mapping[str, Any]]) -> str:
    columns: list[Column] = [
        ("Cell", _name("cell")),
        ("KPI", _name("kpi")),
        ("Affected", lambda row: _number(row.get("subscribers"))),
        ("Answers", lambda row: _number(row.get("answers"))),
        ("Mean change (90% interval)", _estimate("change_sentiment", "change")),
        ("Estimated loss (interval)", _loss("estimated_loss")),
    ]
    return _table([r for r in rows if r.get("ranked")][:10], columns, "cell-kpis")


def _net_of_cell(rows: Sequence[Mapping[str, Any]], key: str, heading: str) -> str:
    columns: list[Column] = [
        (heading, _name(key)),
        ("Ranked", lambda row: "yes" if row.get("ranked") else "not enough comparisons"),
        ("Affected", lambda row: _number(row.get("subscribers"))),
        ("Own mean change", _estimate("change_sentiment", "change")),
        ("Compared answers", lambda row: _number(row.get("compared"))),
        ("Net of cell (90% interval)", _estimate("net_change")),
        ("Loss net of cell (interval)", _loss("net_loss")),
    ]
    note = (
        ""
        if any(r.get("ranked") for r in rows)
        else f'<p class="note">No {key} could be compared with others on the same cells (each '
        f"cell saw one {key}), so none is ranked: read the cell table instead.</p>"
    )
    return note + _table(rows[:12], columns, f"{key}-net-of-cell")


def _trends(results: Mapping[str, Any]) -> str:
    top = [c["cell"] for c in results.get("cell", []) if c.get("ranked")][:TREND_CELLS]
    png = render_trends(results.get("cell_trends", []), top)
    if png is None:
        return '<p class="note">One day in this period: trends need at least two.</p>'
    image = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="Daily trends of the top cells" src="data:image/png;base64,{image}">'
        f"<figcaption>The {len(top)} most urgent cells, day by day (cell_trends.json has every "
        "cell).</figcaption></figure>"
    )


def _verdict(fix: Mapping[str, Any]) -> str:
    low, high = fix.get("score_effect_low"), fix.get("incident_ratio_high")
    if (low is not None and low > 0) or (high is not None and high < 1):
        return '<span class="good">recovered</span>'
    if fix.get("score_effect_high") is not None and fix["score_effect_high"] < 0:
        return '<span class="bad">worse</span>'
    return "no clear effect yet"


def _fixes(rows: Sequence[Mapping[str, Any]]) -> str:
    def before_after(
        before: str, after: str, fmt: Callable[[Any], str] = _number
    ) -> Callable[[Mapping[str, Any]], str]:
        return lambda row: f"{fmt(row.get(before))} &rarr; {fmt(row.get(after))}"

    def ratio(row: Mapping[str, Any]) -> str:
        value = row.get("incident_ratio")
        return ("&ndash;" if value is None else f"&times;{value:.2f}") + _range(
            row.get("incident_ratio_low"),
            row.get("incident_ratio_high"),
            lambda v: f"&times;{v:.2f}",
        )

    columns: list[Column] = [
        ("Cell", _name("cell")),
        (
            "Fixed at, note",
            lambda row: (
                f"{html.escape(str(row.get('fixed_at')))}<br>"
                f'<span class="range">{html.escape(str(row.get("note") or ""))}</span>'
            ),
        ),
        ("Incidents/day", before_after("incidents_per_day_before", "incidents_per_day_after")),
        (
            "Controls /cell/day",
            before_after(
                "control_incidents_per_cell_day_before", "control_incidents_per_cell_day_after"
            ),
        ),
        ("Incidents vs controls", ratio),
        ("Rating score", before_after("score_before", "score_after", _signed)),
        (
            "Controls' score",
            before_after("control_score_before", "control_score_after", _signed),
        ),
        ("Score effect (90% interval)", _estimate("score_effect")),
        ("Verdict", _verdict),
    ]
    if not rows:
        return (
            '<p class="note">No remediation events in this period (upload them as CSV under '
            "remediation/; in the twin, the scenario's <code>remediation</code> key).</p>"
        )
    return (
        _table(rows, columns, "fixes")
        + '<p class="note">Difference in differences against every cell without a fix over the '
        "same days: incidents as a ratio (&times;0.2 = a fifth of what the controls suggest), "
        "ratings as a difference in score, (rating &minus; 3) / 2.</p>"
    )


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


STEP_MEANING = {
    "engage": "a new episode: the subscriber will be contacted",
    "merged": "joined the subscriber's open episode: one contact asks about both",
    "suppress": "not contacted",
    "deferred": "the contact waited until the rule allowed it",
    "contacted": "a contact attempt was made",
    "closed": "the episode ended",
    "failed": "the channel refused the contact for good",
}


def _contact_steps(summary: Mapping[str, Any]) -> str:
    """Every decision and contact step by its reason, and the cell outages declared."""
    steps = summary.get("engagement_decisions")
    if not isinstance(steps, Mapping) or not steps:
        return ""
    order = list(STEP_MEANING)
    rows = "".join(
        f"<tr><td class='name'>{html.escape(decision)}</td><td class='name'>"
        f"{html.escape(reason)}</td><td>{_number(count)}</td><td class='name'>"
        f"{html.escape(STEP_MEANING.get(decision, ''))}</td></tr>"
        for (decision, reason), count in sorted(
            ((tuple(key.split(":", 1)), n) for key, n in steps.items()),
            key=lambda item: (
                order.index(item[0][0]) if item[0][0] in order else len(order),
                -item[1],
            ),
        )
    )
    outages = summary.get("outages") or []
    declared = (
        "<p>Cell outages declared (one signal each; only a sample of their subscribers is "
        f"contacted): {len(outages)}"
        + (
            ": " + ", ".join(html.escape(f"{o['cell']} at {o['window_start']}") for o in outages)
            if outages
            else ""
        )
        + ".</p>"
    )
    return (
        "<h3>Every decision and contact step, by reason</h3>"
        '<table><tr><th class="name">Step</th><th class="name">Reason</th><th>Records</th>'
        f'<th class="name">Meaning</th></tr>{rows}</table>{declared}'
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


def _lead(cells: Sequence[Mapping[str, Any]]) -> str:
    top = next((c for c in cells if c.get("ranked")), None)
    if top is None:
        return (
            "No cell has enough answers to rank yet." if cells else "No cells with incidents yet."
        )
    return (
        f"Fix first: <strong>{html.escape(str(top['cell']))}</strong> &mdash; "
        f"{_number(top.get('subscribers'))} subscribers affected, {_number(top.get('answers'))} "
        f"answered; estimated loss {_number(top.get('estimated_loss'))} sentiment points "
        f"(at least {_number(top.get('estimated_loss_low'))} with 95% confidence)."
    )


def render_html(summary: Mapping[str, Any], results: Mapping[str, Any], png: bytes) -> str:
    """The report page with every picture embedded, so it can be mailed or archived alone."""
    cells = results.get("cell", [])
    period = results.get("period") or {}
    span = (
        f"Period {html.escape(str(period.get('start')))} to {html.escape(str(period.get('end')))}."
        if period
        else ""
    )
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Subscriber Feedback Loop &ndash; network priority report</title>
<style>{CSS}</style></head>
<body><main>
<h1>Subscriber Feedback Loop &ndash; network priority report</h1>
<p class="lead">{_lead(cells)} {span}</p>
{_cards(summary)}
<h2>Cell map</h2>
<figure><img alt="Tree map of cells: area is subscribers affected, colour is the estimated mean
 change in sentiment, grey where there are not enough answers yet"
 src="data:image/png;base64,{image}">
<figcaption>Estimated loss = subscribers affected &times; the mean change in sentiment of those
who answered, shrunk toward the network's mean when answers are few. Cells are ranked by the
loss we are 95% sure of (the low end of its interval), so a cell with two lucky answers cannot
top the list; cells with fewer than two answers are grey and wait for answers.
</figcaption></figure>
<h2>Cells to fix first</h2>
{_rank_cells(cells)}
<h3>Not enough answers yet</h3>
{_waiting_cells(cells) or '<p class="note">Every cell with incidents has enough answers.</p>'}
<h3>By cell and KPI</h3>
{_cell_kpis(results.get("cell_kpi", []))}
<h2>Devices and vendors, net of cell</h2>
<p class="note">Each answer is compared with the other subscribers of the same cell, so a device
that is merely common on a bad cell is not blamed for it.</p>
<h3>By device</h3>
{_net_of_cell(results.get("device", []), "device", "Device")}
<h3>By vendor</h3>
{_net_of_cell(results.get("vendor", []), "vendor", "Vendor")}
<h2>Trends</h2>
{_trends(results)}
<h2>Did the fixes work?</h2>
{_fixes(results.get("fix_effectiveness", []))}
<h2>Engagement funnel</h2>
{_funnel(summary)}
{_contact_steps(summary)}
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
