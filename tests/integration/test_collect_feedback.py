"""Collect_feedback_from_Connect and write_feedback_to_S3 under moto.

The feedback function is invoked with the real contact-flow event and writes only the
subscriber table; the table's stream (moto's) is turned into Lambda's DynamoDB stream
event for write_feedback_to_S3, which writes the lake.
"""

import copy
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from write_feedback_to_s3 import app as writer

from collect_feedback_from_connect import app
from feedback_loop import pseudonym
from feedback_loop.adapters.subscribers import MAX_FEEDBACK_CONTACTS, DynamoSubscriberStore
from feedback_loop.episodes import CONTACTED, Episode
from feedback_loop.feedback import Feedback, answer_of, parse_request
from feedback_loop.ids import contact_key, engagement_id, incident_id, short_id
from feedback_loop.lake import decode_jsonl_gz
from feedback_loop.observability import metrics
from feedback_loop.sentiment import update_sentiment
from tests.moto_tables import TableStream

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
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
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
        writer._dependencies.cache_clear()
        yield table
        app._dependencies.cache_clear()
        writer._dependencies.cache_clear()


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


def _stream() -> TableStream:
    return TableStream(boto3.client("dynamodb"))


def _write_lake(stream: TableStream) -> dict:
    """Deliver the answers recorded since the last call to write_feedback_to_S3."""
    return writer.handler(
        stream.changes("feedback"), LambdaContext(function_name="write_feedback_to_S3")
    )


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
    recorded = Feedback.from_item(item["LastFeedback"])
    assert (recorded.received_at, recorded.contact_id) == (
        NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        CONTACT_ID,
    )
    assert item["FeedbackContacts"] == [f"{contact_key(CONTACT_ID)}|rated"]


def test_the_call_touches_only_the_table_and_the_stream_takes_the_answer_to_the_lake(aws):
    stream = _stream()
    calls = []
    client = app._dependencies().store._dynamodb
    client.meta.events.register("before-call.*.*", lambda model, **kw: calls.append(model.name))

    _invoke(_event("1"))

    assert calls == ["GetItem", "UpdateItem"]
    assert _lake() == {}
    assert _write_lake(stream) == {"batchItemFailures": []}
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


def test_an_answer_given_during_an_s3_outage_reaches_the_lake_after_it(aws, monkeypatch):
    # Given S3 is down while the subscriber answers: the call still records the rating
    stream = _stream()
    assert _invoke(_event("2"))["result"] == "recorded"
    s3 = writer._dependencies().lake._s3

    def s3_down(**kwargs):
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "x"}}, "PutObject")

    s3.meta.events.register("before-call.s3.PutObject", s3_down)
    event = stream.changes("feedback")
    [record] = event["Records"]

    # When the stream delivers it while S3 is still down, the record is reported failed
    response = writer.handler(event, LambdaContext(function_name="write_feedback_to_S3"))
    assert response == {
        "batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]
    }
    assert _lake() == {}

    # Then Lambda's retry after S3 is back writes both records
    s3.meta.events.unregister("before-call.s3.PutObject", s3_down)
    assert writer.handler(event, LambdaContext(function_name="write_feedback_to_S3")) == {
        "batchItemFailures": []
    }
    assert [r["rating"] for r in _records("feedback")] == [2]
    assert len(_records("sentiment")) == 1


def test_replayed_contact_updates_sentiment_once_and_reaches_the_lake_once(aws):
    stream = _stream()
    first = _invoke(_event("1"))

    second = _invoke(_event("1"))

    assert second == first
    assert float(_item(aws)["Sentiment"]) == pytest.approx(
        update_sentiment(0.2, 1, ALPHA).sentiment
    )
    assert _item(aws)["FeedbackContacts"] == [f"{contact_key(CONTACT_ID)}|rated"]
    assert len(stream.changes("feedback")["Records"]) == 1


def test_a_new_contact_builds_on_the_previous_sentiment(aws):
    stream = _stream()
    _invoke(_event("1"))
    event = _event("5")
    event["Details"]["ContactData"]["ContactId"] = "b0c1d2e3-0000-4000-8000-000000000002"

    response = _invoke(event)

    after_first = update_sentiment(0.2, 1, ALPHA).sentiment
    assert float(response["sentiment"]) == pytest.approx(
        update_sentiment(after_first, 5, ALPHA).sentiment
    )
    assert float(response["change_sentiment"]) > 0
    _write_lake(stream)
    assert len(_records("sentiment")) == 2


def test_opt_out_marks_the_subscriber_without_changing_sentiment(aws):
    stream = _stream()
    response = _invoke(_event("9"))

    item = _item(aws)
    assert response["result"] == "opted_out"
    assert item["OptedOut"] is True
    assert item["LastChange"] == "feedback"
    assert item["Sentiment"] == Decimal("0.2")
    _write_lake(stream)
    assert [r["outcome"] for r in _records("feedback")] == ["opted_out"]
    assert _records("sentiment") == []


@pytest.mark.parametrize(("digits", "outcome"), [("", "no_response"), ("7", "invalid")])
def test_no_usable_answer_is_recorded_without_touching_sentiment(aws, digits, outcome):
    stream = _stream()

    response = _invoke(_event(digits))

    assert response == {"result": "no_response", "sentiment": "0.2", "change_sentiment": "0.0"}
    item = _item(aws)
    assert item["Sentiment"] == Decimal("0.2")
    assert "OptedOut" not in item
    _write_lake(stream)
    [feedback] = _records("feedback")
    assert (feedback["outcome"], feedback["rating"]) == (outcome, None)


def test_missing_parameters_are_rejected_and_logged(aws, caplog):
    event = _event()
    del event["Details"]["Parameters"]["engagement_id"]

    response = _invoke(event)

    assert response["result"] == "rejected"
    assert all(isinstance(value, str) for value in response.values())
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.reason == "missing_parameter"
    assert "engagement_id" in warning.detail
    assert _item(aws)["LastChange"] == "incident"


def test_event_without_parameters_is_rejected(aws):
    event = _event()
    del event["Details"]["Parameters"]

    assert _invoke(event)["result"] == "rejected"


def test_event_without_contact_data_is_rejected_as_malformed(aws, caplog):
    event = _event()
    del event["Details"]["ContactData"]

    response = _invoke(event)

    assert response["result"] == "rejected"
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.reason == "malformed_event"
    assert _item(aws)["LastChange"] == "incident"


def test_unknown_subscriber_is_rejected_and_not_created(aws):
    aws.delete_item(Key={"PhoneNumber": PHONE})

    response = _invoke(_event("2"))

    assert response["result"] == "rejected"
    assert "Item" not in aws.get_item(Key={"PhoneNumber": PHONE})


def _answer(digits: str, contact_id: str):
    request = parse_request(contact_id, PHONE, {**EVENT["Details"]["Parameters"], "input": digits})
    return lambda previous: answer_of(request, previous, ALPHA, "2026-11-25T10:31:07Z")


def test_concurrent_rating_for_the_same_subscriber_is_not_lost(aws):
    store = DynamoSubscriberStore(boto3.client("dynamodb"), TABLE)
    first = store.record_answer(PHONE, "contact-0", _answer("2", "contact-0"))
    raced = []

    def answer_while_another_contact_lands(previous):
        if not raced:
            raced.append(store.record_answer(PHONE, "contact-b", _answer("5", "contact-b")))
        return _answer("1", "contact-a")(previous)

    recorded = store.record_answer(PHONE, "contact-a", answer_while_another_contact_lands)

    after_b = update_sentiment(first.sentiment, 5, ALPHA).sentiment
    assert recorded.sentiment == pytest.approx(update_sentiment(after_b, 1, ALPHA).sentiment)
    assert float(_item(aws)["Sentiment"]) == pytest.approx(
        update_sentiment(after_b, 1, ALPHA).sentiment
    )
    assert _item(aws)["FeedbackContacts"] == [
        f"{contact_key('contact-b')}|rated",
        f"{contact_key('contact-a')}|rated",
    ]


def test_feedback_contacts_stay_capped(aws):
    store = DynamoSubscriberStore(boto3.client("dynamodb"), TABLE)

    for n in range(MAX_FEEDBACK_CONTACTS + 5):
        store.record_answer(PHONE, f"contact-{n}", _answer("3", f"contact-{n}"))

    contacts = _item(aws)["FeedbackContacts"]
    assert len(contacts) == MAX_FEEDBACK_CONTACTS
    assert contacts[-1] == f"{contact_key(f'contact-{MAX_FEEDBACK_CONTACTS + 4}')}|rated"


def test_a_contact_recorded_before_contact_keys_is_still_recognised(aws):
    # Given an answer recorded by the earlier version, which kept the whole contact id
    store = DynamoSubscriberStore(boto3.client("dynamodb"), TABLE)
    first = store.record_answer(PHONE, CONTACT_ID, _answer("2", CONTACT_ID))
    aws.update_item(
        Key={"PhoneNumber": PHONE},
        UpdateExpression="SET FeedbackContacts = :old",
        ExpressionAttributeValues={":old": [f"{CONTACT_ID}|rated"]},
    )

    # When Connect replays the contact
    replay = store.record_answer(PHONE, CONTACT_ID, _answer("2", CONTACT_ID))

    # Then it is answered with what was recorded, and nothing is written again
    assert (replay.outcome, replay.replayed) == ("rated", True)
    assert float(_item(aws)["Sentiment"]) == pytest.approx(first.sentiment)


def _episode_of_the_call(**changes) -> Episode:
    params = EVENT["Details"]["Parameters"]
    episode = Episode(
        engagement_id=params["engagement_id"],
        incident_id=params["incident_id"],
        incident_type=params["incident_type"],
        incident_time=params["incident_time"],
        cell=params["cell"],
        incident_types=(params["incident_type"],),
        incident_keys=(short_id(params["incident_id"]),),
        status=CONTACTED,
        attempts=1,
        channel="voice",
    )
    return replace(episode, **changes)


def _put_episode(table, episode: Episode) -> None:
    table.update_item(
        Key={"PhoneNumber": PHONE},
        UpdateExpression="SET Episode = :episode",
        ExpressionAttributeValues={":episode": episode.to_item(PHONE)},
    )


def test_an_answer_about_the_open_episode_leaves_its_fields_to_it_and_reaches_the_lake_whole(aws):
    # Given the call's episode on the profile
    _put_episode(aws, _episode_of_the_call())
    stream = _stream()

    _invoke(_event("4"))

    # Then the profile's answer leaves the episode's fields out, and the lake has them all
    stored = _item(aws)["LastFeedback"]
    assert not {"Eng", "Kpi", "Time", "Cell", "Change"} & set(stored)
    assert _write_lake(stream) == {"batchItemFailures": []}
    [feedback] = _records("feedback")
    [sentiment] = _records("sentiment")
    params = EVENT["Details"]["Parameters"]
    assert (feedback["incident_type"], feedback["incident_time"], feedback["cell"]) == (
        params["incident_type"],
        params["incident_time"],
        params["cell"],
    )
    assert (sentiment["incident_type"], sentiment["cell"]) == (
        params["incident_type"],
        params["cell"],
    )
    assert feedback["engagement_id"] == sentiment["engagement_id"] == params["engagement_id"]
    expected = update_sentiment(0.2, 4, ALPHA)
    assert sentiment["change_sentiment"] == expected.change


def test_an_episode_replaced_between_the_read_and_the_write_gets_the_whole_answer(aws):
    # Given the call's episode on the profile, replaced by the next one (another incident,
    # decided meanwhile) after the answer was read
    _put_episode(aws, _episode_of_the_call())
    stream = _stream()
    store = DynamoSubscriberStore(boto3.client("dynamodb"), TABLE)
    later = "2026-11-25T10:40:00Z"
    other = incident_id(PHONE, "LOW_BITRATE", later, "shardId-000000000000:77")
    following = _episode_of_the_call(
        engagement_id=engagement_id(PHONE, "LOW_BITRATE", later, other),
        incident_id=other,
        incident_type="LOW_BITRATE",
        incident_time=later,
        incident_types=("LOW_BITRATE",),
        incident_keys=(short_id(other),),
    )
    replaced = []

    def answer_while_the_next_episode_opens(previous):
        if not replaced:
            replaced.append(_put_episode(aws, following))
        return _answer("4", "contact-a")(previous)

    store.record_answer(PHONE, "contact-a", answer_while_the_next_episode_opens)

    # Then the answer was written whole (the write saw the new episode) and reaches the lake
    # about the call's engagement, not the new one
    stored = _item(aws)
    assert stored["LastFeedback"]["Eng"] == EVENT["Details"]["Parameters"]["engagement_id"]
    assert stored["Episode"]["Inc"] == other
    assert _write_lake(stream) == {"batchItemFailures": []}
    [feedback] = _records("feedback")
    assert (feedback["engagement_id"], feedback["incident_type"]) == (
        EVENT["Details"]["Parameters"]["engagement_id"],
        "CALL_DROP",
    )
