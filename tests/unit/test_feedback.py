"""DTMF validation, the feedback outcome and the lake records, with in-memory storage."""

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedback_loop import pseudonym
from feedback_loop.errors import InvalidRecord
from feedback_loop.feedback import (
    INVALID,
    NO_RESPONSE,
    OPTED_OUT,
    RATED,
    FeedbackRequest,
    classify_input,
    parse_request,
    record_feedback,
)
from feedback_loop.ports import AppliedRating
from feedback_loop.sentiment import incident_weight, score, update_sentiment

EVENT = json.loads(
    (Path(__file__).parents[1] / "events" / "connect_contact_flow_event.json").read_text()
)
KEY = b"test-key"
NOW = datetime(2026, 11, 25, 10, 31, 7, tzinfo=UTC)


class MemoryStore:
    """Subscriber table stand-in: applies each contact once, like the DynamoDB store."""

    def __init__(self, sentiment=None, device="Pixel 8", vendor="VendorA"):
        self.sentiment = sentiment
        self.device, self.vendor = device, vendor
        self.applied: dict[str, AppliedRating] = {}
        self.opted_out = False

    def apply_rating(self, phone_number, contact_id, received_at, compute):
        if contact_id in self.applied:
            return replace(self.applied[contact_id], replayed=True)
        update = compute(self.sentiment)
        self.sentiment = update.sentiment
        applied = AppliedRating(
            update.sentiment, update, received_at, self.device, self.vendor, False
        )
        self.applied[contact_id] = applied
        return applied

    def opt_out(self, phone_number, received_at):
        self.opted_out = True
        return self.sentiment

    def current_sentiment(self, phone_number):
        return self.sentiment


class MemoryLake:
    def __init__(self):
        self.objects: dict[tuple[str, str], list] = {}

    def put_records(self, prefix, records, time_field, batch_id=None):
        key = (prefix, f"dt={records[0][time_field][:10]}/{batch_id}")
        self.objects[key] = list(records)
        return [key]

    def records(self, prefix):
        return [r for (p, _), rs in self.objects.items() if p == prefix for r in rs]


@pytest.fixture
def request_() -> FeedbackRequest:
    contact = EVENT["Details"]["ContactData"]
    return parse_request(
        contact["ContactId"], contact["CustomerEndpoint"]["Address"], EVENT["Details"]["Parameters"]
    )


def _record(request, store, lake, alpha=0.5):
    return record_feedback(request, store=store, lake=lake, pseudonym_key=KEY, alpha=alpha, now=NOW)


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


def test_low_rating_lowers_sentiment_and_writes_both_lake_records(request_):
    store, lake = MemoryStore(sentiment=0.2), MemoryLake()
    request = replace(request_, digits="1")

    result = _record(request, store, lake, alpha=0.5)

    expected = update_sentiment(0.2, 1, 0.5)
    assert result.result == "recorded"
    assert result.sentiment == pytest.approx(expected.sentiment)
    assert result.change_sentiment < 0
    [feedback] = lake.records("feedback")
    [sentiment] = lake.records("sentiment")
    sid = pseudonym.subscriber_id(KEY, request.phone_number)
    assert feedback["subscriber_id"] == sentiment["subscriber_id"] == sid
    assert feedback["outcome"] == RATED
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


def test_lake_records_are_dated_by_the_feedback_time(request_):
    lake = MemoryLake()

    _record(request_, MemoryStore(), lake)

    assert {key for _, key in lake.objects} == {
        f"dt={NOW.date().isoformat()}/{request_.contact_id}"
    }


def test_replayed_contact_counts_once_and_returns_the_recorded_result(request_):
    store, lake = MemoryStore(sentiment=0.0), MemoryLake()

    first = _record(request_, store, lake)
    objects_after_first = dict(lake.objects)
    second = _record(request_, store, lake)

    assert store.sentiment == pytest.approx(first.sentiment)
    assert second.as_flow_response() == first.as_flow_response()
    assert second.replayed
    assert lake.objects == objects_after_first


def test_opt_out_marks_the_subscriber_and_keeps_sentiment(request_):
    store, lake = MemoryStore(sentiment=-0.25), MemoryLake()

    result = _record(replace(request_, digits="9"), store, lake)

    assert store.opted_out
    assert (result.result, result.sentiment, result.change_sentiment) == ("opted_out", -0.25, 0.0)
    assert [r["outcome"] for r in lake.records("feedback")] == [OPTED_OUT]
    assert lake.records("sentiment") == []


@pytest.mark.parametrize(("digits", "outcome"), [("", NO_RESPONSE), ("7", INVALID)])
def test_no_usable_answer_is_recorded_without_touching_sentiment(request_, digits, outcome):
    store, lake = MemoryStore(sentiment=0.4), MemoryLake()

    result = _record(replace(request_, digits=digits), store, lake)

    assert result.result == "no_response"
    assert store.sentiment == 0.4
    assert result.change_sentiment == 0.0
    [feedback] = lake.records("feedback")
    assert feedback["outcome"] == outcome
    assert feedback["rating"] is feedback["score"] is feedback["incident_weight"] is None


def test_flow_response_is_a_flat_map_of_strings(request_):
    response = _record(request_, MemoryStore(), MemoryLake()).as_flow_response()

    assert set(response) == {"result", "sentiment", "change_sentiment"}
    assert all(isinstance(value, str) for value in response.values())
    float(response["sentiment"])
    float(response["change_sentiment"])
