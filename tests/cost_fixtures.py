"""Small hand-made inputs of the cost model: a four-action flow and a round-figure day."""

from collections.abc import Mapping
from typing import Any

from feedback_loop.policy import load_policy
from simulator.cost.calls import ContactPolicy
from simulator.cost.model import Assumptions, Volumes, daily_volumes

RECORDS_PER_DAY = 10  # per subscriber


def tiny_flow() -> dict[str, Any]:
    """Greeting (15 words), one question (10 words, 8 s to answer), record, disconnect."""
    return {
        "StartAction": "hello",
        "Actions": [
            {
                "Identifier": "hello",
                "Type": "MessageParticipant",
                "Parameters": {"Text": " ".join(["word"] * 15)},
                "Transitions": {"NextAction": "ask"},
            },
            {
                "Identifier": "ask",
                "Type": "GetParticipantInput",
                "Parameters": {"Text": " ".join(["ask"] * 10), "InputTimeLimitSeconds": "8"},
                "Transitions": {
                    "NextAction": "record",
                    "Errors": [{"NextAction": "record", "ErrorType": "NoMatchingError"}],
                    "Conditions": [],
                },
            },
            {
                "Identifier": "record",
                "Type": "InvokeLambdaFunction",
                "Parameters": {
                    "LambdaFunctionARN": "arn",
                    "LambdaInvocationAttributes": {"input": "$.Attributes.digits"},
                },
                "Transitions": {"NextAction": "bye"},
            },
            {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}},
        ],
    }


def tiny_inputs() -> dict[str, Any]:
    """One call per ten subscriber-days; one incident per ten records; round bench figures."""
    return {
        "day": {
            "subscribers": 10,
            "days": 1,
            "records": 100,
            "records_per_subscriber_day": 10,
            "rejected_share": 0.0,
            "incidents_per_record": 0.1,
            "decisions_per_incident": 1.0,
            "engagements": 1,
            "first_contacts": 1,
            "attempts_per_episode": 1.0,
            "invocations": {},
            "cell_population": {"C1": 10},
            "candidates": [[0, "C1", "CALL_DROP", 600]],
            "call_patterns": {"3": 1},
            "lake_bytes_per_record": {"incidents": 100.0, "engagement": 50.0},
            "lake_bytes_per_record_single": {"incidents": 400.0, "engagement": 300.0},
            # nine records in ten archived, as 6,000-byte rows (two 5 KB increments)
            "archive": {"rows_per_record": 0.9, "row_bytes": 6000.0},
            "log_bytes": {},
        },
        "dense": {
            "drivers": {
                "records": 500,
                "incidents": 50,
                "decisions": 50,
                "engagements": 10,
                "feedback_invocations": 10,
            },
            "seeded": {"counter_items_per_subscriber": 2.0, "full_history_profile_bytes": 3996},
            "dynamodb": {
                "by_function": {
                    "Ingest_probe_events": {
                        "Subscriber_counters": {
                            "writes": 500,
                            "write_units": 500,
                            "mean_written_bytes": 924,
                            "reads": 0,
                            "read_units": 0,
                        },
                        "Subscriber_table": {
                            "writes": 50,
                            "write_units": 200,
                            "mean_written_bytes": 3996,
                            "reads": 50,
                            "read_units": 50,
                        },
                    }
                }
            },
            "functions": {
                "Ingest_probe_events": {
                    "invocations": 1,
                    "records_per_invocation": 500,
                    "calls_per_invocation": {"dynamodb.UpdateItem": 550},
                    "compute_ms_per_invocation": 100,
                    "memory_mb": 1024,
                    "billed_ms_per_invocation": 1000,
                },
                # 1 invocation per 50 incidents or decisions, per 10 engagements, per
                # feedback invocation; none takes time but the feedback function (0.5 s)
                **{
                    name: {
                        "invocations": invocations,
                        "records_per_invocation": 1,
                        "calls_per_invocation": {},
                        "compute_ms_per_invocation": 0,
                        "memory_mb": 256,
                        "billed_ms_per_invocation": 0,
                    }
                    for name, invocations in (
                        ("write_incident_to_S3", 1),
                        ("Read_after_incident", 1),
                        ("write_engagement_to_S3", 1),
                        ("Trigger_Connect", 1),
                        ("Collect_feedback_from_Connect", 10),
                    )
                },
                "Collect_feedback_from_Connect": {
                    "invocations": 10,
                    "records_per_invocation": 1,
                    "calls_per_invocation": {},
                    "compute_ms_per_invocation": 0,
                    "memory_mb": 256,
                    "billed_ms_per_invocation": 500,
                },
            },
            "lake_records_per_object": {"incidents": 10.0, "engagement": 5.0},
            "sqs_batches": {
                "Ingest_probe_events": {
                    "incident_update_queue": {"calls": 5, "entries": 50, "bytes": 50_000}
                }
            },
            "kinesis": {"record_bytes": 200, "billed_kib_per_record": 1.0},
        },
        "template": {
            "alarms": 2,
            "dashboards": 0,
            "kms_keys": 1,
            "kms_encrypted_resources": 0,
            "secrets": 1,
            "sqs_event_source_mappings": 0,
            # the ingest handler and the archive's Firehose; a 1 MiB buffer or a day
            "kinesis_consumers": 2,
            "archive_buffer_mb": 1,
            "archive_buffer_seconds": 86400,
        },
        "config": {
            "lake_retention_days": 10,
            "log_retention_days": 30,
            "probe_archive_retention_days": 5,
        },
    }


def tiny_volumes(subscribers: int, inputs: Mapping[str, Any], assumptions: Assumptions) -> Volumes:
    """A day of ``subscribers`` on the tiny inputs and flow, every call allowed at any hour."""
    volumes, _ = daily_volumes(
        subscribers,
        RECORDS_PER_DAY,
        inputs,
        ContactPolicy(rules=load_policy({"quiet_hours": None})),
        assumptions,
        flow=tiny_flow(),
    )
    return volumes
