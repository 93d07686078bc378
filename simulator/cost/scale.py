"""Where the per-record counter design stops being the cheapest: the scale-out comparison.

Today every probe record costs a conditional ``UpdateItem`` on ``Subscriber_counters``
plus the ingest function's time to make it. The replacement docs/SCALE.md describes is
an existing stream engine with keyed, windowed state: Amazon Managed Service for Apache
Flink reading ``probe_events``, keeping each (subscriber, KPI) window in its own state and
emitting only failed sessions with their rate. Everything from the incident on (profile,
queues, calls, lake) stays as it is, so the comparison prices only what changes:

* counter path: the counters table's write/read units, storage and backup, and the
  ingest function (all of its compute and invocations: it exists to keep the counters);
* Flink path: KPU-hours for the peak record rate at ``RECORDS_PER_KPU_SECOND`` (an
  assumption: simple keyed window counts over small JSON records), one more KPU for the
  application's orchestration (Flink pricing), running storage per KPU, and a sink
  function doing ingest's remaining job (profile write and incident message) per
  incident, priced like ingest per record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simulator.cost.model import HOURS_PER_MONTH, Line
from simulator.cost.prices import PriceTable
from simulator.scenario import HOURLY_ACTIVITY
from stacks.config import COUNTERS_CAPACITY_DEFAULTS

RECORDS_PER_KPU_SECOND = 2000.0  # assumed throughput of one KPU for this job
ORCHESTRATION_KPUS = 1  # charged per application on top of its processing KPUs
STORAGE_GB_PER_KPU = 50
# Busy hour over mean hour, from the default day's hourly profile.
PEAK_FACTOR = max(HOURLY_ACTIVITY) * len(HOURLY_ACTIVITY) / sum(HOURLY_ACTIVITY)


@dataclass(frozen=True)
class ScaleOut:
    """Monthly cost of keeping the windows, both ways, at one size."""

    subscribers: float
    counter_path_usd: float
    flink_path_usd: float
    kpus: int


def _counter_lines(lines: list[Line]) -> list[Line]:
    return [
        line
        for line in lines
        if "Subscriber_counters" in line.item
        or (line.service == "AWS Lambda" and line.item.startswith("Ingest_probe_events"))
    ]


def compare(
    subscribers: float,
    records_per_day: float,
    incidents_per_day: float,
    lines: list[Line],
    prices: PriceTable,
) -> ScaleOut:
    """Counter path (priced from ``lines``) against the Flink path, per month."""
    counter_lines = _counter_lines(lines)
    counters = sum(line.monthly_usd for line in counter_lines)
    ingest = [
        line
        for line in counter_lines
        if line.service == "AWS Lambda" and line.item.startswith("Ingest_probe_events")
    ]
    ingest_usd = sum(line.monthly_usd for line in ingest)
    peak = records_per_day / 86400 * PEAK_FACTOR
    kpus = max(1, math.ceil(peak / RECORDS_PER_KPU_SECOND)) + ORCHESTRATION_KPUS
    flink = kpus * HOURS_PER_MONTH * prices["flink.kpu_hour"].value
    flink += kpus * STORAGE_GB_PER_KPU * prices["flink.running_storage_gb_month"].value
    sink = ingest_usd * (incidents_per_day / records_per_day) if records_per_day else 0.0
    return ScaleOut(subscribers, counters, flink + sink, kpus)


def break_even(
    at: Callable[[float], ScaleOut], low: float = 1e3, high: float = 1e8
) -> float | None:
    """Smallest subscriber count (to 1%) from which the Flink path is cheaper, if any."""
    if at(high).flink_path_usd > at(high).counter_path_usd:
        return None
    if at(low).flink_path_usd <= at(low).counter_path_usd:
        return low
    while high / low > 1.01:
        middle = math.sqrt(low * high)
        if at(middle).flink_path_usd <= at(middle).counter_path_usd:
            high = middle
        else:
            low = middle
    return high


# The auto-scaling target the counters_capacity setting deploys by default (docs/DEPLOY.md).
TARGET_UTILIZATION = COUNTERS_CAPACITY_DEFAULTS["target_utilization_percent"] / 100


def capacity_options(
    records_per_day: float,
    counter_units_per_record: float,
    lines: list[Line],
    prices: PriceTable,
) -> dict[str, dict[str, float]]:
    """Provisioned capacity priced against the on-demand lines it would replace.

    * ``Subscriber_counters`` on provisioned write capacity with auto scaling that follows
      the day's hourly profile at ``TARGET_UTILIZATION`` (read capacity is not needed:
      ingest reads nothing from the counters);
    * ``probe_events`` in provisioned mode, sized for the peak hour at that utilization
      (resharding is limited per day, so the peak stays provisioned), plus one 25 KB PUT
      payload unit per record.
    """
    hourly = [records_per_day * weight / sum(HOURLY_ACTIVITY) for weight in HOURLY_ACTIVITY]
    unit_hours = sum(n / 3600 * counter_units_per_record / TARGET_UTILIZATION for n in hourly)
    days = HOURS_PER_MONTH / 24
    counters = unit_hours * days * prices["dynamodb.provisioned_wcu_hour"].value
    shards = max(1, math.ceil(max(hourly) / 3600 / (1000 * TARGET_UTILIZATION)))
    kinesis = shards * HOURS_PER_MONTH * prices["kinesis.provisioned_shard_hour"].value
    kinesis += (
        records_per_day
        * days
        / 1e6
        * prices["kinesis.provisioned_put_payload_units_per_million"].value
    )

    def on_demand(match: Callable[[Line], bool]) -> float:
        return sum(line.monthly_usd for line in lines if match(line))

    return {
        "counters_table_provisioned": {
            "monthly_usd": round(counters, 2),
            "on_demand_monthly_usd": round(
                on_demand(lambda line: line.item == "write request units Subscriber_counters"), 2
            ),
        },
        "probe_stream_provisioned": {
            "monthly_usd": round(kinesis, 2),
            "shards": shards,
            "on_demand_monthly_usd": round(
                on_demand(lambda line: line.service == "Amazon Kinesis Data Streams"), 2
            ),
        },
    }


def to_json(result: ScaleOut) -> Mapping[str, Any]:
    """The ``cost.json`` form."""
    return {
        "subscribers": round(result.subscribers),
        "counter_path_monthly_usd": round(result.counter_path_usd, 2),
        "flink_path_monthly_usd": round(result.flink_path_usd, 2),
        "flink_kpus": result.kpus,
    }
