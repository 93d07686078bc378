"""The Lambda runtime of the twin: load each function's handler and invoke it like Lambda does.

Isolation: every function gets its own instances of the modules under ``lambdas/``
(the handler package and the shared ``feedback_loop`` package). They are imported
into a per-function module namespace and swapped into ``sys.modules`` only while that
function runs, so two functions never share handler globals or cached clients, as in
two separate Lambda sandboxes. Environment: the function's resolved variables (plus the
ones Lambda itself sets) are in ``os.environ`` during import (the init phase) and during
each invocation, and nothing else of another function is. Time: each invocation runs on
its own :class:`~simulator.handler_time.InvocationClock`, started at the simulated time it
is invoked; a handler that runs past its timeout is stopped there.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from simulator.clock import SimClock
from simulator.handler_time import FunctionTimedOut, InvocationClock
from simulator.provision import FunctionSpec
from simulator.template import REPO_ROOT, WiringError

LAMBDA_ROOT = REPO_ROOT / "lambdas"
# Metrics are disabled in the twin, so Powertools would warn on every invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish")


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object the handlers (and Powertools) read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_seconds: int
    clock: InvocationClock
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "twin"

    def get_remaining_time_in_millis(self) -> int:
        """The timeout less the simulated time the invocation has spent so far."""
        return self.clock.remaining_millis


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation: the handler's return value or its error.

    ``duration`` is the simulated seconds it ran (its AWS calls and the SDK's back-off).
    """

    result: Any
    error: str | None
    duration: float = 0.0

    @property
    def failed(self) -> bool:
        """True when the handler raised (a function error)."""
        return self.error is not None


def _lambda_packages(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}


class Function:
    """One ``AWS::Lambda::Function``: its spec, module namespace and invocation counters."""

    def __init__(self, spec: FunctionSpec, runtime: Runtime) -> None:
        self.spec = spec
        self._runtime = runtime
        self.modules: dict[str, Any] = {}
        self.handler: Callable[[Any, Any], Any] | None = None
        self.invocations = 0
        self.errors = 0

    @property
    def environment(self) -> dict[str, str]:
        """What Lambda puts in the environment: its own variables, then the function's."""
        spec = self.spec
        return {
            "AWS_REGION": self._runtime.region,
            "AWS_DEFAULT_REGION": self._runtime.region,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "_HANDLER": spec.handler,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            **spec.environment,
        }

    def load(self) -> None:
        """The init phase: import ``<folder>.app`` into this function's own module namespace."""
        module_name, _, attribute = self.spec.handler.rpartition(".")
        if not module_name or not (LAMBDA_ROOT / module_name.split(".")[0]).is_dir():
            raise WiringError(
                f"{self.spec.name}: handler {self.spec.handler!r} is not a module under lambdas/"
            )
        with self._runtime.sandbox(self):
            try:
                module = importlib.import_module(module_name)
            except Exception as error:
                raise WiringError(
                    f"{self.spec.name}: handler module {module_name!r} cannot be imported: {error}"
                ) from error
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise WiringError(f"{self.spec.name}: {self.spec.handler!r} is not a callable")
        self.handler = handler

    def module(self, name: str) -> Any:
        """This function's instance of module ``name`` (e.g. to inject the simulated clock)."""
        return self.modules[name]


class Runtime:
    """Loads the template's functions and invokes them, one at a time, as Lambda would."""

    def __init__(
        self,
        specs: list[FunctionSpec],
        region: str,
        log: TextIO | None = None,
        clock: SimClock | None = None,
    ) -> None:
        self.region = region
        self.clock = clock or SimClock()
        self.packages = _lambda_packages(LAMBDA_ROOT)
        self.log = log
        self.functions = {spec.name: Function(spec, self) for spec in specs}
        self._by_arn = {spec.arn: spec.name for spec in specs}
        self._env_keys = {key for f in self.functions.values() for key in f.environment}
        self.depth = 0
        self.running: list[tuple[Function, InvocationClock | None]] = []
        self._outside: set[str] = set()
        self._modules_seen = -1
        self.listeners: list[Callable[[str, dict[str, Any], Invocation], None]] = []
        if str(LAMBDA_ROOT) not in sys.path:
            sys.path.insert(0, str(LAMBDA_ROOT))
        for function in self.functions.values():
            function.load()

    def function(self, name_or_arn: str) -> Function:
        """The function with this name or ARN; an unknown one is a wiring error."""
        name = self._by_arn.get(name_or_arn, name_or_arn)
        if name not in self.functions:
            raise WiringError(f"no function {name_or_arn!r} in the template")
        return self.functions[name]

    def _scan(self) -> set[str]:
        return {name for name in sys.modules if name.split(".")[0] in self.packages}

    @contextlib.contextmanager
    def sandbox(self, function: Function, clock: InvocationClock | None = None) -> Iterator[None]:
        """Swap in ``function``'s modules, environment and log stream; restore on exit."""
        if len(sys.modules) != self._modules_seen:
            self._outside = self._scan()
        outside = {name: sys.modules.pop(name) for name in self._outside if name in sys.modules}
        sys.modules.update(function.modules)
        size = len(sys.modules)
        saved_env = {key: os.environ.get(key) for key in self._env_keys}
        for key in self._env_keys:
            os.environ.pop(key, None)
        os.environ.update(function.environment)
        saved_stdout = sys.stdout
        if self.log is not None:
            sys.stdout = self.log
        self.depth += 1
        self.running.append((function, clock))
        try:
            yield
        finally:
            self.running.pop()
            self.depth -= 1
            sys.stdout = saved_stdout
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            if len(sys.modules) != size:  # the function imported more of its own modules
                function.modules.update({name: sys.modules[name] for name in self._scan()})
            for name in function.modules:
                sys.modules.pop(name, None)
            sys.modules.update(outside)
            self._outside = set(outside)
            self._modules_seen = len(sys.modules)

    @property
    def current(self) -> Function | None:
        """The function whose code is running (its init or an invocation), if any."""
        return self.running[-1][0] if self.running else None

    @property
    def invocation_clock(self) -> InvocationClock | None:
        """The running invocation's clock (``None`` during init or outside handlers)."""
        return self.running[-1][1] if self.running else None

    def now(self) -> float:
        """Simulated time as the running handler sees it (the twin's clock outside handlers)."""
        clock = self.invocation_clock
        return clock.now if clock is not None else self.clock.now

    def spend(self, seconds: float) -> None:
        """Let simulated time pass inside the running invocation (nothing outside one)."""
        clock = self.invocation_clock
        if clock is not None:
            clock.spend(seconds)

    def invoke(
        self, name_or_arn: str, event: dict[str, Any], at: float | None = None
    ) -> Invocation:
        """Invoke synchronously at simulated time ``at`` (default: now).

        A raised exception is a function error, logged with its trace; running past the
        function's timeout is one too (``Task timed out``), whatever the handler did so far
        stays done.
        """
        function = self.function(name_or_arn)
        assert function.handler is not None
        spec = function.spec
        clock = InvocationClock(self.clock.now if at is None else at, float(spec.timeout))
        context = LambdaContext(
            function_name=spec.name,
            memory_limit_in_mb=spec.memory,
            invoked_function_arn=spec.arn,
            aws_request_id=str(uuid.uuid4()),
            timeout_seconds=spec.timeout,
            clock=clock,
            log_group_name=f"/aws/lambda/{spec.name}",
        )
        function.invocations += 1
        with self.sandbox(function, clock):
            try:
                outcome = Invocation(function.handler(event, context), None, clock.elapsed)
            except (Exception, FunctionTimedOut) as error:
                function.errors += 1
                if self.log is not None:
                    self.log.write(f"[{spec.name}] function error\n{traceback.format_exc()}")
                outcome = Invocation(None, f"{type(error).__name__}: {error}", clock.elapsed)
        for listener in self.listeners:
            listener(spec.name, event, outcome)
        return outcome
