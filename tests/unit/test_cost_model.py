"""The cost model's arithmetic on a small input whose bill can be worked out by hand."""

from dataclasses import replace
from typing import Any

import pytest

from simulator.contact_centre import CallTiming
from simulator.cost.model import (
    ANALYTICS_PREFIXES,
    DAYS_PER_MONTH,
    Assumptions,
    Line,
    Volumes,
    design_profile,
    lake_read,
    price,
    reference_profile,
    total,
    usage,
)
from simulator.cost.prices import PriceTable, load_prices
from simulator.cost.scale import capacity_options
from tests.cost_fixtures import tiny_inputs, tiny_volumes

MONTH = 730 / 24
SUBSCRIBERS = 1000  # 10,000 records a day (RECORDS_PER_DAY in tests/cost_fixtures.py)


def _unit_prices() -> PriceTable:
    """The real table's ids, every price 1 USD per its unit (so a line is its quantity)."""
    table = load_prices()
    return replace(table, prices={pid: replace(p, value=1.0) for pid, p in table.prices.items()})


ASSUMPTIONS = Assumptions(
    call_timing=CallTiming(words_per_minute=150, ring_seconds=8.0, key_seconds=2.0),
    voicemail_share=0.0,
    platform_log_bytes=0,
    emf_log_bytes=0,
    athena_queries_per_day=1,
)


def _priced(
    reference: bool = False,
    *,
    inputs: dict[str, Any] | None = None,
    subscribers: int = SUBSCRIBERS,
    assumptions: Assumptions = ASSUMPTIONS,
) -> tuple[list[Line], Volumes]:
    """The tiny day's lines at unit prices (a line's amount is its quantity per price unit)."""
    inputs = inputs if inputs is not None else tiny_inputs()
    volumes = tiny_volumes(subscribers, inputs, assumptions)
    profile = reference_profile(inputs, volumes) if reference else design_profile(inputs)
    return price(usage(profile, volumes, subscribers, inputs, assumptions), _unit_prices()), volumes


def _bill(reference: bool = False, **sized: Any) -> dict[str, float]:
    lines, volumes = _priced(reference, **sized)
    return {f"{line.service}: {line.item}": line.monthly_usd for line in lines} | {
        "TOTAL": total(lines),
        "calls_per_day": volumes.engagements,
    }


def _quantities(**sized: Any) -> dict[str, float]:
    lines, _ = _priced(**sized)
    return {f"{line.service}: {line.item}": line.quantity for line in lines}


def test_month_is_730_hours() -> None:
    assert pytest.approx(MONTH) == DAYS_PER_MONTH


def test_volumes_follow_the_measured_funnel() -> None:
    bill = _bill()
    # one candidate in ten measured subscriber-days: 100 calls a day for 1,000 subscribers
    assert bill["calls_per_day"] == pytest.approx(100)


def test_dynamodb_write_units_per_record_and_per_incident() -> None:
    bill = _bill()
    # 10,000 records x 1 unit, priced per million units
    assert bill["Amazon DynamoDB: write request units Subscriber_counters"] == pytest.approx(
        10_000 * MONTH / 1e6
    )
    # 1,000 incidents x (200 units / 50 incidents)
    assert bill["Amazon DynamoDB: write request units Subscriber_table"] == pytest.approx(
        4_000 * MONTH / 1e6
    )
    # storage: 1,000 profiles of 3,996 + 100 bytes, 2,000 counter items of 924 + 100
    assert bill["Amazon DynamoDB: storage Subscriber_table"] == pytest.approx(1000 * 4096 / 1024**3)
    assert bill["Amazon DynamoDB: storage Subscriber_counters"] == pytest.approx(
        2000 * 1024 / 1024**3
    )


def test_kinesis_bills_a_kib_per_record_in_and_the_bytes_out_per_consumer() -> None:
    bill = _bill()
    assert bill["Amazon Kinesis Data Streams: data in (each record billed as 1 KB or more)"] == (
        pytest.approx(10_000 * 1024 * MONTH / 1024**3)
    )
    # the ingest handler and the probe archive's Firehose each read every 200-byte record
    assert bill["Amazon Kinesis Data Streams: data out (2 consumers)"] == pytest.approx(
        2 * 10_000 * 200 * MONTH / 1024**3
    )
    assert bill["Amazon Kinesis Data Streams: on-demand stream"] == 730


def test_the_probe_archive_bills_firehose_per_5_kb_record_and_s3_per_object() -> None:
    bill = _bill()
    firehose = "Amazon Data Firehose: probe archive"
    # 10,000 records of 200 bytes are ingested as 5 KB each; 9,000 rows of 6,000 bytes
    # come back from the transformation and are converted as 10 KB each
    assert bill[f"{firehose} ingestion (each record billed as 5 KB or more)"] == pytest.approx(
        10_000 * 5120 * MONTH / 1024**3
    )
    assert bill[
        f"{firehose} Parquet conversion (each row billed as 5 KB or more)"
    ] == pytest.approx(9_000 * 10_240 * MONTH / 1024**3)
    assert bill[f"{firehose} dynamic partitioning (rows processed)"] == pytest.approx(
        9_000 * 6_000 * MONTH / 1024**3
    )
    # 54 MB of rows a day fill the 1 MiB buffer 51.5 times: more objects than the one
    # the day-long interval would close
    objects = 9_000 * 6_000 / 1024**2
    assert bill[f"{firehose} dynamic partitioning (objects delivered)"] == pytest.approx(
        objects * MONTH / 1e3
    )
    assert bill["Amazon S3: PUT requests (probe archive objects)"] == pytest.approx(
        objects * MONTH / 1e3
    )
    # 30 bytes of Parquet per row, 5 days kept
    assert bill["Amazon S3: probe archive storage (5 days kept)"] == pytest.approx(
        9_000 * 30 * 5 / 1024**3
    )


def test_an_archive_buffer_that_never_fills_delivers_once_per_interval() -> None:
    inputs = tiny_inputs()
    inputs["template"]["archive_buffer_seconds"] = 900
    bill = _quantities(inputs=inputs)
    assert bill["Amazon S3: PUT requests (probe archive objects)"] == pytest.approx(96 * MONTH)


def test_lambda_gb_seconds_from_invocations_billed_time_and_memory() -> None:
    bill = _bill()
    # 10,000 / 500 = 20 invocations a day x 1 s x 1 GB
    assert bill["AWS Lambda: Ingest_probe_events compute"] == pytest.approx(20 * MONTH)
    # and 20 + 20 + 20 + 10 + 100 invocations of the others (incidents, decisions, calls)
    assert bill["AWS Lambda: requests"] == pytest.approx(190 * MONTH / 1e6)


def test_connect_minutes_from_the_flow_with_billing_minimums() -> None:
    bill = _bill()
    # the test flow's rated call is connected 12.5 s (10 s of prompts, the key 2 s later,
    # the feedback function's 0.5 s from the bench): usage billed by the second (10 s
    # minimum), telephony at least a minute
    assert bill["Amazon Connect: outbound voice usage"] == pytest.approx(100 * 12.5 / 60 * MONTH)
    assert bill["Amazon Connect: telephony to UK mobiles"] == pytest.approx(100 * MONTH)
    assert bill["Amazon Connect: telephony to UK landlines"] == 0


def test_sqs_and_lake_requests() -> None:
    bill = _bill()
    # 1,000 incidents: 100 SendMessageBatch calls of 10 (one 64 KB chunk each) plus the
    # poller's receive and delete, 2 requests per 10 messages
    assert bill["Amazon SQS: standard queue requests"] == pytest.approx((100 + 200) * MONTH / 1e6)
    # lake: 1,000 incident records a day at 100 bytes, kept 10 days
    assert bill["Amazon S3: lake storage (10 days kept)"] == pytest.approx(
        (1000 * 100 + 1000 * 50) * 10 / 1024**3
    )
    # Athena reads every object of the tables once per query, for the period's days:
    # 100 incident, 200 engagement, 100 feedback and 100 sentiment objects a day (one per
    # call) x the dashboard's 7 days
    assert bill["Amazon S3: GET requests (Athena reading the period's lake objects)"] == (
        pytest.approx(500 * 7 * MONTH / 1e3)
    )


def test_athena_bills_the_periods_bytes_per_query_and_at_least_10_mb() -> None:
    athena = "Amazon Athena: data scanned (each query reads its period's days)"
    # 1,000 subscribers: 150 KB of incident and engagement records a day, 1.05 MB in the
    # 7 days one query reads: billed as the 10 MB minimum
    assert _bill()[athena] == pytest.approx(10 * 1024**2 * MONTH / 1024**4)
    # 100,000 subscribers: 15 MB a day, 105 MB a query
    inputs = tiny_inputs()
    _, volumes = _priced(inputs=inputs, subscribers=100_000)
    profile = design_profile(inputs)
    once = dict.fromkeys(ANALYTICS_PREFIXES, 1)
    assert lake_read(once, profile, volumes, inputs, ASSUMPTIONS).bytes == pytest.approx(15e6 * 7)
    assert _bill(subscribers=100_000)[athena] == pytest.approx(15e6 * 7 * MONTH / 1024**4)


def test_a_query_period_longer_than_the_lake_reads_what_the_lake_keeps() -> None:
    month_long = replace(ASSUMPTIONS, query_period_days=30)
    gets = _quantities(assumptions=month_long)[
        "Amazon S3: GET requests (Athena reading the period's lake objects)"
    ]
    assert gets == pytest.approx(500 * 10 * MONTH)  # the fixture's lake keeps 10 days


def test_total_is_the_sum_of_the_lines_and_lines_come_largest_first() -> None:
    lines, _ = _priced()
    amounts = [line.monthly_usd for line in lines]
    assert amounts == sorted(amounts, reverse=True)
    assert total(lines) == pytest.approx(sum(amounts))


def test_reference_pattern_rewrites_the_subscriber_item_per_record() -> None:
    bill = _bill(reference=True)
    # a 3,996-byte item is 4 write units, once per record and once per feedback invocation
    assert bill["Amazon DynamoDB: write request units Subscriber_table"] == pytest.approx(
        (10_000 + 100) * 4 * MONTH / 1e6
    )
    assert "Amazon DynamoDB: write request units Subscriber_counters" not in bill
    # no probe archive: one consumer of the stream, no Firehose
    assert "Amazon Kinesis Data Streams: data out (1 consumer)" in bill
    assert not [line for line in bill if "Firehose" in line or "probe archive" in line]
    # one object per lake record: 1,000 incident and 1,000 engagement objects a day
    assert bill["Amazon S3: lake storage (10 days kept)"] == pytest.approx(
        (1000 * 400 + 1000 * 300) * 10 / 1024**3
    )


def test_provisioned_capacity_follows_the_day_at_the_target_utilization() -> None:
    # 60,480 records a day at 1 unit each: 0.7 units a second on average, so auto scaling
    # at 70% keeps 1 unit provisioned on average: 24 unit-hours a day
    options = capacity_options(86_400 * 0.7, 1.0, [], _unit_prices())
    assert options["counters_table_provisioned"]["monthly_usd"] == pytest.approx(24 * MONTH, 0.01)
    # the busiest hour is far below one shard: 1 shard all month, and a PUT unit per record
    stream = options["probe_stream_provisioned"]
    assert stream["shards"] == 1
    assert stream["monthly_usd"] == pytest.approx(730 + 60_480 * MONTH / 1e6, 0.01)
