"""Fault injection: the AWS-side failures a scenario's ``faults`` asks for.

Every fault is a probability drawn from its own seeded stream, so a run is reproducible
and turning one kind of fault on does not shift the draws of another. What each rate
means (docs/TWIN.md has the full story):

- ``duplicate_delivery_rate``: per SQS message a handler processed, the poller delivers
  it once more (SQS is at-least-once); asked by :class:`~simulator.event_sources.SqsPoller`.
- ``connect_throttle_rate``: per ``StartOutboundVoiceContact`` call, Connect answers
  ``ThrottlingException`` or ``LimitExceededException`` (status from botocore's Connect
  model) and the handler sees it: the twin answers Connect itself, so no SDK retry applies.
- ``s3_error_rate`` / ``dynamodb_error_rate``: per request *attempt* of a handler's S3 /
  DynamoDB call. The SDK retries transient errors, so the error reaches the handler only
  when every attempt botocore would make fails; the backoff costs no time. The call is
  answered before it reaches moto, so a failed write writes nothing.
- ``handler_crash_rate``: per invocation, the sandbox dies part-way (a timeout or out of
  memory): after a random number of the handler's AWS calls, or after all its work but
  before its response reaches Lambda. Handler code cannot catch it, so the whole batch
  fails and is retried as its event source does.

The twin's own clients (provisioning, polling) use another boto3 session, and the hooks
act only while a handler runs, so faults never hit the twin itself.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

import botocore.loaders
import botocore.session

from simulator.api_calls import ApiError
from simulator.provision import ACCOUNT_ID, Estate
from simulator.scenario import Faults

if TYPE_CHECKING:
    from simulator.clock import SimClock
    from simulator.runtime import Runtime

CONNECT_OPERATION = "connect.StartOutboundVoiceContact"
CONNECT_THROTTLES = ("ThrottlingException", "LimitExceededException")
# (code, HTTP status, message) as S3 and DynamoDB answer a transient failure.
S3_ERRORS = (
    ("InternalError", 500, "We encountered an internal error. Please try again."),
    ("ServiceUnavailable", 503, "Service is unable to handle request."),
    ("SlowDown", 503, "Please reduce your request rate."),
)
DYNAMODB_ERRORS = (
    (
        "ProvisionedThroughputExceededException",
        400,
        "The level of configured provisioned throughput for the table was exceeded.",
    ),
    ("ThrottlingException", 400, "Rate of requests exceeds the allowed throughput."),
    ("InternalServerError", 500, "Internal server error"),
)
CRASH_POINTS = 4  # the crash comes at one of the first four AWS calls, or after the work
CRASH_ERROR = "Runtime.ExitError: sandbox died mid-invocation (twin fault injection)"
# Powertools idempotency modules that read the wall clock for expiry decisions.
_IDEMPOTENCY_MODULES = (
    "aws_lambda_powertools.utilities.idempotency.base",
    "aws_lambda_powertools.utilities.idempotency.persistence.base",
    "aws_lambda_powertools.utilities.idempotency.persistence.datarecord",
    "aws_lambda_powertools.utilities.idempotency.persistence.dynamodb",
)


class SandboxCrash(BaseException):
    """The Lambda sandbox died: a ``BaseException`` so no ``except Exception`` in a handler
    (or in Powertools' batch and idempotency utilities) can absorb it."""


@functools.cache
def _connect_status() -> dict[str, int]:
    """HTTP status of each Connect throttle error, from botocore's service model."""
    model = botocore.session.get_session().get_service_model("connect")
    return {
        code: int(model.shape_for(code).metadata["error"]["httpStatusCode"])
        for code in CONNECT_THROTTLES
    }


@functools.cache
def _legacy_attempts() -> dict[str, int]:
    """Attempts botocore's legacy retry mode makes per service (its ``_retry.json``)."""
    retry = botocore.loaders.create_loader().load_data("_retry")["retry"]
    attempts = {
        service: int(config["__default__"]["max_attempts"])
        for service, config in retry.items()
        if service != "__default__" and "max_attempts" in config.get("__default__", {})
    }
    attempts["__default__"] = int(retry["__default__"]["max_attempts"])
    return attempts


def sdk_attempts(service: str, environ: Mapping[str, str] = os.environ) -> int:
    """How many attempts a default-configured client of ``service`` makes before giving up.

    The handlers create clients without a retry config, so the function's environment
    (``AWS_MAX_ATTEMPTS``, ``AWS_RETRY_MODE``) or botocore's legacy defaults decide.
    """
    if environ.get("AWS_MAX_ATTEMPTS", "").isdigit():
        return max(1, int(environ["AWS_MAX_ATTEMPTS"]))
    if environ.get("AWS_RETRY_MODE") in ("standard", "adaptive"):
        return 3
    attempts = _legacy_attempts()
    return attempts.get(service, attempts["__default__"])


class FaultInjector:
    """Decides, per hook point, whether to inject a fault; counts what it injected."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self.injected: Counter[str] = Counter()
        self.surfaced: Counter[str] = Counter()
        self.enabled = True
        self._rngs = {
            name: random.Random(f"{seed}|{name}")
            for name in ("duplicate", "connect", "s3", "dynamodb", "crash")
        }
        # One entry per running invocation (innermost last): AWS calls left before its crash.
        self._crash_after: list[int | None] = []

    def _draw(self, stream: str, rate: float) -> bool:
        return self.enabled and rate > 0 and self._rngs[stream].random() < rate

    def duplicate_delivery(self) -> bool:
        """Deliver this SQS message a second time (at-least-once delivery)."""
        hit = self._draw("duplicate", self.faults.duplicate_delivery_rate)
        if hit:
            self.injected["duplicate_delivery"] += 1
        return hit

    def api_error(self, operation: str) -> ApiError | None:
        """The error a handler's ``service.Operation`` call ends with, if any.

        Called before the call is answered (by moto or the contact centre); also where
        an armed crash strikes.
        """
        self._crash_point()
        service = operation.split(".", 1)[0]
        if operation == CONNECT_OPERATION:
            if self._draw("connect", self.faults.connect_throttle_rate):
                self.injected["connect_throttle"] += 1
                self.surfaced["connect_throttle"] += 1
                code = self._rngs["connect"].choice(CONNECT_THROTTLES)
                return ApiError(code, "Rate exceeded (twin fault)", _connect_status()[code])
            return None
        if service == "s3":
            return self._transient("s3", "s3_error", self.faults.s3_error_rate, S3_ERRORS)
        if service == "dynamodb":
            return self._transient(
                "dynamodb", "dynamodb_error", self.faults.dynamodb_error_rate, DYNAMODB_ERRORS
            )
        return None

    def _transient(
        self, service: str, kind: str, rate: float, errors: tuple[tuple[str, int, str], ...]
    ) -> ApiError | None:
        """Draw each attempt the SDK would make; the call fails only if all of them do."""
        last: tuple[str, int, str] | None = None
        for _ in range(sdk_attempts(service)):
            if not self._draw(service, rate):
                return None
            self.injected[kind] += 1
            last = self._rngs[service].choice(errors)
        if last is None:
            return None
        self.surfaced[kind] += 1
        code, status, message = last
        return ApiError(code, f"{message} (twin fault)", status)

    def _crash_point(self) -> None:
        if not self._crash_after or self._crash_after[-1] is None:
            return
        if self._crash_after[-1] == 0:
            self._crash_after[-1] = None
            raise SandboxCrash
        self._crash_after[-1] -= 1

    def crashing(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """``handler`` as run in a sandbox that may die part-way through an invocation."""

        @functools.wraps(handler)
        def invoke(event: Any, context: Any) -> Any:
            if not self._draw("crash", self.faults.handler_crash_rate):
                self._crash_after.append(None)
                try:
                    return handler(event, context)
                finally:
                    self._crash_after.pop()
            self.injected["handler_crash"] += 1
            self.surfaced["handler_crash"] += 1
            self._crash_after.append(self._rngs["crash"].randrange(CRASH_POINTS + 1))
            try:
                handler(event, context)
            except SandboxCrash:
                pass
            finally:
                self._crash_after.pop()
            raise RuntimeError(CRASH_ERROR)  # the work so far stays done; the response is lost

        return invoke

    def install(self, runtime: Runtime, clock: SimClock) -> None:
        """Wrap every function's handler for crashes; run Powertools idempotency on ``clock``."""
        for function in runtime.functions.values():
            if function.handler is not None:
                function.handler = self.crashing(function.handler)
        simulated_idempotency_clock(clock, lambda: runtime.depth > 0)


class _SimulatedDatetime(_dt.datetime):
    """``datetime`` whose naive ``now()`` is the twin's simulated time inside a handler."""

    source: Callable[[], float | None] = staticmethod(lambda: None)

    @classmethod
    def now(cls, tz: _dt.tzinfo | None = None) -> _SimulatedDatetime:  # type: ignore[override]
        moment = cls.source()
        if moment is None:
            return super().now(tz)
        return cls.fromtimestamp(moment, tz)


def simulated_idempotency_clock(clock: SimClock, active: Callable[[], bool]) -> None:
    """Make Powertools idempotency expiry follow the simulated clock while a handler runs.

    A crash inside ``Trigger_Connect``'s idempotent section leaves an INPROGRESS record
    that expires after the function's remaining time. On AWS the SQS retry comes after the
    visibility timeout (six times the function timeout), when it has expired; in the twin
    that retry happens at the right *simulated* time but within wall milliseconds, so
    Powertools must read the simulated clock to see what AWS would see.
    """
    _SimulatedDatetime.source = staticmethod(lambda: clock.now if active() else None)
    shim = ModuleType("datetime")
    shim.__dict__.update(vars(_dt))
    shim.datetime = _SimulatedDatetime  # type: ignore[attr-defined]
    for name in _IDEMPOTENCY_MODULES:
        module = sys.modules.get(name)
        if module is None:
            module = __import__(name, fromlist=["_"])
        module.dt = shim  # type: ignore[attr-defined]


def dead_letter_bodies(estate: Estate) -> dict[str, list[str]]:
    """Bodies of every message waiting in a DLQ or on-failure destination, by queue name.

    Reads moto's backend (visible and in-flight messages alike) without receiving, so
    looking changes nothing.
    """
    from moto.sqs.models import sqs_backends

    targets = {q.dlq_arn for q in estate.queues.values() if q.dlq_arn}
    targets |= {s.on_failure_arn for s in estate.event_sources if s.on_failure_arn}
    bodies: dict[str, list[str]] = {}
    for queue in estate.queues.values():
        if queue.arn in targets:
            region = queue.arn.split(":")[3]
            backend = sqs_backends[ACCOUNT_ID][region].queues[queue.name]
            bodies[queue.name] = [message.body for message in backend._messages]
    return bodies


def _engagement_id(body: str) -> str | None:
    try:
        message = json.loads(body)
    except ValueError:
        return None
    value = message.get("engagement_id") if isinstance(message, dict) else None
    return value if isinstance(value, str) and value else None


def exactly_once_figures(
    calls: list[Mapping[str, Any]],
    engagement: list[Mapping[str, Any]],
    dead_letters: Mapping[str, list[str]],
) -> dict[str, int]:
    """``duplicate_calls`` and ``engagements_lost``, counted from what the run left behind.

    ``calls`` is the contact centre's log (``calls.jsonl``), ``engagement`` the lake's
    ``engagement/`` records. An engagement is lost when the lake says "engage" but it was
    neither called nor is waiting in a dead-letter queue for an operator.
    """
    called = Counter(str(call.get("engagement_id")) for call in calls)
    engaged = {
        str(record.get("engagement_id"))
        for record in engagement
        if record.get("decision") == "engage"
    }
    parked = {
        engagement_id
        for bodies in dead_letters.values()
        for engagement_id in map(_engagement_id, bodies)
        if engagement_id is not None
    }
    return {
        "duplicate_calls": sum(1 for count in called.values() if count > 1),
        "engagements_lost": len(engaged - set(called) - parked),
    }
