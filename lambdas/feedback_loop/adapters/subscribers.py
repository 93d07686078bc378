"""``Subscriber_table`` for feedback: record an answer once per contact, in one write.

DynamoDB cannot multiply inside an update expression, so a rating's sentiment blend
needs the stored value: a consistent ``GetItem`` reads it (and ``FeedbackContacts``,
whose ``<contact key>|<outcome>`` entries tell a replayed contact what it recorded), and a
conditional ``UpdateItem`` writes the answer only if ``FeedbackContacts`` is still what
was read (optimistic concurrency: every recorded answer changes that list). A lost race
is retried from a fresh read. The write
sets ``LastFeedback`` (the answer) and ``LastChange = feedback``, which is what
the table's stream hands to ``write_feedback_to_S3``. An answer about the item's own
``Episode`` leaves that engagement's fields to the episode (``Feedback.to_item``), so the
write is also conditional on the episode being the one read.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from feedback_loop.adapters.aws import translated
from feedback_loop.adapters.dynamodb import conditional_update, from_item, to_attribute
from feedback_loop.contract import (
    FEEDBACK_CONTACTS,
    LAST_CHANGE,
    LAST_FEEDBACK,
    NEW_INCIDENTS,
    PHONE_NUMBER,
    LastChange,
    Reason,
)
from feedback_loop.episodes import ANSWERED, EPISODE, EPISODE_KEYS, Episode, episode_of
from feedback_loop.errors import FeedbackLoopError, InvalidRecord
from feedback_loop.feedback import OPTED_OUT, Feedback, last_feedback
from feedback_loop.ids import contact_key, short_id
from feedback_loop.ports import RecordedAnswer

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

# A replayed contact is a retry of the same call (seconds later): a few entries suffice,
# and the list must stay small so a profile write fits one write unit. Each entry is
# ``<contact key>|<outcome>`` (``ids.contact_key``), so a replay is answered with what was
# recorded.
MAX_FEEDBACK_CONTACTS = 2
MAX_ATTEMPTS = 3
EPISODE_INCIDENT = EPISODE_KEYS["incident_id"]


class ConcurrentFeedback(FeedbackLoopError):
    """Other answers for the same subscriber kept winning the race; the flow may retry."""


class DynamoSubscriberStore:
    """Implements ``feedback_loop.ports.SubscriberStore`` on a low-level DynamoDB client."""

    def __init__(self, dynamodb: "DynamoDBClient", table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def record_answer(
        self,
        phone_number: str,
        contact_id: str,
        answer: Callable[[float | None], Feedback],
    ) -> RecordedAnswer:
        """Record ``answer(stored sentiment)`` unless this contact was recorded before.

        A replay returns the outcome recorded the first time and writes nothing.
        """
        for _ in range(MAX_ATTEMPTS):
            item = self._get(phone_number)
            if item is None:
                raise InvalidRecord(Reason.UNKNOWN_SUBSCRIBER, f"contact {contact_id}")
            seen = item.get(FEEDBACK_CONTACTS)
            entries = [str(entry) for entry in seen or []]
            current = None if item.get("Sentiment") is None else float(item["Sentiment"])
            outcome = _recorded_outcome(entries, contact_id)
            if outcome is not None:
                change = _replayed_change(item, contact_id)
                return RecordedAnswer(outcome, current, change, replayed=True)
            feedback = answer(current)
            if self._write(phone_number, feedback, entries, seen, _episode_of(item)):
                sentiment = feedback.sentiment if feedback.sentiment is not None else current
                change = feedback.change_sentiment or 0.0
                return RecordedAnswer(feedback.outcome, sentiment, change, replayed=False)
        raise ConcurrentFeedback(f"gave up recording contact {contact_id} after {MAX_ATTEMPTS}")

    def _write(
        self,
        phone_number: str,
        feedback: Feedback,
        entries: list[str],
        seen: Any,
        episode: Episode | None,
    ) -> bool:
        entry = f"{contact_key(feedback.contact_id)}|{feedback.outcome}"
        sets = [
            f"{FEEDBACK_CONTACTS} = :contacts",
            f"{LAST_FEEDBACK} = :feedback",
            f"{LAST_CHANGE} = :change",
        ]
        values: dict[str, Any] = {
            ":contacts": to_attribute([*entries, entry][-MAX_FEEDBACK_CONTACTS:]),
            ":feedback": to_attribute(feedback.to_item(episode)),
            ":change": {"S": LastChange.FEEDBACK},
        }
        if feedback.engagement_id:  # none for an opt-out texted with no episode at all
            # Tells the dialler the episode's contact was answered (its short id suffices).
            sets.append(f"{ANSWERED} = :engagement")
            values[":engagement"] = {"S": short_id(feedback.engagement_id)}
        if feedback.sentiment is not None:
            sets.append("Sentiment = :sentiment")
            values[":sentiment"] = to_attribute(feedback.sentiment)
        if feedback.outcome == OPTED_OUT:
            sets.append("OptedOut = :true")
            values[":true"] = {"BOOL": True}
        # Optimistic concurrency: every recorded answer changes the list, so an unchanged
        # list means nobody recorded an answer (or changed the sentiment) since the read.
        if seen is None:
            condition = (
                f"attribute_exists({PHONE_NUMBER}) AND attribute_not_exists({FEEDBACK_CONTACTS})"
            )
        else:
            condition = f"{FEEDBACK_CONTACTS} = :seen"
            values[":seen"] = to_attribute(seen)
        names = {}
        if episode is not None and feedback.answers(episode):
            condition += f" AND {EPISODE}.#inc = :inc"
            names["#inc"] = EPISODE_INCIDENT
            values[":inc"] = {"S": episode.incident_id}
        # ``NewIncidents`` reached the decision through the stream already; clearing them
        # keeps the item within one write unit.
        return conditional_update(
            self._dynamodb,
            TableName=self._table,
            Key={PHONE_NUMBER: {"S": phone_number}},
            UpdateExpression="SET " + ", ".join(sets) + f" REMOVE {NEW_INCIDENTS}",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
            **({"ExpressionAttributeNames": names} if names else {}),
        )

    def _get(self, phone_number: str) -> dict[str, Any] | None:
        with translated("dynamodb.GetItem"):
            response = self._dynamodb.get_item(
                TableName=self._table,
                Key={PHONE_NUMBER: {"S": phone_number}},
                ConsistentRead=True,
            )
        item = response.get("Item")
        return None if item is None else from_item(item)


def _episode_of(item: dict[str, Any]) -> Episode | None:
    """The item's episode when it is stored in the current form (the write's condition
    names its incident id's key), else None: the answer is then written whole."""
    stored = item.get(EPISODE)
    if not isinstance(stored, dict) or EPISODE_INCIDENT not in stored:
        return None
    return episode_of(item)


def _recorded_outcome(entries: list[str], contact_id: str) -> str | None:
    # Entries written before contact keys hold the whole contact id.
    keys = {contact_key(contact_id), contact_id}
    for entry in entries:
        recorded_contact, _, outcome = entry.rpartition("|")
        if recorded_contact in keys:
            return outcome
    return None


def _replayed_change(item: dict[str, Any], contact_id: str) -> float:
    """The sentiment change of a replayed contact, when it is the last answer recorded."""
    try:
        last = last_feedback(item)
    except InvalidRecord:
        return 0.0
    if last.contact_id != contact_id or last.change_sentiment is None:
        return 0.0
    return last.change_sentiment
