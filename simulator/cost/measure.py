"""``python -m simulator cost --measure RUN_DIR``: the cost model's inputs, from what ran.

Two measurements feed the model, both committed in ``simulator/cost_inputs.json``:

* **a twin day** (``RUN_DIR``: ``summary.json``, ``lake/``, ``calls.jsonl``,
  ``logs/functions.log``, and the scenario it ran): records per subscriber-day, the share
  rejected, incidents per record, decisions per incident, every candidate engagement
  (subscriber index, cell, KPI, minute; pseudonymous), the cells' populations, how each
  call went (the answers at each prompt, from ``calls.jsonl``), lake bytes per record,
  log bytes per function, and the probe archive's rows per record and bytes per row as
  its transformation returned them;
* **the dense-load bench** (``dense.json``): what each function does per invocation at
  production density (AWS calls, DynamoDB units per table, SQS batches, billed
  duration), per unit of the volume that drives it.

The template the run was wired from adds what is counted, not measured: memory per
function, alarms, KMS-encrypted resources, the probe stream's consumers, the probe
archive's buffering, retention settings.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedback_loop.contract import PROBE_ARCHIVE_DELIVERY_STREAM, PROBE_STREAM, Verdict
from feedback_loop.lake import encode_jsonl_gz
from feedback_loop.timeutil import parse_utc
from simulator.cost.calls import pattern_of
from simulator.scenario import Scenario

# The decisions taken when an incident arrives; the other engagement/ records are the
# steps of contacting (deferred, contacted, closed, failed).
DECISIONS = (Verdict.ENGAGE, Verdict.SUPPRESS, Verdict.MERGED)
INPUTS = Path(__file__).resolve().parents[1] / "cost_inputs.json"
# Decisions a different contact policy could turn into calls: the engagements, the
# incidents that joined one, and the suppressions by the rules calls_per_day replays (not
# opt-outs, not min_sessions, not an incident already too old when it arrived).
CANDIDATE_REASONS = {
    (Verdict.ENGAGE, "above_threshold"),
    (Verdict.MERGED, "same_episode"),
    (Verdict.SUPPRESS, "gathering"),
    (Verdict.SUPPRESS, "contact_gap"),
    (Verdict.SUPPRESS, "contact_cap"),
    (Verdict.SUPPRESS, "quiet_hours"),
}


class MeasureError(ValueError):
    """The run directory cannot be measured (missing output, wrong scenario)."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise MeasureError(f"{path}: {error}") from error


def _lake(run_dir: Path) -> tuple[dict[str, list[dict[str, Any]]], Counter[str]]:
    records: dict[str, list[dict[str, Any]]] = {}
    objects: Counter[str] = Counter()
    for path in sorted((run_dir / "lake").rglob("*.jsonl.gz")):
        prefix = path.relative_to(run_dir / "lake").parts[0]
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
        records.setdefault(prefix, []).extend(json.loads(line) for line in lines if line)
        objects[prefix] += 1
    return records, objects


def _unique(records: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    """Lake delivery is at-least-once: one record per value of ``fields``."""
    return list({tuple(r.get(f) for f in fields): r for r in records}.values())


# A decision is one per incident and verdict (an engagement's id is shared by the incidents
# that joined it, and by the dial step that suppressed it); a step also has its moment.
DECISION_KEY = ("engagement_id", "incident_id", "decision", "reason")
STEP_KEY = (*DECISION_KEY, "decided_at")


def bytes_per_record(records: list[dict[str, Any]], per_object: float) -> float:
    """Gzip JSON Lines bytes per record when objects hold ``per_object`` records."""
    if not records:
        return 0.0
    size = max(1, round(per_object))
    chunks = [records[i : i + size] for i in range(0, len(records), size)]
    return sum(len(encode_jsonl_gz(chunk)) for chunk in chunks) / len(records)


def _candidates(
    engagement: list[dict[str, Any]], day0: datetime
) -> tuple[list[list[Any]], dict[str, int]]:
    index: dict[str, int] = {}
    rows = []
    for record in sorted(engagement, key=lambda r: (r["incident_time"], r["engagement_id"])):
        if (record["decision"], record["reason"]) not in CANDIDATE_REASONS:
            continue
        subscriber = index.setdefault(record["subscriber_id"], len(index))
        minute = int((parse_utc(record["incident_time"]) - day0).total_seconds() // 60)
        rows.append([subscriber, record["cell"], record["incident_type"], minute])
    return rows, index


def _log_bytes(run_dir: Path) -> dict[str, int]:
    """Bytes of application log lines per function (Powertools' ``service``), EMF excluded."""
    sizes: Counter[str] = Counter()
    path = run_dir / "logs" / "functions.log"
    if not path.exists():
        return {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "_aws" not in entry and entry.get("service"):
            sizes[entry["service"]] += len(line.encode("utf-8")) + 1
    return dict(sorted(sizes.items()))


# Resource types the stack encrypts with its KMS key (docs/ARCHITECTURE.md); each one
# makes KMS requests as its service refreshes data keys.
KMS_ENCRYPTED_TYPES = (
    "AWS::SQS::Queue",
    "AWS::DynamoDB::Table",
    "AWS::Kinesis::Stream",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::SNS::Topic",
    "AWS::SecretsManager::Secret",
)


def _logical_id(arn: Any) -> str:
    """The resource an ``Fn::GetAtt`` ARN names ("" for any other value)."""
    return str(arn.get("Fn::GetAtt", [""])[0]) if isinstance(arn, Mapping) else ""


def _probe_stream_readers(resources: Mapping[str, Any]) -> int:
    """Lambda mappings and Firehose streams reading ``probe_events``: each reads every record."""
    stream = next(
        (
            logical
            for logical, resource in resources.items()
            if resource["Type"] == "AWS::Kinesis::Stream"
            and resource.get("Properties", {}).get("Name") == PROBE_STREAM
        ),
        None,
    )

    def reads_the_stream(resource: Mapping[str, Any]) -> bool:
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::EventSourceMapping":
            arn = properties.get("EventSourceArn")
        elif resource["Type"] == "AWS::KinesisFirehose::DeliveryStream":
            arn = properties.get("KinesisStreamSourceConfiguration", {}).get("KinesisStreamARN")
        else:
            return False
        return stream is not None and _logical_id(arn) == stream

    readers = sum(1 for resource in resources.values() if reads_the_stream(resource))
    if not readers:
        raise MeasureError(f"the template has no reader of the Kinesis stream {PROBE_STREAM}")
    return readers


def _archive_buffering(resources: Mapping[str, Any]) -> dict[str, int]:
    """The probe archive's buffering hints (zeros: no archive in the template)."""
    archive = next(
        (
            resource["Properties"]
            for resource in resources.values()
            if resource["Type"] == "AWS::KinesisFirehose::DeliveryStream"
            and resource["Properties"].get("DeliveryStreamName") == PROBE_ARCHIVE_DELIVERY_STREAM
        ),
        None,
    )
    if archive is None:
        return {"archive_buffer_mb": 0, "archive_buffer_seconds": 0}
    hints = archive.get("ExtendedS3DestinationConfiguration", {}).get("BufferingHints", {})
    if not hints.get("SizeInMBs") or not hints.get("IntervalInSeconds"):
        raise MeasureError(
            f"the template's {PROBE_ARCHIVE_DELIVERY_STREAM} states no BufferingHints (SizeInMBs "
            "and IntervalInSeconds): the cost model counts its objects by them"
        )
    return {
        "archive_buffer_mb": int(hints["SizeInMBs"]),
        "archive_buffer_seconds": int(hints["IntervalInSeconds"]),
    }


def template_counts(template: Mapping[str, Any]) -> dict[str, int]:
    """What the cost model counts in the synthesized template (resources, readers, hints)."""
    resources = template.get("Resources", {})
    types = Counter(resource["Type"] for resource in resources.values())

    def source_type(mapping: Mapping[str, Any]) -> str:
        logical = _logical_id(mapping["Properties"].get("EventSourceArn"))
        return str(resources.get(logical, {}).get("Type", ""))

    return {
        "alarms": types["AWS::CloudWatch::Alarm"],
        "dashboards": types["AWS::CloudWatch::Dashboard"],
        "kms_keys": types["AWS::KMS::Key"],
        "kms_encrypted_resources": sum(types[t] for t in KMS_ENCRYPTED_TYPES),
        "secrets": types["AWS::SecretsManager::Secret"],
        "sqs_event_source_mappings": sum(
            1
            for resource in resources.values()
            if resource["Type"] == "AWS::Lambda::EventSourceMapping"
            and source_type(resource) == "AWS::SQS::Queue"
        ),
        # every reader gets every record: on-demand bills each one's retrievals
        "kinesis_consumers": _probe_stream_readers(resources),
        **_archive_buffering(resources),
    }


def _archive(summary: Mapping[str, Any]) -> dict[str, float]:
    """The probe archive's rows per probe record and JSON bytes per row, as delivered."""
    stats = summary.get("delivery_streams", {}).get(PROBE_ARCHIVE_DELIVERY_STREAM, {})
    if "bytes_transformed" not in stats:
        raise MeasureError(
            f"summary.json says nothing of the bytes {PROBE_ARCHIVE_DELIVERY_STREAM} delivered: "
            "measure a run of this version of the twin"
        )
    rows = stats["rows_delivered"]
    return {
        "rows_per_record": round(rows / max(summary["probe_events"], 1), 6),
        "row_bytes": round(stats["bytes_transformed"] / max(rows, 1), 1),
    }


def measure(
    run_dir: Path | str,
    scenario: Scenario,
    dense: Mapping[str, Any],
    template: Mapping[str, Any],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The model's inputs from a twin run of ``scenario`` and a dense bench result."""
    run_dir = Path(run_dir)
    summary = _read_json(run_dir / "summary.json")
    if summary["probe_events"] != len(scenario.probe_events):
        raise MeasureError(
            f"{run_dir} holds a run of {summary['probe_events']} probe records, the scenario "
            f"has {len(scenario.probe_events)}: measure the run with the scenario it ran"
        )
    lake, objects = _lake(run_dir)
    calls_path = run_dir / "calls.jsonl"
    calls = [json.loads(line) for line in calls_path.read_text(encoding="utf-8").splitlines()]
    stamps = sorted(
        r["timestamp"] for r in scenario.probe_events if isinstance(r, dict) and "timestamp" in r
    )
    day0 = parse_utc(stamps[0]).replace(hour=0, minute=0, second=0)
    days = max(1, math.ceil((parse_utc(stamps[-1]) - day0).total_seconds() / 86400))
    homes = (
        {s.phone_number: s.cell for s in scenario.subscribers}
        if scenario.subscribers
        else {r["phone_number"]: r["cell"] for r in scenario.probe_events if isinstance(r, dict)}
    )
    steps = lake.get("engagement", [])
    engaged = {r["engagement_id"] for r in steps if r["decision"] == Verdict.ENGAGE}
    # a suppression of an engaged episode is a dial step (opted out meanwhile, stale, outage)
    decisions = [
        r
        for r in steps
        if r["decision"] in DECISIONS
        and not (r["decision"] == Verdict.SUPPRESS and r["engagement_id"] in engaged)
    ]
    engagement = _unique(decisions, *DECISION_KEY)
    # decisions counted rather than recorded one by one (suppress: min_sessions)
    counts = _unique(lake.get("decision_counts", []), "count_id")
    counted: Counter[str] = Counter()
    for count in counts:
        counted[f"{count['decision']}:{count['reason']}"] += count["incidents"]
    incidents = _unique(lake.get("incidents", []), "incident_id")
    candidates, _ = _candidates(engagement, day0)
    first_contacts = len({r["engagement_id"] for r in steps if r["decision"] == Verdict.CONTACTED})
    good = summary["probe_events"] - summary["rejected_records"]
    per_object = dense["lake_records_per_object"]
    return {
        "day": {
            "subscribers": len(homes),
            "days": days,
            "records": summary["probe_events"],
            "records_per_subscriber_day": round(summary["probe_events"] / len(homes) / days, 2),
            "rejected_share": round(summary["rejected_records"] / summary["probe_events"], 6),
            "incidents_per_record": round(len(incidents) / good, 6),
            # every engagement/ record: the decisions and the contact steps after them
            "decisions_per_incident": round(
                (len(_unique(steps, *STEP_KEY)) + counted.total()) / max(len(incidents), 1), 4
            ),
            "decision_reasons": dict(
                sorted(
                    (
                        Counter(f"{r['decision']}:{r['reason']}" for r in engagement) + counted
                    ).items()
                )
            ),
            "engagements": summary["engagements"],
            # episodes contacted at least once: what calls_per_day replays the policy to
            "first_contacts": first_contacts,
            "attempts_per_episode": round(len(calls) / max(first_contacts, 1), 4),
            "invocations": {
                name: figures["invocations"] for name, figures in summary["invocations"].items()
            },
            "cell_population": dict(sorted(Counter(homes.values()).items())),
            "candidates": candidates,
            "call_patterns": dict(
                sorted(Counter(",".join(pattern_of(call)) for call in calls).items())
            ),
            "lake_bytes_per_record": {
                prefix: round(
                    bytes_per_record(
                        records, per_object.get(prefix, len(records) / max(objects[prefix], 1))
                    ),
                    1,
                )
                for prefix, records in sorted(lake.items())
            },
            "lake_bytes_per_record_single": {
                prefix: round(bytes_per_record(records, 1), 1)
                for prefix, records in sorted(lake.items())
            },
            "log_bytes": _log_bytes(run_dir),
            "archive": _archive(summary),
        },
        "dense": {
            key: dense[key]
            for key in (
                "settings",
                "drivers",
                "seeded",
                "dynamodb",
                "functions",
                "lake_records_per_object",
                "sqs_batches",
                "kinesis",
                "ingest_throughput",
            )
        }
        | {key: dense[key] for key in ("lake_records_per_object_steady",) if key in dense},
        "template": template_counts(template),
        "config": {
            key: config[key]
            for key in ("lake_retention_days", "log_retention_days", "probe_archive_retention_days")
            if key in config
        },
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
