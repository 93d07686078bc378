"""Measuring the cost model's inputs from a twin run's outputs (simulator/cost/measure.py)."""

import json
from pathlib import Path
from typing import Any

import pytest

from feedback_loop.lake import encode_jsonl_gz
from simulator.cost.measure import MeasureError, measure
from simulator.scenario import Scenario, Subscriber
from tests.cost_fixtures import tiny_inputs

DAY = "2026-11-25"


def _record(phone: str, cell: str, at: str, success: bool) -> dict[str, Any]:
    return {
        "timestamp": f"{DAY}T{at}Z",
        "phone_number": phone,
        "cell": cell,
        "event_type": "CALL_DROP",
        "success": success,
    }


SCENARIO = Scenario(
    probe_events=[
        _record("+447700900001", "C1", "09:58:00", True),
        _record("+447700900001", "C1", "10:00:00", False),
        _record("+447700900002", "C2", "11:00:00", True),
        _record("+447700900002", "C2", "11:30:00", False),
    ],
    subscribers=[Subscriber("+447700900001", "C1"), Subscriber("+447700900002", "C2")],
)


def _decision(engagement_id: str, subscriber: str, at: str, decision: str, reason: str) -> dict:
    return {
        "engagement_id": engagement_id,
        "incident_id": f"incident-of-{engagement_id}",
        "subscriber_id": subscriber,
        "cell": "C1" if subscriber == "s1" else "C2",
        "incident_type": "CALL_DROP",
        "incident_time": f"{DAY}T{at}Z",
        "decision": decision,
        "reason": reason,
    }


def _write_run(run: Path) -> None:
    summary = {
        "probe_events": 4,
        "rejected_records": 0,
        "engagements": 1,
        "invocations": {"Trigger_Connect": {"invocations": 1, "errors": 0}},
        # three of the four records archived, 900 bytes of rows in all
        "delivery_streams": {"probe_archive": {"rows_delivered": 3, "bytes_transformed": 900}},
    }
    (run / "logs").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(summary))
    incidents = run / "lake" / "incidents" / f"dt={DAY}"
    incidents.mkdir(parents=True)
    (incidents / "a.jsonl.gz").write_bytes(
        encode_jsonl_gz([{"incident_id": "i1", "cell": "C1"}, {"incident_id": "i2", "cell": "C2"}])
    )
    engagement = run / "lake" / "engagement" / f"dt={DAY}"
    engagement.mkdir(parents=True)
    decisions = [
        _decision("e1", "s1", "10:00:00", "engage", "above_threshold"),
        _decision("e2", "s2", "11:30:00", "suppress", "min_sessions"),
        {**_decision("e1", "s1", "10:00:00", "contacted", "voice"), "decided_at": "10:10"},
    ]
    # at-least-once delivery: the first decision arrived twice, in another object
    (engagement / "b.jsonl.gz").write_bytes(encode_jsonl_gz(decisions))
    (engagement / "c.jsonl.gz").write_bytes(encode_jsonl_gz(decisions[:1]))
    call = {"outcome": "answered", "inputs": ["", "3"], "engagement_id": "e1"}
    (run / "calls.jsonl").write_text(json.dumps(call) + "\n")
    line = json.dumps({"level": "INFO", "message": "Call started", "service": "Trigger_Connect"})
    emf = json.dumps({"_aws": {}, "service": "Trigger_Connect"})
    (run / "logs" / "functions.log").write_text(f"{line}\n{emf}\nnot json\n")


def _mapping(source: str, attribute: str = "Arn") -> dict[str, Any]:
    """A Lambda event source mapping reading ``source``."""
    return {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {"EventSourceArn": {"Fn::GetAtt": [source, attribute]}},
    }


TEMPLATE = {
    "Resources": {
        "Stream": {"Type": "AWS::Kinesis::Stream", "Properties": {"Name": "probe_events"}},
        "OtherStream": {"Type": "AWS::Kinesis::Stream", "Properties": {"Name": "other"}},
        "Queue": {"Type": "AWS::SQS::Queue"},
        "Table": {"Type": "AWS::DynamoDB::Table"},
        "Mapping": _mapping("Queue"),
        "StreamMapping": _mapping("Table", "StreamArn"),
        "IngestMapping": _mapping("Stream"),
        "OtherMapping": _mapping("OtherStream"),
        "Archive": {
            "Type": "AWS::KinesisFirehose::DeliveryStream",
            "Properties": {
                "DeliveryStreamName": "probe_archive",
                "KinesisStreamSourceConfiguration": {
                    "KinesisStreamARN": {"Fn::GetAtt": ["Stream", "Arn"]}
                },
                "ExtendedS3DestinationConfiguration": {
                    "BufferingHints": {"IntervalInSeconds": 900, "SizeInMBs": 128}
                },
            },
        },
        "Alarm": {"Type": "AWS::CloudWatch::Alarm"},
        "Key": {"Type": "AWS::KMS::Key"},
    }
}


def _dense() -> dict[str, Any]:
    return tiny_inputs()["dense"] | {"settings": {}, "ingest_throughput": {}}


def test_measure_derives_the_funnel_calls_and_sizes_from_the_run(tmp_path: Path) -> None:
    _write_run(tmp_path)
    config = {"lake_retention_days": 400, "probe_archive_retention_days": 35, "other": 1}
    inputs = measure(tmp_path, SCENARIO, _dense(), TEMPLATE, config)
    day = inputs["day"]
    assert day["subscribers"] == 2
    assert day["days"] == 1
    assert day["records_per_subscriber_day"] == 2.0
    assert day["incidents_per_record"] == 0.5
    # e1's decision counted once, its contact step too: 3 engagement/ records, 2 incidents
    assert day["decisions_per_incident"] == 1.5
    assert day["first_contacts"] == 1
    assert day["attempts_per_episode"] == 1.0  # one calls.jsonl line for e1
    # only the engage decision is a candidate (min_sessions is not), at 10:00 = minute 600
    assert day["candidates"] == [[0, "C1", "CALL_DROP", 600]]
    assert day["cell_population"] == {"C1": 1, "C2": 1}
    assert day["call_patterns"] == {"none,3": 1}
    assert set(day["log_bytes"]) == {"Trigger_Connect"}  # EMF and non-JSON lines left out
    assert day["lake_bytes_per_record"]["incidents"] > 0
    assert day["archive"] == {"rows_per_record": 0.75, "row_bytes": 300.0}
    assert inputs["template"] == {
        "alarms": 1,
        "dashboards": 0,
        "kms_keys": 1,
        "kms_encrypted_resources": 4,  # queue, table, two streams
        "secrets": 0,
        "sqs_event_source_mappings": 1,
        # the probe stream's mapping and the delivery stream; not the other stream's, not
        # the DynamoDB stream's
        "kinesis_consumers": 2,
        "archive_buffer_mb": 128,
        "archive_buffer_seconds": 900,
    }
    assert inputs["config"] == {"lake_retention_days": 400, "probe_archive_retention_days": 35}


def test_measure_refuses_a_run_whose_summary_lacks_the_archives_bytes(tmp_path: Path) -> None:
    _write_run(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    del summary["delivery_streams"]["probe_archive"]["bytes_transformed"]
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(MeasureError, match="bytes probe_archive delivered"):
        measure(tmp_path, SCENARIO, _dense(), TEMPLATE, {})


def test_measure_refuses_a_template_whose_archive_states_no_buffering(tmp_path: Path) -> None:
    _write_run(tmp_path)
    template = json.loads(json.dumps(TEMPLATE))
    del template["Resources"]["Archive"]["Properties"]["ExtendedS3DestinationConfiguration"]
    with pytest.raises(MeasureError, match="probe_archive states no BufferingHints"):
        measure(tmp_path, SCENARIO, _dense(), template, {})


def test_measure_refuses_a_run_of_another_scenario(tmp_path: Path) -> None:
    _write_run(tmp_path)
    other = Scenario(probe_events=SCENARIO.probe_events[:3])
    with pytest.raises(MeasureError, match="the scenario it ran"):
        measure(tmp_path, other, _dense(), TEMPLATE, {})
