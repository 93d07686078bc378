"""Hooks on boto3's default session: the AWS side of every call a handler makes.

Handlers create their clients from boto3's default session, so hooks registered on it
see every call they make. The twin's own clients (provisioning, polling) come from a
separate session and are never counted, faulted or checked.

For each handler call, in order: it is counted (``api_calls`` in the summary); the
checks that answer once per call run (IAM, an armed sandbox crash); then the SDK's
attempts are played out on the invocation's simulated time (:mod:`simulator.handler_time`):
each attempt costs its latency, may be failed by an injected fault or an outage, or is
answered by an interception (Connect, which moto does not implement); a retryable error
is retried after botocore's back-off until the client's attempts run out, as botocore's
retry handler would. An attempt nobody fails or answers goes on to moto.

botocore's ``BaseClient._make_api_call`` uses the first non-``None``
``(http_response, parsed)`` returned by a ``before-call`` handler instead of sending the
request, then raises the modelled ``ClientError`` when the status is 300 or more, exactly
as for a real error response. Returning a response there also skips botocore's own retry
loop, which is why the attempts are played out here.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders

from simulator.handler_time import backoff_seconds, call_seconds, is_retryable, sdk_attempts

PARAMS_KEY = "twin_api_params"
THROTTLING_STATUS = 429

# (operation, params) -> an error that answers the whole call, or None
CallCheck = Callable[[str, dict[str, Any]], "ApiError | None"]
# (operation, params, attempt) -> an error that fails this attempt, or None
AttemptCheck = Callable[[str, dict[str, Any], int], "ApiError | None"]
# params -> the parsed response, None to let moto answer; raises ApiError to fail the attempt
Answer = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class ApiError(Exception):
    """An AWS error response; ``kind`` names the injected fault or check that caused it."""

    def __init__(self, code: str, message: str, status: int = 400, kind: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.kind = kind


def default_session() -> boto3.session.Session:
    """boto3's default session, which the handlers' clients come from."""
    session = boto3.DEFAULT_SESSION
    if session is None:
        raise RuntimeError("boto3's default session is not set up")
    return session


def _response(status: int, parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = status
    return AWSResponse("https://twin.local/", status, HTTPHeaders(), None), parsed


def _error_response(error: ApiError) -> tuple[AWSResponse, dict[str, Any]]:
    return _response(error.status, {"Error": {"Code": error.code, "Message": error.message}})


class AwsHooks:
    """Installs the hooks on a fresh boto3 default session; checks and answers plug in."""

    def __init__(
        self,
        region: str,
        active: Callable[[], bool],
        spend: Callable[[float], None] = lambda seconds: None,
        seed: int = 0,
    ) -> None:
        self.counts: Counter[str] = Counter()
        self._active = active
        self._spend = spend
        self._rng = random.Random(f"{seed}|sdk-backoff")
        self.call_checks: list[CallCheck] = []
        self.attempt_checks: list[AttemptCheck] = []
        self.failure_listeners: list[Callable[[str, ApiError], None]] = []
        self.attempt_listeners: list[Callable[[str, dict[str, Any], ApiError | None], None]] = []
        self._intercepts: dict[str, Answer] = {}
        boto3.setup_default_session(region_name=region)
        events = default_session().events
        events.register("before-parameter-build", self._capture_params)
        events.register_first("before-call", self._count)
        answer: Any = self._intercept  # an answer short-circuits the call (botocore's contract)
        events.register_last("before-call", answer)

    def intercept(self, operation: str, answer: Answer) -> None:
        """Answer ``"service.Operation"`` with ``answer(params)`` (which may raise ApiError)."""
        self._intercepts[operation] = answer

    @staticmethod
    def _name(model: Any) -> str:
        return f"{model.service_model.service_name}.{model.name}"

    def _capture_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[PARAMS_KEY] = dict(params)

    def _count(self, model: Any, **_: Any) -> None:
        if self._active():
            self.counts[self._name(model)] += 1

    def _intercept(
        self, model: Any, context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not self._active():
            return None
        name = self._name(model)
        service = name.split(".", 1)[0]
        params = context.get(PARAMS_KEY, {})
        for check in self.call_checks:
            error = check(name, params)
            if error is not None:
                return self._fail(name, error)
        attempts = sdk_attempts(service)
        for attempt in range(1, attempts + 1):
            self._spend(call_seconds(service))
            error = next(
                (e for e in (c(name, params, attempt) for c in self.attempt_checks) if e), None
            )
            if error is None:
                answer = self._intercepts.get(name)
                if answer is None:
                    return None
                try:
                    parsed = answer(params)
                except ApiError as raised:
                    error = raised
                else:
                    self._attempted(name, params, None)
                    return None if parsed is None else _response(200, parsed)
            self._attempted(name, params, error)
            if attempt == attempts or not is_retryable(service, error.code, error.status):
                return self._fail(name, error)
            throttled = error.status == THROTTLING_STATUS or "Throttl" in error.code
            self._spend(backoff_seconds(service, attempt, throttled, self._rng))
        return None  # pragma: no cover - the loop always returns

    def _attempted(self, name: str, params: dict[str, Any], error: ApiError | None) -> None:
        for listener in self.attempt_listeners:
            listener(name, params, error)

    def _fail(self, name: str, error: ApiError) -> tuple[AWSResponse, dict[str, Any]]:
        for listener in self.failure_listeners:
            listener(name, error)
        return _error_response(error)

    def summary(self) -> dict[str, int]:
        """``"service.Operation"`` → count, sorted by name."""
        return dict(sorted(self.counts.items()))


@dataclass
class CallTimes:
    """Per ``"service.Operation"``: the calls answered and the wall seconds answering took."""

    calls: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)

    def by_operation(self) -> dict[str, tuple[int, float]]:
        """``"service.Operation"`` → (calls, seconds), sorted by name."""
        return {name: (self.calls[name], self.seconds[name]) for name in sorted(self.calls)}


class CallTimer:
    """Counts and times calls, from the serialised request to its parsed answer: what
    answering a call costs the twin (moto, or an interception, and the checks).

    Each watched emitter adds to its own :class:`CallTimes` (the handlers' calls, the
    twin's own), but the calls under way are one stack: a call made while another is being
    answered (a function or a twin client the answer uses) counts for itself only, in its
    own table. The start is kept in botocore's per-call ``context``, which ``before-call``
    and ``after-call`` (or ``after-call-error``) both receive. A call whose ``before-call``
    handler raised gets neither: it is not counted or timed, and its time stays with its
    caller's.
    """

    _STARTED = "twin_call_started"

    def __init__(self) -> None:
        self._open: list[_OpenCall] = []

    def watch(self, events: Any, times: CallTimes) -> None:
        """Count and time in ``times`` every call made through the clients sharing ``events``."""

        def start(model: Any, context: dict[str, Any], **_: Any) -> None:
            call = _OpenCall(AwsHooks._name(model), time.perf_counter(), times)
            context[self._STARTED] = call
            self._open.append(call)

        events.register_first("before-call", start)
        events.register_last("after-call", self._stop)
        events.register_last("after-call-error", self._stop)

    def _stop(self, context: dict[str, Any], **_: Any) -> None:
        call = context.pop(self._STARTED, None)
        if call is None or not any(open_ is call for open_ in self._open):
            return
        while (left := self._open.pop()) is not call:
            call.nested += left.nested  # a call that raised in before-call: not timed
        elapsed = time.perf_counter() - call.started
        seconds = call.times.seconds
        seconds[call.name] = seconds.get(call.name, 0.0) + elapsed - call.nested
        call.times.calls[call.name] += 1
        if self._open:
            self._open[-1].nested += elapsed


@dataclass
class _OpenCall:
    name: str
    started: float
    times: CallTimes
    nested: float = 0.0
