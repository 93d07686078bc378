"""The twin's End User Messaging SMS: texts logged, replies delivered as SNS notifications."""

import json

from aws_lambda_powertools.utilities.data_classes import SNSEvent

from simulator.runtime import Invocation
from simulator.text_centre import REPLY_DELAY_SECONDS, TextCentre

PHONE = "+447700900123"
TOPIC = "arn:aws:sns:eu-west-2:123456789012:sms_replies"
IDENTITY = "arn:aws:sms-voice:eu-west-2:123456789012:phone-number/phone-1"


def _centre(answer: str, errors: int = 0):
    lines: list[dict] = []
    invoked: list[tuple[dict, float]] = []

    def invoke(event: dict, at: float) -> Invocation:
        invoked.append((event, at))
        return Invocation(None, "boom" if len(invoked) <= errors else None)

    centre = TextCentre(lambda phone, _: answer, invoke, lines.append, lambda _: None, TOPIC)
    return centre, lines, invoked


def _send(centre: TextCentre, now: float = 1000.0) -> dict:
    params = {"DestinationPhoneNumber": PHONE, "OriginationIdentity": IDENTITY, "MessageBody": "hi"}
    return centre.send_text_message(params, now)


def test_a_digit_is_texted_back_later_as_the_replies_topic_delivers_it() -> None:
    centre, lines, invoked = _centre("4")

    sent = _send(centre)

    assert lines[0]["channel"] == "sms" and lines[0]["outcome"] == "replied"
    assert centre.next_deadline() == 1000.0 + REPLY_DELAY_SECONDS
    assert not centre.pump(1000.0 + REPLY_DELAY_SECONDS - 1) and invoked == []
    assert centre.pump(1000.0 + REPLY_DELAY_SECONDS)
    ((event, at),) = invoked
    assert at == 1000.0 + REPLY_DELAY_SECONDS
    (record,) = SNSEvent(event).records
    assert record.sns.topic_arn == TOPIC
    payload = json.loads(record.sns.message)
    assert (payload["originationNumber"], payload["messageBody"]) == (PHONE, "4")
    assert payload["destinationNumber"] == IDENTITY
    assert payload["previousPublishedMessageId"] == sent["MessageId"]


def test_no_input_or_no_pick_up_is_no_reply() -> None:
    for answer in ("none", "no_answer"):
        centre, lines, _ = _centre(answer)
        _send(centre)
        assert lines[0]["outcome"] == "no_reply" and centre.next_deadline() is None


def test_a_failed_reply_invocation_is_retried_twice_as_lambda_retries_async_events() -> None:
    centre, _, invoked = _centre("2", errors=5)
    _send(centre)
    centre.pump(10_000.0)
    assert len(invoked) == 3 and centre.reply_errors == 1
