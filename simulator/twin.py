"""The local twin: run a scenario through the deployed wiring on moto's in-process AWS.

Order of work: synthesize (or reuse) the template for the scenario's config; provision
its resources in moto; load the six functions; wire pollers from the event source
mappings and the simulated contact centre from the contact flow; replay the probe
records on the Kinesis stream in timestamp order on the simulated clock, letting every
poller drain after each step; flush; then write what actually happened to ``out/``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from feedback_loop.lake import decode_jsonl_gz
from feedback_loop.timeutil import parse_utc
from simulator.analytics import remediation_csv, run_analytics, write_outputs
from simulator.api_calls import ApiError, AwsHooks, count_calls
from simulator.behaviour import DefaultBehaviour, SimulatedSubscribers
from simulator.clock import SimClock
from simulator.contact_centre import ContactCentre, InvalidRequestError
from simulator.event_sources import (
    DynamoDbStreamPoller,
    KinesisPoller,
    Poller,
    SqsPoller,
    moto_kinesis_latest,
    moto_kinesis_trim,
    moto_queue_depth,
    moto_stream_latest,
)
from simulator.faults import FaultInjector, dead_letter_bodies, exactly_once_figures
from simulator.firehose import DeliveryStream, delivery_specs, guarded_trim
from simulator.provision import REGION, ContactFlowSpec, Estate, Provisioner
from simulator.report import write_report
from simulator.runtime import Runtime
from simulator.scenario import Scenario
from simulator.template import Template, WiringError, synthesize

PUT_RECORDS_LIMIT = 500
CONNECT_OPERATION = "connect.StartOutboundVoiceContact"
CONNECT_LAMBDA_ATTEMPTS = 4
_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@dataclass(frozen=True)
class TwinResult:
    """Where the outputs are, the summary written to ``summary.json``, and what the run cost.

    ``phases`` is wall seconds per phase (synth, provisioning, replay, analytics_report);
    ``emulator_calls`` counts the twin's own AWS calls (polling, putting the probe records,
    copying the lake), which ``summary["api_calls"]`` leaves out.
    """

    out_dir: Path
    summary: dict[str, Any]
    report: Path
    phases: dict[str, float] = field(default_factory=dict)
    emulator_calls: dict[str, int] = field(default_factory=dict)


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal, or when forced)."""

    def __init__(self, total: int, label: str, enabled: bool, stream: TextIO = sys.stderr) -> None:
        self.total = max(total, 1)
        self.label = label
        self.enabled = enabled
        self.stream = stream
        self._shown = -1

    def update(self, done: int, note: str = "") -> None:
        """Redraw when the percentage changes."""
        if not self.enabled:
            return
        percent = min(100, done * 100 // self.total)
        if percent == self._shown:
            return
        self._shown = percent
        filled = percent * 30 // 100
        bar = "#" * filled + "-" * (30 - filled)
        self.stream.write(f"\r{self.label} [{bar}] {percent:3d}% {note}")
        self.stream.flush()

    def close(self) -> None:
        """End the line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _timestamp(record: Any) -> float | None:
    if isinstance(record, dict) and isinstance(record.get("timestamp"), str):
        try:
            return parse_utc(record["timestamp"]).timestamp()
        except ValueError:
            return None
    return None


def ordered_records(records: list[Any]) -> list[tuple[float, Any]]:
    """Records with their replay time, in timestamp order.

    A record without a usable timestamp (malformed on purpose) is replayed at the time
    of the record before it in the file, so it still reaches the stream in place.
    """
    timed: list[tuple[float, int, Any]] = []
    previous: float | None = None
    for index, record in enumerate(records):
        moment = _timestamp(record)
        if moment is None:
            moment = previous
        previous = moment if moment is not None else previous
        timed.append((moment if moment is not None else math.nan, index, record))
    first = next((t for t, _, _ in timed if not math.isnan(t)), 0.0)
    fixed = [(first if math.isnan(t) else t, i, r) for t, i, r in timed]
    fixed.sort(key=lambda item: (item[0], item[1]))
    return [(t, r) for t, _, r in fixed]


def record_bytes(record: Any) -> bytes:
    """What the producer puts on the stream: the JSON text, or the raw string as it is."""
    if isinstance(record, str):
        return record.encode("utf-8")
    return json.dumps(record, separators=(",", ":")).encode("utf-8")


def partition_key(record: Any, fallback: int) -> str:
    """The subscriber's phone number, so one subscriber's records stay on one shard."""
    phone = record.get("phone_number") if isinstance(record, dict) else None
    if isinstance(phone, str) and phone:
        return phone
    return f"unkeyed-{fallback}"


class FailureRatios:
    """Share of each subscriber's scenario sessions that failed (input of the behaviour model)."""

    def __init__(self, records: list[Any]) -> None:
        sessions: Counter[str] = Counter()
        failures: Counter[str] = Counter()
        for record in records:
            if isinstance(record, dict) and isinstance(record.get("success"), bool):
                phone = record.get("phone_number")
                if isinstance(phone, str):
                    sessions[phone] += 1
                    failures[phone] += not record["success"]
        self._ratio = {p: failures[p] / n for p, n in sessions.items()}

    def __call__(self, phone_number: str) -> float:
        return self._ratio.get(phone_number, 0.0)


class Twin:
    """One run: the moto estate, the functions, the pollers, the contact centre, the clock."""

    def __init__(
        self, scenario: Scenario, template: dict[str, Any], out_dir: Path, seed: int
    ) -> None:
        self.scenario = scenario
        self.out_dir = out_dir
        self.seed = seed
        self.clock = SimClock()
        self.provisioner = Provisioner(Template(template), seed=seed)
        self.estate: Estate = self.provisioner.provision()
        self.emulator_calls: Counter[str] = Counter()
        self._sqs = self._client("sqs")
        self._kinesis = self._client("kinesis")
        self._log = (out_dir / "logs" / "functions.log").open("w", encoding="utf-8")
        self.runtime = Runtime(list(self.estate.functions.values()), REGION, log=self._log)
        self.faults = FaultInjector(scenario.faults, seed)
        self.faults.install(self.runtime, self.clock)
        self.hooks = AwsHooks(REGION, active=lambda: self.runtime.depth > 0)
        self.hooks.fault = self.faults.api_error
        self.contact_centre = self._contact_centre()
        self._inject_clock()
        self.pollers = self._pollers()
        self.kinesis_pollers = [p for p in self.pollers if isinstance(p, KinesisPoller)]
        self.probe_events_put = 0

    # --- wiring -------------------------------------------------------------------------------

    def _client(self, service: str) -> Any:
        """A client of the twin's own session whose calls count in ``emulator_calls``."""
        client = self.provisioner.client(service)
        count_calls(client, self.emulator_calls)
        return client

    def _contact_centre(self) -> ContactCentre:
        if len(self.estate.contact_flows) != 1:
            raise WiringError(
                f"expected one AWS::Connect::ContactFlow, found {len(self.estate.contact_flows)}"
            )
        flow: ContactFlowSpec = self.estate.contact_flows[0]
        targets = {
            action["Parameters"]["LambdaFunctionARN"]
            for action in flow.content.get("Actions", [])
            if action.get("Type") == "InvokeLambdaFunction"
        }
        if len(targets) != 1:
            raise WiringError(f"the contact flow must invoke one function, it invokes {targets}")
        (target,) = targets
        self.runtime.function(target)  # fails loudly when the ARN is not a template function

        def invoke(event: dict[str, Any]) -> dict[str, Any]:
            # Connect retries a failed synchronous invocation up to three times before it
            # takes the block's error branch (AWS Lambda function block, Connect guide).
            for _ in range(CONNECT_LAMBDA_ATTEMPTS):
                outcome = self.runtime.invoke(target, event)
                if not outcome.failed:
                    return outcome.result
            raise RuntimeError(outcome.error)

        subscribers = SimulatedSubscribers(
            self.scenario.answers,
            DefaultBehaviour(self.seed),
            FailureRatios(self.scenario.probe_events),
        )
        centre = ContactCentre(
            flow.content,
            invoke,
            subscribers,
            flow.instance_arn,
            self._source_number(),
            self.out_dir / "calls.jsonl",
        )

        def start_outbound_voice_contact(params: dict[str, Any]) -> dict[str, Any]:
            if params.get("ContactFlowId") not in (flow.flow_id, flow.flow_arn):
                raise ApiError("ResourceNotFoundException", "contact flow not found", 404)
            try:
                return centre.start_outbound_voice_contact(params, self.clock.iso())
            except InvalidRequestError as error:
                raise ApiError("InvalidParameterException", str(error)) from error

        self.hooks.intercept(CONNECT_OPERATION, start_outbound_voice_contact)
        return centre

    def _source_number(self) -> str:
        numbers = {
            f.environment.get("SOURCE_PHONE_NUMBER")
            for f in self.estate.functions.values()
            if f.environment.get("SOURCE_PHONE_NUMBER")
        }
        return next(iter(numbers), "+15550100000")

    def _inject_clock(self) -> None:
        """A handler exposing an injectable ``clock`` (its event has no time) gets the twin's."""
        for function in self.runtime.functions.values():
            module = function.modules.get(function.spec.handler.rpartition(".")[0])
            if module is not None and callable(getattr(module, "clock", None)):
                module.clock = self.clock.datetime

    def _pollers(self) -> list[Poller]:
        # Firehose delivery streams read the probe stream too; they come first in the list
        # and the Lambda poller's early trim spares what they have not read (firehose.py).
        self.deliveries = [
            DeliveryStream(
                spec,
                self.runtime,
                self.clock,
                self._kinesis,
                self._client("s3"),
                moto_kinesis_latest(REGION),
            )
            for spec in delivery_specs(self.provisioner)
        ]
        pollers: list[Poller] = [*self.deliveries]  # type: ignore[list-item]
        streams_client = self._client("dynamodbstreams")
        for spec in self.estate.event_sources:
            queue = self.estate.queue_by_arn(spec.source_arn)
            stream = next(
                (s for s in self.estate.streams.values() if s.arn == spec.source_arn), None
            )
            if queue is not None:
                pollers.append(
                    SqsPoller(
                        spec,
                        queue,
                        self.runtime,
                        self.clock,
                        self._sqs,
                        moto_queue_depth,
                        self.faults.duplicate_delivery,
                    )
                )
            elif stream is not None:
                pollers.append(
                    KinesisPoller(
                        spec,
                        self.runtime,
                        self.clock,
                        self._sqs,
                        self._kinesis,
                        stream.name,
                        moto_kinesis_latest(REGION),
                        guarded_trim(moto_kinesis_trim(REGION), self.deliveries),
                    )
                )
            else:
                pollers.append(
                    DynamoDbStreamPoller(
                        spec,
                        self.runtime,
                        self.clock,
                        self._sqs,
                        streams_client,
                        moto_stream_latest(REGION),
                    )
                )
        triggered = {p.spec.function_name for p in pollers}
        flow_targets = {
            self.runtime.function(a["Parameters"]["LambdaFunctionARN"]).spec.name
            for flow in self.estate.contact_flows
            for a in flow.content.get("Actions", [])
            if a.get("Type") == "InvokeLambdaFunction"
        }
        orphans = sorted(set(self.runtime.functions) - triggered - flow_targets)
        if orphans:
            raise WiringError(f"functions with no event source and no caller: {orphans}")
        return pollers

    # --- running ------------------------------------------------------------------------------

    def settle(self) -> None:
        """Pump every poller until none has anything left to do at the current time."""
        while True:
            progressed = [poller.pump() for poller in self.pollers]
            if not any(progressed):
                return

    def settle_until(self, moment: float) -> None:
        """Settle, then work through every deadline (windows, visibility) up to ``moment``."""
        self.settle()
        while True:
            deadlines = [d for d in (p.next_deadline() for p in self.pollers) if d is not None]
            if not deadlines or min(deadlines) > moment:
                return
            self.clock.advance_to(max(min(deadlines), self.clock.now))
            before = self.clock.now
            self.settle()
            again = [d for d in (p.next_deadline() for p in self.pollers) if d is not None]
            if again and min(again) <= before:
                raise RuntimeError(f"event sources stuck at simulated time {self.clock.iso()}")

    def _stream_name(self) -> str:
        if len(self.kinesis_pollers) != 1:
            raise WiringError("the twin feeds probe records into exactly one Kinesis stream")
        return self.kinesis_pollers[0].stream_name

    def _put(self, chunk: list[tuple[float, Any]], offset: int) -> None:
        """One PutRecords call; each record's arrival is its own timestamp, not the put time."""
        poller = self.kinesis_pollers[0]
        response = self._kinesis.put_records(
            StreamName=poller.stream_name,
            Records=[
                {"Data": record_bytes(r), "PartitionKey": partition_key(r, offset + i)}
                for i, (_, r) in enumerate(chunk)
            ],
        )
        for (moment, _), result in zip(chunk, response["Records"], strict=True):
            if "SequenceNumber" in result:
                for consumer in (poller, *self.deliveries):
                    consumer.note_arrival(result["ShardId"], result["SequenceNumber"], moment)
                self.probe_events_put += 1

    def replay(self, progress: Progress) -> None:
        """Put the probe records on the stream ahead of the clock, then let time run.

        Records go on the stream ``PUT_RECORDS_LIMIT`` at a time, before their timestamps,
        so the producer costs a few hundred calls a day rather than one per record; the
        Kinesis poller does not see a record before its own timestamp, so batching
        windows and batch sizes work on the times the probes reported. The clock moves
        from deadline to deadline (a window closing, a message becoming visible), not
        record by record, and every poller drains at each one.
        """
        self._stream_name()
        records = ordered_records(self.scenario.probe_events)
        if records:
            self.clock.advance_to(records[0][0])
        for start in range(0, len(records), PUT_RECORDS_LIMIT):
            chunk = records[start : start + PUT_RECORDS_LIMIT]
            self._put(chunk, start)
            self.settle_until(chunk[-1][0])
            progress.update(start + len(chunk), self.clock.iso())
        self.settle_until(math.inf)

    def close(self) -> None:
        """Close the function log."""
        self._log.close()

    # --- outputs ------------------------------------------------------------------------------

    def upload_remediation(self) -> None:
        """Put the scenario's remediation events where an operator uploads them: a CSV under
        ``remediation/`` in the lake bucket (docs/OPERATIONS.md)."""
        if not self.scenario.remediation:
            return
        s3 = self._client("s3")
        for bucket in self.estate.lake_buckets:
            s3.put_object(
                Bucket=bucket,
                Key="remediation/scenario.csv",
                Body=remediation_csv(self.scenario.remediation),
            )

    def copy_lake(self) -> dict[str, list[dict[str, Any]]]:
        """Copy every lake object to ``out/lake/`` (same keys) and return the records by prefix."""
        s3 = self._client("s3")
        lake_dir = self.out_dir / "lake"
        records: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for bucket in self.estate.lake_buckets:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    target = lake_dir / item["Key"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(body)
                    if item["Key"].endswith(".jsonl.gz"):
                        records[item["Key"].split("/", 1)[0]].extend(decode_jsonl_gz(body))
        return records

    def dead_lettered(self) -> dict[str, int]:
        """Messages waiting in each dead-letter queue and on-failure destination."""
        targets = {q.dlq_arn for q in self.estate.queues.values() if q.dlq_arn}
        targets |= {s.on_failure_arn for s in self.estate.event_sources if s.on_failure_arn}
        depths: dict[str, int] = {}
        for queue in self.estate.queues.values():
            if queue.arn in targets:
                attributes = self._sqs.get_queue_attributes(
                    QueueUrl=queue.url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )["Attributes"]
                depths[queue.name] = int(attributes["ApproximateNumberOfMessages"]) + int(
                    attributes["ApproximateNumberOfMessagesNotVisible"]
                )
        return depths

    def summary(self, lake: dict[str, list[dict[str, Any]]], wall_seconds: float) -> dict[str, Any]:
        """Counted from what happened: lake objects, DLQ depths, the contact centre's log."""
        engagement = lake.get("engagement", [])
        feedback = lake.get("feedback", [])
        dead = self.dead_lettered()
        return {
            "probe_events": self.probe_events_put,
            "rejected_records": len({r.get("record_id") for r in lake.get("rejected", [])}),
            "incidents": len({r.get("incident_id") for r in lake.get("incidents", [])}),
            "engagements": len(
                {r.get("engagement_id") for r in engagement if r.get("decision") == "engage"}
            ),
            "engagement_decisions": dict(
                sorted(
                    Counter(f"{r.get('decision')}:{r.get('reason')}" for r in engagement).items()
                )
            ),
            "calls_started": len(self.contact_centre.records),
            "calls": self.contact_centre.counters,
            "feedback_received": len(feedback),
            "feedback_outcomes": dict(sorted(Counter(r.get("outcome") for r in feedback).items())),
            "sentiment_updates": len(lake.get("sentiment", [])),
            "dead_lettered": sum(dead.values()),
            "dead_letter_queues": dead,
            "api_calls": self.hooks.summary(),
            "invocations": {
                name: {"invocations": f.invocations, "errors": f.errors}
                for name, f in sorted(self.runtime.functions.items())
            },
            "event_sources": {
                p.spec.function_name: vars(p.stats)
                | ({"lost_records": p.lost_records} if hasattr(p, "lost_records") else {})
                for p in self.pollers
                if not isinstance(p, DeliveryStream)
            },
            "delivery_streams": {d.spec.name: vars(d.stats) for d in self.deliveries},
            "faults_injected": dict(sorted(self.faults.injected.items())),
            "faults_surfaced": dict(sorted(self.faults.surfaced.items())),
            **exactly_once_figures(
                self.contact_centre.records, engagement, dead_letter_bodies(self.estate)
            ),
            "simulated_end": self.clock.iso(),
            "wall_seconds": round(wall_seconds, 1),
        }


@contextlib.contextmanager
def _moto_session() -> Iterator[None]:
    """Fake credentials and moto's in-process AWS, restored afterwards."""
    from moto import mock_aws

    saved = {key: os.environ.get(key) for key in _FAKE_CREDENTIALS}
    os.environ.update(_FAKE_CREDENTIALS)
    try:
        with mock_aws():
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_twin(
    scenario: Scenario,
    out_dir: Path | str = "out",
    seed: int = 7,
    *,
    template: dict[str, Any] | None = None,
    progress: bool | None = None,
    after_replay: Callable[[Twin], dict[str, Any]] | None = None,
) -> TwinResult:
    """Run ``scenario`` end to end and write every output to ``out_dir``.

    ``after_replay(twin)`` runs on the settled estate before the outputs are taken (the
    redrive phase); what it returns is added to the summary.
    """
    started = time.monotonic()
    phases: dict[str, float] = {}
    lap = started

    def phase(name: str) -> None:
        nonlocal lap
        now = time.monotonic()
        phases[name] = round(now - lap, 2)
        lap = now

    out_dir = Path(out_dir)
    if out_dir.exists():
        for name in ("lake", "logs", "calls.jsonl"):
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    # The contact centre appends per call; a run that calls nobody still has its (empty) log.
    (out_dir / "calls.jsonl").touch()
    body = template if template is not None else synthesize(scenario.config)
    phase("synth")
    bar = Progress(
        len(scenario.probe_events),
        "replaying",
        sys.stderr.isatty() if progress is None else progress,
    )
    with _moto_session():
        twin = Twin(scenario, body, out_dir, seed)
        phase("provisioning")
        try:
            twin.replay(bar)
            extra = after_replay(twin) if after_replay is not None else {}
        finally:
            bar.close()
            twin.close()
        phase("replay")
        twin.upload_remediation()
        lake = twin.copy_lake()
        summary = twin.summary(lake, time.monotonic() - started) | extra
    results = run_analytics(out_dir / "lake")
    write_outputs(results, out_dir)
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    report, _png = write_report(out_dir, summary, results)
    phase("analytics_report")
    return TwinResult(out_dir, summary, report, phases, dict(sorted(twin.emulator_calls.items())))
