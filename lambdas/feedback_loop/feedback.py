"""Feedback from the IVR: validate the digits, update sentiment, describe it for the lake.

The subscriber table is the source of truth. A rating is applied at most once
per Connect contact id (the store guards it); lake objects are keyed by the
contact id, so writing them again for a replayed contact overwrites instead of
duplicating. Everything here is plain data; storage sits behind two ports.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from feedback_loop import ids, pseudonym
from feedback_loop.contract import EVENT_TYPES, LAKE_TABLES
from feedback_loop.errors import InvalidRecord
from feedback_loop.ports import LakeSink, SubscriberStore
from feedback_loop.sentiment import (
    NEUTRAL,
    SentimentUpdate,
    incident_weight,
    score,
    update_sentiment,
)
from feedback_loop.timeutil import format_utc, parse_utc

RATED = "rated"
OPTED_OUT = "opted_out"
NO_RESPONSE = "no_response"
INVALID = "invalid"

OPT_OUT_KEY = "9"
RATING_KEYS = frozenset("12345")

RECORDED = "recorded"
REJECTED = "rejected"
_FLOW_RESULT = {
    RATED: RECORDED,
    OPTED_OUT: OPTED_OUT,
    NO_RESPONSE: NO_RESPONSE,
    INVALID: NO_RESPONSE,
}
"""What the contact flow branches on; an invalid key is, for the caller, no usable answer."""

_PARAMETERS = ("engagement_id", "incident_type", "incident_time", "incident_id", "cell")
MAX_CELL_LENGTH = 64


@dataclass(frozen=True)
class FeedbackRequest:
    """One invocation of the feedback function by the contact flow."""

    contact_id: str
    phone_number: str
    engagement_id: str
    incident_type: str
    incident_time: str
    incident_id: str
    cell: str
    digits: str


@dataclass(frozen=True)
class Answer:
    """What the subscriber's digits mean; ``rating`` is set only when ``outcome`` is rated."""

    outcome: str
    rating: int | None = None


@dataclass(frozen=True)
class FeedbackResult:
    """The outcome returned to the contact flow."""

    result: str
    sentiment: float
    change_sentiment: float
    outcome: str | None = None
    replayed: bool = False

    def as_flow_response(self) -> dict[str, str]:
        """Flat string map, as Amazon Connect requires of a Lambda response."""
        return {
            "result": self.result,
            "sentiment": repr(float(self.sentiment)),
            "change_sentiment": repr(float(self.change_sentiment)),
        }


REJECTED_RESULT = FeedbackResult(result=REJECTED, sentiment=NEUTRAL, change_sentiment=0.0)


def parse_request(
    contact_id: str | None, phone_number: str | None, parameters: Mapping[str, Any] | None
) -> FeedbackRequest:
    """Check the contact-flow parameters; raises :class:`InvalidRecord` naming what is wrong."""
    parameters = parameters or {}
    values = {name: parameters.get(name) for name in _PARAMETERS}
    values["contact_id"] = contact_id
    values["phone_number"] = phone_number
    missing = sorted(
        name for name, value in values.items() if not isinstance(value, str) or not value
    )
    if "input" not in parameters or not isinstance(parameters["input"], str):
        missing.append("input")
    if missing:
        raise InvalidRecord("missing_parameter", ", ".join(missing))
    if values["incident_type"] not in EVENT_TYPES:
        raise InvalidRecord("unknown_incident_type", str(values["incident_type"]))
    try:
        parse_utc(str(values["incident_time"]))
    except ValueError as error:
        raise InvalidRecord("bad_incident_time", str(error)) from error
    cell = str(values["cell"])
    if len(cell) > MAX_CELL_LENGTH or not cell.isprintable():
        raise InvalidRecord("bad_cell", f"not printable or longer than {MAX_CELL_LENGTH}")
    # Contact attributes come back from the flow: bind them to the call that was
    # placed, so a forged or mangled engagement id is never recorded.
    expected = ids.engagement_id(
        str(values["phone_number"]),
        str(values["incident_type"]),
        str(values["incident_time"]),
        str(values["incident_id"]),
    )
    if values["engagement_id"] != expected:
        raise InvalidRecord("engagement_mismatch", "engagement_id is not this call's engagement")
    return FeedbackRequest(digits=parameters["input"], **values)  # type: ignore[arg-type]


def classify_input(digits: str) -> Answer:
    """``1``..``5`` rate, ``9`` opts out, nothing is no response, anything else is invalid."""
    if digits in RATING_KEYS:
        return Answer(RATED, int(digits))
    if digits == OPT_OUT_KEY:
        return Answer(OPTED_OUT)
    if digits == "":
        return Answer(NO_RESPONSE)
    return Answer(INVALID)


def feedback_record(
    request: FeedbackRequest, answer: Answer, subscriber_id: str, received_at: str
) -> dict[str, Any]:
    """The ``feedback/`` lake record; the rating also weights the incident that caused the call."""
    rating = answer.rating
    return LAKE_TABLES["feedback"].record(
        {
            "contact_id": request.contact_id,
            "engagement_id": request.engagement_id,
            "subscriber_id": subscriber_id,
            "incident_type": request.incident_type,
            "incident_time": request.incident_time,
            "cell": request.cell,
            "outcome": answer.outcome,
            "rating": rating,
            "score": None if rating is None else score(rating),
            "incident_weight": None if rating is None else incident_weight(rating),
            "received_at": received_at,
        }
    )


def sentiment_record(
    request: FeedbackRequest,
    subscriber_id: str,
    device: str | None,
    vendor: str | None,
    update: SentimentUpdate,
    updated_at: str,
) -> dict[str, Any]:
    """The ``sentiment/`` lake record the cell/device/vendor priority is computed from."""
    return LAKE_TABLES["sentiment"].record(
        {
            "contact_id": request.contact_id,
            "engagement_id": request.engagement_id,
            "subscriber_id": subscriber_id,
            "cell": request.cell,
            "device": device,
            "vendor": vendor,
            "incident_type": request.incident_type,
            "previous_sentiment": update.previous,
            "sentiment": update.sentiment,
            "change_sentiment": update.change,
            "updated_at": updated_at,
        }
    )


def record_feedback(
    request: FeedbackRequest,
    *,
    store: SubscriberStore,
    lake: LakeSink,
    pseudonym_key: bytes,
    alpha: float,
    now: datetime,
) -> FeedbackResult:
    """Apply the answer to the subscriber, then write its lake records.

    The table is written first: if the lake write fails the caller fails the
    invocation, and a retry of the same contact finds the rating already
    applied and rewrites the same lake objects.
    """
    answer = classify_input(request.digits)
    received_at = format_utc(now)
    subscriber_id = pseudonym.subscriber_id(pseudonym_key, request.phone_number)

    if answer.rating is not None:
        applied = store.apply_rating(
            request.phone_number,
            request.contact_id,
            received_at,
            partial(update_sentiment, rating=answer.rating, alpha=alpha),
        )
        if applied.update is None or applied.received_at is None:
            return FeedbackResult(RECORDED, applied.current_sentiment, 0.0, RATED, replayed=True)
        _write(
            lake,
            "feedback",
            feedback_record(request, answer, subscriber_id, applied.received_at),
            "received_at",
            request.contact_id,
        )
        _write(
            lake,
            "sentiment",
            sentiment_record(
                request,
                subscriber_id,
                applied.device,
                applied.vendor,
                applied.update,
                applied.received_at,
            ),
            "updated_at",
            request.contact_id,
        )
        return FeedbackResult(
            RECORDED, applied.update.sentiment, applied.update.change, RATED, applied.replayed
        )

    if answer.outcome == OPTED_OUT:
        current = store.opt_out(request.phone_number, received_at)
    else:
        current = store.current_sentiment(request.phone_number)
    _write(
        lake,
        "feedback",
        feedback_record(request, answer, subscriber_id, received_at),
        "received_at",
        request.contact_id,
    )
    sentiment = NEUTRAL if current is None else current
    return FeedbackResult(_FLOW_RESULT[answer.outcome], sentiment, 0.0, answer.outcome)


def _write(
    lake: LakeSink, prefix: str, record: Mapping[str, Any], time_field: str, contact_id: str
) -> None:
    lake.put_records(prefix, [record], time_field, batch_id=contact_id)
