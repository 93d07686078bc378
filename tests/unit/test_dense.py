"""The dense bench's workload: full batches on every shard, and the state behind them."""

import re
from collections import Counter

import pytest

from feedback_loop.timeutil import parse_utc
from simulator.dense import (
    ON_DEMAND_SHARDS,
    DenseSettings,
    billed_ms,
    dense_day,
    dense_slice,
    even_shards,
    shard_of,
    steady_records_per_object,
)

SETTINGS = DenseSettings(batches_per_shard=1, batch_size=50)


@pytest.fixture(scope="module")
def slice_():
    return dense_slice(SETTINGS)


def test_even_shards_cover_the_hash_key_range_without_gaps() -> None:
    shards = even_shards(4)
    assert shards[0][1] == 0 and shards[-1][2] == 2**128 - 1
    assert all(shards[i][2] + 1 == shards[i + 1][1] for i in range(3))


def test_every_shard_gets_full_batches_of_distinct_subscribers(slice_) -> None:
    records = slice_.records
    assert len(records) == SETTINGS.records == 50 * len(ON_DEMAND_SHARDS)
    per_shard = Counter(shard_of(r["phone_number"], ON_DEMAND_SHARDS) for r in records)
    assert set(per_shard.values()) == {50}
    assert len({r["phone_number"] for r in records}) == len(records)


def test_each_shard_receives_its_write_limit(slice_) -> None:
    moments = [parse_utc(r["timestamp"]).timestamp() for r in slice_.records]
    assert moments == sorted(moments)
    # 4 shards x 1,000 records/s: 200 records within 50 ms (timestamps have whole seconds)
    assert moments[-1] - moments[0] <= 1


def test_counter_items_are_laid_out_as_ingest_writes_them(slice_) -> None:
    shard_of_phone = {
        r["phone_number"]: shard_of(r["phone_number"], ON_DEMAND_SHARDS) for r in slice_.records
    }
    assert slice_.counters
    for item in slice_.counters:
        phone = item["PhoneNumber"]["S"]
        assert f"Seq_{shard_of_phone[phone]}" in item
        buckets = [name for name in item if re.fullmatch(r"[SF]\d+", name)]
        assert buckets and all(int(name[1:]) % 300 == 0 for name in buckets)


def test_profiles_hold_the_capped_history_ingest_leaves_and_wake_nobody(slice_) -> None:
    assert slice_.profiles
    for item in slice_.profiles:
        assert len(item["NewIncidents"]["L"]) == 1  # the last batch's incident
        assert 1 <= len(item["SeenIncidents"]["L"]) <= 20
        assert item["LastChange"] == {"S": "feedback"}


def test_the_slice_is_deterministic() -> None:
    small = DenseSettings(batches_per_shard=1, batch_size=10, seed=3)
    assert dense_slice(small).records == dense_slice(small).records


def test_a_dense_day_has_the_requested_density() -> None:
    scenario = dense_day(subscribers=20, records_per_subscriber_day=50, seed=1)
    per_subscriber = len(scenario.probe_events) / 20
    assert 35 < per_subscriber < 65
    stamps = [r["timestamp"] for r in scenario.probe_events]
    assert stamps == sorted(stamps) and stamps[0].startswith("2026-11-25")


def test_billed_time_scales_compute_to_the_cpu_share_and_adds_call_latency() -> None:
    # 256 MB gets 256/1769 of a vCPU; two DynamoDB calls at 6 ms and one SQS call at 10 ms
    calls = {"dynamodb.UpdateItem": 2, "sqs.SendMessageBatch": 1}
    assert billed_ms(10.0, 256, calls) == pytest.approx(10 * 1769 / 256 + 22)
    assert billed_ms(10.0, 3008, {}) == pytest.approx(10.0)


def test_steady_records_per_object_follow_the_window_until_the_batch_is_full() -> None:
    # Given a 2-second slice: 180 incidents through write_incident_to_S3 (batch 3,000 over
    # 300 s) and 160 answers through write_feedback_to_S3 (batch 100 over 300 s)
    settings = DenseSettings(batches_per_shard=2)
    summary = {
        "event_sources": {
            "write_incident_to_S3": {"records": 180},
            "write_feedback_to_S3": {"records": 160},
        }
    }
    lake = {"incidents": [{}] * 180, "feedback": [{}] * 160, "sentiment": [{}] * 150}
    batching = {"write_incident_to_S3": (3000, 300), "write_feedback_to_S3": (100, 300)}

    steady = steady_records_per_object(settings, summary, lake, batching)

    # Then 150 slices' worth of incidents arrive in a window, cut at 3,000 messages; the
    # feedback batch fills at 100 stream records, which hold 100 answers and ~94 ratings
    assert steady == {"incidents": 3000.0, "feedback": 100.0, "sentiment": 93.8}
