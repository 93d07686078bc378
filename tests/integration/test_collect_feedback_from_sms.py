"""Collect_feedback_from_SMS under moto: a texted opt-out is honoured on every channel.

The handler is invoked with the two-way SMS payload as SNS delivers it; the profile is
the one the decision and the dialler read and write (``ContactStore``), and the table's
stream takes what was recorded to write_feedback_to_S3, which writes the lake.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from collect_feedback_from_sms import app as sms
from write_feedback_to_s3 import app as writer

from feedback_loop.adapters.contacts import ContactStore
from feedback_loop.calls import CallCentre
from feedback_loop.decision import decide
from feedback_loop.dial import DialPorts, Done, dial
from feedback_loop.episodes import SubscriberView
from feedback_loop.lake import decode_jsonl_gz
from feedback_loop.messages import encode
from feedback_loop.policy import load_policy
from tests.integration.conftest import FakeLambdaContext
from tests.moto_tables import TableStream
from tests.unit.test_dial import Cells, Lake, incident

PHONE = "+447911123456"
TABLE = "Subscriber_table"
POLICY = load_policy({"timezone": "Europe/London", "sms": {"enabled": True}})
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
REPLIED_AT = T0 + timedelta(minutes=5)


def _sns(body: str, message_id: str = "inbound-1") -> dict[str, Any]:
    """The SNS event a two-way SMS reply arrives in (End User Messaging SMS payload)."""
    message = {
        "originationNumber": PHONE,
        "destinationNumber": "+447700900999",
        "messageKeyword": "KEYWORD_123456789012",
        "messageBody": body,
        "inboundMessageId": message_id,
        "previousPublishedMessageId": "outbound-1",
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:eu-west-2:123456789012:sms_replies:x",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": f"sns-{message_id}",
                    "TopicArn": "arn:aws:sns:eu-west-2:123456789012:sms_replies",
                    "Subject": None,
                    "Message": json.dumps(message),
                    "Timestamp": "2026-11-25T10:05:00.000Z",
                    "SignatureVersion": "1",
                    "Signature": "x",
                    "SigningCertUrl": "x",
                    "UnsubscribeUrl": "x",
                    "MessageAttributes": {},
                },
            }
        ]
    }


@pytest.fixture
def table(aws, monkeypatch):
    """The mocked account, the SMS handler's environment and one subscriber's profile."""
    monkeypatch.setenv("POLICY_JSON", POLICY.to_json())
    monkeypatch.setattr(sms, "clock", lambda: REPLIED_AT)
    aws.dynamodb.put_item(
        TableName=TABLE, Item={"PhoneNumber": {"S": PHONE}, "LastChange": {"S": "incident"}}
    )
    for module in (sms, writer):
        module._dependencies.cache_clear()
    yield aws
    for module in (sms, writer):
        module._dependencies.cache_clear()


def _text(body: str, message_id: str = "inbound-1") -> None:
    sms.handler(
        _sns(body, message_id), FakeLambdaContext(function_name="Collect_feedback_from_SMS")
    )


def _item(aws) -> dict[str, Any]:
    key = {"PhoneNumber": {"S": PHONE}}
    return aws.dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]


def _open_voice_episode(aws):
    """A new incident opens an episode the dialler will phone about (none was texted)."""
    store = ContactStore(aws.dynamodb, TABLE)
    decision, opened = decide(incident(phone=PHONE, at=T0), SubscriberView(PHONE), POLICY, T0)
    assert decision.decision == "engage"
    assert store.record(PHONE, opened.contact) is None
    return store, encode(decision.to_message())


def _feedback_lake(aws, stream: TableStream) -> list[dict[str, Any]]:
    """What write_feedback_to_S3 writes to ``feedback/`` for the answers recorded since."""
    context = FakeLambdaContext(function_name="write_feedback_to_S3")
    assert writer.handler(stream.changes("feedback"), context) == {"batchItemFailures": []}
    assert aws.lake_objects("sentiment/") == {}
    return [r for body in aws.lake_objects("feedback/").values() for r in decode_jsonl_gz(body)]


def test_stop_texted_while_a_voice_episode_is_open_opts_out_and_the_call_is_not_placed(table):
    store, message = _open_voice_episode(table)
    stream = TableStream(table.dynamodb)

    _text("STOP")

    assert _item(table)["OptedOut"] == {"BOOL": True}
    calls: list[dict[str, Any]] = []
    lake = Lake()
    ports = DialPorts(
        CallCentre("instance-1", "flow-1", "+442079460000"),
        lambda request: calls.append(request) or "contact-1",
        lambda *_: "message-1",
        store,
        Cells(),
        lake,
        POLICY,
    )
    outcome = dial(message, 1, ports, T0 + timedelta(minutes=11))
    assert outcome == Done(outcome.engagement_id, "opted_out", ("suppress", "opted_out"))
    assert calls == [] and lake.steps() == [("suppress", "opted_out")]
    [record] = _feedback_lake(table, stream)
    episode = store.load(PHONE).contact.episode
    assert (record["outcome"], record["contact_id"]) == ("opted_out", "inbound-1")
    assert (record["engagement_id"], record["cell"]) == (episode.engagement_id, episode.cell)


def test_stop_texted_with_no_episode_opts_out_once_per_message_and_reaches_the_lake(table):
    stream = TableStream(table.dynamodb)

    _text("please STOP")
    _text("please STOP")  # SNS delivers at least once

    item = _item(table)
    assert item["OptedOut"] == {"BOOL": True}
    assert item["LastFeedback"]["M"]["Out"] == {"S": "opted_out"}
    [record] = _feedback_lake(table, stream)
    assert (record["outcome"], record["contact_id"]) == ("opted_out", "inbound-1")
    assert record["engagement_id"] is record["incident_time"] is record["cell"] is None
    assert record["received_at"] == REPLIED_AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert PHONE not in json.dumps(record)
    # A subscriber who opted out is never engaged again
    decision, _ = decide(
        incident(phone=PHONE, at=T0), ContactStore(table.dynamodb, TABLE).load(PHONE), POLICY, T0
    )
    assert (decision.decision, decision.reason) == ("suppress", "opted_out")


def test_a_rating_texted_while_no_text_was_sent_is_still_not_recorded(table):
    _open_voice_episode(table)

    _text("4")

    item = _item(table)
    assert "OptedOut" not in item and "LastFeedback" not in item


def test_stop_texted_by_a_subscriber_whose_contact_state_is_unreadable_still_opts_out(table):
    """An episode map this release cannot read (a KPI it does not know) must not cost the
    subscriber their opt-out: it is recorded about no engagement."""
    table.dynamodb.update_item(
        TableName=TABLE,
        Key={"PhoneNumber": {"S": PHONE}},
        UpdateExpression="SET Episode = :episode",
        ExpressionAttributeValues={
            ":episode": {
                "M": {
                    "Inc": {"S": "i"},
                    "Kpi": {"S": "NOT_A_KPI"},
                    "At": {"S": "2026-11-25T10:00:00Z"},
                    "Cell": {"S": "c"},
                    "St": {"S": "open"},
                }
            }
        },
    )

    _text("STOP")

    assert _item(table)["OptedOut"] == {"BOOL": True}
