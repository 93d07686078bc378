"""``python -m simulator cost``: what the loop costs per month at a given size, and why.

:func:`estimate` prices one size with the measured inputs (``simulator/cost_inputs.json``)
and the dated price table (``simulator/prices_eu_west_2.json``); :func:`report` adds the
reference pattern side by side, the effect of each contact-policy setting and the
scale-out comparison, and writes ``cost.json``. The model itself is in ``model.py``,
calls in ``calls.py``, the measurement in ``measure.py``; README "Cost" shows a table.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from feedback_loop.contact_policy import CARE, MEASURE
from feedback_loop.policy import OutageRule, QuietHours, load_policy
from simulator.cost import scale
from simulator.cost.calls import CallsPerDay, ContactPolicy
from simulator.cost.measure import INPUTS
from simulator.cost.model import (
    DAYS_PER_MONTH,
    GIB,
    Assumptions,
    Line,
    Volumes,
    daily_volumes,
    design_profile,
    lake_queries,
    lake_read,
    price,
    reference_profile,
    total,
    usage,
)
from simulator.cost.prices import PRICES, PriceTable, load_prices
from simulator.cost.queries import dashboard_table_reads
from stacks.config import CONTEXT_KEY, cdk_json_context, load_config

DEFAULT_RECORDS_PER_SUBSCRIBER_DAY = 50.0


@dataclass(frozen=True)
class Estimate:
    """One size, priced: the lines of this design and of the reference pattern."""

    subscribers: float
    records_per_subscriber_day: float
    volumes: Volumes
    calls: CallsPerDay
    lines: list[Line]
    reference_lines: list[Line]

    @property
    def monthly_usd_total(self) -> float:
        """This design's monthly total."""
        return total(self.lines)


def load_inputs(path: Path | str = INPUTS) -> dict[str, Any]:
    """The measured inputs (see ``simulator/cost/measure.py``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def deployed_policy(config: Mapping[str, Any] | None = None) -> ContactPolicy:
    """The contact policy of ``cdk.json`` (or of ``config``, a ``feedback_loop`` mapping)."""
    return ContactPolicy(
        rules=load_policy(config if config is not None else cdk_json_context()[CONTEXT_KEY])
    )


def dashboard_query(
    inputs: Mapping[str, Any],
    volumes: Volumes,
    assumptions: Assumptions,
    cutoff: int,
    prices: PriceTable,
) -> dict[str, Any]:
    """What each dashboard query reads at this size, against the workgroup's cut-off in GiB,
    which cancels a query that scans more (``athena_scan_cutoff_gib``, docs/DEPLOY.md).

    Two readings per query: each table read once, and each read again wherever the query
    refers to a ``WITH`` step that reads it, as Trino inlines them (``queries.py``); Athena
    reads between the two. The largest query decides both verdicts."""
    profile = design_profile(inputs)

    def gib(reads: Mapping[str, int]) -> float:
        return lake_read(reads, profile, volumes, inputs, assumptions).bytes / GIB

    reads = dashboard_table_reads()
    once = {sql: gib(dict.fromkeys(tables, 1)) for sql, tables in reads.items()}
    at_most = {sql: gib(tables) for sql, tables in reads.items()}
    largest_once = max(once, key=once.__getitem__)
    largest = max(at_most, key=at_most.__getitem__)
    reading_at_most = lake_queries(
        lake_read(reads[largest], profile, volumes, inputs, assumptions), assumptions
    )
    return {
        "period_days": assumptions.query_period_days,
        "queries": [
            {
                "sql": sql,
                "table_reads": dict(sorted(tables.items())),
                "gib_read_once": round(once[sql], 2),
                "gib_at_most": round(at_most[sql], 2),
            }
            for sql, tables in reads.items()
        ],
        "largest_read_once": largest_once,
        "gib_read_once": round(once[largest_once], 2),
        "largest_at_most": largest,
        "gib_at_most": round(at_most[largest], 2),
        "workgroup_cutoff_gib": cutoff,
        "within_cutoff": once[largest_once] <= cutoff,
        "within_cutoff_at_most": at_most[largest] <= cutoff,
        # every query of the day reading as much as the largest does at most
        "monthly_usd_at_most": round(total(price(reading_at_most, prices)), 2),
    }


def estimate(
    subscribers: float,
    records_per_subscriber_day: float = DEFAULT_RECORDS_PER_SUBSCRIBER_DAY,
    *,
    inputs: Mapping[str, Any],
    prices: PriceTable,
    policy: ContactPolicy | None = None,
    assumptions: Assumptions | None = None,
) -> Estimate:
    """Price ``subscribers`` at ``records_per_subscriber_day`` under ``policy``."""
    policy = policy if policy is not None else deployed_policy()
    assumptions = assumptions if assumptions is not None else Assumptions()
    volumes, calls = daily_volumes(
        subscribers, records_per_subscriber_day, inputs, policy, assumptions
    )
    lines = price(usage(design_profile(inputs), volumes, subscribers, inputs, assumptions), prices)
    reference = reference_profile(inputs, volumes)
    reference_lines = price(usage(reference, volumes, subscribers, inputs, assumptions), prices)
    return Estimate(subscribers, records_per_subscriber_day, volumes, calls, lines, reference_lines)


NO_QUIET_HOURS = QuietHours("00:00", "00:00")


def connect_usd_per_episode(
    inputs: Mapping[str, Any] | None = None, prices: PriceTable | None = None
) -> float:
    """Amazon Connect's price of one contacted episode at the measured mix of calls
    (answered, retried after no answer, unanswered, voicemail): the what-if's unit."""
    result = estimate(
        1_000_000,
        inputs=inputs if inputs is not None else load_inputs(),
        prices=prices if prices is not None else load_prices(),
    )
    connect = sum(line.monthly_usd for line in result.lines if line.service == "Amazon Connect")
    return connect / (result.volumes.engagements * DAYS_PER_MONTH)


def policy_variants(base: ContactPolicy) -> list[tuple[str, ContactPolicy]]:
    """One setting changed at a time, from the deployed policy.

    The candidates are one measured day's, so only what acts within a day shows: a
    gap or a cap longer than a day needs a longer measured run.
    """
    rules = base.rules
    measure = replace(rules.rating_budget, enabled=True, mode=MEASURE)
    setting = (
        f"90% interval half-width <= {measure.half_width:g}, "
        f">= {measure.min_ratings} ratings a cell per {measure.period_hours} h"
    )

    def changed(**settings: Any) -> ContactPolicy:
        return replace(base, rules=replace(rules, **settings))

    return [
        ("deployed policy", base),
        ("gap of 4 h between contacts (deployed 24 h)", changed(cooldown_minutes=240)),
        ("gathering 30 min (deployed 10)", changed(gather_minutes=30)),
        ("incidents older than 12 h dropped (deployed 24 h)", changed(max_incident_age_hours=12)),
        (
            "no quiet hours (deployed 21:00-08:00)",
            changed(quiet_hours=QuietHours("00:00", "00:00")),
        ),
        ("outage: 5 subscribers a window, sample 2", changed(outage=OutageRule(5, 30, 2))),
        (
            "outage sample 25% (cell-days with >= 20% of subscribers eligible)",
            replace(base, outage_sample=0.25),
        ),
        (f"rating budget on, measure mode ({setting})", changed(rating_budget=measure)),
        (
            f"rating budget on, care mode (everyone eligible called; {setting})",
            changed(rating_budget=replace(measure, mode=CARE)),
        ),
    ]


def policy_effects(
    subscribers: float,
    records_per_subscriber_day: float,
    *,
    inputs: Mapping[str, Any],
    prices: PriceTable,
    policy: ContactPolicy,
    assumptions: Assumptions,
) -> list[dict[str, Any]]:
    """Calls per day and monthly cost for each variant of :func:`policy_variants`."""
    rows = []
    for name, variant in policy_variants(policy):
        result = estimate(
            subscribers,
            records_per_subscriber_day,
            inputs=inputs,
            prices=prices,
            policy=variant,
            assumptions=assumptions,
        )
        connect = sum(line.monthly_usd for line in result.lines if line.service == "Amazon Connect")
        rows.append(
            {
                "setting": name,
                "calls_per_day": round(result.volumes.call_attempts),
                "connect_monthly_usd": round(connect, 2),
                "monthly_usd_total": round(result.monthly_usd_total, 2),
                "suppressed_per_measured_day": {
                    k: round(v, 1) for k, v in result.calls.suppressed.items()
                },
                "largest_lines": [line.to_json() for line in result.lines[:3]],
            }
        )
    return rows


def _service_totals(lines: Sequence[Line]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in lines:
        totals[line.service] = totals.get(line.service, 0.0) + line.monthly_usd
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def report(
    subscribers: float,
    records_per_subscriber_day: float = DEFAULT_RECORDS_PER_SUBSCRIBER_DAY,
    *,
    out_dir: Path | str | None = None,
    inputs_path: Path | str = INPUTS,
    prices_path: Path | str = PRICES,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Estimate, compare, print, and write ``out_dir/cost.json``; returns its content."""
    inputs = load_inputs(inputs_path)
    prices = load_prices(prices_path)
    config = load_config(cdk_json_context()[CONTEXT_KEY])
    policy = ContactPolicy(rules=config.policy)
    assumptions = Assumptions()
    priced = partial(estimate, inputs=inputs, prices=prices, assumptions=assumptions)
    result = priced(subscribers, records_per_subscriber_day, policy=policy)
    effects = policy_effects(
        subscribers,
        records_per_subscriber_day,
        inputs=inputs,
        prices=prices,
        policy=policy,
        assumptions=assumptions,
    )
    volumes = result.volumes

    def at(size: float) -> scale.ScaleOut:
        sized = priced(size, records_per_subscriber_day, policy=policy)
        return scale.compare(
            size, sized.volumes.records, sized.volumes.incidents, sized.lines, prices
        )

    here = at(subscribers)
    even = scale.break_even(at)
    dense = inputs["dense"]
    counter_units = (
        dense["dynamodb"]["by_function"]["Ingest_probe_events"]["Subscriber_counters"][
            "write_units"
        ]
        / dense["drivers"]["records"]
    )
    measured_density = inputs["day"]["records_per_subscriber_day"]
    document = {
        "subscribers": int(subscribers) if subscribers == int(subscribers) else subscribers,
        "records_per_subscriber_day": records_per_subscriber_day,
        "region": prices.region,
        "prices_compiled": prices.compiled,
        "monthly_usd_total": round(result.monthly_usd_total, 2),
        "lines": [line.to_json() for line in result.lines],
        "services": {k: round(v, 2) for k, v in _service_totals(result.lines).items()},
        "per_day": {
            "probe_records": round(volumes.records),
            "rejected_records": round(volumes.rejected),
            "incidents": round(volumes.incidents),
            "decisions": round(volumes.decisions),
            "contacted_episodes": round(volumes.engagements),
            "calls": round(volumes.call_attempts),
            "calls_billed": round(sum(n for _, n in volumes.calls)),
            "ratings": round(volumes.ratings),
            "connected_call_minutes": round(
                sum(n * t.connected_seconds / 60 for t, n in volumes.calls)
            ),
        },
        "reference_pattern": {
            "description": reference_profile.__doc__,
            "monthly_usd_total": round(total(result.reference_lines), 2),
            "services": {
                k: round(v, 2) for k, v in _service_totals(result.reference_lines).items()
            },
            "lines": [line.to_json() for line in result.reference_lines],
        },
        "policy_effects": effects,
        "scale_out": {
            **scale.to_json(here),
            "break_even_subscribers": None if even is None else round(even),
            "records_per_kpu_second": scale.RECORDS_PER_KPU_SECOND,
        },
        "capacity_options": scale.capacity_options(
            volumes.records, counter_units, result.lines, prices
        ),
        "dashboard_query": dashboard_query(
            inputs, volumes, assumptions, config.athena_scan_cutoff_gib, prices
        ),
        "assumptions": asdict(assumptions),
        "assumed_prices": prices.assumed,
        "measured": {
            "on": inputs.get("measured"),
            "records_per_subscriber_day": measured_density,
            "provenance": inputs.get("provenance", {}),
        },
    }
    _print(document, result, stream or sys.stdout)
    if out_dir is not None:
        target = Path(out_dir)
        target.mkdir(parents=True, exist_ok=True)
        (target / "cost.json").write_text(
            json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8"
        )
    return document


def _usd(value: float) -> str:
    return f"${value:,.0f}" if value >= 100 else f"${value:,.2f}"


def _print(document: Mapping[str, Any], result: Estimate, stream: TextIO) -> None:
    day = document["per_day"]
    reference = document["reference_pattern"]
    out = [
        f"Monthly estimate, {document['region']} (prices compiled {document['prices_compiled']}; "
        f"{len(document['assumed_prices'])} of them assumed, see the price table): "
        f"{document['subscribers']:,.0f} subscribers x {document['records_per_subscriber_day']:g} "
        f"probe records/day",
        f"  per day: {day['probe_records']:,} records, {day['incidents']:,} incidents, "
        f"{day['decisions']:,} decisions, {day['calls']:,} calls "
        f"({day['connected_call_minutes']:,} connected minutes), {day['ratings']:,} ratings",
        "",
        f"TOTAL {_usd(document['monthly_usd_total'])}/month",
    ]
    grand = document["monthly_usd_total"] or 1.0
    for line in result.lines:
        if line.monthly_usd < 0.005 * grand and line.monthly_usd < 1:
            continue
        out.append(
            f"  {_usd(line.monthly_usd):>12}  {line.service}: {line.item} "
            f"({line.quantity:,.0f} {line.unit})"
        )
    out += ["", "Side by side, by service (this design | reference pattern, modelled)"]
    ref = reference["services"]
    for service, usd in document["services"].items():
        out.append(f"  {service:<28} {_usd(usd):>12} | {_usd(ref.get(service, 0.0)):>12}")
    out.append(
        f"  {'total':<28} {_usd(document['monthly_usd_total']):>12} | "
        f"{_usd(reference['monthly_usd_total']):>12}"
    )
    out += ["", "Contact policy: calls per day and monthly total (one setting changed at a time)"]
    for row in document["policy_effects"]:
        out.append(
            f"  {row['calls_per_day']:>12,} calls/day {_usd(row['monthly_usd_total']):>12}  "
            f"{row['setting']}"
        )
    scale_out = document["scale_out"]
    even = scale_out["break_even_subscribers"]
    out += [
        "",
        f"Scale-out (docs/SCALE.md): keeping the windows costs "
        f"{_usd(scale_out['counter_path_monthly_usd'])}/month with per-record DynamoDB "
        f"counters, {_usd(scale_out['flink_path_monthly_usd'])} with Managed Service for Apache "
        f"Flink ({scale_out['flink_kpus']} KPU); break-even at "
        + (f"{even:,} subscribers" if even is not None else "no size up to 100M"),
    ]
    options = document["capacity_options"]
    counters = options["counters_table_provisioned"]
    probe = options["probe_stream_provisioned"]
    out += [
        f"Provisioned capacity (auto scaling at {scale.TARGET_UTILIZATION:.0%} utilization): "
        f"counters table {_usd(counters['monthly_usd'])} (on-demand "
        f"{_usd(counters['on_demand_monthly_usd'])}); probe stream {probe['shards']} shards "
        f"{_usd(probe['monthly_usd'])} (on-demand {_usd(probe['on_demand_monthly_usd'])})",
    ]
    query = document["dashboard_query"]
    out.append(
        f"Dashboard queries over {query['period_days']} days: the largest reads "
        f"{query['gib_read_once']:,.1f} GiB if Athena reads each table once "
        f"({query['largest_read_once']}), at most {query['gib_at_most']:,.1f} GiB "
        f"({query['largest_at_most']}) if it reads a table again for every reference to a "
        f"WITH step that reads it (Athena and its S3 GETs at most "
        f"{_usd(query['monthly_usd_at_most'])} a month); the workgroup cancels a query past "
        f"{query['workgroup_cutoff_gib']:,} GiB (athena_scan_cutoff_gib)"
    )
    if not query["within_cutoff"]:
        out.append(
            "WARNING: at this size the dashboard's queries would be cancelled: raise "
            "athena_scan_cutoff_gib or shorten the dashboard's period (docs/DEPLOY.md)"
        )
    elif not query["within_cutoff_at_most"]:
        out.append(
            "WARNING: at this size the dashboard's queries may be cancelled: check the data "
            "scanned by its first queries and size athena_scan_cutoff_gib to it "
            "(docs/DEPLOY.md)"
        )
    measured = document["measured"]["records_per_subscriber_day"]
    if abs(measured - document["records_per_subscriber_day"]) > 0.25 * measured:
        out += [
            "",
            f"NOTE: the call funnel was measured at {measured:g} records per subscriber-day; "
            f"calls per subscriber-day are taken as measured. Measure at this density for a "
            f"better estimate (docs/SCALE.md, 'Measuring').",
        ]
    stream.write("\n".join(out) + "\n")


__all__ = [
    "Estimate",
    "connect_usd_per_episode",
    "deployed_policy",
    "estimate",
    "load_inputs",
    "policy_effects",
    "report",
]
