"""Fault injection: the AWS-side failures a scenario's ``faults`` asks for.

Every rate is a probability drawn from its own seeded stream, so a run is reproducible
and turning one kind of fault on does not shift the draws of another. What each key
means (docs/TWIN.md has the full story):

- ``duplicate_delivery_rate``: per SQS message a handler processed, the poller delivers
  it once more (SQS is at-least-once); asked by :class:`~simulator.sqs_poller.SqsPoller`.
- ``connect_throttle_rate``: per ``StartOutboundVoiceContact`` call, a throttling episode
  that outlasts the SDK's retries: every attempt of that call is answered
  ``ThrottlingException`` or ``LimitExceededException`` (status from botocore's model).
- ``s3_error_rate`` / ``dynamodb_error_rate`` / ``sqs_send_error_rate`` /
  ``secretsmanager_error_rate``: per request *attempt* of a handler's call to that
  service (SQS: ``SendMessage`` and ``SendMessageBatch`` only), a transient server error;
  the SDK retries it, so the error reaches the handler only when every attempt fails.
- ``sqs_batch_entry_failure_rate``: per entry of a handler's ``SendMessageBatch``, the
  entry comes back under ``Failed`` (``InternalError``, not the sender's fault) while
  the others are sent.
- ``handler_crash_rate``: per invocation, the sandbox dies part-way (out of memory, a
  crash): after a random number of the handler's AWS calls, or after all its work but
  before its response reaches Lambda. Handler code cannot catch it.
- ``outages``: windows of simulated time in which every attempt of a handler's call to a
  service fails with that service's "unavailable" answer.

The hooks act only while a handler runs, so faults never hit the twin itself.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import botocore.session

from simulator.api_calls import ApiError
from simulator.scenario import Faults

if TYPE_CHECKING:
    from simulator.runtime import Runtime

CONNECT_OPERATION = "connect.StartOutboundVoiceContact"
CONNECT_THROTTLES = ("ThrottlingException", "LimitExceededException")
SQS_SENDS = ("sqs.SendMessage", "sqs.SendMessageBatch")
# (code, HTTP status, message) of the transient failures each service answers.
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
SQS_ERRORS = (
    ("InternalFailure", 500, "The request processing has failed because of an unknown error."),
    ("ServiceUnavailable", 503, "The request has failed due to a temporary failure of the server."),
)
SECRETSMANAGER_ERRORS = (
    ("InternalServiceError", 500, "An error occurred on the server side."),
    ("ThrottlingException", 400, "Rate exceeded"),
)
# What a service answers while it is down (an outage window).
OUTAGE_ERRORS = {
    "s3": ("ServiceUnavailable", 503, "Service is unable to handle request."),
    "dynamodb": ("InternalServerError", 500, "Internal server error"),
    "sqs": ("ServiceUnavailable", 503, "The request has failed due to a temporary failure."),
    "secretsmanager": ("InternalServiceError", 500, "An error occurred on the server side."),
    "connect": ("InternalServiceException", 500, "Request processing failed."),
    "kinesis": ("InternalFailure", 500, "The request processing has failed."),
}
CRASH_POINTS = 4  # the crash comes at one of the first four AWS calls, or after the work
CRASH_ERROR = "Runtime.ExitError: sandbox died mid-invocation (twin fault injection)"


class SandboxCrash(BaseException):
    """The Lambda sandbox died: a ``BaseException`` so no ``except Exception`` in a handler
    (or in Powertools' batch and idempotency utilities) can absorb it."""


@functools.cache
def connect_error_status(code: str) -> int:
    """HTTP status of a Connect error code, from botocore's service model."""
    model = botocore.session.get_session().get_service_model("connect")
    return int(model.shape_for(code).metadata["error"]["httpStatusCode"])


class FaultInjector:
    """Decides, per call, attempt or entry, whether to inject a fault; counts what it did.

    ``now`` is the running handler's simulated time (outage windows are judged on it);
    ``sqs`` is a client of the twin's own session, used to send the entries of a
    ``SendMessageBatch`` that a partial failure lets through.
    """

    def __init__(
        self, faults: Faults, seed: int, now: Callable[[], float], sqs: Any = None
    ) -> None:
        self.faults = faults
        self.now = now
        self.sqs = sqs
        self.injected: Counter[str] = Counter()
        self.surfaced: Counter[str] = Counter()
        self.enabled = True
        self._rngs = {
            name: random.Random(f"{seed}|{name}")
            for name in (
                "duplicate",
                "connect",
                "s3",
                "dynamodb",
                "crash",
                "sqs",
                "sqs_entry",
                "secretsmanager",
            )
        }
        self._transient = {
            "s3": ("s3_error", faults.s3_error_rate, S3_ERRORS),
            "dynamodb": ("dynamodb_error", faults.dynamodb_error_rate, DYNAMODB_ERRORS),
            "secretsmanager": (
                "secretsmanager_error",
                faults.secretsmanager_error_rate,
                SECRETSMANAGER_ERRORS,
            ),
            "sqs": ("sqs_send_error", faults.sqs_send_error_rate, SQS_ERRORS),
        }
        self._throttle_episode: str | None = None
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

    # --- checks plugged into the AWS hooks ---------------------------------------------------

    def call_check(self, operation: str, params: dict[str, Any]) -> ApiError | None:
        """Once per handler call: an armed crash strikes; a Connect throttle episode starts."""
        self._crash_point()
        self._throttle_episode = None
        if operation == CONNECT_OPERATION and self._draw(
            "connect", self.faults.connect_throttle_rate
        ):
            self._throttle_episode = self._rngs["connect"].choice(CONNECT_THROTTLES)
        return None

    def attempt_check(
        self, operation: str, params: dict[str, Any], attempt: int
    ) -> ApiError | None:
        """Per SDK attempt: an outage window, a throttle episode or a transient error."""
        if not self.enabled:
            return None
        service = operation.split(".", 1)[0]
        outage = self._outage(service)
        if outage is not None:
            return outage
        if operation == CONNECT_OPERATION and self._throttle_episode is not None:
            self.injected["connect_throttle"] += 1
            code = self._throttle_episode
            return ApiError(
                code, "Rate exceeded (twin fault)", connect_error_status(code), "connect_throttle"
            )
        if service == "sqs" and operation not in SQS_SENDS:
            return None
        if service not in self._transient:
            return None
        kind, rate, errors = self._transient[service]
        if not self._draw(service, rate):
            return None
        self.injected[kind] += 1
        code, status, message = self._rngs[service].choice(errors)
        return ApiError(code, f"{message} (twin fault)", status, kind)

    def _outage(self, service: str) -> ApiError | None:
        moment = self.now()
        for outage in self.faults.outages:
            if outage.service == service and outage.start <= moment < outage.end:
                kind = f"{service}_outage"
                self.injected[kind] += 1
                code, status, message = OUTAGE_ERRORS[service]
                return ApiError(code, f"{message} (twin outage)", status, kind)
        return None

    def failed(self, operation: str, error: ApiError) -> None:
        """A call ended in ``error`` for the handler: count the fault as surfaced."""
        if error.kind is not None and error.kind != "access_denied":
            self.surfaced[error.kind] += 1

    def partial_batch(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """``SendMessageBatch`` with some entries under ``Failed`` (``None``: moto answers all)."""
        entries = list(params.get("Entries", []))
        failing = {
            entry["Id"]
            for entry in entries
            if self._draw("sqs_entry", self.faults.sqs_batch_entry_failure_rate)
        }
        if not failing:
            return None
        self.injected["sqs_batch_entry_failure"] += len(failing)
        self.surfaced["sqs_batch_entry_failure"] += len(failing)
        sent = [entry for entry in entries if entry["Id"] not in failing]
        response: dict[str, Any] = {"Successful": [], "Failed": []}
        if sent:
            answer = self.sqs.send_message_batch(QueueUrl=params["QueueUrl"], Entries=sent)
            response["Successful"] = answer.get("Successful", [])
            response["Failed"] = answer.get("Failed", [])
        response["Failed"] += [
            {
                "Id": entry_id,
                "SenderFault": False,
                "Code": "InternalError",
                "Message": "The request processing has failed (twin fault).",
            }
            for entry_id in sorted(failing)
        ]
        return response

    # --- sandbox crashes ---------------------------------------------------------------------

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

    def install(self, runtime: Runtime) -> None:
        """Wrap every function's handler so its sandbox may crash."""
        for function in runtime.functions.values():
            if function.handler is not None:
                function.handler = self.crashing(function.handler)
