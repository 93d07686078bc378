"""The monthly bill at a given size: volumes, then usage per service, then priced lines.

Three steps, each a plain function of plain data:

1. :func:`daily_volumes`: probe records, rejected records, incidents, decisions, calls
   and how each call goes, per day, for ``subscribers`` at ``records_per_subscriber_day``,
   from the measured funnel (``cost_inputs.json`` "day") and the contact policy
   (:func:`simulator.cost.calls.calls_per_day`).
2. A :class:`Profile` says what each function does per unit of the volume that drives
   it: invocations, DynamoDB units per table, SQS requests, S3 PUTs, billed duration.
   :func:`design_profile` is the deployed code as the dense-load bench measured it;
   :func:`reference_profile` is the AWS reference design's per-message pattern (below).
3. :func:`usage` turns volumes and a profile into monthly quantities per service and
   item, and :func:`price` multiplies them by the dated price table.

The reference pattern, as modelled (the reference design's code is not in this repo;
this is the pattern its one-message-at-a-time handlers follow): one subscriber item
holding the counters and the recent incidents, read and rewritten for every probe record
(so every record also wakes the stream consumer, unfiltered); one ``SendMessage`` per
incident and per decision (two for an engagement: update and trigger queues); one S3
object per lake record; no idempotency table; the feedback function reads the
subscriber, updates it and writes two objects; no probe archive (so no what-if), and one
consumer of the stream. Everything else (stream, call, logs, analytics) is priced the
same way for both.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from simulator.contact_centre import NO_INPUT, CallTiming
from simulator.cost.calls import (
    FLOW,
    CallKind,
    CallsPerDay,
    Candidate,
    ContactPolicy,
    call_timing,
    calls_per_day,
    rating_changes,
)
from simulator.cost.prices import PriceTable
from simulator.dense import billed_ms
from simulator.units import STORAGE_OVERHEAD_BYTES, read_units, write_units

HOURS_PER_MONTH = 730
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
GIB = 1024**3
MIB = 1024**2
# Athena bills at least 10 MB per query.
ATHENA_MIN_SCAN_BYTES = 10 * MIB
SQS_CHUNK_BYTES = 64 * 1024
# Firehose bills ingestion and format conversion per record rounded up to 5 KB.
FIREHOSE_INCREMENT_BYTES = 5 * 1024
# The volume each function's work grows with.
DRIVER_OF = {
    "Ingest_probe_events": "records",
    "write_incident_to_S3": "incidents",
    "Read_after_incident": "incidents",
    "write_engagement_to_S3": "decisions",
    "Trigger_Connect": "engagements",
    "Collect_feedback_from_Connect": "feedback_invocations",
    # woken by the profile's stream once per recorded answer (LastChange = feedback)
    "write_feedback_to_S3": "feedback_invocations",
    # Firehose's transform of the probe archive: one invocation per delivered buffer
    "Archive_probe_records": "records",
}
# Lake prefix -> the volume of records written under it.
LAKE_DRIVERS = {
    "incidents": "incidents",
    "engagement": "decisions",
    "feedback": "feedback_invocations",
    "sentiment": "ratings",
    "rejected": "rejected",
}
# Tables sql/*.sql read, for the days of the query's period only (``dt BETWEEN ? AND ?`` is
# their one predicate on the partition column). The Athena line prices every query as
# reading all four, each once; ``dashboard_query`` sizes what each query reads.
ANALYTICS_PREFIXES = ("incidents", "engagement", "feedback", "sentiment")


@dataclass(frozen=True)
class Assumptions:
    """Figures the model needs that no run can measure; each is stated with the estimate."""

    # How long a call's parts take: the twin's contact centre model (docs/TWIN.md).
    call_timing: CallTiming = field(default_factory=CallTiming)
    # Of the calls nobody picks up, the share a voicemail answers: the flow then plays to
    # the end with no input and is billed like any connected call.
    voicemail_share: float = 0.5
    # A mobile operator calls its subscribers on their mobile numbers.
    mobile_share: float = 1.0
    subscribers_per_cell: int = 500
    # Per invocation: Lambda's START/END/REPORT lines and one Powertools EMF metrics blob.
    platform_log_bytes: int = 350
    emf_log_bytes: int = 400
    log_stored_ratio: float = 0.15  # CloudWatch bills stored logs compressed
    # Metric names x dimension values the handlers emit (ProbeRecords, Incidents, 10
    # RejectedRecords reasons, 3 engagement, 4 lake-writer, 3 call, 6 feedback metrics).
    custom_metrics: int = 28
    cold_start_share: float = 0.001
    # Named queries (or QuickSight direct queries) run per day, each over the dashboard's
    # default period: the last seven days (stacks/analytics.py, ROLLING_DEFAULTS). The
    # dashboard's seven visuals make 24 about three openings a day.
    athena_queries_per_day: int = 24
    query_period_days: int = 7
    kms_requests_per_resource_hour: float = 12.0
    access_log_bytes_per_request: int = 400
    # Lambda's SQS poller: ReceiveMessage and DeleteMessageBatch take 10 messages each;
    # five pollers long-poll each queue (20 s) even when it is empty.
    sqs_reads_per_message: float = 0.2
    sqs_idle_polls_per_mapping_minute: float = 15.0
    xray_reservoir_per_second: float = 1.0
    xray_rate: float = 0.05
    # A probe archive row in Snappy Parquet, in objects of a busy day's size: measured over
    # 1,011,039 rows (docs/DEPLOY.md, "Probe archive"); the twin's day writes objects too
    # small to size a row by.
    archive_parquet_bytes_per_row: float = 30.0


@dataclass(frozen=True)
class Volumes:
    """What happens per day."""

    records: float
    rejected: float
    incidents: float
    decisions: float
    engagements: float
    ratings: float
    feedback_invocations: float
    # every call kind billed (answered calls, voicemail), and every call placed
    calls: tuple[tuple[CallKind, float], ...]
    call_attempts: float = 0.0

    def of(self, driver: str) -> float:
        """The volume named ``driver``."""
        return float(getattr(self, driver))


@dataclass(frozen=True)
class Demand:
    """``per_unit`` of ``kind`` (at ``key``) that ``function`` makes per unit of ``driver``."""

    function: str
    driver: str
    # invocations | writes | write_units | read_units | sqs_requests | sqs_messages | s3_puts
    kind: str
    key: str
    per_unit: float


@dataclass(frozen=True)
class Profile:
    """What a design does per unit of volume, and the sizes its storage grows with."""

    name: str
    demands: tuple[Demand, ...]
    billed_ms: Mapping[str, float]
    memory_mb: Mapping[str, int]
    lake_records_per_object: Mapping[str, float]
    lake_bytes_per_record: Mapping[str, float]
    table_item_bytes: Mapping[str, float]  # mean item size, per subscriber-item
    items_per_subscriber: Mapping[str, float]
    # functions reading every probe record off the stream (the ingest handler, Firehose)
    stream_consumers: int = 1
    archives_probes: bool = False


@dataclass(frozen=True)
class Usage:
    """A monthly quantity of one billed item."""

    service: str
    item: str
    quantity: float
    unit: str
    price_id: str


@dataclass(frozen=True)
class Line:
    """A priced line of the bill."""

    service: str
    item: str
    monthly_usd: float
    quantity: float
    unit: str
    price_id: str

    def to_json(self) -> dict[str, Any]:
        """The ``cost.json`` form."""
        return {
            "service": self.service,
            "item": self.item,
            "monthly_usd": round(self.monthly_usd, 2),
            "quantity": round(self.quantity, 3),
            "unit": self.unit,
            "price_id": self.price_id,
        }


# --- 1. volumes -----------------------------------------------------------------------------


def candidates_of(day: Mapping[str, Any]) -> list[Candidate]:
    """The measured day's candidate engagements."""
    return [Candidate(int(s), str(c), str(k), int(m)) for s, c, k, m in day["candidates"]]


def call_kinds(
    day: Mapping[str, Any],
    assumptions: Assumptions,
    flow: Mapping[str, Any],
    lambda_seconds: float = 0.0,
) -> list[tuple[CallKind, float]]:
    """Each kind of call with its share of calls; unanswered calls a voicemail takes are
    billed as a call that got no input. ``lambda_seconds``: one feedback invocation."""
    patterns = day["call_patterns"]
    total = sum(patterns.values())
    kinds = []

    def kind(answers: tuple[str, ...]) -> CallKind:
        return call_timing(answers, flow, assumptions.call_timing, lambda_seconds)

    voicemail = kind((NO_INPUT, NO_INPUT))
    for pattern, count in patterns.items():
        timing = kind(tuple(pattern.split(",")))
        if timing.connected_seconds == 0:
            kinds.append((voicemail, count / total * assumptions.voicemail_share))
        else:
            kinds.append((timing, count / total))
    return kinds


def daily_volumes(
    subscribers: float,
    records_per_subscriber_day: float,
    inputs: Mapping[str, Any],
    policy: ContactPolicy,
    assumptions: Assumptions,
    flow: Mapping[str, Any] | None = None,
) -> tuple[Volumes, CallsPerDay]:
    """Per-day volumes at this size, and what the policy made of the candidates."""
    day = inputs["day"]
    flow = flow if flow is not None else json.loads(FLOW.read_text(encoding="utf-8"))
    # Connect waits for the feedback function as long as it runs: the bench's billed duration.
    feedback = inputs["dense"]["functions"].get("Collect_feedback_from_Connect", {})
    kinds = call_kinds(day, assumptions, flow, feedback.get("billed_ms_per_invocation", 0) / 1000)
    rated_share = sum(share for timing, share in kinds if timing.rated)
    made = calls_per_day(
        candidates_of(day),
        day["subscribers"],
        day["days"],
        policy,
        cell_population=day["cell_population"],
        subscribers_per_cell=assumptions.subscribers_per_cell,
        ratings_per_call=rated_share,
        changes=rating_changes(day["call_patterns"], policy.rules.sentiment_alpha),
    )
    records = subscribers * records_per_subscriber_day
    rejected = records * day["rejected_share"]
    incidents = (records - rejected) * day["incidents_per_record"]
    engagements = made.per_subscriber_day * subscribers
    # an unanswered call is tried again (voice_attempts): calls per contacted episode, measured
    attempts = engagements * day["attempts_per_episode"]
    calls = tuple((timing, attempts * share) for timing, share in kinds)
    return (
        Volumes(
            records=records,
            rejected=rejected,
            incidents=incidents,
            decisions=incidents * day["decisions_per_incident"],
            engagements=engagements,
            ratings=sum(n for timing, n in calls if timing.rated),
            feedback_invocations=sum(n * timing.invocations for timing, n in calls),
            calls=calls,
            call_attempts=attempts,
        ),
        made,
    )


# --- 2. profiles ----------------------------------------------------------------------------


def design_profile(inputs: Mapping[str, Any]) -> Profile:
    """The deployed handlers at production density, as the dense-load bench measured them."""
    dense = inputs["dense"]
    drivers = dense["drivers"]
    demands: list[Demand] = []
    for function, figures in dense["functions"].items():
        if function not in DRIVER_OF:
            raise KeyError(f"the bench measured {function}: say in DRIVER_OF what drives it")
        driver = DRIVER_OF[function]
        units = drivers[driver]
        invocations = figures["invocations"]
        demands.append(Demand(function, driver, "invocations", "", invocations / units))
        demands.append(
            Demand(
                function,
                driver,
                "s3_puts",
                "",
                invocations * figures["calls_per_invocation"].get("s3.PutObject", 0) / units,
            )
        )
        for table, use in dense["dynamodb"]["by_function"].get(function, {}).items():
            demands.append(Demand(function, driver, "writes", table, use["writes"] / units))
            demands.append(
                Demand(function, driver, "write_units", table, use["write_units"] / units)
            )
            demands.append(Demand(function, driver, "read_units", table, use["read_units"] / units))
        for queue, sent in dense["sqs_batches"].get(function, {}).items():
            chunks = max(1, math.ceil(sent["bytes"] / sent["calls"] / SQS_CHUNK_BYTES))
            demands.append(
                Demand(function, driver, "sqs_requests", queue, sent["calls"] * chunks / units)
            )
            demands.append(Demand(function, driver, "sqs_messages", queue, sent["entries"] / units))
    # The slice has no malformed records: a batch's rejects share one object (when any).
    rejected_share = inputs["day"]["rejected_share"]
    batch = dense["functions"]["Ingest_probe_events"]["records_per_invocation"]
    rejects_per_object = max(1.0, rejected_share * batch)
    if rejected_share:
        demands.append(
            Demand("Ingest_probe_events", "rejected", "s3_puts", "", 1 / rejects_per_object)
        )
    by_function = dense["dynamodb"]["by_function"]
    return Profile(
        name="this design (measured)",
        demands=tuple(demands),
        billed_ms={f: v["billed_ms_per_invocation"] for f, v in dense["functions"].items()},
        memory_mb={f: v["memory_mb"] for f, v in dense["functions"].items()},
        # A day's traffic keeps the writers' batches full for hours, which the bench's
        # seconds-long slice cannot: its figure for lasting density where it has one.
        lake_records_per_object=dict(dense["lake_records_per_object"])
        | dict(dense.get("lake_records_per_object_steady", {}))
        | {"rejected": rejects_per_object},
        lake_bytes_per_record=dict(inputs["day"]["lake_bytes_per_record"]),
        table_item_bytes={
            "Subscriber_table": by_function["Ingest_probe_events"]["Subscriber_table"][
                "mean_written_bytes"
            ],
            "Subscriber_counters": by_function["Ingest_probe_events"]["Subscriber_counters"][
                "mean_written_bytes"
            ],
        },
        items_per_subscriber={
            "Subscriber_table": 1.0,
            "Subscriber_counters": dense["seeded"]["counter_items_per_subscriber"],
        },
        stream_consumers=inputs["template"]["kinesis_consumers"],
        archives_probes=bool(inputs["template"]["archive_buffer_seconds"]),
    )


def reference_profile(inputs: Mapping[str, Any], volumes: Volumes) -> Profile:
    """The reference design's per-message pattern (module docstring), at the same sizes."""
    dense = inputs["dense"]
    day = inputs["day"]
    # The subscriber item keeps the recent incidents in full, as the bench sized them.
    profile_bytes = dense["seeded"]["full_history_profile_bytes"]
    per_record = volumes.incidents / volumes.records if volumes.records else 0.0
    engaged = volumes.engagements / volumes.decisions if volumes.decisions else 0.0
    rated = volumes.ratings / volumes.feedback_invocations if volumes.feedback_invocations else 0.0
    wcu = write_units(profile_bytes, profile_bytes)
    rcu = read_units(profile_bytes, consistent=False)
    batch = {  # records per invocation: the stack's batch sizes, 10 for a default SQS trigger
        "Ingest_probe_events": 500,
        "write_incident_to_S3": 10,
        "Read_after_incident": 100,
        "write_engagement_to_S3": 10,
        "Trigger_Connect": 10,
        "Collect_feedback_from_Connect": 1,
    }
    # Calls per driver unit of each function, one request per message.
    calls: dict[str, dict[str, float]] = {
        "Ingest_probe_events": {
            "dynamodb.GetItem": 1,
            "dynamodb.PutItem": 1,
            "sqs.SendMessage": per_record,
        },
        "write_incident_to_S3": {"s3.PutObject": 1},
        "Read_after_incident": {"sqs.SendMessage": 1 + engaged},
        "write_engagement_to_S3": {"s3.PutObject": 1},
        "Trigger_Connect": {"connect.StartOutboundVoiceContact": 1},
        "Collect_feedback_from_Connect": {
            "dynamodb.GetItem": 1,
            "dynamodb.UpdateItem": 1,
            "s3.PutObject": 1 + rated,
        },
    }
    drivers = dict(DRIVER_OF, Read_after_incident="decisions")
    demands = [
        Demand("Ingest_probe_events", "records", "writes", "Subscriber_table", 1),
        Demand("Ingest_probe_events", "records", "write_units", "Subscriber_table", wcu),
        Demand("Ingest_probe_events", "records", "read_units", "Subscriber_table", rcu),
        Demand(
            "Ingest_probe_events", "records", "sqs_requests", "incident_update_queue", per_record
        ),
        Demand(
            "Ingest_probe_events", "records", "sqs_messages", "incident_update_queue", per_record
        ),
        # Every profile write is a stream record the unfiltered consumer is invoked for.
        Demand(
            "Read_after_incident", "records", "invocations", "", 1 / batch["Read_after_incident"]
        ),
        Demand("Read_after_incident", "decisions", "sqs_requests", "engagement_update_queue", 1),
        Demand("Read_after_incident", "decisions", "sqs_messages", "engagement_update_queue", 1),
        Demand(
            "Read_after_incident",
            "decisions",
            "sqs_requests",
            "engagement_trigger_queue.fifo",
            engaged,
        ),
        Demand(
            "Read_after_incident",
            "decisions",
            "sqs_messages",
            "engagement_trigger_queue.fifo",
            engaged,
        ),
        Demand(
            "Collect_feedback_from_Connect", "feedback_invocations", "writes", "Subscriber_table", 1
        ),
        Demand(
            "Collect_feedback_from_Connect",
            "feedback_invocations",
            "write_units",
            "Subscriber_table",
            wcu,
        ),
        Demand(
            "Collect_feedback_from_Connect",
            "feedback_invocations",
            "read_units",
            "Subscriber_table",
            rcu,
        ),
    ]
    for function, per_unit in calls.items():
        if function != "Read_after_incident":
            demands.append(
                Demand(function, drivers[function], "invocations", "", 1 / batch[function])
            )
        demands.append(
            Demand(function, drivers[function], "s3_puts", "", per_unit.get("s3.PutObject", 0))
        )
    # Same compute per record as measured; the waits are the reference's calls in sequence.
    # A batch of the unfiltered stream consumer holds few records it acts on.
    acting = {f: float(n) for f, n in batch.items()}
    acting["Read_after_incident"] *= volumes.decisions / volumes.records if volumes.records else 0.0
    billed: dict[str, float] = {}
    for function, figures in dense["functions"].items():
        if function not in calls:  # a function the pattern does not have
            continue
        per_invocation = {op: n * acting[function] for op, n in calls[function].items()}
        scale = acting[function] / max(figures["records_per_invocation"], 1e-9)
        billed[function] = billed_ms(
            figures["compute_ms_per_invocation"] * scale, figures["memory_mb"], per_invocation
        )
    return Profile(
        name="reference pattern (modelled)",
        demands=tuple(demands),
        billed_ms=billed,
        memory_mb={f: v["memory_mb"] for f, v in dense["functions"].items()},
        lake_records_per_object=dict.fromkeys(LAKE_DRIVERS, 1.0),
        lake_bytes_per_record=dict(day["lake_bytes_per_record_single"]),
        table_item_bytes={"Subscriber_table": profile_bytes},
        items_per_subscriber={"Subscriber_table": 1.0},
    )


# --- 3. usage and price ---------------------------------------------------------------------


def _sum(demands: Sequence[Demand], volumes: Volumes, kind: str) -> dict[tuple[str, str], float]:
    """Per day, by (function, key): ``kind`` summed over the demands."""
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for demand in demands:
        if demand.kind == kind:
            totals[(demand.function, demand.key)] += volumes.of(demand.driver) * demand.per_unit
    return dict(totals)


def _connect(volumes: Volumes, assumptions: Assumptions) -> list[Usage]:
    connected = [(t.connected_seconds, n) for t, n in volumes.calls if t.connected_seconds]
    usage_minutes = sum(n * max(seconds, 10.0) / 60 for seconds, n in connected)
    telephony = sum(n * max(seconds, 60.0) / 60 for seconds, n in connected)
    month = DAYS_PER_MONTH
    mobile = assumptions.mobile_share
    return [
        Usage("Amazon Connect", "outbound voice usage", usage_minutes * month, "minutes",
              "connect.voice_usage_per_minute"),
        Usage("Amazon Connect", "telephony to UK mobiles", telephony * mobile * month, "minutes",
              "connect.telephony_outbound_gb_mobile_per_minute"),
        Usage("Amazon Connect", "telephony to UK landlines", telephony * (1 - mobile) * month,
              "minutes", "connect.telephony_outbound_gb_landline_per_minute"),
        Usage("Amazon Connect", "caller-id number (DID)", month, "number-days",
              "connect.did_gb_per_day"),
    ]  # fmt: skip


def _lambda(
    profile: Profile, volumes: Volumes, assumptions: Assumptions
) -> tuple[list[Usage], dict[str, float]]:
    invocations = {f: n for (f, _), n in _sum(profile.demands, volumes, "invocations").items()}
    month = DAYS_PER_MONTH
    lines = [
        Usage("AWS Lambda", f"{function} compute",
              n * month * profile.billed_ms[function] / 1000 * profile.memory_mb[function] / 1024,
              "GB-seconds", "lambda.arm_gb_second")
        for function, n in sorted(invocations.items())
    ]  # fmt: skip
    lines.append(
        Usage("AWS Lambda", "requests", sum(invocations.values()) * month, "invocations",
              "lambda.requests_per_million")
    )  # fmt: skip
    return lines, invocations


def _dynamodb(profile: Profile, volumes: Volumes, subscribers: float) -> list[Usage]:
    month = DAYS_PER_MONTH
    lines = []
    for kind, label, price_id in (
        ("write_units", "write request units", "dynamodb.on_demand_write_per_million"),
        ("read_units", "read request units", "dynamodb.on_demand_read_per_million"),
    ):
        by_table: dict[str, float] = defaultdict(float)
        for (_, table), n in _sum(profile.demands, volumes, kind).items():
            by_table[table] += n
        lines += [
            Usage("Amazon DynamoDB", f"{label} {table}", n * month, "request units", price_id)
            for table, n in sorted(by_table.items())
        ]
    # Every Subscriber_table write is a stream record the engagement function's trigger reads.
    stream_records = sum(
        n
        for (_, table), n in _sum(profile.demands, volumes, "writes").items()
        if table == "Subscriber_table"
    )
    lines.append(
        Usage("Amazon DynamoDB", "stream reads by the Lambda trigger", stream_records * month,
              "stream records", "dynamodb.streams_lambda_reads_per_million")
    )  # fmt: skip
    for table, size in sorted(profile.table_item_bytes.items()):
        stored = (
            subscribers * profile.items_per_subscriber[table] * (size + STORAGE_OVERHEAD_BYTES)
        ) / GIB
        lines += [
            Usage("Amazon DynamoDB", f"storage {table}", stored, "GB-months",
                  "dynamodb.storage_gb_month"),
            Usage("Amazon DynamoDB", f"point-in-time recovery {table}", stored, "GB-months",
                  "dynamodb.pitr_gb_month"),
        ]  # fmt: skip
    return lines


def _sqs(
    profile: Profile, volumes: Volumes, inputs: Mapping[str, Any], assumptions: Assumptions
) -> list[Usage]:
    month = DAYS_PER_MONTH
    requests = {"standard": 0.0, "fifo": 0.0}
    for (_, queue), n in _sum(profile.demands, volumes, "sqs_requests").items():
        requests["fifo" if queue.endswith(".fifo") else "standard"] += n
    for (_, queue), n in _sum(profile.demands, volumes, "sqs_messages").items():
        requests["fifo" if queue.endswith(".fifo") else "standard"] += (
            n * assumptions.sqs_reads_per_message
        )
    mappings = inputs["template"]["sqs_event_source_mappings"]
    idle = mappings * assumptions.sqs_idle_polls_per_mapping_minute * 60 * 24
    return [
        Usage("Amazon SQS", "standard queue requests", requests["standard"] * month, "requests",
              "sqs.standard_per_million"),
        Usage("Amazon SQS", "FIFO queue requests", requests["fifo"] * month, "requests",
              "sqs.fifo_per_million"),
        Usage("Amazon SQS", "empty long polls of the Lambda pollers", idle * month, "requests",
              "sqs.standard_per_million"),
    ]  # fmt: skip


def _lake(
    profile: Profile, volumes: Volumes, inputs: Mapping[str, Any], assumptions: Assumptions
) -> list[Usage]:
    month = DAYS_PER_MONTH
    retention = inputs["config"].get("lake_retention_days", 400)
    daily_bytes = _lake_bytes_per_day(profile, volumes)
    puts = sum(_sum(profile.demands, volumes, "s3_puts").values())
    read = lake_read(dict.fromkeys(ANALYTICS_PREFIXES, 1), profile, volumes, inputs, assumptions)
    gets = read.objects * assumptions.athena_queries_per_day
    return [
        Usage("Amazon S3", "PUT requests (lake objects)", puts * month, "requests",
              "s3.put_per_thousand"),
        Usage("Amazon S3", f"lake storage ({retention} days kept)",
              sum(daily_bytes.values()) * retention / GIB, "GB-months", "s3.standard_gb_month"),
        Usage("Amazon S3", "server access logs of the lake",
              (puts + gets) * assumptions.access_log_bytes_per_request * retention / GIB,
              "GB-months", "s3.standard_gb_month"),
        *lake_queries(read, assumptions),
    ]  # fmt: skip


def _lake_bytes_per_day(profile: Profile, volumes: Volumes) -> dict[str, float]:
    return {
        prefix: volumes.of(driver) * profile.lake_bytes_per_record.get(prefix, 0.0)
        for prefix, driver in LAKE_DRIVERS.items()
    }


def _lake_objects_per_day(profile: Profile, volumes: Volumes) -> dict[str, float]:
    return {
        prefix: volumes.of(driver) / max(profile.lake_records_per_object.get(prefix, 1.0), 1.0)
        for prefix, driver in LAKE_DRIVERS.items()
    }


def _days_read(inputs: Mapping[str, Any], assumptions: Assumptions) -> int:
    """The days a lake query reads: its period, as much of it as the lake keeps."""
    return min(assumptions.query_period_days, inputs["config"].get("lake_retention_days", 400))


class LakeRead(NamedTuple):
    """What one query reads of the lake: bytes scanned and objects opened (S3 GETs)."""

    bytes: float
    objects: float


def lake_read(
    reads: Mapping[str, int],
    profile: Profile,
    volumes: Volumes,
    inputs: Mapping[str, Any],
    assumptions: Assumptions,
) -> LakeRead:
    """What a query reads that reads each lake table ``reads[table]`` times over its period;
    a table the model does not size (``remediation``, operators' uploads) counts 0."""
    days = _days_read(inputs, assumptions)

    def per_period(daily: Mapping[str, float]) -> float:
        return sum(n * daily.get(table, 0.0) for table, n in reads.items()) * days

    return LakeRead(
        per_period(_lake_bytes_per_day(profile, volumes)),
        per_period(_lake_objects_per_day(profile, volumes)),
    )


def lake_queries(read: LakeRead, assumptions: Assumptions) -> list[Usage]:
    """A month of the day's lake queries, each reading ``read``: Athena's scan (at least
    10 MB a query) and the S3 GETs of the objects it opens."""
    queries = assumptions.athena_queries_per_day
    return [
        Usage("Amazon S3", "GET requests (Athena reading the period's lake objects)",
              read.objects * queries * DAYS_PER_MONTH, "requests", "s3.get_per_thousand"),
        Usage("Amazon Athena", "data scanned (each query reads its period's days)",
              max(read.bytes, ATHENA_MIN_SCAN_BYTES) * queries * DAYS_PER_MONTH / 1024**4, "TB",
              "athena.per_tb_scanned"),
    ]  # fmt: skip


def _kinesis(profile: Profile, volumes: Volumes, inputs: Mapping[str, Any]) -> list[Usage]:
    month = DAYS_PER_MONTH
    kinesis = inputs["dense"]["kinesis"]
    consumers = profile.stream_consumers
    return [
        Usage("Amazon Kinesis Data Streams", "data in (each record billed as 1 KB or more)",
              volumes.records * kinesis["billed_kib_per_record"] * 1024 * month / GIB, "GB",
              "kinesis.on_demand_data_in_per_gb"),
        Usage("Amazon Kinesis Data Streams",
              f"data out ({consumers} consumer{'s' if consumers > 1 else ''})",
              volumes.records * kinesis["record_bytes"] * consumers * month / GIB, "GB",
              "kinesis.on_demand_data_out_per_gb"),
        Usage("Amazon Kinesis Data Streams", "on-demand stream", HOURS_PER_MONTH, "stream-hours",
              "kinesis.on_demand_stream_hour"),
    ]  # fmt: skip


def _firehose_billed(size: float) -> float:
    """Bytes Firehose bills for a record of ``size`` bytes (the mean record's rounding)."""
    return math.ceil(size / FIREHOSE_INCREMENT_BYTES) * FIREHOSE_INCREMENT_BYTES


def _probe_archive(
    profile: Profile, volumes: Volumes, inputs: Mapping[str, Any], assumptions: Assumptions
) -> list[Usage]:
    """Firehose's delivery of the probe archive and what it leaves in S3 (its transformation
    function is priced with the others). Every stream record is ingested; the rows the
    function returns are converted and partitioned; one ``dt`` partition is open at a time,
    delivered when its buffer fills or its interval ends."""
    if not profile.archives_probes:
        return []
    month = DAYS_PER_MONTH
    template = inputs["template"]
    archive = inputs["day"]["archive"]
    rows = volumes.records * archive["rows_per_record"]
    row_bytes = archive["row_bytes"]
    ingested = volumes.records * _firehose_billed(inputs["dense"]["kinesis"]["record_bytes"])
    objects = max(
        86400 / template["archive_buffer_seconds"],
        rows * row_bytes / (template["archive_buffer_mb"] * MIB),
    )
    retention = inputs["config"]["probe_archive_retention_days"]
    stored = rows * assumptions.archive_parquet_bytes_per_row * retention
    return [
        Usage("Amazon Data Firehose", "probe archive ingestion (each record billed as 5 KB or "
              "more)", ingested * month / GIB, "GB", "firehose.ingestion_per_gb"),
        Usage("Amazon Data Firehose", "probe archive Parquet conversion (each row billed as 5 KB "
              "or more)", rows * _firehose_billed(row_bytes) * month / GIB, "GB",
              "firehose.format_conversion_per_gb"),
        Usage("Amazon Data Firehose", "probe archive dynamic partitioning (rows processed)",
              rows * row_bytes * month / GIB, "GB", "firehose.dynamic_partitioning_per_gb"),
        Usage("Amazon Data Firehose", "probe archive dynamic partitioning (objects delivered)",
              objects * month, "objects", "firehose.dynamic_partitioning_objects_per_thousand"),
        Usage("Amazon S3", "PUT requests (probe archive objects)", objects * month, "requests",
              "s3.put_per_thousand"),
        Usage("Amazon S3", f"probe archive storage ({retention} days kept)", stored / GIB,
              "GB-months", "s3.standard_gb_month"),
    ]  # fmt: skip


def _operations(
    invocations: Mapping[str, float],
    volumes: Volumes,
    inputs: Mapping[str, Any],
    assumptions: Assumptions,
) -> list[Usage]:
    """CloudWatch, X-Ray, Secrets Manager, KMS: grow with invocations or are fixed."""
    month = DAYS_PER_MONTH
    day = inputs["day"]
    template = inputs["template"]
    logged = sum(n for n in invocations.values()) * (
        assumptions.platform_log_bytes + assumptions.emf_log_bytes
    )
    # Application log lines, measured per unit of what writes them: a line per rejected
    # record (ingest), per call (Trigger_Connect), per invocation (everything else).
    measured_units = {
        "Ingest_probe_events": ("rejected", day["records"] * day["rejected_share"]),
        "Trigger_Connect": ("engagements", day["engagements"]),
    }
    for function, written in day["log_bytes"].items():
        driver, measured = measured_units.get(function, ("", day["invocations"].get(function, 0)))
        scale = volumes.of(driver) if driver else invocations.get(function, 0.0)
        if measured:
            logged += scale * written / measured
    log_retention = inputs["config"].get("log_retention_days", 30)
    traces = 0.0
    for n in invocations.values():
        rate = n / 86400
        reservoir = min(rate, assumptions.xray_reservoir_per_second)
        traces += (reservoir + assumptions.xray_rate * max(rate - reservoir, 0.0)) * 86400
    # Functions that read the pseudonym key read it once per cold start (as the bench saw).
    readers = [
        function
        for function, figures in inputs["dense"]["functions"].items()
        if "secretsmanager.GetSecretValue" in figures["calls_per_invocation"]
    ]
    cold_starts = sum(invocations.get(f, 0.0) for f in readers) * assumptions.cold_start_share
    kms = template["kms_encrypted_resources"] * assumptions.kms_requests_per_resource_hour * 24
    return [
        Usage("Amazon CloudWatch", "logs ingested", logged * month / GIB, "GB",
              "cloudwatch.logs_ingested_per_gb"),
        Usage("Amazon CloudWatch", f"logs stored ({log_retention} days)",
              logged * assumptions.log_stored_ratio * log_retention / GIB, "GB-months",
              "cloudwatch.logs_stored_gb_month"),
        Usage("Amazon CloudWatch", "custom metrics (EMF)", assumptions.custom_metrics, "metrics",
              "cloudwatch.metric_month"),
        Usage("Amazon CloudWatch", "alarms", template["alarms"], "alarms",
              "cloudwatch.alarm_month"),
        Usage("Amazon CloudWatch", "dashboards", template.get("dashboards", 0), "dashboards",
              "cloudwatch.dashboard_month"),
        Usage("AWS X-Ray", "traces recorded (active tracing, default sampling)", traces * month,
              "traces", "xray.traces_recorded_per_million"),
        Usage("AWS Secrets Manager", "pseudonym key", template["secrets"], "secrets",
              "secretsmanager.secret_month"),
        Usage("AWS Secrets Manager", "GetSecretValue at cold starts", cold_starts * month, "calls",
              "secretsmanager.per_10k_calls"),
        Usage("AWS KMS", "customer managed key", template["kms_keys"], "keys", "kms.key_month"),
        Usage("AWS KMS", "requests (data keys of encrypted resources, secret decrypts)",
              (kms + cold_starts) * month, "requests", "kms.per_10k_requests"),
    ]  # fmt: skip


def usage(
    profile: Profile,
    volumes: Volumes,
    subscribers: float,
    inputs: Mapping[str, Any],
    assumptions: Assumptions,
) -> list[Usage]:
    """Monthly quantities of every billed item for ``profile`` at ``volumes``."""
    compute, invocations = _lambda(profile, volumes, assumptions)
    return [
        *_connect(volumes, assumptions),
        *_kinesis(profile, volumes, inputs),
        *_probe_archive(profile, volumes, inputs, assumptions),
        *compute,
        *_dynamodb(profile, volumes, subscribers),
        *_sqs(profile, volumes, inputs, assumptions),
        *_lake(profile, volumes, inputs, assumptions),
        *_operations(invocations, volumes, inputs, assumptions),
    ]


# Units the price table quotes per many: requests priced per million, per thousand, ...
_PER = {"per_million": 1e6, "per_thousand": 1e3, "per_10k": 1e4}


def price(items: Sequence[Usage], prices: PriceTable) -> list[Line]:
    """Price each usage; lines largest first (ties by service and item)."""
    lines = []
    for item in items:
        divisor = next((n for suffix, n in _PER.items() if suffix in item.price_id), 1.0)
        cost = item.quantity / divisor * prices[item.price_id].value
        lines.append(Line(item.service, item.item, cost, item.quantity, item.unit, item.price_id))
    return sorted(lines, key=lambda line: (-line.monthly_usd, line.service, line.item))


def total(lines: Sequence[Line]) -> float:
    """The monthly total of ``lines``."""
    return sum(line.monthly_usd for line in lines)


__all__ = [
    "Assumptions",
    "LakeRead",
    "Line",
    "Profile",
    "Usage",
    "Volumes",
    "daily_volumes",
    "design_profile",
    "lake_queries",
    "lake_read",
    "price",
    "reference_profile",
    "total",
    "usage",
]
