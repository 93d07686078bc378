"""DTMF validation, the feedback outcome and the lake records, with in-memory storage."""

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedback_loop import pseudonym
from feedback_loop.contract import LEGACY_FEEDBACK_ATTRIBUTES
from feedback_loop.episodes import SMS, VOICE, Episode
from feedback_loop.errors import InvalidRecord
from feedback_loop.feedback import (
    INVALID,
    NO_RESPONSE,
    OPTED_OUT,
    RATED,
    Feedback,
    FeedbackRequest,
    classify_input,
    feedback_records,
    parse_request,
    record_feedback,
    text_reply_request,
)
from feedback_loop.ports import RecordedAnswer
from feedback_loop.sentiment import incident_weight, score, update_sentiment

EVENT = json.loads(
    (Path(__file__).parents[1] / "events" / "connect_contact_flow_event.json").read_text()
)
KEY = b"test-key"
NOW = datetime(2026, 11, 25, 10, 31, 7, tzinfo=UTC)


class MemoryStore:
    """The subscriber's profile as the DynamoDB store keeps it; records each contact once.

    ``changes`` are the NEW images a table stream would carry for each write.
    """

    def __init__(self, sentiment=None, device="Pixel 8", vendor="VendorA"):
        self.item = {"PhoneNumber": PHONE, "Device": device, "Vendor": vendor}
        if sentiment is not None:
            self.item["Sentiment"] = sentiment
        self.changes: list[dict] = []

    @property
    def sentiment(self):
        return self.item.get("Sentiment")

    def record_answer(self, phone_number, contact_id, answer):
        contacts = self.item.get("FeedbackContacts", {})
        if contact_id in contacts:
            outcome, change = contacts[contact_id]
            return RecordedAnswer(outcome, self.sentiment, change, replayed=True)
        feedback = answer(self.sentiment)
        change = feedback.change_sentiment or 0.0
        self.item["FeedbackContacts"] = {**contacts, contact_id: (feedback.outcome, change)}
        self.item["LastFeedback"] = feedback.to_item()
        self.item["LastChange"] = "feedback"
        if feedback.sentiment is not None:
            self.item["Sentiment"] = feedback.sentiment
        if feedback.outcome == OPTED_OUT:
            self.item["OptedOut"] = True
        self.changes.append(dict(self.item))
        return RecordedAnswer(feedback.outcome, self.sentiment, change, replayed=False)

    def lake(self, table):
        """The lake records the stream writer makes from this store's changes."""
        return [
            record
            for image in self.changes
            for lake_table, record in feedback_records(image, KEY)
            if lake_table.name == table
        ]


PHONE = "+447700900123"


@pytest.fixture
def request_() -> FeedbackRequest:
    contact = EVENT["Details"]["ContactData"]
    return parse_request(
        contact["ContactId"], contact["CustomerEndpoint"]["Address"], EVENT["Details"]["Parameters"]
    )


def _record(request, store, alpha=0.5):
    return record_feedback(request, store=store, alpha=alpha, now=NOW)


@pytest.mark.parametrize("digits", ["1", "2", "3", "4", "5"])
def test_digits_one_to_five_are_ratings(digits):
    assert classify_input(digits).outcome == RATED
    assert classify_input(digits).rating == int(digits)


@pytest.mark.parametrize(
    ("digits", "outcome"),
    [
        ("9", OPTED_OUT),
        ("", NO_RESPONSE),
        ("7", INVALID),
        ("0", INVALID),
        ("12", INVALID),
        ("#", INVALID),
        ("*", INVALID),
        (" 3", INVALID),
    ],
)
def test_other_inputs_are_not_ratings(digits, outcome):
    answer = classify_input(digits)

    assert answer.outcome == outcome
    assert answer.rating is None


def test_parse_request_reads_the_contact_flow_parameters(request_):
    params = EVENT["Details"]["Parameters"]

    assert request_.engagement_id == params["engagement_id"]
    assert request_.digits == params["input"]
    assert request_.phone_number == EVENT["Details"]["ContactData"]["CustomerEndpoint"]["Address"]


@pytest.mark.parametrize(
    "missing", ["engagement_id", "incident_type", "incident_time", "cell", "input"]
)
def test_a_missing_parameter_is_named(missing):
    params = {k: v for k, v in EVENT["Details"]["Parameters"].items() if k != missing}

    with pytest.raises(InvalidRecord) as raised:
        parse_request("contact", "+447700900123", params)

    assert raised.value.reason == "missing_parameter"
    assert missing in raised.value.detail


def test_missing_caller_number_is_rejected():
    with pytest.raises(InvalidRecord, match="phone_number"):
        parse_request("contact", None, EVENT["Details"]["Parameters"])


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("incident_type", "FAX", "unknown_incident_type"),
        ("incident_time", "yesterday", "bad_incident_time"),
    ],
)
def test_malformed_parameters_are_rejected(name, value, reason):
    params = {**EVENT["Details"]["Parameters"], name: value}

    with pytest.raises(InvalidRecord) as raised:
        parse_request("contact", "+447700900123", params)

    assert raised.value.reason == reason


def test_low_rating_lowers_sentiment_and_its_record_gives_both_lake_records(request_):
    store = MemoryStore(sentiment=0.2)
    request = replace(request_, digits="1")

    result = _record(request, store, alpha=0.5)

    expected = update_sentiment(0.2, 1, 0.5)
    assert result.result == "recorded"
    assert result.sentiment == pytest.approx(expected.sentiment)
    assert store.sentiment == pytest.approx(expected.sentiment)
    assert result.change_sentiment < 0
    [feedback] = store.lake("feedback")
    [sentiment] = store.lake("sentiment")
    sid = pseudonym.subscriber_id(KEY, request.phone_number)
    assert feedback["subscriber_id"] == sentiment["subscriber_id"] == sid
    assert (feedback["outcome"], feedback["engagement_id"]) == (RATED, request.engagement_id)
    assert (feedback["rating"], feedback["score"], feedback["incident_weight"]) == (
        1,
        score(1),
        incident_weight(1),
    )
    assert sentiment["previous_sentiment"] == pytest.approx(0.2)
    assert sentiment["change_sentiment"] == pytest.approx(expected.change)
    assert (sentiment["device"], sentiment["vendor"], sentiment["cell"]) == (
        "Pixel 8",
        "VendorA",
        request.cell,
    )
    assert request.phone_number not in json.dumps([feedback, sentiment])


def test_lake_records_are_dated_by_the_answer_time(request_):
    store = MemoryStore()

    _record(request_, store)

    assert {r["received_at"] for r in store.lake("feedback")} == {"2026-11-25T10:31:07Z"}
    assert {r["updated_at"] for r in store.lake("sentiment")} == {"2026-11-25T10:31:07Z"}


def test_replayed_contact_counts_once_and_returns_the_recorded_result(request_):
    store = MemoryStore(sentiment=0.0)

    first = _record(request_, store)
    second = _record(request_, store)

    assert store.sentiment == pytest.approx(first.sentiment)
    assert second.as_flow_response() == first.as_flow_response()
    assert second.replayed
    assert len(store.changes) == 1


def test_opt_out_marks_the_subscriber_and_keeps_sentiment(request_):
    store = MemoryStore(sentiment=-0.25)

    result = _record(replace(request_, digits="9"), store)

    assert store.item["OptedOut"] is True
    assert (result.result, result.sentiment, result.change_sentiment) == ("opted_out", -0.25, 0.0)
    assert [r["outcome"] for r in store.lake("feedback")] == [OPTED_OUT]
    assert store.lake("sentiment") == []


@pytest.mark.parametrize(("digits", "outcome"), [("", NO_RESPONSE), ("7", INVALID)])
def test_no_usable_answer_is_recorded_without_touching_sentiment(request_, digits, outcome):
    store = MemoryStore(sentiment=0.4)

    result = _record(replace(request_, digits=digits), store)

    assert result.result == "no_response"
    assert store.sentiment == 0.4
    assert result.change_sentiment == 0.0
    [feedback] = store.lake("feedback")
    assert feedback["outcome"] == outcome
    assert feedback["rating"] is feedback["score"] is feedback["incident_weight"] is None


def test_last_feedback_round_trips_and_a_malformed_one_is_rejected(request_):
    store = MemoryStore(sentiment=0.1)
    _record(request_, store)
    item = store.item["LastFeedback"]

    assert Feedback.from_item(item).to_item() == item
    for broken in ({**item, "Received": "yesterday"}, {**item, "Rating": "two"}, "text"):
        with pytest.raises(InvalidRecord):
            Feedback.from_item(broken)


def test_an_answer_recorded_with_the_earlier_long_keys_is_still_read(request_):
    # Given a LastFeedback map written before the keys were shortened (a stream record or
    # a redriven one from before the deployment)
    store = MemoryStore(sentiment=0.1)
    _record(request_, store)
    feedback = Feedback.from_item(store.item["LastFeedback"])
    legacy = {
        LEGACY_FEEDBACK_ATTRIBUTES[name]: value
        for name, value in asdict(feedback).items()
        if value is not None
    }

    # Then it reads as the same answer
    assert Feedback.from_item(legacy) == feedback


def test_flow_response_is_a_flat_map_of_strings(request_):
    response = _record(request_, MemoryStore()).as_flow_response()

    assert set(response) == {"result", "sentiment", "change_sentiment"}
    assert all(isinstance(value, str) for value in response.values())
    float(response["sentiment"])
    float(response["change_sentiment"])


def _episode(channel, status="open"):
    params = EVENT["Details"]["Parameters"]
    return Episode(
        engagement_id=params["engagement_id"],
        incident_id=params["incident_id"],
        incident_type=params["incident_type"],
        incident_time=params["incident_time"],
        cell=params["cell"],
        incident_types=(params["incident_type"],),
        incident_keys=(),
        status=status,
        channel=channel,
    )


def test_a_text_reply_answers_the_episode_contacted_by_text():
    request = text_reply_request("inbound-1", PHONE, "4.", _episode(SMS, "closed"))

    assert (request.contact_id, request.digits) == ("inbound-1", "4")
    assert request.engagement_id == EVENT["Details"]["Parameters"]["engagement_id"]


@pytest.mark.parametrize("episode", [None, _episode(VOICE, "contacted"), _episode(None)])
def test_a_rating_texted_with_no_episode_contacted_by_text_is_rejected(episode):
    with pytest.raises(InvalidRecord) as raised:
        text_reply_request("inbound-1", PHONE, "4", episode)

    assert raised.value.reason == "not_an_engagement"


@pytest.mark.parametrize(
    "episode", [_episode(VOICE, "contacted"), _episode(None), _episode(None, "closed")]
)
def test_an_opt_out_texted_during_an_episode_not_contacted_by_text_opts_out_of_it(episode):
    store = MemoryStore(sentiment=0.3)

    request = text_reply_request("inbound-1", PHONE, "Stop please", episode)
    result = _record(request, store)

    assert (request.engagement_id, request.digits) == (episode.engagement_id, "9")
    assert (result.result, store.item["OptedOut"], store.sentiment) == ("opted_out", True, 0.3)
    [feedback] = store.lake("feedback")
    assert (feedback["outcome"], feedback["engagement_id"]) == (OPTED_OUT, episode.engagement_id)


def test_an_opt_out_texted_with_no_episode_at_all_is_recorded_without_an_engagement():
    store = MemoryStore(sentiment=0.3)

    request = text_reply_request("inbound-1", PHONE, "STOP", None)
    result = _record(request, store)
    replayed = _record(request, store)

    assert (result.result, store.item["OptedOut"], store.sentiment) == ("opted_out", True, 0.3)
    assert replayed.replayed and len(store.changes) == 1
    item = store.item["LastFeedback"]
    assert Feedback.from_item(item).to_item() == item
    [feedback] = store.lake("feedback")
    assert feedback["outcome"] == OPTED_OUT and feedback["contact_id"] == "inbound-1"
    assert feedback["engagement_id"] is feedback["incident_type"] is None
    assert feedback["incident_time"] is feedback["cell"] is None
    assert feedback["received_at"] == "2026-11-25T10:31:07Z"
    assert store.lake("sentiment") == []


def test_an_opt_out_about_no_engagement_stays_so_when_an_episode_opens_before_it_is_read():
    """Read back from a profile that has an episode by then (Read_after_incident opened one
    between the handler's read and its write), it is still about no engagement."""
    opted_out = text_reply_request("inbound-1", PHONE, "STOP", None)
    store = MemoryStore()
    _record(opted_out, store)
    episode = _episode(VOICE)

    read_back = Feedback.from_item(store.item["LastFeedback"], episode)

    assert (read_back.engagement_id, read_back.cell, read_back.outcome) == ("", "", OPTED_OUT)


def test_only_an_opt_out_may_leave_its_engagement_out(request_):
    store = MemoryStore()
    _record(request_, store)
    rated = {
        k: v
        for k, v in store.item["LastFeedback"].items()
        if k not in ("Eng", "Kpi", "Time", "Cell")
    }
    partial = {k: v for k, v in store.item["LastFeedback"].items() if k != "Cell"}

    for broken in (rated, {**partial, "Out": OPTED_OUT}):
        with pytest.raises(InvalidRecord):
            Feedback.from_item(broken)
