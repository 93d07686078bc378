"""The local twin: run a scenario through the deployed wiring on moto's in-process AWS.

Order of work: synthesize (or reuse) the template for the scenario's config; provision
its resources in moto; load the functions; plug the AWS-side checks into the handlers'
calls (IAM from the template's policies, faults, SDK retries on simulated time); wire
pollers from the event source mappings and the simulated contact centre from the contact
flow; put the probe feed on the Kinesis stream as it arrives and let simulated time run
from deadline to deadline (a batching window closing, a message becoming visible, a call
moving on), every poller draining at each; then write what actually happened to ``out/``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedback_loop.adapters.contacts import ContactStore
from feedback_loop.episodes import Episode
from ops.contact_preferences import apply_preferences
from simulator.analytics import remediation_csv, run_analytics, write_outputs
from simulator.api_calls import ApiError, AwsHooks, CallTimer, CallTimes, default_session
from simulator.behaviour import DefaultBehaviour, FailureRatios, SimulatedSubscribers
from simulator.clock import SimClock
from simulator.contact_centre import ContactCentre, InvalidRequestError, QuotaExceeded
from simulator.faults import (
    CONNECT_OPERATION,
    CONNECT_THROTTLES,
    FaultInjector,
    connect_error_status,
)
from simulator.firehose import DeliveryStream, delivery_specs
from simulator.handler_time import simulated_idempotency_clock
from simulator.iam import IamEnforcer, IamModel
from simulator.moto_internals import moto_kinesis_latest
from simulator.moto_speed import speed_up_moto
from simulator.outputs import copy_lake, dead_letter_depths, run_summary
from simulator.producer import Producer
from simulator.progress import Progress
from simulator.provision import ACCOUNT_ID, REGION, Estate, Provisioner
from simulator.report import write_report
from simulator.runtime import Runtime
from simulator.scenario import Scenario
from simulator.sqs_poller import VisibilityChanges
from simulator.stream_pollers import KinesisPoller
from simulator.template import Template, WiringError, synthesize
from simulator.text_centre import TEXT_OPERATION, TextCentre
from simulator.wiring import (
    build_pollers,
    check_every_function_runs,
    contact_flow,
    flow_target,
    inject_clock,
    sns_subscribers,
)

_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@dataclass(frozen=True)
class TwinResult:
    """Where the outputs are, the summary written to ``summary.json``, and what the run cost.

    ``phases`` is wall seconds per phase (synth, provisioning, replay, analytics_report).
    ``handler_call_time`` and ``emulator_call_time`` are, per operation, the calls timed and
    the wall seconds answering them took (:class:`~simulator.api_calls.CallTimer`): the
    handlers' calls, and the twin's own (polling, putting the probe records, copying the
    lake), which ``summary["api_calls"]`` leaves out.
    """

    out_dir: Path
    summary: dict[str, Any]
    report: Path
    phases: dict[str, float] = field(default_factory=dict)
    handler_call_time: dict[str, tuple[int, float]] = field(default_factory=dict)
    emulator_call_time: dict[str, tuple[int, float]] = field(default_factory=dict)


class Twin:
    """One run: the moto estate, the functions, the AWS-side checks, the pollers, the calls."""

    def __init__(
        self, scenario: Scenario, template: dict[str, Any], out_dir: Path, seed: int
    ) -> None:
        self.scenario = scenario
        self.out_dir = out_dir
        self.seed = seed
        speed_up_moto()
        self.clock = SimClock()
        self.provisioner = Provisioner(Template(template), seed=seed)
        self.estate: Estate = self.provisioner.provision()
        self.call_timer = CallTimer()
        self.handler_call_time = CallTimes()
        self.emulator_call_time = CallTimes()
        self._sqs = self._client("sqs")
        self._log = (out_dir / "logs" / "functions.log").open("w", encoding="utf-8")
        self.runtime = Runtime(
            list(self.estate.functions.values()), REGION, log=self._log, clock=self.clock
        )
        self.iam = IamEnforcer(
            IamModel(self.provisioner.template, self.provisioner), lambda: self.runtime.current
        )
        self.faults = FaultInjector(scenario.faults, seed, self.runtime.now, self._sqs)
        self.faults.install(self.runtime)
        simulated_idempotency_clock(lambda: self.runtime.now() if self.runtime.depth > 0 else None)
        self.connect_refusals: list[tuple[str, float]] = []
        self.visibility = VisibilityChanges(self.runtime.now)
        self.hooks = self._hooks()
        self.call_timer.watch(default_session().events, self.handler_call_time)
        self.contact_centre = self._contact_centre()
        inject_clock(self.runtime)
        self.deliveries = [
            DeliveryStream(
                spec,
                self.runtime,
                self.clock,
                self._client("kinesis"),
                self._client("s3"),
                moto_kinesis_latest(REGION),
            )
            for spec in delivery_specs(self.provisioner)
        ]
        self.pollers = build_pollers(
            self.estate,
            self.runtime,
            self.clock,
            self.iam.model,
            self._client,
            self.faults.duplicate_delivery,
            self.visibility,
            self.deliveries,
        )
        replies = sns_subscribers(self.provisioner.template)
        self.text_centre = self._text_centre(replies)
        check_every_function_runs(
            self.runtime,
            self.pollers,
            [flow_target(f, self.runtime) for f in self.estate.contact_flows],
            [function for _, function in replies],
        )
        self.producer = Producer(
            self._client("kinesis"), self._kinesis_poller(), scenario.probe_events, self.deliveries
        )

    # --- wiring -------------------------------------------------------------------------------

    def _client(self, service: str) -> Any:
        """A client of the twin's own session whose calls count in ``emulator_call_time``."""
        client = self.provisioner.client(service)
        self.call_timer.watch(client.meta.events, self.emulator_call_time)
        return client

    def _hooks(self) -> AwsHooks:
        """The handlers' AWS calls: IAM, then faults, per attempt on simulated time."""
        hooks = AwsHooks(
            REGION, active=lambda: self.runtime.depth > 0, spend=self.runtime.spend, seed=self.seed
        )
        hooks.call_checks += [self.iam.check, self.faults.call_check]
        hooks.attempt_checks.append(self.faults.attempt_check)
        hooks.failure_listeners.append(self.faults.failed)
        hooks.attempt_listeners.append(self._note_connect_refusal)
        hooks.intercept("sqs.SendMessageBatch", self.faults.partial_batch)
        hooks.intercept("sqs.ChangeMessageVisibility", self.visibility.change)
        hooks.intercept("sqs.ChangeMessageVisibilityBatch", self.visibility.change_batch)
        return hooks

    def _note_connect_refusal(
        self, operation: str, params: dict[str, Any], error: ApiError | None
    ) -> None:
        if operation == CONNECT_OPERATION and error is not None and error.code in CONNECT_THROTTLES:
            self.connect_refusals.append((str(params.get("ClientToken")), self.runtime.now()))

    def _contact_centre(self) -> ContactCentre:
        flow = contact_flow(self.estate)
        target = flow_target(flow, self.runtime)
        subscribers = SimulatedSubscribers(
            self.scenario.answers,
            DefaultBehaviour(self.seed),
            FailureRatios(self.scenario.probe_events),
        )
        centre = ContactCentre(
            flow.content,
            lambda event, at: self.runtime.invoke(target, event, at=at),
            subscribers,
            flow.instance_arn,
            self._source_number(),
            self.out_dir / "calls.jsonl",
            quotas=self.scenario.connect,
        )

        def start_outbound_voice_contact(params: dict[str, Any]) -> dict[str, Any]:
            if params.get("ContactFlowId") not in (flow.flow_id, flow.flow_arn):
                raise ApiError("ResourceNotFoundException", "contact flow not found", 404)
            try:
                return centre.start_outbound_voice_contact(params, self.runtime.now())
            except InvalidRequestError as error:
                raise ApiError("InvalidParameterException", str(error)) from error
            except QuotaExceeded as error:
                raise ApiError(
                    error.code, error.message, connect_error_status(error.code)
                ) from error

        self.hooks.intercept(CONNECT_OPERATION, start_outbound_voice_contact)
        return centre

    def _text_centre(self, replies: list[tuple[str, str]]) -> TextCentre | None:
        """End User Messaging SMS and the replies topic, when the stack has the second
        channel (``sms.enabled``): one topic, one function subscribed to it."""
        if not replies:
            return None
        if len(replies) != 1:
            raise WiringError(f"expected one SMS replies subscription, found {replies}")
        ((topic, function),) = replies
        name = self.provisioner.template.resources[topic]["Properties"].get("TopicName", topic)
        contacts = ContactStore(self._client("dynamodb"), self._subscriber_table())

        def episode(phone: str) -> Episode | None:
            view = contacts.load(phone)
            return None if view is None else view.contact.episode

        centre = TextCentre(
            self.contact_centre.subscriber,
            lambda event, at: self.runtime.invoke(function, event, at=at),
            self.contact_centre.log,
            episode,
            f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{name}",
        )
        self.hooks.intercept(
            TEXT_OPERATION,
            lambda params: centre.send_text_message(params, self.runtime.now()),
        )
        return centre

    def _subscriber_table(self) -> str:
        """The subscriber table's name, as the functions are given it."""
        return next(
            value
            for f in self.estate.functions.values()
            if (value := f.environment.get("SUBSCRIBER_TABLE"))
        )

    def _source_number(self) -> str:
        numbers = {
            number
            for f in self.estate.functions.values()
            if (number := f.environment.get("SOURCE_PHONE_NUMBER"))
        }
        return next(iter(numbers), "+15550100000")

    def _kinesis_poller(self) -> KinesisPoller:
        streams = [p for p in self.pollers if isinstance(p, KinesisPoller)]
        if len(streams) != 1:
            raise WiringError("the twin feeds probe records into exactly one Kinesis stream")
        return streams[0]

    # --- running ------------------------------------------------------------------------------

    def settle(self) -> None:
        """Pump every poller and the calls in progress until nothing is left to do now."""
        while True:
            progressed = [poller.pump() for poller in self.pollers]
            progressed.append(self.contact_centre.pump(self.clock.now))
            if self.text_centre is not None:
                progressed.append(self.text_centre.pump(self.clock.now))
            if not any(progressed):
                return

    def _next_deadline(self) -> float | None:
        deadlines = [p.next_deadline() for p in self.pollers]
        deadlines.append(self.contact_centre.next_deadline())
        if self.text_centre is not None:
            deadlines.append(self.text_centre.next_deadline())
        return min((d for d in deadlines if d is not None), default=None)

    def settle_until(self, moment: float) -> None:
        """Settle, then work through every deadline (windows, visibility, calls) to ``moment``."""
        self.settle()
        while True:
            deadline = self._next_deadline()
            if deadline is None or deadline > moment:
                return
            self.clock.advance_to(max(deadline, self.clock.now))
            before = self.clock.now
            self.settle()
            again = self._next_deadline()
            if again is not None and again <= before:
                raise RuntimeError(f"event sources stuck at simulated time {self.clock.iso()}")

    def replay(self, progress: Progress) -> None:
        """Put the probe feed on the stream ahead of the clock, then let time run.

        Records go on the stream ``PutRecords`` by ``PutRecords``, before they arrive, so
        the producer costs a few hundred calls a day rather than one per record; the
        Kinesis poller does not see a record before its arrival, so batching windows and
        batch sizes work on arrival times. The clock moves from deadline to deadline, not
        record by record, and every poller drains at each one.
        """
        chunks = self.producer.chunks()
        if chunks:
            self.clock.advance_to(chunks[0][0][0])
        done = 0
        for chunk in chunks:
            self.producer.put(chunk, done)
            done += len(chunk)
            self.settle_until(chunk[-1][0])
            progress.update(done, self.clock.iso())
        self.settle_until(math.inf)

    def close(self) -> None:
        """Close the function log."""
        self._log.close()

    # --- outputs ------------------------------------------------------------------------------

    def record_preferences(self) -> None:
        """The scenario's preferred channels on the profiles, as customer care records them
        (``ops.contact_preferences``) before any incident."""
        rows: list[tuple[int, dict[str, str | None]]] = [
            (n, {"phone_number": s.phone_number, "channel": s.channel})
            for n, s in enumerate(self.scenario.subscribers)
            if s.channel
        ]
        if not rows:
            return
        now = datetime.fromtimestamp(self.clock.now, UTC)
        dynamodb = self._client("dynamodb")
        apply_preferences(rows, dynamodb=dynamodb, table_name=self._subscriber_table(), now=now)

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

    def summary(self, lake: dict[str, list[dict[str, Any]]], wall_seconds: float) -> dict[str, Any]:
        """``summary.json`` of this run (simulator/outputs.py)."""
        return run_summary(self, lake, wall_seconds)

    def copy_lake(self) -> dict[str, list[dict[str, Any]]]:
        """Copy every lake object to ``out/lake/`` and return the records by prefix."""
        return copy_lake(self._client("s3"), self.estate, self.out_dir)

    def dead_lettered(self) -> dict[str, int]:
        """Messages waiting in each dead-letter queue and on-failure destination."""
        return dead_letter_depths(self._sqs, self.estate)


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
        twin.record_preferences()
        try:
            twin.replay(bar)
            extra = after_replay(twin) if after_replay is not None else {}
        finally:
            bar.close()
            twin.close()
        phase("replay")
        twin.upload_remediation()
        lake = twin.copy_lake()
        summary = run_summary(twin, lake, time.monotonic() - started) | extra
    results = run_analytics(out_dir / "lake")
    write_outputs(results, out_dir)
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    report, _png = write_report(out_dir, summary, results)
    phase("analytics_report")
    return TwinResult(
        out_dir,
        summary,
        report,
        phases,
        twin.handler_call_time.by_operation(),
        twin.emulator_call_time.by_operation(),
    )
