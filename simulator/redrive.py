"""``python -m simulator redrive``: run a scenario, then do what an operator does with its DLQs.

After the run (with the scenario's faults) has settled, the cause is "fixed" (faults are
switched off), the simulated clock moves on by :data:`OPERATOR_DELAY_SECONDS`, and:

- every SQS dead-letter queue is moved back to its source queue (known from the
  template's ``RedrivePolicy``) with :func:`ops.redrive.redrive`, the operator's tool;
- the DynamoDB stream on-failure destination (``read_after_incident_failures_dlq``) holds
  batch metadata, not records: the named range is read again from the stream with
  ``GetShardIterator(AT_SEQUENCE_NUMBER)`` / ``GetRecords`` and the function is invoked
  with those records, as docs/OPERATIONS.md describes; the metadata message is deleted
  only when that invocation succeeded;
- the Kinesis on-failure destination (``ingest_failures_dlq``) cannot be replayed in the
  twin: the event-source emulator trims records from moto once read, so the range is no
  longer on the stream. Its messages stay where they are and are reported as
  ``needs_replay`` with the number of records they name.

Then every poller is pumped until quiet, and the outputs are written as by ``run``, with
``redriven`` in ``summary.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ops.redrive import redrive
from simulator.event_filter import passes_filters
from simulator.provision import EventSourceSpec, QueueInfo
from simulator.scenario import Scenario
from simulator.stream_pollers import DynamoDbStreamPoller, KinesisPoller
from simulator.twin import Twin, TwinResult, run_twin

OPERATOR_DELAY_SECONDS = 3600  # the operator redrives an hour after the run went quiet


def _drain(sqs: Any, queue: QueueInfo) -> list[dict[str, Any]]:
    """Every message of an on-failure destination, received with a long visibility timeout."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue.url, MaxNumberOfMessages=10, VisibilityTimeout=43000
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


def _release(sqs: Any, queue: QueueInfo, messages: list[dict[str, Any]]) -> None:
    """Make messages left in a destination visible again."""
    for message in messages:
        sqs.change_message_visibility(
            QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )


def _stream_range(
    twin: Twin, poller: DynamoDbStreamPoller, info: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The records ``startSequenceNumber``..``endSequenceNumber`` of one shard, as Lambda
    would deliver them (the mapping's filter applied)."""
    streams = twin.provisioner.client("dynamodbstreams")
    iterator = streams.get_shard_iterator(
        StreamArn=info["streamArn"],
        ShardId=info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=info["startSequenceNumber"],
    )["ShardIterator"]
    end = int(info["endSequenceNumber"])
    records: list[dict[str, Any]] = []
    while iterator:
        response = streams.get_records(ShardIterator=iterator, Limit=1000)
        raw = [r for r in response["Records"] if int(r["dynamodb"]["SequenceNumber"]) <= end]
        records.extend(poller._record(r) for r in raw)  # the emulator's Lambda event shape
        if not response["Records"] or len(raw) < len(response["Records"]):
            break
        iterator = response.get("NextShardIterator")
    return [
        r for r in records if passes_filters(poller.spec.filter_patterns, poller.filter_view(r))
    ]


def _replay_stream(twin: Twin, queue: QueueInfo, poller: DynamoDbStreamPoller) -> dict[str, Any]:
    sqs = twin.provisioner.client("sqs")
    messages = _drain(sqs, queue)
    replayed = failed = records = 0
    kept: list[dict[str, Any]] = []
    for message in messages:
        info = json.loads(message["Body"])[poller.batch_info_key]
        batch = _stream_range(twin, poller, info)
        outcome = twin.runtime.invoke(poller.spec.function_name, {"Records": batch})
        item_failures = (
            outcome.result.get("batchItemFailures") if isinstance(outcome.result, Mapping) else None
        )
        if outcome.failed or item_failures:
            failed += 1
            kept.append(message)
            continue
        sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
        replayed += 1
        records += len(batch)
    _release(sqs, queue, kept)
    return {"replayed": replayed, "records_replayed": records, "failed": failed}


def _needs_replay(twin: Twin, queue: QueueInfo, key: str) -> dict[str, Any]:
    sqs = twin.provisioner.client("sqs")
    messages = _drain(sqs, queue)
    _release(sqs, queue, messages)
    records = sum(int(json.loads(m["Body"])[key]["batchSize"]) for m in messages)
    return {"needs_replay": len(messages), "records_to_replay": records}


def _on_failure_source(twin: Twin, queue: QueueInfo) -> EventSourceSpec | None:
    return next((s for s in twin.estate.event_sources if s.on_failure_arn == queue.arn), None)


def redrive_phase(twin: Twin) -> dict[str, Any]:
    """Redrive every DLQ of a settled twin (faults off), pump until quiet; per-queue figures."""
    twin.faults.enabled = False
    twin.clock.advance_by(OPERATOR_DELAY_SECONDS)
    before = twin.dead_lettered()
    sqs = twin.provisioner.client("sqs")
    report: dict[str, dict[str, Any]] = {}
    for queue in twin.estate.queues.values():
        if queue.name not in before:
            continue
        entry: dict[str, Any] = {"dead_lettered_before": before[queue.name]}
        sources = [q for q in twin.estate.queues.values() if q.dlq_arn == queue.arn]
        spec = _on_failure_source(twin, queue)
        if sources:
            (source,) = sources
            result = redrive(sqs, queue.url, source.url, wait_seconds=0)
            entry |= {"source": source.name, "moved": result.moved, "failed": result.failed}
        elif spec is not None:
            poller = next(p for p in twin.pollers if p.spec is spec)
            entry["source"] = spec.function_name
            if isinstance(poller, DynamoDbStreamPoller):
                entry |= _replay_stream(twin, queue, poller)
            elif isinstance(poller, KinesisPoller):
                entry |= _needs_replay(twin, queue, poller.batch_info_key)
        report[queue.name] = entry
    twin.settle_until(math.inf)
    after = twin.dead_lettered()
    for name, entry in report.items():
        entry["dead_lettered_after"] = after[name]
        if "moved" in entry:
            # moved and not dead-lettered again (the DLQ held nothing else after the move)
            entry["processed"] = entry["moved"] - (after[name] - (before[name] - entry["moved"]))
    return {"redriven": report}


def run_redrive(scenario: Scenario, out_dir: Path | str, seed: int) -> TwinResult:
    """``run`` followed by the redrive phase; outputs as ``run`` plus ``redriven``."""
    return run_twin(scenario, out_dir, seed, after_replay=redrive_phase)
