"""Listen: the IVR's answer → the subscriber's sentiment, recorded once and durably.

The call writes one thing: the subscriber's profile (``SubscriberStore``), which gets
the new sentiment (for a rating), the opt-out (for a 9) and, for every answer, the whole
feedback record as ``LastFeedback``. That write is the commit point: the table's stream
then carries the record to the lake (``write_feedback_to_S3``, with retries and a
dead-letter queue), so once a subscriber has heard "thank you" their answer reaches the
table *and* the lake, even when S3 is down during the call. An answer is recorded at
most once per Connect contact id: a retry of the same contact finds it and returns what
was recorded.
"""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from feedback_loop import ids, pseudonym
from feedback_loop.contract import (
    EVENT_TYPES,
    FEEDBACK_ATTRIBUTES,
    LAKE_TABLES,
    LAST_FEEDBACK,
    LEGACY_FEEDBACK_ATTRIBUTES,
    Reason,
)
from feedback_loop.episodes import SMS, Episode, episode_of
from feedback_loop.errors import AwsError, InvalidRecord
from feedback_loop.lake_sink import LakeRecords
from feedback_loop.policy import Policy
from feedback_loop.ports import CellStore, RecordedAnswer, SubscriberStore
from feedback_loop.probe import MAX_CELL_LENGTH
from feedback_loop.sentiment import NEUTRAL, incident_weight, score, update_sentiment
from feedback_loop.texts import reply_digits
from feedback_loop.timeutil import format_utc, parse_utc

RATED = "rated"
OPTED_OUT = "opted_out"
NO_RESPONSE = "no_response"
INVALID = "invalid"

OPT_OUT_KEY = "9"
# What the flow passes as the input when nothing was pressed (a static empty parameter
# value is not something Connect's flow validation is documented to accept).
NO_INPUT = "none"
RATING_KEYS = frozenset("12345")

# What an answer about the profile's own episode leaves out of ``LastFeedback``.
EPISODE_FIELDS = ("engagement_id", "incident_type", "incident_time", "cell")

RECORDED = "recorded"
REJECTED = "rejected"
_FLOW_RESULT = {
    RATED: RECORDED,
    OPTED_OUT: OPTED_OUT,
    NO_RESPONSE: NO_RESPONSE,
    INVALID: NO_RESPONSE,
}
"""What the contact flow branches on; an invalid key is, for the caller, no usable answer."""

# A tally outlives its period by a day: the stream replays at most 24 hours of records
# ("Amazon DynamoDB Developer Guide, Change data capture for DynamoDB Streams"), and a
# decision may come that late.
TALLY_RETENTION = timedelta(days=1)
# An engagement's mark must outlive every replay of its rating: 24 hours after the rating
# (its stream record is written moments after ``received_at``), plus a day's margin, from the
# later of the period's end and the rating (a rating may come days after the incident).
MARK_RETENTION = timedelta(days=2)

_PARAMETERS = ("engagement_id", "incident_type", "incident_time", "incident_id", "cell")


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
class Feedback:
    """One answer as recorded on the profile (``LastFeedback``) and, from there, in the lake.

    The sentiment fields are set for a rating only: ``previous_sentiment`` is what the
    subscriber's sentiment was before it, ``change_sentiment`` = new - previous.

    On the profile the map leaves out what the item holds already, to stay within one
    write unit: the engagement and its incident's KPI, time and cell when the answer is
    for the item's ``Episode`` (the write is conditional on that episode), and the change
    (new - previous, exactly, from the stored floats).

    An opt-out texted by a subscriber with no episode at all is about no engagement: its
    engagement fields are empty (``""``); the map keeps only the empty engagement id (so
    an episode opened meanwhile is not taken for it) and the lake has nulls.
    """

    contact_id: str
    engagement_id: str
    incident_id: str
    incident_type: str
    incident_time: str
    cell: str
    outcome: str
    rating: int | None
    previous_sentiment: float | None
    sentiment: float | None
    change_sentiment: float | None
    received_at: str

    def answers(self, episode: Episode | None) -> bool:
        """True when this is an answer about ``episode``'s engagement (its incident's too)."""
        return episode is not None and all(
            getattr(self, name) == getattr(episode, name) for name in EPISODE_FIELDS
        )

    def to_item(self, episode: Episode | None = None) -> dict[str, Any]:
        """The ``LastFeedback`` map for a profile whose episode is ``episode`` (empty
        fields, and what the profile holds already, left out)."""
        values = asdict(self)
        if not self.engagement_id:
            # About no engagement, said outright: reading it back never borrows an episode.
            values.update(dict.fromkeys(EPISODE_FIELDS), engagement_id="")
        elif self.answers(episode):
            values.update(dict.fromkeys(EPISODE_FIELDS))
        if (
            self.change_sentiment is not None
            and self.sentiment is not None
            and self.previous_sentiment is not None
            and self.change_sentiment == self.sentiment - self.previous_sentiment
        ):
            values["change_sentiment"] = None
        return {
            attribute: values[name]
            for name, attribute in FEEDBACK_ATTRIBUTES.items()
            if values[name] is not None
        }

    @classmethod
    def from_item(cls, item: Any, episode: Episode | None = None) -> "Feedback":
        """Read ``LastFeedback`` back from a profile whose episode is ``episode``; a
        malformed map raises :class:`InvalidRecord`."""
        if not isinstance(item, Mapping):
            raise InvalidRecord(Reason.MALFORMED_IMAGE, "LastFeedback is not a map")
        values = {
            name: item[key] if key in item else item.get(LEGACY_FEEDBACK_ATTRIBUTES[name])
            for name, key in FEEDBACK_ATTRIBUTES.items()
        }
        if values["engagement_id"] is None and episode is not None:
            for name in EPISODE_FIELDS:
                values[name] = values[name] or getattr(episode, name)
        texts: tuple[str, ...] = ("contact_id", "outcome", "received_at")
        no_engagement = all(not values[name] for name in EPISODE_FIELDS)
        if not (no_engagement and values["outcome"] == OPTED_OUT):
            texts += EPISODE_FIELDS
        try:
            for name in texts:
                if not isinstance(values[name], str) or not values[name]:
                    raise ValueError(f"LastFeedback without {FEEDBACK_ATTRIBUTES[name]}")
            parse_utc(str(values["received_at"]))
            numbers = ("previous_sentiment", "sentiment", "change_sentiment")
            fields: dict[str, Any] = dict.fromkeys(EPISODE_FIELDS, "")
            fields.update({name: str(values[name]) for name in texts})
            fields["incident_id"] = ""  # not kept on the profile (contract.FEEDBACK_ATTRIBUTES)
            fields["rating"] = None if values["rating"] is None else int(values["rating"])
            for name in numbers:
                value = values[name]
                fields[name] = None if value is None else float(value)
            if fields["change_sentiment"] is None and fields["sentiment"] is not None:
                fields["change_sentiment"] = fields["sentiment"] - fields["previous_sentiment"]
            return cls(**fields)
        except (TypeError, ValueError) as error:
            raise InvalidRecord(Reason.MALFORMED_IMAGE, f"bad LastFeedback: {error}") from error


@dataclass(frozen=True)
class FeedbackResult:
    """The outcome returned to the contact flow."""

    result: str
    sentiment: float
    change_sentiment: float
    outcome: str | None = None
    replayed: bool = False

    @classmethod
    def of(cls, recorded: RecordedAnswer) -> "FeedbackResult":
        """What the flow is told about a recorded answer."""
        return cls(
            result=_FLOW_RESULT[recorded.outcome],
            sentiment=NEUTRAL if recorded.sentiment is None else recorded.sentiment,
            change_sentiment=recorded.change_sentiment,
            outcome=recorded.outcome,
            replayed=recorded.replayed,
        )

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
        raise InvalidRecord(Reason.MISSING_PARAMETER, ", ".join(missing))
    if values["incident_type"] not in EVENT_TYPES:
        raise InvalidRecord(Reason.UNKNOWN_INCIDENT_TYPE, str(values["incident_type"]))
    try:
        parse_utc(str(values["incident_time"]))
    except ValueError as error:
        raise InvalidRecord(Reason.BAD_INCIDENT_TIME, str(error)) from error
    cell = str(values["cell"])
    if len(cell) > MAX_CELL_LENGTH or not cell.isprintable():
        raise InvalidRecord(Reason.BAD_CELL, f"not printable or longer than {MAX_CELL_LENGTH}")
    # Contact attributes come back from the flow: bind them to the call that was
    # placed, so a forged or mangled engagement id is never recorded.
    expected = ids.engagement_id(
        str(values["phone_number"]),
        str(values["incident_type"]),
        str(values["incident_time"]),
        str(values["incident_id"]),
    )
    if values["engagement_id"] != expected:
        raise InvalidRecord(
            Reason.ENGAGEMENT_MISMATCH, "engagement_id is not this call's engagement"
        )
    return FeedbackRequest(digits=parameters["input"], **values)  # type: ignore[arg-type]


def classify_input(digits: str) -> Answer:
    """``1``..``5`` rate, ``9`` opts out, nothing is no response, anything else is invalid."""
    if digits in RATING_KEYS:
        return Answer(RATED, int(digits))
    if digits == OPT_OUT_KEY:
        return Answer(OPTED_OUT)
    if digits in ("", NO_INPUT):
        return Answer(NO_RESPONSE)
    return Answer(INVALID)


def answer_of(
    request: FeedbackRequest, previous: float | None, alpha: float, received_at: str
) -> Feedback:
    """What the request's digits mean for a subscriber whose sentiment is ``previous``."""
    answer = classify_input(request.digits)
    update = None if answer.rating is None else update_sentiment(previous, answer.rating, alpha)
    return Feedback(
        contact_id=request.contact_id,
        engagement_id=request.engagement_id,
        incident_id=request.incident_id,
        incident_type=request.incident_type,
        incident_time=request.incident_time,
        cell=request.cell,
        outcome=answer.outcome,
        rating=answer.rating,
        previous_sentiment=None if update is None else update.previous,
        sentiment=None if update is None else update.sentiment,
        change_sentiment=None if update is None else update.change,
        received_at=received_at,
    )


def record_feedback(
    request: FeedbackRequest, *, store: SubscriberStore, alpha: float, now: datetime
) -> FeedbackResult:
    """Record the answer on the subscriber's profile, once per contact id.

    Raises :class:`InvalidRecord` (``unknown_subscriber``) for a number with no profile.
    """
    received_at = format_utc(now)
    recorded = store.record_answer(
        request.phone_number,
        request.contact_id,
        lambda previous: answer_of(request, previous, alpha, received_at),
    )
    return FeedbackResult.of(recorded)


def text_reply_request(
    message_id: str, phone_number: str, body: str, episode: Episode | None
) -> FeedbackRequest:
    """A text reply as the feedback request of the episode it answers.

    A text carries no attributes: the subscriber's last episode that was contacted by text
    says what it answers (even after it closed: a late reply still counts). An opt-out
    (``texts.reply_digits``) is the voice menu's 9 and is recorded whatever the episode,
    so it is honoured on every channel: about the subscriber's episode even when that was
    not contacted by text (the one it stops: a STOP to an earlier text while a call is
    due), about no engagement when there is no episode at all. Raises
    :class:`InvalidRecord` for any other reply that answers no text.
    """
    digits = reply_digits(body)
    if digits != OPT_OUT_KEY and (episode is None or episode.channel != SMS):
        raise InvalidRecord(Reason.NOT_AN_ENGAGEMENT, "no text was sent to this subscriber")
    if episode is None:
        return FeedbackRequest(message_id, phone_number, "", "", "", "", "", digits)
    return FeedbackRequest(
        contact_id=message_id,
        phone_number=phone_number,
        engagement_id=episode.engagement_id,
        incident_type=episode.incident_type,
        incident_time=episode.incident_time,
        incident_id=episode.incident_id,
        cell=episode.cell,
        digits=digits,
    )


def last_feedback(image: Any) -> Feedback:
    """The ``LastFeedback`` of a profile item or stream image, with what it leaves out to
    the profile's ``Episode`` filled in; raises :class:`InvalidRecord` when unreadable."""
    if not isinstance(image, Mapping):
        raise InvalidRecord(Reason.MALFORMED_IMAGE, "no readable profile image")
    return Feedback.from_item(image.get(LAST_FEEDBACK), episode_of(image))


def feedback_records(image: Any, key: bytes) -> LakeRecords:
    """The lake records of the answer a profile change recorded (``feedback/``, and
    ``sentiment/`` for a rating), built from the stream's NEW image."""
    if not isinstance(image, Mapping):
        raise InvalidRecord(Reason.MALFORMED_IMAGE, "no readable NewImage")
    phone = image.get("PhoneNumber")
    if not isinstance(phone, str) or not phone:
        raise InvalidRecord(Reason.MALFORMED_IMAGE, "NewImage without PhoneNumber")
    feedback = last_feedback(image)
    subscriber_id = pseudonym.subscriber_id(key, phone)
    rating = feedback.rating
    records: LakeRecords = [
        (
            LAKE_TABLES["feedback"],
            LAKE_TABLES["feedback"].record(
                {
                    "contact_id": feedback.contact_id,
                    # Null for an opt-out about no engagement (``Feedback``).
                    "engagement_id": _text(feedback.engagement_id),
                    "subscriber_id": subscriber_id,
                    "incident_type": _text(feedback.incident_type),
                    "incident_time": _text(feedback.incident_time),
                    "cell": _text(feedback.cell),
                    "outcome": feedback.outcome,
                    "rating": rating,
                    "score": None if rating is None else score(rating),
                    "incident_weight": None if rating is None else incident_weight(rating),
                    "received_at": feedback.received_at,
                }
            ),
        )
    ]
    if rating is not None and feedback.change_sentiment is not None:
        records.append(
            (
                LAKE_TABLES["sentiment"],
                LAKE_TABLES["sentiment"].record(
                    {
                        "contact_id": feedback.contact_id,
                        "engagement_id": feedback.engagement_id,
                        "subscriber_id": subscriber_id,
                        "cell": feedback.cell,
                        "device": _text(image.get("Device")),
                        "vendor": _text(image.get("Vendor")),
                        "incident_type": feedback.incident_type,
                        "previous_sentiment": feedback.previous_sentiment,
                        "sentiment": feedback.sentiment,
                        "change_sentiment": feedback.change_sentiment,
                        "updated_at": feedback.received_at,
                    }
                ),
            )
        )
    return records


@dataclass
class CountedRatings:
    """What counting a batch's ratings did: the sequence numbers to retry (the first that
    failed and every one after it: a stream resumes there), how many were new."""

    failed: list[str]
    counted: int = 0
    replayed: int = 0


def count_ratings(
    images: Sequence[tuple[str, Any]], cells: CellStore, policy: Policy
) -> CountedRatings:
    """Add each rating of the batch to its cell's tally for the rating budget, once.

    The period is the one of the episode's first incident, which is what the decision and
    the dialler ask about. A record that is no rating, or malformed (the lake writer
    reports those), counts nothing.
    """
    budget = policy.rating_budget
    outcome = CountedRatings(failed=[])
    for index, (_, image) in enumerate(images):
        try:
            feedback = last_feedback(image)
        except InvalidRecord:
            continue
        if feedback.change_sentiment is None:
            continue
        period = budget.period(parse_utc(feedback.incident_time))
        period_end = period + timedelta(hours=budget.period_hours)
        mark_expires = max(period_end, parse_utc(feedback.received_at)) + MARK_RETENTION
        try:
            new = cells.count_rating(
                feedback.cell,
                period,
                feedback.engagement_id,
                feedback.change_sentiment,
                period_end + TALLY_RETENTION,
                mark_expires,
            )
        except AwsError:
            outcome.failed = [seq for seq, _ in images[index:]]
            return outcome
        if new:
            outcome.counted += 1
        else:
            outcome.replayed += 1
    return outcome


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
