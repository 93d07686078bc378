"""``python -m simulator bench --dense``: the handlers at production density, measured.

The default day of the twin is sparse (a few records per Kinesis batch, one record per
lake object), so it cannot say what a record costs at 10 million subscribers. This bench
runs the real handlers, wired from the template on moto as the twin wires them, on a
slice of the busiest hour of a stream's shards at production density:

* **Density.** Each shard of a new on-demand stream (four) receives one full batch
  (500 records) a second, half its write limit. At 50 records per subscriber and day
  with the default day's hourly profile, that is the busy hour of about half a million
  subscribers per shard, so consecutive records almost never share a subscriber: each
  record of the slice belongs to its own subscriber. Kinesis batches are full, and the
  queues downstream fill their 100-message batches the way they do under load.
* **State.** A subscriber at that density is not new: before the slice, each one gets
  the counter items its earlier sessions of the day left (the same bursts model as the
  default day, folded with ``feedback_loop.rates``) and a profile holding the incidents
  of ``history_days`` earlier days (``feedback_loop.incidents.profile_update``, capped as
  the handler caps it). Feedback and engagement attributes are not seeded, so frequently
  called subscribers' profiles are slightly smaller than in production.
* **Metering.** ``simulator.meter.Meter`` records, per function, every AWS call, the
  time spent inside it, and for DynamoDB writes the item's size before and after (read
  from moto) so write units follow DynamoDB's rule (the larger of the two, per KB);
  reads are metered on the whole item, as DynamoDB meters them.

Printed (and written to ``DIR/dense.json``): DynamoDB writes and write units per probe
record by table, item sizes, requests per engagement per function, records per lake
object (as delivered in the slice, and if its density lasts:
:func:`steady_records_per_object`), ``SendMessageBatch`` fill, and ingest records/s per
shard in the bench's model: as many batches in flight per shard as the event source's
``ParallelizationFactor`` (read from the template), each batch's AWS calls made one after
another at the stated per-call latency, plus its measured compute scaled to the
function's CPU share.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

from boto3.dynamodb.types import TypeSerializer

from feedback_loop.adapters.counters import padded
from feedback_loop.contract import (
    COUNTERS_TABLE,
    EVENT_TYPES,
    INCIDENTS_VERSION,
    LAST_CHANGE,
    NEW_INCIDENTS,
    PHONE_NUMBER,
    SEEN_INCIDENTS,
    SUBSCRIBER_TABLE,
    LastChange,
)
from feedback_loop.ids import incident_id
from feedback_loop.incidents import Incident, incident_item, profile_update
from feedback_loop.policy import load_policy
from feedback_loop.probe import ProbeRecord
from feedback_loop.rates import (
    STALE_BUCKETS_BEFORE_PRUNE,
    Session,
    attribute_names,
    bucket_seconds,
    fold,
)
from simulator.api_calls import default_session
from simulator.meter import Meter, TableUse, moto_table
from simulator.scenario import (
    BURST_MINUTES,
    DATA,
    DEFAULT_DAY,
    DEGRADED_DEVICE_FAILURE,
    DEGRADED_RANGE,
    DEVICES,
    FIRST_PHONE,
    HEALTHY_FAILURE,
    HOURLY_ACTIVITY,
    SESSIONS_PER_BURST,
    VENDORS,
    VOICE,
    ConnectQuotas,
    Scenario,
    Subscriber,
)
from simulator.units import item_size, kinesis_billed_kib

# Per-call latency of the AWS APIs in the throughput model (assumed: typical in-region
# figures for small requests; DynamoDB's "single-digit millisecond" writes).
CALL_LATENCY_MS = {
    "dynamodb": 6.0,
    "sqs": 10.0,
    "s3": 25.0,
    "secretsmanager": 20.0,
    "connect": 150.0,
}
# Lambda gives a function CPU in proportion to its memory: 1,769 MB is one vCPU ("Lambda
# memory and computing power", https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
# The bench assumes one core of the machine it runs on is worth one such vCPU.
MB_PER_VCPU = 1769
ENGAGEMENT_PATH = (
    "Read_after_incident",
    "write_engagement_to_S3",
    "Trigger_Connect",
    "Collect_feedback_from_Connect",
    "write_feedback_to_S3",
)
# The function whose batches write each lake prefix (one object per batch and date).
LAKE_WRITERS = {
    "incidents": "write_incident_to_S3",
    "engagement": "write_engagement_to_S3",
    "outages": "write_engagement_to_S3",
    "decision_counts": "write_engagement_to_S3",
    "feedback": "write_feedback_to_S3",
    "sentiment": "write_feedback_to_S3",
}
_serializer = TypeSerializer()


def even_shards(count: int) -> tuple[tuple[str, int, int], ...]:
    """``count`` shards splitting the 128-bit hash key range evenly, as a new stream has."""
    step = 2**128 // count
    return tuple(
        (f"shardId-{i:012d}", i * step, 2**128 - 1 if i == count - 1 else (i + 1) * step - 1)
        for i in range(count)
    )


# A new on-demand stream has four shards (4,000 records/s of write capacity).
ON_DEMAND_SHARDS = even_shards(4)


@dataclass(frozen=True)
class DenseSettings:
    """What the bench runs: the slice size, the density and the history behind it."""

    batches_per_shard: int = 2
    batch_size: int = 500  # Ingest_probe_events' BatchSize in the stack
    records_per_subscriber_day: int = 50
    history_days: int = 30
    cells: int = 2000
    degraded_share: float = 0.025
    seed: int = 7
    busy_hour: int = max(range(24), key=lambda hour: HOURLY_ACTIVITY[hour])
    # Connect's quotas (both adjustable) raised so that no call of the slice is refused: a
    # deployment calling at this rate has raised them, and the bench measures the work per
    # call, not calls waiting for a slot (the twin's default day and docs/TWIN.md do).
    connect: ConnectQuotas = field(
        default_factory=lambda: ConnectQuotas(
            concurrent_calls=10_000, api_rate=1000, api_burst=1000
        )
    )
    # ... and the deployment's own pacing and dialler concurrency set to match (their
    # maxima): at the defaults (6 calls a minute, 5 diallers) the slice's engagements would
    # wait on the queue for half an hour, and the bench would count the receives and
    # visibility changes of that wait as work per engagement.
    config: Mapping[str, Any] = field(
        default_factory=lambda: {"calls_per_minute": 10_000, "max_concurrent_calls": 1000}
    )

    @property
    def records(self) -> int:
        """Records of the slice: full batches on every shard of a new on-demand stream."""
        return self.batches_per_shard * self.batch_size * len(ON_DEMAND_SHARDS)

    @property
    def busy_share(self) -> float:
        """Share of a day's sessions that fall in the busy hour."""
        return HOURLY_ACTIVITY[self.busy_hour] / sum(HOURLY_ACTIVITY)

    @property
    def subscribers_per_shard(self) -> int:
        """Subscribers whose busy hour sends one shard ``batch_size`` records a second."""
        per_hour = self.records_per_subscriber_day * self.busy_share
        return round(self.batch_size * 3600 / per_hour)


@dataclass
class DenseSlice:
    """The probe records of the slice and the items that stand for the earlier days."""

    records: list[dict[str, Any]]
    counters: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    # Size each profile would have if it kept its recent incidents in full (the reference
    # pattern's subscriber item, and this repo's before the profile held only ids).
    history_profile_bytes: list[int] = field(default_factory=list)
    start: datetime = DEFAULT_DAY


# --- the slice ---------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _probe(
    moment: datetime, phone: str, cell: str, kpi: str, failed: bool, device: str, vendor: str
) -> dict[str, Any]:
    """A probe record in the section 4 format."""
    return {
        "timestamp": _stamp(moment),
        "phone_number": phone,
        "cell": cell,
        "event_type": kpi,
        "success": not failed,
        "device": device,
        "vendor": vendor,
    }


class _City:
    """Cells with the default day's popularity, degraded cells among the busiest, devices."""

    def __init__(self, settings: DenseSettings, rng: random.Random) -> None:
        self.cells = [f"LDN-{index + 1:04d}" for index in range(settings.cells)]
        self.popularity = [rng.lognormvariate(0, 0.6) for _ in self.cells]
        self.cumulative = list(itertools.accumulate(self.popularity))
        popularity = dict(zip(self.cells, self.popularity, strict=True))
        busiest = sorted(self.cells, key=lambda cell: popularity[cell])
        count = max(1, round(settings.degraded_share * settings.cells))
        pool = busiest[-max(count, settings.cells // 10) :]
        self.failure = {
            cell: {kpi: rng.uniform(*DEGRADED_RANGE) for kpi in EVENT_TYPES}
            for cell in rng.sample(pool, count)
        }
        small = [name for name, share in DEVICES.items() if share <= 8]
        self.bad_device = rng.choice(small)
        self.vendor = {
            cell: VENDORS[i * len(VENDORS) // len(self.cells)] for i, cell in enumerate(self.cells)
        }

    def p_fail(self, cell: str, device: str, kpi: str) -> float:
        return max(
            HEALTHY_FAILURE[kpi],
            self.failure.get(cell, {}).get(kpi, 0.0),
            DEGRADED_DEVICE_FAILURE.get(kpi, 0.0) if device == self.bad_device else 0.0,
        )


def _burst_sessions(
    rng: random.Random, start: datetime, end: datetime, cell: str, device: str, city: _City
) -> list[tuple[datetime, str, bool]]:
    """A burst: sessions of one KPI group within ``BURST_MINUTES`` of ``start``, before ``end``."""
    kpis = VOICE if rng.random() < 0.5 else DATA
    sessions = []
    for _ in range(rng.randint(*SESSIONS_PER_BURST)):
        moment = start + timedelta(seconds=rng.randrange(BURST_MINUTES * 60))
        kpi = rng.choice(kpis)
        if moment < end:
            sessions.append((moment, kpi, rng.random() < city.p_fail(cell, device, kpi)))
    return sessions


def _earlier_sessions(
    rng: random.Random,
    settings: DenseSettings,
    now: datetime,
    hours: int,
    cell: str,
    device: str,
    city: _City,
) -> list[tuple[datetime, str, bool]]:
    """The subscriber's sessions of the ``hours`` before ``now`` (bursts by hourly activity)."""
    bursts_per_day = settings.records_per_subscriber_day / (sum(SESSIONS_PER_BURST) / 2)
    total = sum(HOURLY_ACTIVITY)
    sessions = []
    for back in range(hours + 1):
        hour_start = (now - timedelta(hours=back)).replace(minute=0, second=0, microsecond=0)
        rate = bursts_per_day * HOURLY_ACTIVITY[hour_start.hour] / total
        for _ in range(_poisson(rng, rate)):
            start = hour_start + timedelta(seconds=rng.randrange(3600))
            sessions += _burst_sessions(rng, start, now, cell, device, city)
    return sessions


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: Knuth's method for small means, the normal approximation above 30."""
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _counter_items(
    phone: str,
    sessions: list[tuple[datetime, str, bool]],
    shard_id: str,
    now: datetime,
    windows: Mapping[str, int],
) -> list[dict[str, Any]]:
    """The counter items the earlier sessions left, laid out as ingest lays them out."""
    items = []
    for kpi in EVENT_TYPES:
        # Expired buckets stay until more than STALE_BUCKETS_BEFORE_PRUNE pile up: keep half
        # that many, what a pruned item carries on average.
        stale = bucket_seconds(windows[kpi]) * STALE_BUCKETS_BEFORE_PRUNE // 2
        oldest = now - timedelta(minutes=windows[kpi], seconds=stale)
        kept = [Session(m, failed) for m, k, failed in sessions if k == kpi and m >= oldest]
        if not kept:
            continue
        item: dict[str, Any] = {
            "PhoneNumber": {"S": phone},
            "Kpi": {"S": kpi},
            f"Seq_{shard_id}": {"S": padded("0")},
            "ExpiresAt": {"N": str(int((now + timedelta(days=8)).timestamp()))},
        }
        for start, counts in fold(kept, windows[kpi]).items():
            sessions_name, failures_name = attribute_names(start)
            item[sessions_name] = {"N": str(counts.sessions)}
            if counts.failures:
                item[failures_name] = {"N": str(counts.failures)}
        items.append(item)
    return items


HISTORY_DRAWN = 20


def _profile_item(
    rng: random.Random,
    phone: str,
    cell: str,
    device: str,
    vendor: str,
    earlier: int,
    now: datetime,
    cap: int,
    windows: Mapping[str, int],
) -> tuple[dict[str, Any], int] | None:
    """The profile ``earlier`` incidents of past days left, laid out as ingest writes it.

    ``feedback_loop.incidents.profile_update`` builds it: the last batch's incident as
    ``NewIncidents``, the short ids of the ``cap`` most recent ones as ``SeenIncidents``.
    Also returns the size the item would have with all of them in full. None when the
    subscriber never had an incident.
    """
    if earlier == 0:
        return None
    incidents = []
    # As many as the profile ever kept (20 before the item-size cuts), whatever ``cap`` is
    # now, so the slice's random draws, hence its records, do not depend on it.
    for index in range(min(earlier, HISTORY_DRAWN)):
        kpi = rng.choice(EVENT_TYPES)
        moment = _stamp(now - timedelta(seconds=rng.randrange(3600, 30 * 86400)))
        sessions = rng.randint(1, 12)
        failures = rng.randint(1, sessions)
        record_id = f"shardId-000000000000:{index:056d}"
        incidents.append(
            Incident(
                incident_id=incident_id(phone, kpi, moment, record_id),
                phone_number=phone,
                event_type=kpi,
                timestamp=moment,
                cell=cell,
                device=device,
                vendor=vendor,
                failure_rate=round(failures / sessions, 6),
                sessions=sessions,
                failures=failures,
                window_minutes=windows[kpi],
                record_id=record_id,
            )
        )
    incidents.sort(key=lambda incident: incident.timestamp)
    last = ProbeRecord(
        phone_number=phone,
        event_type=incidents[-1].event_type,
        timestamp=incidents[-1].timestamp,
        cell=cell,
        success=False,
        device=device,
        vendor=vendor,
    )
    earlier_batches = profile_update(phone, [], incidents[:-1], last, cap)
    seen = earlier_batches.seen_incidents if earlier_batches else []
    update = profile_update(phone, seen, incidents[-1:], last, cap)
    assert update is not None  # a fresh incident is always new
    item = {
        PHONE_NUMBER: phone,
        NEW_INCIDENTS: update.new_incidents,
        SEEN_INCIDENTS: update.seen_incidents,
        "Cell": cell,
        "Device": device,
        "Vendor": vendor,
        INCIDENTS_VERSION: len(incidents),
        # Last touched by something the stream filter ignores, so seeding wakes nobody.
        LAST_CHANGE: str(LastChange.FEEDBACK),
    }
    in_full = {**item, NEW_INCIDENTS: [incident_item(incident) for incident in incidents]}
    return _low_level(item), item_size(_low_level(in_full))


def _low_level(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB JSON; numbers are decimals, so floats go through JSON into Decimal."""
    exact = json.loads(json.dumps(item), parse_float=Decimal)
    return {name: _serializer.serialize(value) for name, value in exact.items()}


def shard_of(partition_key: str, shards: Sequence[tuple[str, int, int]]) -> str:
    """The shard whose hash key range holds ``partition_key`` (Kinesis hashes it with MD5)."""
    value = int(hashlib.md5(partition_key.encode("utf-8")).hexdigest(), 16)
    return next(shard for shard, low, high in shards if low <= value <= high)


def dense_slice(
    settings: DenseSettings, shards: Sequence[tuple[str, int, int]] = ON_DEMAND_SHARDS
) -> DenseSlice:
    """The slice's probe records and seeded items, deterministic for ``settings.seed``.

    Records are spread over ``shards`` by partition key (the phone number): in each
    second of the slice every shard receives exactly one full batch (``batch_size``
    records), so the twin's Kinesis poller delivers full batches and no leftovers.
    """
    rng = random.Random(settings.seed)
    city = _City(settings, rng)
    policy = load_policy({})
    windows = policy.windows_minutes
    start = DEFAULT_DAY + timedelta(hours=settings.busy_hour, minutes=30)
    devices, shares = list(DEVICES), list(DEVICES.values())
    lookback = max(windows.values()) // 60 + 2
    result = DenseSlice(records=[], start=start)
    per_second = settings.batch_size * len(shards)
    candidates = (f"+{FIRST_PHONE + n}" for n in itertools.count())
    quota: dict[str, int] = {}
    for index in range(settings.records):
        if index % per_second == 0:
            quota = dict.fromkeys((shard for shard, _, _ in shards), settings.batch_size)
        phone = next(p for p in candidates if quota[shard_of(p, shards)] > 0)
        quota[shard_of(phone, shards)] -= 1
        cell = rng.choices(city.cells, cum_weights=city.cumulative)[0]
        device = rng.choices(devices, weights=shares)[0]
        vendor = city.vendor[cell]
        moment = start + timedelta(seconds=index / per_second)
        # The record is one session of a burst that began up to BURST_MINUTES earlier.
        burst = _burst_sessions(
            rng, moment - timedelta(minutes=BURST_MINUTES), moment, cell, device, city
        )
        earlier = burst + _earlier_sessions(rng, settings, moment, lookback, cell, device, city)
        kpi = burst[-1][1] if burst else rng.choice(EVENT_TYPES)
        failed = rng.random() < city.p_fail(cell, device, kpi)
        result.records.append(_probe(moment, phone, cell, kpi, failed, device, vendor))
        result.counters += _counter_items(phone, earlier, shard_of(phone, shards), moment, windows)
        daily_failures = (
            sum(city.p_fail(cell, device, k) for k in EVENT_TYPES)
            * settings.records_per_subscriber_day
            / len(EVENT_TYPES)
        )
        profile = _profile_item(
            rng,
            phone,
            cell,
            device,
            vendor,
            _poisson(rng, daily_failures * settings.history_days),
            moment,
            policy.max_recent_incidents,
            windows,
        )
        if profile is not None:
            result.profiles.append(profile[0])
            result.history_profile_bytes.append(profile[1])
    return result


def dense_day(
    subscribers: int = 400, records_per_subscriber_day: int = 50, seed: int = 7
) -> Scenario:
    """A day of probe records at ``records_per_subscriber_day``, for measuring the funnel.

    The default day has about 7 records per subscriber; how many subscribers cross a
    threshold with enough sessions depends on that density, so the cost model's call
    rates are measured on a twin run of this day instead (``make cost-inputs``). Same
    city model as the bench (a tenth as many cells as subscribers, 2.5% degraded among
    the busiest, one device with a data defect); everyone stays on their home cell.
    """
    settings = DenseSettings(
        records_per_subscriber_day=records_per_subscriber_day,
        cells=max(1, subscribers // 10),
        seed=seed,
    )
    rng = random.Random(seed)
    city = _City(settings, rng)
    end = DEFAULT_DAY + timedelta(hours=23, minutes=59, seconds=59)
    people, records = [], []
    for n in range(subscribers):
        phone = f"+{FIRST_PHONE + n}"
        cell = rng.choices(city.cells, cum_weights=city.cumulative)[0]
        device = rng.choices(list(DEVICES), weights=list(DEVICES.values()))[0]
        people.append(Subscriber(phone, cell, device, city.vendor[cell]))
        for moment, kpi, failed in _earlier_sessions(rng, settings, end, 23, cell, device, city):
            records.append(_probe(moment, phone, cell, kpi, failed, device, city.vendor[cell]))
    records.sort(key=lambda record: record["timestamp"])
    return Scenario(
        probe_events=records,
        subscribers=people,
        description=(
            f"Dense day {DEFAULT_DAY:%Y-%m-%d}: {subscribers} subscribers, "
            f"{records_per_subscriber_day} records per subscriber-day, "
            f"{settings.cells} cells, seed {seed}"
        ),
    )


# --- the run -----------------------------------------------------------------------------------


@contextmanager
def _moto() -> Iterator[None]:
    from moto import mock_aws

    from simulator.provision import REGION

    fake = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    with mock.patch.dict(os.environ, fake), mock_aws():
        yield


def _seed(table_name: str, items: list[dict[str, Any]]) -> None:
    """Put items straight into moto's table, with its stream detached.

    They stand for earlier days: on AWS their stream records are long gone, and reading
    them back through moto would only cost the bench minutes of serialisation.
    """
    table = moto_table(table_name)
    stream, table.stream_shard = table.stream_shard, None
    try:
        for item in items:
            table.put_item(item)
    finally:
        table.stream_shard = stream


def _check_shards(twin: Any) -> None:
    """The slice was laid out for ``ON_DEMAND_SHARDS``; the provisioned stream must match."""
    stream = twin.producer.poller.stream_name
    listed = twin.provisioner.client("kinesis").list_shards(StreamName=stream)["Shards"]
    shards = tuple(
        (
            s["ShardId"],
            int(s["HashKeyRange"]["StartingHashKey"]),
            int(s["HashKeyRange"]["EndingHashKey"]),
        )
        for s in listed
    )
    if shards != ON_DEMAND_SHARDS:
        raise RuntimeError(f"the probe stream has shards {shards}, not {ON_DEMAND_SHARDS}")


def run_dense(
    settings: DenseSettings = DenseSettings(),
    out_dir: Path | str | None = None,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Run the slice through the twin's wiring, print the figures and return them."""

    from simulator.template import synthesize
    from simulator.twin import Progress, Twin

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dense-bench-") as scratch:
        work = Path(scratch)
        (work / "logs").mkdir()
        with _moto():
            template = synthesize(settings.config)
            slice_ = dense_slice(settings)
            scenario = Scenario(probe_events=list(slice_.records), connect=settings.connect)
            twin = Twin(scenario, template, work, settings.seed)
            _check_shards(twin)
            _seed(COUNTERS_TABLE, slice_.counters)
            _seed(SUBSCRIBER_TABLE, slice_.profiles)
            meter = Meter()
            meter.install(default_session().events)
            meter.time_invocations(twin.runtime)
            replay_started = time.monotonic()
            try:
                twin.replay(Progress(len(slice_.records), "dense", enabled=False))
            finally:
                twin.close()
            replay_seconds = time.monotonic() - replay_started
            lake = twin.copy_lake()
            summary = twin.summary(lake, time.monotonic() - started)
            memory = {name: spec.memory for name, spec in twin.estate.functions.items()}
            batching = {
                spec.function_name: (spec.batch_size, spec.window_seconds)
                for spec in twin.estate.event_sources
            }
            (parallel_batches,) = [
                s.parallelization_factor
                for s in twin.estate.event_sources
                if s.function_name == "Ingest_probe_events"
            ]
        objects = Counter(
            p.relative_to(work / "lake").parts[0] for p in (work / "lake").rglob("*.gz")
        )
    figures = _figures(settings, slice_, meter, summary, lake, objects, memory, parallel_batches)
    figures["lake_records_per_object_steady"] = steady_records_per_object(
        settings, summary, lake, batching
    )
    figures["wall_seconds"] = {
        "replay": round(replay_seconds, 1),
        "total": round(time.monotonic() - started, 1),
    }
    _print(figures, stream or sys.stdout)
    if out_dir is not None:
        target = Path(out_dir)
        target.mkdir(parents=True, exist_ok=True)
        (target / "dense.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures


def steady_records_per_object(
    settings: DenseSettings,
    summary: Mapping[str, Any],
    lake: Mapping[str, list[dict[str, Any]]],
    batching: Mapping[str, tuple[int, int]],
) -> dict[str, float]:
    """Records per lake object when the slice's density lasts (every second like the slice's).

    The slice is ``batches_per_shard`` seconds of traffic, so the steps that follow it
    (contacts minutes later, their answers) trickle into the writers alone, and the
    measured records per object understate a busy hour. Lasting load brings each writer's
    source the slice's messages every ``batches_per_shard`` seconds; a batch closes at its
    window or its batch size (the template's), whichever comes first, and holds that share
    of each prefix's records. A stream source counts per shard (the twin's table stream
    has one; a production table's stream has one per partition).
    """
    sources = summary["event_sources"]
    seconds = settings.batches_per_shard
    steady = {}
    for prefix, records in sorted(lake.items()):
        writer = LAKE_WRITERS.get(prefix, "")
        delivered = sources.get(writer, {}).get("records", 0)
        if not records or not delivered or writer not in batching:
            continue
        batch, window = batching[writer]
        share = min(max(window, 1) / seconds, batch / delivered)
        steady[prefix] = round(len(records) * share, 1)
    return steady


def billed_ms(compute_ms: float, memory_mb: int, calls: Mapping[str, float]) -> float:
    """Duration of one invocation in the bench's model.

    Compute measured here, scaled to the CPU share Lambda gives ``memory_mb``, plus each
    AWS call made one after another at ``CALL_LATENCY_MS`` of its service.
    """
    scale = max(1.0, MB_PER_VCPU / memory_mb)
    waits = sum(n * CALL_LATENCY_MS[op.split(".", 1)[0]] for op, n in calls.items())
    return compute_ms * scale + waits


def _per(value: float, count: float) -> float:
    return value / count if count else 0.0


def _figures(
    settings: DenseSettings,
    slice_: DenseSlice,
    meter: Meter,
    summary: Mapping[str, Any],
    lake: Mapping[str, list[dict[str, Any]]],
    objects: Mapping[str, int],
    memory: Mapping[str, int],
    parallel_batches: int = 1,
) -> dict[str, Any]:
    records = len(slice_.records)
    drivers = {
        "records": records,
        "incidents": summary["incidents"],
        "decisions": sum(summary["engagement_decisions"].values()),
        "engagements": summary["engagements"],
        "answered_calls": summary["calls"]["answered"],
        "feedback_invocations": meter.invocations["Collect_feedback_from_Connect"],
    }
    merged: dict[str, TableUse] = defaultdict(TableUse)
    for (_function, table), use in meter.tables.items():
        total = merged[table]
        total.writes += use.writes
        total.write_units += use.write_units
        total.failed_conditions += use.failed_conditions
        total.reads += use.reads
        total.read_units += use.read_units
        total.written_bytes += use.written_bytes
    tables = {
        name: {
            "writes_per_record": round(_per(use.writes, records), 4),
            "write_units_per_record": round(_per(use.write_units, records), 4),
            "units_per_write": round(_per(use.write_units, use.writes), 3),
            "mean_item_bytes": round(_per(sum(use.written_bytes), len(use.written_bytes))),
            "max_item_bytes": max(use.written_bytes, default=0),
            "failed_conditions": use.failed_conditions,
            "reads_per_record": round(_per(use.reads, records), 4),
            "read_units_per_record": round(_per(use.read_units, records), 4),
        }
        for name, use in sorted(merged.items())
    }
    by_function: dict[str, dict[str, Any]] = defaultdict(dict)
    for (function, table), use in sorted(meter.tables.items()):
        by_function[function][table] = {
            "writes": use.writes,
            "write_units": use.write_units,
            "mean_written_bytes": round(_per(sum(use.written_bytes), len(use.written_bytes))),
            "reads": use.reads,
            "read_units": use.read_units,
        }
    batches: dict[str, dict[str, Any]] = defaultdict(dict)
    for (function, queue), calls in sorted(meter.batch_calls.items()):
        batches[function][queue] = {
            "calls": calls,
            "entries": meter.batch_entries[(function, queue)],
            "bytes": meter.batch_bytes[(function, queue)],
        }
    fill: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (_function, queue), calls in meter.batch_calls.items():
        fill[queue][0] += meter.batch_entries[(_function, queue)]
        fill[queue][1] += calls
    sources = summary["event_sources"]
    functions: dict[str, dict[str, Any]] = {}
    for name in sorted(meter.invocations):
        invocations = meter.invocations[name]
        per_call = {op: round(n / invocations, 4) for op, n in sorted(meter.calls[name].items())}
        spent = meter.compute_seconds[name]
        warm = spent[1:] or spent
        compute = 1000 * sum(warm) / len(warm)
        functions[name] = {
            "invocations": invocations,
            "records_per_invocation": round(
                _per(sources.get(name, {}).get("records", invocations), invocations), 2
            ),
            "calls_per_invocation": per_call,
            "compute_ms_per_invocation": round(compute, 2),
            "first_invocation_compute_ms": round(1000 * spent[0], 2),
            "memory_mb": memory[name],
            "billed_ms_per_invocation": round(billed_ms(compute, memory[name], per_call), 1),
        }
    ingest = functions["Ingest_probe_events"]
    record_bytes = [
        len(json.dumps(r, separators=(",", ":")).encode()) + len(r["phone_number"])
        for r in slice_.records
    ]
    return {
        "settings": asdict(settings) | {"subscribers_per_shard": settings.subscribers_per_shard},
        "drivers": drivers,
        "seeded": {
            "counter_items_per_subscriber": round(len(slice_.counters) / records, 3),
            "profiles_per_subscriber": round(len(slice_.profiles) / records, 3),
            "full_history_profile_bytes": round(
                _per(sum(slice_.history_profile_bytes), len(slice_.history_profile_bytes))
            ),
        },
        "health": {
            "function_errors": sum(s["function_errors"] for s in sources.values()),
            "retries": sum(s["retries"] for s in sources.values()),
            "bisections": sum(s["bisections"] for s in sources.values()),
            "dead_lettered": summary["dead_lettered"],
            "connect_refusals": summary["connect_refusals"],
        },
        "dynamodb": {
            "writes_per_record": round(sum(t["writes_per_record"] for t in tables.values()), 4),
            "write_units_per_record": round(
                sum(t["write_units_per_record"] for t in tables.values()), 4
            ),
            "tables": tables,
            "by_function": dict(by_function),
        },
        "functions": functions,
        "requests_per_engagement": {
            name: round(_per(sum(meter.calls[name].values()), drivers["engagements"]), 2)
            for name in ENGAGEMENT_PATH
        },
        "lake_records_per_object": {
            prefix: round(_per(len(lake.get(prefix, [])), count), 1)
            for prefix, count in sorted(objects.items())
        },
        "send_message_batch_fill": {
            queue: round(_per(entries, calls), 2)
            for queue, (entries, calls) in sorted(fill.items())
        },
        "sqs_batches": dict(batches),
        "kinesis": {
            "record_bytes": round(_per(sum(record_bytes), records)),
            "billed_kib_per_record": round(
                _per(sum(kinesis_billed_kib(b) for b in record_bytes), records), 3
            ),
        },
        "ingest_throughput": {
            "records_per_batch": ingest["records_per_invocation"],
            "aws_calls_per_batch": round(sum(ingest["calls_per_invocation"].values()), 1),
            "batch_ms": ingest["billed_ms_per_invocation"],
            "parallel_batches": parallel_batches,
            # Lambda keeps each partition key's records in order across the parallel batches:
            # at production density a shard's records spread over ~500,000 subscribers, so
            # every batch in flight is full and the shard's rate is the batches' sum.
            "records_per_second_per_shard": round(
                1000
                * parallel_batches
                * _per(ingest["records_per_invocation"], ingest["billed_ms_per_invocation"])
            ),
            "call_latency_ms": CALL_LATENCY_MS,
        },
    }


def _print(figures: Mapping[str, Any], stream: TextIO) -> None:
    settings = figures["settings"]
    dynamo = figures["dynamodb"]
    ingest = figures["ingest_throughput"]
    drivers = figures["drivers"]
    lines = [
        f"Dense-load bench: {drivers['records']} probe records of the busy hour, each shard at "
        f"{settings['batch_size']} records/s (~{settings['subscribers_per_shard']:,} subscribers "
        f"per shard, {settings['records_per_subscriber_day']} records per subscriber-day, "
        f"{settings['history_days']} days of history), seed {settings['seed']}",
        f"  {drivers['incidents']} incidents, {drivers['decisions']} decisions, "
        f"{drivers['engagements']} engagements, {drivers['answered_calls']} answered calls; "
        f"replay {figures['wall_seconds']['replay']} s",
        "",
        f"DynamoDB per probe record: {dynamo['writes_per_record']:.3f} writes, "
        f"{dynamo['write_units_per_record']:.3f} write units",
    ]
    for name, table in dynamo["tables"].items():
        lines.append(
            f"  {name:<22} {table['writes_per_record']:.3f} writes "
            f"x {table['units_per_write']:.2f} WCU = "
            f"{table['write_units_per_record']:.3f} WCU/record; "
            f"item {table['mean_item_bytes']} B mean, {table['max_item_bytes']} B max; "
            f"{table['read_units_per_record']:.3f} RCU/record"
        )
    lines += ["", "Requests per engagement (all AWS calls of the function / engagements)"]
    lines += [f"  {name:<32} {n:8.2f}" for name, n in figures["requests_per_engagement"].items()]
    lines += ["", "Lake records per object"]
    lines += [
        f"  {prefix:<16} {n:8.1f}" for prefix, n in figures["lake_records_per_object"].items()
    ]
    steady = figures.get("lake_records_per_object_steady", {})
    if steady:
        lines += [
            "",
            "Lake records per object if this density lasts (the template's batch size and "
            "window; stream sources per shard)",
        ]
        lines += [f"  {prefix:<16} {n:8.1f}" for prefix, n in steady.items()]
    lines += ["", "SendMessageBatch fill (entries per call, of 10)"]
    lines += [f"  {queue:<32} {n:6.2f}" for queue, n in figures["send_message_batch_fill"].items()]
    lines += [
        "",
        f"Kinesis: {figures['kinesis']['record_bytes']} B per record, billed as "
        f"{figures['kinesis']['billed_kib_per_record']:.2f} KiB (on-demand rounds each record up)",
        f"Ingest per shard (bench model: {ingest['parallel_batches']} batches in flight "
        f"(ParallelizationFactor), each batch's calls in sequence at "
        f"{', '.join(f'{s} {ms:g} ms' for s, ms in ingest['call_latency_ms'].items())}): "
        f"{ingest['records_per_batch']:.0f} records, {ingest['aws_calls_per_batch']:.0f} calls, "
        f"{ingest['batch_ms']:.0f} ms per batch x {ingest['parallel_batches']} = "
        f"{ingest['records_per_second_per_shard']} records/s",
        "",
        "Per function: invocations, records per invocation, compute ms (CPU here, warm), "
        "billed ms (model)",
    ]
    for name, f in figures["functions"].items():
        lines.append(
            f"  {name:<32} {f['invocations']:6d} {f['records_per_invocation']:8.1f} "
            f"{f['compute_ms_per_invocation']:9.1f} {f['billed_ms_per_invocation']:9.1f}"
        )
    stream.write("\n".join(lines) + "\n")


# --- command line ------------------------------------------------------------------------------


def add_arguments(parser: Any) -> None:
    """``bench`` options of the dense-load bench (``python -m simulator bench --dense``)."""
    parser.add_argument(
        "--dense", action="store_true", help="run the dense-load bench instead of the default day"
    )
    parser.add_argument(
        "--batches-per-shard",
        type=int,
        default=DenseSettings.batches_per_shard,
        help="full Kinesis batches per shard in the dense slice",
    )
    parser.add_argument("--out", type=Path, help="with --dense: write DIR/dense.json")
    parser.add_argument(
        "--write-day",
        type=Path,
        metavar="FILE",
        help="write a scenario of one day at --records-per-subscriber-day to FILE and exit",
    )
    parser.add_argument("--subscribers", type=int, default=400, help="with --write-day")
    parser.add_argument(
        "--records-per-subscriber-day", type=int, default=50, help="with --write-day or --dense"
    )


def run_bench_command(args: Any) -> int:
    """``bench --dense`` or ``bench --write-day FILE``; returns the exit code."""
    if args.write_day is not None:
        scenario = dense_day(args.subscribers, args.records_per_subscriber_day, args.seed)
        args.write_day.parent.mkdir(parents=True, exist_ok=True)
        args.write_day.write_text(json.dumps(scenario.to_dict()) + "\n", encoding="utf-8")
        print(f"{scenario.description}: {len(scenario.probe_events)} records -> {args.write_day}")
        return 0
    if args.batches_per_shard < 1:
        print("error: --batches-per-shard must be at least 1", file=sys.stderr)
        return 2
    settings = DenseSettings(
        batches_per_shard=args.batches_per_shard,
        records_per_subscriber_day=args.records_per_subscriber_day,
        seed=args.seed,
    )
    run_dense(settings, args.out)
    return 0
