"""Engage: one episode's engagement message → the contact policy again, then a contact.

The message waits on the FIFO trigger queue for as long as its episode lasts, keeping
the subscriber's place (their later engagements wait behind it). Each time it is
delivered, the dialler looks at the subscriber as they are *now* and either contacts
them, holds the message back until a later moment, or closes the episode:

* **before the first contact** the policy is evaluated again: an opt-out or
  do-not-contact entry since the decision, a stale incident, the gathering delay, the
  gap and cap, the subscriber's calling hours, a cell measured meanwhile (the rating
  budget in ``measure`` mode: ratings keep arriving while an episode gathers or waits for
  the morning), an outage on the cell (only the sample is contacted) and the
  calls-per-minute budget;
* **after a contact** the answer decides: answered → done; a call not answered →
  one more call later within calling hours (``voice_attempts``); then, when enabled, a
  text (``sms``); else the episode closes as ``no_answer``.

Amazon Connect's own limits (concurrent active calls, the API's request rate) refuse a
call for now: it waits with exponential back-off. A refusal no retry can overcome
(``calls.PERMANENT_ERRORS``) closes the episode as ``failed`` with the error code.
Every step that changes the episode is recorded in ``engagement/`` with its reason.
"""

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from feedback_loop.calls import (
    CallCentre,
    check_engagement,
    is_permanent,
    may_have_been_placed,
    outbound_call_request,
)
from feedback_loop.contact_policy import Zones, is_stale, next_contact, subscriber_zones
from feedback_loop.contract import Verdict
from feedback_loop.decision import CELL_MEASURED
from feedback_loop.episodes import CLOSED, CONTACTED, DIALLING, SMS, VOICE, ContactState, Episode
from feedback_loop.errors import AwsError
from feedback_loop.ids import short_id
from feedback_loop.messages import EngagementMessage, decode, encode
from feedback_loop.outages import eligible_for_sample, subscriber_key, window_start
from feedback_loop.policy import Policy
from feedback_loop.ports import CellStore, ContactStore, MessageQueue, OutgoingMessage
from feedback_loop.texts import rating_request
from feedback_loop.timeutil import format_utc, parse_utc

PlaceCall = Callable[[Mapping[str, Any]], str]
SendText = Callable[[str, str, str], str]
"""``send(phone number, text, idempotency key)`` → the message id."""

BACKOFF_BASE_SECONDS = 30
# A throttled engagement is tried again at most this long after its last attempt: Connect
# frees a call slot within minutes.
BACKOFF_MAX_SECONDS = 900
BACKOFF_JITTER = 0.2
# SQS hides a received message for at most 12 hours in all, counted from when it was received,
# and rejects a ChangeMessageVisibility beyond that (Amazon SQS API Reference,
# ChangeMessageVisibility). A hold leaves an hour for the time between the receive and the
# request; a longer wait is taken in steps, one receive each.
MAX_HOLD_SECONDS = 11 * 60 * 60
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class DialPorts:
    """Where contacts go, the subscriber's state, the shared counters, the lake's queue."""

    centre: CallCentre
    place: PlaceCall
    send_text: SendText | None
    contacts: ContactStore
    cells: CellStore
    updates: MessageQueue
    policy: Policy


@dataclass(frozen=True)
class Hold:
    """Keep the message, hidden for ``seconds``: the episode goes on later.

    ``recorded`` is the step this delivery wrote to ``engagement/`` (decision, reason),
    if any.
    """

    engagement_id: str
    reason: str
    seconds: int
    throttled: bool = False
    recorded: tuple[str, str] | None = None


@dataclass(frozen=True)
class Done:
    """The message is done: the episode was contacted for the last time, or closed."""

    engagement_id: str
    reason: str
    recorded: tuple[str, str] | None = None


DialOutcome = Hold | Done


class StateKeptChanging(AwsError):
    """The subscriber's contact state kept changing under us; the message is retried."""


def backoff_seconds(attempt: int, key: str) -> int:
    """Wait before the next try after the ``attempt``-th (1-based) refusal.

    Doubles from ``BACKOFF_BASE_SECONDS`` up to ``BACKOFF_MAX_SECONDS``, spread by up to
    ±``BACKOFF_JITTER`` with a jitter derived from ``key``, so engagements throttled
    together do not all come back in the same second (and a replay waits as long).
    """
    base = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * (1 << max(0, attempt - 1)))
    return max(
        1, min(BACKOFF_MAX_SECONDS, round(base * (1 + BACKOFF_JITTER * _spread(key, attempt))))
    )


def _spread(key: str, salt: int) -> float:
    digest = hashlib.sha256(f"{key}|{salt}".encode()).digest()
    return (int.from_bytes(digest[:4], "big") / 2**32) * 2 - 1


def dial(body: str, delivery: int, ports: DialPorts, now: datetime) -> DialOutcome:
    """Take the episode of one engagement message one step further (its ``delivery``-th
    receive).

    Raises :class:`~feedback_loop.errors.InvalidRecord` for a message that must never
    become a contact, and :class:`~feedback_loop.errors.AwsError` when the step could not
    be recorded (the message is then retried; every step is safe to repeat).
    """
    message = decode(body, EngagementMessage)
    check_engagement(message)
    for _ in range(MAX_ATTEMPTS):
        step = _Step(message, delivery, ports, now)
        outcome = step.run()
        if outcome is not None:
            return replace(outcome, recorded=step.recorded)
    raise StateKeptChanging("dynamodb.UpdateItem", "ConditionKeptFailing")


class _Step:
    """One delivery of an engagement message; ``run`` returns ``None`` when the
    subscriber's state changed under it (the caller starts again from a fresh read)."""

    def __init__(self, message: EngagementMessage, delivery: int, ports: DialPorts, now: datetime):
        self.message = message
        self.delivery = delivery
        self.ports = ports
        self.policy = ports.policy
        self.now = now
        self.recorded: tuple[str, str] | None = None

    def run(self) -> DialOutcome | None:
        view = self.ports.contacts.load(self.message.phone_number)
        episode = None if view is None else view.contact.episode
        if view is None or episode is None or episode.engagement_id != self.message.engagement_id:
            return Done(self.message.engagement_id, "superseded")
        if episode.status == CLOSED:
            return Done(self.message.engagement_id, "closed")
        self.view = view
        if view.opted_out:
            return self._close(episode, Verdict.SUPPRESS, "opted_out")
        if view.do_not_contact:
            return self._close(episode, Verdict.SUPPRESS, "do_not_contact")
        if episode.status == DIALLING:
            # The run that marked it ended before recording the attempt: taken as made.
            return self._contacted(view.contact)
        if episode.status == CONTACTED:
            return self._follow_up(episode)
        return self._first_contact(episode)

    # --- the policy, again -------------------------------------------------------------------

    @property
    def _zones(self) -> Zones:
        return subscriber_zones(
            self.view.time_zone,
            self.message.phone_number,
            self.policy.timezone,
            self.policy.contact_rules.hours,
        )

    def _first_contact(self, episode: Episode) -> DialOutcome | None:
        rules = self.policy.contact_rules
        earliest = next_contact(
            self.now, episode.first_incident, self.view.contact.history, rules, self._zones
        )
        if is_stale(episode.first_incident, earliest.at, rules):
            return self._close(episode, Verdict.SUPPRESS, "stale")
        if earliest.at > self.now:
            return self._defer(episode, earliest.at, earliest.reason or "deferred")
        if self._cell_measured(episode):
            return self._close(episode, Verdict.SUPPRESS, CELL_MEASURED)
        if not self._in_sample(episode):
            return self._close(episode, Verdict.SUPPRESS, "cell_outage")
        channel = SMS if self.view.prefers_sms and self._texts_enabled else VOICE
        return self._contact(episode, channel)

    def _cell_measured(self, episode: Episode) -> bool:
        budget = self.policy.rating_budget
        if not budget.suppresses:
            return False
        tally = self.ports.cells.ratings(episode.cell, budget.period(episode.first_incident))
        return budget.measured(tally, self.policy.sentiment_alpha)

    def _in_sample(self, episode: Episode) -> bool:
        rule = self.policy.outage
        window = window_start(episode.first_incident, rule.window_minutes)
        if self.ports.cells.subscribers(episode.cell, window) < rule.min_subscribers:
            return True
        key = subscriber_key(self.message.phone_number)
        return eligible_for_sample(key, episode.cell, window) and self.ports.cells.claim_sample(
            episode.cell, window, key, rule.sample_size
        )

    def _follow_up(self, episode: Episode) -> DialOutcome | None:
        answered = self.view.answered_engagement
        if answered is not None and short_id(answered) == short_id(episode.engagement_id):
            return self._close(episode, Verdict.CLOSED, "answered")
        if episode.last_attempt_at is not None:
            awaited_until = parse_utc(episode.last_attempt_at) + self._answer_wait(episode.channel)
            if self.now < awaited_until:
                return self._hold("awaiting_answer", awaited_until)
        if episode.channel == SMS:
            return self._close(episode, Verdict.CLOSED, "no_reply")
        rules = self.policy.contact_rules
        if episode.attempts < self.policy.voice_attempts:
            last = episode.last_attempt_at or format_utc(self.now)
            retry_at = max(
                self.now, parse_utc(last) + timedelta(minutes=self.policy.retry_after_minutes)
            )
            at = rules.hours.next_allowed(retry_at, self._zones)
            if not is_stale(episode.first_incident, at, rules):
                if at > self.now:
                    return self._defer(episode, at, "retry")
                return self._contact(episode, VOICE)
        if self._texts_enabled:
            at = rules.hours.next_allowed(self.now, self._zones)
            if not is_stale(episode.first_incident, at, rules):
                if at > self.now:
                    return self._defer(episode, at, "quiet_hours")
                return self._contact(episode, SMS)
        return self._close(episode, Verdict.CLOSED, "no_answer")

    @property
    def _texts_enabled(self) -> bool:
        return self.policy.sms.enabled and self.ports.send_text is not None

    # --- acting ------------------------------------------------------------------------------

    def _contact(self, episode: Episode, channel: str) -> DialOutcome | None:
        minute = self.now.replace(second=0, microsecond=0)
        if not self.ports.cells.claim_pacing(minute, self.policy.calls_per_minute):
            # The next minute at the earliest; longer the more often this message has been
            # received, so a budget full for hours does not spend its receive count.
            next_minute = (
                60
                - self.now.second
                + round(5 * (1 + _spread(self.message.engagement_id, minute.minute)))
            )
            wait = max(next_minute, backoff_seconds(self.delivery, self.message.engagement_id))
            return Hold(self.message.engagement_id, "pacing", wait)
        attempt = episode.attempts + 1 if channel == VOICE else episode.attempts
        dialling = replace(
            episode,
            status=DIALLING,
            attempts=attempt,
            channel=channel,
            last_attempt_at=format_utc(self.now),
            deferred_until=None,
        )
        state = self.view.contact.with_episode(dialling)
        if episode.status == CONTACTED:  # the gap runs from the latest attempt
            state = state.contacted_again(self.now)
        else:  # an episode counts once for the cap
            state = state.contacted(self.now, self.policy.contact_rules.max_contacts_window)
        # The durable mark first: if this run ends between the request and the record, the
        # next delivery finds it and does not ring the subscriber a second time.
        if not self._save(state):
            return None
        state = state.saved()
        try:
            self._request(episode, channel, attempt)
        except AwsError as error:
            if may_have_been_placed(error.code):
                # The request may have rung the phone and only its answer was lost: taken as
                # made, like a run that ended after the mark. Dialling again could ring the
                # subscriber twice: a repeated ClientToken returns the first contact only while
                # it is connected; "if the contact is disconnected, a new contact is started"
                # (Amazon Connect API Reference, StartOutboundVoiceContact).
                return self._contacted(state)
            # Not placed: the episode goes back to how it was before the mark, so a retry
            # of this step dials again rather than taking the refused call as made.
            reverted = replace(self.view.contact, version=state.version)
            if not self._save(reverted):
                raise StateKeptChanging("dynamodb.UpdateItem", "ConditionalCheckFailed") from error
            if is_permanent(error.code, channel):
                return self._close(episode, Verdict.FAILED, error.code, reverted.saved())
            wait = backoff_seconds(self.delivery, self.message.engagement_id)
            return Hold(self.message.engagement_id, error.code, wait, throttled=True)
        return self._contacted(state)

    def _request(self, episode: Episode, channel: str, attempt: int) -> None:
        if channel == VOICE:
            self.ports.place(
                outbound_call_request(
                    self.message, self.ports.centre, episode.incident_types, attempt
                )
            )
            return
        assert self.ports.send_text is not None
        self.ports.send_text(
            self.message.phone_number,
            rating_request(episode.incident_types),
            f"{self.message.engagement_id}-{SMS}",
        )

    def _contacted(self, state: ContactState) -> DialOutcome | None:
        """Record the attempt (``state``'s episode, still marked dialling) as made."""
        assert state.episode is not None and state.episode.channel is not None
        channel = state.episode.channel
        self._record(Verdict.CONTACTED, channel)
        if not self._save(state.with_episode(replace(state.episode, status=CONTACTED))):
            return None
        return self._hold("awaiting_answer", self.now + self._answer_wait(channel))

    def _answer_wait(self, channel: str | None) -> timedelta:
        """How long after a contact on ``channel`` its answer is awaited."""
        if channel == SMS:
            return timedelta(hours=self.policy.sms.reply_wait_hours)
        return timedelta(minutes=self.policy.answer_wait_minutes)

    def _hold(self, reason: str, until: datetime) -> Hold:
        """Hand the message back until ``until``, or for the longest hold SQS allows."""
        seconds = max(1, int((until - self.now).total_seconds()))
        return Hold(self.message.engagement_id, reason, min(seconds, MAX_HOLD_SECONDS))

    def _defer(self, episode: Episode, until: datetime, reason: str) -> DialOutcome | None:
        stamp = format_utc(until)
        if episode.deferred_until != stamp:
            self._record(Verdict.DEFERRED, reason)
            if not self._save(
                self.view.contact.with_episode(replace(episode, deferred_until=stamp))
            ):
                return None
        return self._hold(reason, until)

    def _close(
        self, episode: Episode, verdict: str, reason: str, state: ContactState | None = None
    ) -> DialOutcome | None:
        self._record(verdict, reason)
        base = self.view.contact if state is None else state
        if not self._save(base.with_episode(replace(episode, status=CLOSED))):
            return None
        return Done(self.message.engagement_id, reason)

    def _save(self, state: Any) -> bool:
        return self.ports.contacts.record(self.message.phone_number, state) is None

    def _record(self, verdict: str, reason: str) -> None:
        """One ``engagement/`` record of the step, sent before the state is saved: a record
        that cannot be sent fails the step (its message is retried; the step is safe to
        repeat), so every step reaches the lake at least once."""
        step = replace(
            self.message, decision=verdict, reason=reason, decided_at=format_utc(self.now)
        )
        not_sent = self.ports.updates.send(
            [OutgoingMessage(key=self.message.engagement_id, body=encode(step))]
        )
        if not_sent:
            raise AwsError("sqs.SendMessageBatch", ", ".join(not_sent.errors) or "NotSent")
        self.recorded = (str(verdict), reason)
