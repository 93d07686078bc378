"""The dense-load bench end to end on a small slice: full batches, metered, written out."""

import io
import json
from pathlib import Path

import pytest

from simulator.dense import DenseSettings, run_dense

pytestmark = [pytest.mark.xdist_group("twin_b"), pytest.mark.slow]


def test_a_small_dense_slice_runs_in_full_batches_and_meters_every_record(
    tmp_path: Path,
) -> None:
    settings = DenseSettings(batches_per_shard=1, batch_size=25)
    printed = io.StringIO()
    figures = run_dense(settings, tmp_path, printed)

    assert figures["health"] == {
        "function_errors": 0,
        "retries": 0,
        "bisections": 0,
        "dead_lettered": 0,
        "connect_refusals": 0,
    }
    ingest = figures["functions"]["Ingest_probe_events"]
    assert (ingest["invocations"], ingest["records_per_invocation"]) == (4, 25.0)
    # every record belongs to another subscriber: one counter write (of one unit) each
    counters = figures["dynamodb"]["tables"]["Subscriber_counters"]
    assert counters["writes_per_record"] == 1.0
    assert counters["write_units_per_record"] == 1.0
    # the throughput model runs as many batches per shard as the deployed event source
    throughput = figures["ingest_throughput"]
    assert throughput["parallel_batches"] == 10
    assert throughput["records_per_second_per_shard"] == round(
        10 * 1000 * 25 / throughput["batch_ms"]
    )
    assert json.loads((tmp_path / "dense.json").read_text()) == json.loads(json.dumps(figures))
    assert "DynamoDB per probe record" in printed.getvalue()
