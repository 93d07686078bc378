"""Collect_feedback_from_Connect under moto, invoked with the real contact-flow event."""

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from collect_feedback_from_connect import app
from feedback_loop import pseudonym
from feedback_loop.adapters.subscribers import MAX_FEEDBACK_CONTACTS, DynamoSubscriberStore
from feedback_loop.lake import decode_jsonl_gz
from feedback_loop.observability import metrics
from feedback_loop.sentiment import update_sentiment

EVENT = json.loads(
    (Path(__file__).parents[1] / "events" / "connect_contact_flow_event.json").read_text()
)
PHONE = EVENT["Details"]["ContactData"]["CustomerEndpoint"]["Address"]
CONTACT_ID = EVENT["Details"]["ContactData"]["ContactId"]
REGION = "eu-west-2"
TABLE = "Subscriber_table"
BUCKET = "lake-bucket"
KEY = "pseudonym-key-for-tests"
ALPHA = 0.5
NOW = datetime(2026, 11, 25, 10, 31, 7, tzinfo=UTC)


@dataclass
class LambdaContext:
    function_name: str = "Collect_feedback_from_Connect"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        f"arn:aws:lambda:{REGION}:123456789012:function:Collect_feedback_from_Connect"
    )
    aws_request_id: str = "0d9c2b57-3a43-4c39-8a9e-0e4f3f9d1b21"

    def get_remaining_time_in_millis(self) -> int:
        return 8_000


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "Collect_feedback_from_Connect",
        "SUBSCRIBER_TABLE": TABLE,
        "LAKE_BUCKET": BUCKET,
        "POLICY_JSON": json.dumps({"sentiment_alpha": ALPHA}),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(metrics, "namespace", "SubscriberFeedbackLoop")
    monkeypatch.setattr(app, "clock", lambda: NOW)
    with mock_aws():
        dynamodb = boto3.resource("dynamodb")
        table = dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "PhoneNumber", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "PhoneNumber", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        table.put_item(
            Item={
                "PhoneNumber": PHONE,
                "LastChange": "incident",
                "Cell": "LDN-0042",
                "Device": "Pixel 8",
                "Vendor": "VendorA",
                "Sentiment": Decimal("0.2"),
            }
        )
        boto3.client("s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        secret = boto3.client("secretsmanager").create_secret(Name="pseudonym", SecretString=KEY)
        monkeypatch.setenv("PSEUDONYM_SECRET_ARN", secret["ARN"])
        app._dependencies.cache_clear()
        yield table
        app._dependencies.cache_clear()


def _event(digits: str | None = None, **parameters) -> dict:
    event = copy.deepcopy(EVENT)
    if digits is not None:
        event["Details"]["Parameters"]["input"] = digits
    event["Details"]["Parameters"].update(parameters)
    return event


def _invoke(event: dict) -> dict:
    return app.handler(event, LambdaContext())


def _item(table) -> dict:
    return table.get_item(Key={"PhoneNumber": PHONE}, ConsistentRead=True)["Item"]


def _lake() -> dict[str, list[dict]]:
    s3 = boto3.client("s3")
    objects = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {
        obj["Key"]: decode_jsonl_gz(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
        for obj in objects
    }


def _records(prefix: str) -> list[dict]:
    return [r for key, rs in _lake().items() if key.startswith(f"{prefix}/") for r in rs]


def test_low_rating_lowers_sentiment_and_returns_a_string_map(aws):
    response = _invoke(_event("1"))

    expected = update_sentiment(0.2, 1, ALPHA)
    assert response["result"] == "recorded"
    assert all(isinstance(value, str) for value in response.values())
    assert float(response["sentiment"]) == pytest.approx(expected.sentiment)
    assert float(response["change_sentiment"]) == pytest.approx(expected.change)
    assert float(response["change_sentiment"]) < 0
    item = _item(aws)
    assert float(item["Sentiment"]) == pytest.approx(expected.sentiment)
    assert item["LastChange"] == "feedback"
    assert item["LastFeedbackAt"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert item["FeedbackContacts"] == [CONTACT_ID]


def test_rating_writes_feedback_and_sentiment_to_the_lake_without_phone_numbers(aws):
    _invoke(_event("1"))

    lake = _lake()
    assert sorted(key.split("/")[0] for key in lake) == ["feedback", "sentiment"]
    assert all(f"/dt={NOW.date().isoformat()}/" in key for key in lake)
    [feedback], [sentiment] = _records("feedback"), _records("sentiment")
    subscriber_id = pseudonym.subscriber_id(KEY.encode(), PHONE)
    assert feedback["subscriber_id"] == sentiment["subscriber_id"] == subscriber_id
    assert (feedback["outcome"], feedback["rating"], feedback["contact_id"]) == (
        "rated",
        1,
        CONTACT_ID,
    )
    assert feedback["incident_weight"] == 1.0
    params = EVENT["Details"]["Parameters"]
    assert (sentiment["cell"], sentiment["incident_type"]) == (
        params["cell"],
        params["incident_type"],
    )
    assert (sentiment["device"], sentiment["vendor"]) == ("Pixel 8", "VendorA")
    assert sentiment["previous_sentiment"] == pytest.approx(0.2)
    assert sentiment["change_sentiment"] < 0
    assert PHONE not in json.dumps(lake)
    assert PHONE.lstrip("+") not in json.dumps(lake)


def test_replayed_contact_updates_sentiment_once(aws):
    first = _invoke(_event("1"))
    lake_after_first = _lake()

    second = _invoke(_event("1"))

    assert second == first
    assert float(_item(aws)["Sentiment"]) == pytest.approx(
        update_sentiment(0.2, 1, ALPHA).sentiment
    )
    assert _item(aws)["FeedbackContacts"] == [CONTACT_ID]
    assert _lake() == lake_after_first


def test_a_new_contact_builds_on_the_previous_sentiment(aws):
    _invoke(_event("1"))
    event = _event("5")
    event["Details"]["ContactData"]["ContactId"] = "b0c1d2e3-0000-4000-8000-000000000002"

    response = _invoke(event)

    after_first = update_sentiment(0.2, 1, ALPHA).sentiment
    assert float(response["sentiment"]) == pytest.approx(
        update_sentiment(after_first, 5, ALPHA).sentiment
    )
    assert float(response["change_sentiment"]) > 0
    assert len(_records("sentiment")) == 2


def test_opt_out_marks_the_subscriber_without_changing_sentiment(aws):
    response = _invoke(_event("9"))

    item = _item(aws)
    assert response["result"] == "opted_out"
    assert item["OptedOut"] is True
    assert item["LastChange"] == "feedback"
    assert item["Sentiment"] == Decimal("0.2")
    assert [r["outcome"] for r in _records("feedback")] == ["opted_out"]
    assert _records("sentiment") == []


def test_no_response_leaves_the_subscriber_untouched(aws):
    before = _item(aws)

    response = _invoke(_event(""))

    assert response == {"result": "no_response", "sentiment": "0.2", "change_sentiment": "0.0"}
    assert _item(aws) == before
    assert [r["outcome"] for r in _records("feedback")] == ["no_response"]


def test_invalid_key_is_recorded_as_invalid_not_a_crash(aws):
    before = _item(aws)

    response = _invoke(_event("7"))

    assert response["result"] == "no_response"
    assert _item(aws) == before
    [feedback] = _records("feedback")
    assert (feedback["outcome"], feedback["rating"]) == ("invalid", None)


def test_missing_parameters_are_rejected_and_logged(aws, caplog):
    event = _event()
    del event["Details"]["Parameters"]["engagement_id"]

    response = _invoke(event)

    assert response["result"] == "rejected"
    assert all(isinstance(value, str) for value in response.values())
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.reason == "missing_parameter"
    assert "engagement_id" in warning.detail
    assert _lake() == {}


def test_event_without_parameters_is_rejected(aws):
    event = _event()
    del event["Details"]["Parameters"]

    assert _invoke(event)["result"] == "rejected"


def test_unknown_subscriber_is_rejected_and_not_created(aws):
    aws.delete_item(Key={"PhoneNumber": PHONE})

    response = _invoke(_event("2"))

    assert response["result"] == "rejected"
    assert "Item" not in aws.get_item(Key={"PhoneNumber": PHONE})


def test_lake_failure_fails_the_invocation_and_a_retry_counts_once(aws, monkeypatch):
    monkeypatch.setenv("LAKE_BUCKET", "bucket-not-created-yet")
    app._dependencies.cache_clear()
    with pytest.raises(Exception, match="NoSuchBucket"):
        _invoke(_event("1"))
    applied = float(_item(aws)["Sentiment"])
    boto3.client("s3").create_bucket(
        Bucket="bucket-not-created-yet", CreateBucketConfiguration={"LocationConstraint": REGION}
    )

    response = _invoke(_event("1"))

    assert float(response["sentiment"]) == applied
    assert applied == pytest.approx(update_sentiment(0.2, 1, ALPHA).sentiment)
    keys = [
        o["Key"]
        for o in boto3.client("s3").list_objects_v2(Bucket="bucket-not-created-yet")["Contents"]
    ]
    assert sorted(key.split("/")[0] for key in keys) == ["feedback", "sentiment"]


def test_concurrent_rating_for_the_same_subscriber_is_not_lost(aws):
    store = DynamoSubscriberStore(boto3.client("dynamodb"), TABLE)
    at = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    first = store.apply_rating(PHONE, "contact-0", at, lambda p: update_sentiment(p, 2, ALPHA))
    raced = []

    def compute_while_another_contact_lands(previous):
        if not raced:
            raced.append(
                store.apply_rating(PHONE, "contact-b", at, lambda p: update_sentiment(p, 5, ALPHA))
            )
        return update_sentiment(previous, 1, ALPHA)

    applied = store.apply_rating(PHONE, "contact-a", at, compute_while_another_contact_lands)

    after_b = update_sentiment(first.update.sentiment, 5, ALPHA).sentiment
    assert applied.update.previous == pytest.approx(after_b)
    assert float(_item(aws)["Sentiment"]) == pytest.approx(
        update_sentiment(after_b, 1, ALPHA).sentiment
    )
    assert _item(aws)["FeedbackContacts"] == ["contact-0", "contact-b", "contact-a"]


def test_feedback_contacts_stay_capped(aws):
    store = DynamoSubscriberStore(boto3.client("dynamodb"), TABLE)
    at = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")

    for n in range(MAX_FEEDBACK_CONTACTS + 5):
        store.apply_rating(PHONE, f"contact-{n}", at, lambda p: update_sentiment(p, 3, ALPHA))

    contacts = _item(aws)["FeedbackContacts"]
    assert len(contacts) == MAX_FEEDBACK_CONTACTS
    assert contacts[-1] == f"contact-{MAX_FEEDBACK_CONTACTS + 4}"
