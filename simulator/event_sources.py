"""Event-source emulator: one poller per ``AWS::Lambda::EventSourceMapping`` of the template.

Each poller builds the real Lambda event shape and honours the mapping's settings:
``BatchSize``, ``MaximumBatchingWindowInSeconds`` (on the simulated clock),
``FilterCriteria`` (:mod:`simulator.event_filter`), ``ReportBatchItemFailures``, and for
streams ``BisectBatchOnFunctionError``, ``MaximumRetryAttempts`` and
``DestinationConfig.OnFailure``. This module holds what the pollers share and
:func:`build_pollers`; the SQS poller is in :mod:`simulator.sqs_poller`, the Kinesis and
DynamoDB stream pollers in :mod:`simulator.stream_pollers`, and the peeks into moto's
backends they rely on in :mod:`simulator.moto_internals`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.clock import SimClock
from simulator.provision import EventSourceSpec
from simulator.runtime import Invocation, Runtime


@dataclass
class SourceStats:
    """What one poller did, for the summary and the tests."""

    invocations: int = 0
    records: int = 0
    function_errors: int = 0
    item_failures: int = 0
    filtered_out: int = 0
    retries: int = 0
    bisections: int = 0
    sent_to_on_failure: int = 0
    duplicates: int = 0


def failed_item_ids(outcome: Invocation, ids: Sequence[str], report: bool) -> list[str] | None:
    """Item ids to retry, from a partial batch response; ``None`` means the whole batch failed.

    Without ``ReportBatchItemFailures`` only a function error fails the batch. With it,
    a malformed response, or an identifier that is empty or not in the batch, fails the
    whole batch, as Lambda does.
    """
    if outcome.failed:
        return None
    if not report or not isinstance(outcome.result, Mapping):
        return []
    failures = outcome.result.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return None
    wanted: list[str] = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not identifier or identifier not in ids:
            return None
        wanted.append(identifier)
    return wanted


class Poller:
    """Base of the three pollers: the mapping, the function, the clock and the stats."""

    def __init__(self, spec: EventSourceSpec, runtime: Runtime, clock: SimClock, sqs: Any) -> None:
        self.spec = spec
        self.runtime = runtime
        self.clock = clock
        self.sqs = sqs
        self.stats = SourceStats()
        self.function = runtime.function(spec.function_name)
        self.region = runtime.region

    def invoke(self, event: dict[str, Any], records: int) -> Invocation:
        """Invoke the mapped function and count it."""
        self.stats.invocations += 1
        self.stats.records += records
        outcome = self.runtime.invoke(self.spec.function_name, event)
        if outcome.failed:
            self.stats.function_errors += 1
        return outcome

    def pump(self) -> bool:
        """Deliver whatever is due now; True when anything changed."""
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        """The simulated time at which something becomes due, if anything is waiting."""
        raise NotImplementedError
