"""write_incident_to_S3 and write_engagement_to_S3 under moto with real SQS event shapes."""

import json

import pytest
from botocore.exceptions import ClientError

from feedback_loop.errors import InvalidRecord
from feedback_loop.lake import decode_jsonl_gz
from feedback_loop.messages import EngagementMessage, IncidentMessage, decode
from feedback_loop.pseudonym import subscriber_id
from write_engagement_to_s3 import app as engagement_app
from write_incident_to_s3 import app as incident_app

KINDS = {"incident_update_queue": IncidentMessage, "engagement_update_queue": EngagementMessage}
CASES = [
    pytest.param(incident_app, "sqs_incident_batch.json", "incidents/", "timestamp", id="incident"),
    pytest.param(
        engagement_app, "sqs_engagement_batch.json", "engagement/", "decided_at", id="engagement"
    ),
]


def valid_bodies(batch) -> dict[str, dict]:
    """message id → body, for the messages that decode as a current message."""
    found = {}
    for record in batch["Records"]:
        try:
            decode(record["body"], KINDS[record["eventSourceARN"].rsplit(":", 1)[1]])
        except InvalidRecord:
            continue
        found[record["messageId"]] = json.loads(record["body"])
    return found


@pytest.mark.parametrize(("app", "fixture", "prefix", "time_field"), CASES)
def test_one_object_per_batch_and_date_with_pseudonyms_and_the_bad_message_failed_alone(
    aws, event, lambda_context, app, fixture, prefix, time_field
):
    batch = event(fixture)
    good = valid_bodies(batch)
    bad = [r["messageId"] for r in batch["Records"] if r["messageId"] not in good]
    assert good and bad

    response = app.handler(batch, lambda_context)

    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == bad
    objects = aws.lake_objects(prefix)
    dates = {body[time_field][:10] for body in good.values()}
    assert sorted(key.split("/")[1] for key in objects) == sorted(f"dt={d}" for d in dates)
    assert all(key.endswith(".jsonl.gz") for key in objects)
    lines = [line for body in objects.values() for line in decode_jsonl_gz(body)]
    assert len(lines) == len(good)
    assert sorted(line["subscriber_id"] for line in lines) == sorted(
        subscriber_id(aws.pseudonym_key, body["phone_number"]) for body in good.values()
    )
    raw = b"".join(objects.values()) + json.dumps(lines).encode()
    for body in good.values():
        assert body["phone_number"].encode() not in raw
        assert "phone_number" not in json.dumps(lines)


@pytest.mark.parametrize(("app", "fixture", "prefix", "time_field"), CASES)
def test_a_failed_put_reports_every_message_of_the_object(
    aws, event, lambda_context, app, fixture, prefix, time_field
):
    batch = event(fixture)
    s3 = app._dependencies().lake._s3

    def fail(**kwargs):
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "x"}}, "PutObject")

    s3.meta.events.register("before-parameter-build.s3.PutObject", fail)

    response = app.handler(batch, lambda_context)

    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        r["messageId"] for r in batch["Records"]
    )
    assert aws.lake_objects(prefix) == {}


def test_messages_of_two_dates_land_in_two_partitions(aws, event, lambda_context):
    batch = event("sqs_incident_batch.json")
    good = valid_bodies(batch)
    first = next(iter(good))
    for record in batch["Records"]:
        if record["messageId"] == first:
            body = json.loads(record["body"])
            body["timestamp"] = "2026-11-24T23:59:59Z"
            record["body"] = json.dumps(body)

    incident_app.handler(batch, lambda_context)

    keys = sorted(aws.lake_objects("incidents/"))
    assert [key.split("/")[1] for key in keys] == ["dt=2026-11-24", "dt=2026-11-25"]


def test_a_batch_of_decision_counts_lands_in_decision_counts_next_to_the_decisions(
    aws, event, lambda_context
):
    # Given the engagement batch plus one message of counted decisions
    batch = event("sqs_engagement_batch.json")
    good = valid_bodies(batch)
    counts = [
        {
            "count_id": f"{n:032x}",
            "cell": cell,
            "incident_type": "CALL_DROP",
            "decision": "suppress",
            "reason": "min_sessions",
            "incidents": incidents,
            "decided_at": "2026-11-25T10:20:00Z",
        }
        for n, (cell, incidents) in enumerate([("LDN-0042", 3), ("LDN-0007", 1)])
    ]
    counted = dict(batch["Records"][0], messageId="counts-1")
    counted["body"] = json.dumps(
        {"schema": "decision_counts", "version": 2, "counts": counts}, sort_keys=True
    )
    batch["Records"].append(counted)

    # When
    response = engagement_app.handler(batch, lambda_context)

    # Then the counts are one object of their own, one record per count, and the decisions
    # are written as before
    assert "counts-1" not in {f["itemIdentifier"] for f in response["batchItemFailures"]}
    [body] = aws.lake_objects("decision_counts/").values()
    assert decode_jsonl_gz(body) == counts
    lines = [line for b in aws.lake_objects("engagement/").values() for line in decode_jsonl_gz(b)]
    assert len(lines) == len(good)
