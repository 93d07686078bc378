"""Time inside a handler: what each AWS call costs, how the SDK retries, what Powertools reads.

The simulated clock does not move while pollers deliver, but an invocation has a
duration of its own: it starts at the simulated time it is invoked and every AWS call
the handler makes spends simulated time on it (a fixed latency per attempt, see
:data:`CALL_SECONDS`, plus the SDK's back-off between failed attempts). The handler
sees ``start + elapsed`` as "now" (Powertools idempotency, the feedback function's
``clock``, outage windows, Connect's quotas), ``get_remaining_time_in_millis`` shrinks
with it, and an invocation whose elapsed time passes the function's ``Timeout`` dies
there, as Lambda ends it ("Task timed out").

SDK behaviour is botocore's own: the attempts per service and the retryable responses
come from botocore's ``_retry.json`` (legacy mode, the default for clients created
without a retry config) or the ``AWS_MAX_ATTEMPTS`` / ``AWS_RETRY_MODE`` variables of
the function's environment; the back-off is legacy mode's ``base * growth ** (n - 1)``
or standard mode's ``rand * min(scale * 2 ** (n - 1), 20)``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import botocore.loaders

# Simulated seconds one request attempt takes, by service: the twin's latency model
# (typical in-Region figures, not measurements). Anything else costs DEFAULT_CALL_SECONDS.
CALL_SECONDS = {
    "dynamodb": 0.01,
    "sqs": 0.02,
    "s3": 0.05,
    "secretsmanager": 0.03,
    "connect": 0.2,
    "kinesis": 0.02,
}
DEFAULT_CALL_SECONDS = 0.02
STANDARD_MAX_BACKOFF = 20.0
# Powertools idempotency modules that read the wall clock for expiry decisions.
_IDEMPOTENCY_MODULES = (
    "aws_lambda_powertools.utilities.idempotency.base",
    "aws_lambda_powertools.utilities.idempotency.persistence.base",
    "aws_lambda_powertools.utilities.idempotency.persistence.datarecord",
    "aws_lambda_powertools.utilities.idempotency.persistence.dynamodb",
)


class FunctionTimedOut(BaseException):
    """The invocation ran past the function's timeout; Lambda stops the sandbox.

    A ``BaseException`` so no ``except Exception`` in a handler can absorb it.
    """


@dataclass
class InvocationClock:
    """Simulated time of one running invocation: when it started and how long it has run."""

    start: float
    timeout: float
    elapsed: float = 0.0

    @property
    def now(self) -> float:
        """The handler's current simulated time."""
        return self.start + self.elapsed

    def spend(self, seconds: float) -> None:
        """Let ``seconds`` pass inside the invocation; past the timeout the sandbox stops."""
        self.elapsed += max(0.0, seconds)
        if self.elapsed > self.timeout:
            self.elapsed = self.timeout
            raise FunctionTimedOut(f"Task timed out after {self.timeout:.2f} seconds")

    @property
    def remaining_millis(self) -> int:
        """What ``context.get_remaining_time_in_millis()`` answers."""
        return max(0, int((self.timeout - self.elapsed) * 1000))


@functools.cache
def _retry_config() -> dict[str, Any]:
    return dict(botocore.loaders.create_loader().load_data("_retry"))


def _service_retry(service: str) -> dict[str, Any]:
    retry = _retry_config()["retry"]
    merged = dict(retry["__default__"])
    specific = retry.get(service, {}).get("__default__", {})
    merged.update({k: v for k, v in specific.items() if k != "policies"})
    merged["policies"] = {**retry["__default__"]["policies"], **specific.get("policies", {})}
    return merged


def _retry_mode(environ: Mapping[str, str]) -> str:
    return environ.get("AWS_RETRY_MODE", "legacy")


def sdk_attempts(service: str, environ: Mapping[str, str] = os.environ) -> int:
    """How many attempts a default-configured client of ``service`` makes before giving up."""
    if environ.get("AWS_MAX_ATTEMPTS", "").isdigit():
        return max(1, int(environ["AWS_MAX_ATTEMPTS"]))
    if _retry_mode(environ) in ("standard", "adaptive"):
        return 3
    return int(_service_retry(service)["max_attempts"])


def is_retryable(service: str, code: str, status: int) -> bool:
    """Would botocore retry this error response? (the policies of its ``_retry.json``)"""
    definitions = _retry_config()["definitions"]
    for policy in _service_retry(service)["policies"].values():
        rule = definitions[policy["$ref"]] if "$ref" in policy else policy
        response = rule["applies_when"].get("response")
        if not response or set(response) - {"service_error_code", "http_status_code"}:
            continue  # socket errors and checksum rules do not apply to an error response
        wanted_code = response.get("service_error_code")
        wanted_status = response.get("http_status_code")
        if (wanted_code is None or wanted_code == code) and (
            wanted_status is None or wanted_status == status
        ):
            return True
    return False


def backoff_seconds(
    service: str,
    attempt: int,
    throttled: bool,
    rng: random.Random,
    environ: Mapping[str, str] = os.environ,
) -> float:
    """The SDK's wait after failed attempt ``attempt`` (1-based)."""
    if _retry_mode(environ) in ("standard", "adaptive"):
        scale = 1.0 if throttled else (0.025 if service == "dynamodb" else 0.05)
        return rng.random() * min(scale * 2 ** (attempt - 1), STANDARD_MAX_BACKOFF)
    delay = _service_retry(service)["delay"]
    base = rng.random() if delay["base"] == "rand" else float(delay["base"])
    return base * float(delay["growth_factor"]) ** (attempt - 1)


def call_seconds(service: str) -> float:
    """Simulated latency of one request attempt to ``service``."""
    return CALL_SECONDS.get(service, DEFAULT_CALL_SECONDS)


class _SimulatedDatetime(_dt.datetime):
    """``datetime`` whose naive ``now()`` is the running handler's simulated time."""

    source: Callable[[], float | None] = staticmethod(lambda: None)

    @classmethod
    def now(cls, tz: _dt.tzinfo | None = None) -> _SimulatedDatetime:  # type: ignore[override]
        moment = cls.source()
        if moment is None:
            return super().now(tz)
        return cls.fromtimestamp(moment, tz)


def simulated_idempotency_clock(now: Callable[[], float | None]) -> None:
    """Make Powertools idempotency expiry follow the handler's simulated time.

    A crash inside ``Trigger_Connect``'s idempotent section leaves an INPROGRESS record
    that expires after the function's remaining time. On AWS the SQS retry comes after the
    visibility timeout (six times the function timeout), when it has expired; in the twin
    that retry happens at the right *simulated* time but within wall milliseconds, so
    Powertools must read the simulated clock to see what AWS would see. ``now()`` returns
    ``None`` outside a handler (the wall clock is used then).
    """
    _SimulatedDatetime.source = staticmethod(now)
    shim = ModuleType("datetime")
    shim.__dict__.update(vars(_dt))
    shim.datetime = _SimulatedDatetime  # type: ignore[attr-defined]
    for name in _IDEMPOTENCY_MODULES:
        module = sys.modules.get(name)
        if module is None:
            module = __import__(name, fromlist=["_"])
        # Releases differ in how they import it: ``import datetime as dt`` (3.37),
        # ``import datetime`` (3.23) or ``from datetime import datetime``.
        for attribute in ("dt", "datetime"):
            current = getattr(module, attribute, None)
            if current is _dt:
                setattr(module, attribute, shim)
            elif current is _dt.datetime:
                setattr(module, attribute, _SimulatedDatetime)
