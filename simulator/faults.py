"""Fault injection: the AWS-side failures a scenario's ``faults`` asks for.

Every fault is a probability drawn from its own seeded stream, so a run is
reproducible and adding one kind of fault does not shift the draws of another.
Hook points: the SQS poller asks :meth:`FaultInjector.duplicate_delivery` per
delivered message; :class:`~simulator.api_calls.AwsHooks` asks :meth:`api_error`
before each handler AWS call; the runtime asks :meth:`handler_crash` per invocation.
"""

from __future__ import annotations

import random
from collections import Counter

from simulator.api_calls import ApiError
from simulator.scenario import Faults

# operation → the error a throttled or failing dependency answers with.
_THROTTLE = ApiError("ThrottlingException", "Rate exceeded (twin fault injection)", 429)
_S3_ERROR = ApiError("InternalError", "We encountered an internal error (twin fault)", 500)
_DYNAMODB_ERROR = ApiError(
    "ProvisionedThroughputExceededException", "Throughput exceeded (twin fault injection)", 400
)


class FaultInjector:
    """Decides, per hook point, whether to inject a fault; counts what it injected."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self.injected: Counter[str] = Counter()
        self._rngs = {
            name: random.Random(f"{seed}|{name}")
            for name in ("duplicate", "connect", "s3", "dynamodb", "crash")
        }

    def _draw(self, stream: str, rate: float) -> bool:
        return rate > 0 and self._rngs[stream].random() < rate

    def duplicate_delivery(self) -> bool:
        """Deliver this SQS message a second time (at-least-once delivery)."""
        hit = self._draw("duplicate", self.faults.duplicate_delivery_rate)
        if hit:
            self.injected["duplicate_delivery"] += 1
        return hit

    def api_error(self, operation: str) -> ApiError | None:
        """The error to answer a handler's ``service.Operation`` call with, if any."""
        service = operation.split(".", 1)[0]
        if operation == "connect.StartOutboundVoiceContact":
            if self._draw("connect", self.faults.connect_throttle_rate):
                self.injected["connect_throttle"] += 1
                return _THROTTLE
        elif service == "s3" and self._draw("s3", self.faults.s3_error_rate):
            self.injected["s3_error"] += 1
            return _S3_ERROR
        elif service == "dynamodb" and self._draw("dynamodb", self.faults.dynamodb_error_rate):
            self.injected["dynamodb_error"] += 1
            return _DYNAMODB_ERROR
        return None

    def handler_crash(self) -> bool:
        """Crash this invocation before the handler runs (a sandbox failure)."""
        hit = self._draw("crash", self.faults.handler_crash_rate)
        if hit:
            self.injected["handler_crash"] += 1
        return hit
