"""The dialler: the contact policy again before each contact, then calls, retries and texts."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from feedback_loop.calls import CallCentre
from feedback_loop.contact_policy import next_contact
from feedback_loop.decision import decide
from feedback_loop.dial import DialPorts, Done, Hold, backoff_seconds, dial
from feedback_loop.episodes import ContactState, SubscriberView
from feedback_loop.errors import AwsError
from feedback_loop.ids import incident_id
from feedback_loop.incidents import Incident
from feedback_loop.messages import EngagementMessage, decode, encode
from feedback_loop.outages import SAMPLE_FRACTION, eligible_for_sample, subscriber_key
from feedback_loop.policy import load_policy
from feedback_loop.ports import NotSent
from feedback_loop.timeutil import format_utc

PHONE = "+447700900123"
CENTRE = CallCentre("instance-1", "flow-1", "+442079460000")
FIRST = datetime(2026, 11, 25, 10, 15, 3, tzinfo=UTC)
DEFERRED_GATHERING = ("deferred", "gathering")
LONDON = ZoneInfo("Europe/London")
POLICY = load_policy({"timezone": "Europe/London", "sms": {"enabled": True}})


def incident(kpi="CALL_DROP", at=FIRST, phone=PHONE, cell="LDN-0042"):
    time = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    record_id = f"shardId-000000000000:{time}"
    return Incident(
        incident_id(phone, kpi, time, record_id), phone, kpi, time, cell, None, None,
        0.5, 8, 4, 60, record_id,
    )  # fmt: skip


class Contacts:
    """The profiles as the dialler sees them: a view per number, versioned writes."""

    def __init__(self):
        self.views: dict[str, SubscriberView] = {}

    def load(self, phone):
        return self.views.get(phone)

    def record(self, phone, state):
        current = self.views[phone]
        if current.contact.version != state.version:
            return {"changed": True}
        self.views[phone] = replace(current, contact=replace(state, version=state.version + 1))
        return None


class Cells:
    def __init__(self, budget_left=10_000):
        self.subscribers_in: dict[str, int] = {}
        self.sampled: dict[str, set[str]] = {}
        self.budget_left = budget_left

    def count_subscriber(self, cell, window, subscriber):
        raise AssertionError("the dialler does not count outages")

    def subscribers(self, cell, window):
        return self.subscribers_in.get(cell, 0)

    def claim_sample(self, cell, window, subscriber, size):
        taken = self.sampled.setdefault(cell, set())
        if subscriber in taken or len(taken) < size:
            taken.add(subscriber)
            return True
        return False

    def claim_pacing(self, minute, budget):
        if self.budget_left <= 0:
            return False
        self.budget_left -= 1
        return True


class Lake:
    def __init__(self):
        self.records: list[EngagementMessage] = []

    def send(self, messages):
        self.records.extend(decode(m.body, EngagementMessage) for m in messages)
        return NotSent()

    def steps(self):
        return [(r.decision, r.reason) for r in self.records]


class World:
    """One subscriber with an open episode, and the ports around the dialler."""

    def __init__(self, policy=POLICY, phone=PHONE, cell="LDN-0042", first_at=FIRST, **view):
        self.policy = policy
        self.contacts = Contacts()
        self.cells = Cells()
        self.lake = Lake()
        self.calls: list[dict] = []
        self.texts: list[tuple[str, str, str]] = []
        self.refuse_call: str | None = None
        first = incident(phone=phone, cell=cell, at=first_at)
        decision, opened = decide(first, SubscriberView(phone, **view), policy, first_at)
        self.contacts.views[phone] = opened
        self.message = decision.to_message()
        self.body = encode(self.message)

    def place(self, request):
        if self.refuse_call:
            raise AwsError("connect.StartOutboundVoiceContact", self.refuse_call)
        self.calls.append(request)
        return f"contact-{len(self.calls)}"

    def send_text(self, phone, text, key):
        self.texts.append((phone, text, key))
        return "message-1"

    @property
    def ports(self) -> DialPorts:
        return DialPorts(
            CENTRE, self.place, self.send_text, self.contacts, self.cells, self.lake, self.policy
        )

    def dial(self, at: datetime, delivery: int = 1):
        return dial(self.body, delivery, self.ports, at)

    def episode(self, phone=PHONE):
        return self.contacts.views[phone].contact.episode

    def answer(self, phone=PHONE):
        view = self.contacts.views[phone]
        self.contacts.views[phone] = replace(view, answered_engagement=self.message.engagement_id)


def test_dialling_waits_for_the_gathering_delay_then_calls_once_about_every_problem():
    world = World()
    # A video problem joins the episode during the gathering delay
    stall = incident("VIDEO_STALLING", FIRST + timedelta(minutes=4))
    _, joined = decide(stall, world.contacts.views[PHONE], POLICY, FIRST + timedelta(minutes=5))
    world.contacts.views[PHONE] = replace(
        joined, contact=replace(joined.contact, version=joined.contact.version)
    )

    early = world.dial(FIRST + timedelta(minutes=2))
    assert early == Hold(world.message.engagement_id, "gathering", 480, recorded=DEFERRED_GATHERING)
    assert world.calls == []

    placed = world.dial(FIRST + timedelta(minutes=10))

    assert placed == Hold(
        world.message.engagement_id, "awaiting_answer", 15 * 60, recorded=("contacted", "voice")
    )
    [call] = world.calls
    assert call["Attributes"]["incident_types"] == "CALL_DROP,VIDEO_STALLING"
    assert call["ClientToken"] == f"{world.message.engagement_id}-1"
    assert world.lake.steps() == [("deferred", "gathering"), ("contacted", "voice")]
    assert world.contacts.views[PHONE].contact.history == ("2026-11-25T10:25:03Z",)


def test_an_answered_call_closes_the_episode():
    world = World()
    world.dial(FIRST + timedelta(minutes=10))
    world.answer()

    assert world.dial(FIRST + timedelta(minutes=25)) == Done(
        world.message.engagement_id, "answered", ("closed", "answered")
    )
    assert world.lake.steps()[-1] == ("closed", "answered")
    assert world.episode().status == "closed"


def test_no_answer_is_called_once_more_later_then_texted_then_closed():
    world = World()
    start = FIRST + timedelta(minutes=10)
    world.dial(start)

    # Not answered: a second call two hours after the first, within calling hours
    assert world.dial(start + timedelta(minutes=15)).reason == "retry"
    second = world.dial(start + timedelta(hours=2))
    assert second.reason == "awaiting_answer"
    assert [c["ClientToken"][-2:] for c in world.calls] == ["-1", "-2"]

    # Not answered again: the text
    texted_at = start + timedelta(hours=2, minutes=15)
    texted = world.dial(texted_at)
    [(phone, text, key)] = world.texts
    assert phone == PHONE and "calls were cut off" in text and key.endswith("-sms")
    assert world.episode().channel == "sms"

    # The reply is awaited 24 hours, in the holds SQS allows (11 hours at most each)
    assert texted.seconds == 11 * 3600
    assert world.dial(texted_at + timedelta(hours=11)).seconds == 11 * 3600
    assert world.dial(texted_at + timedelta(hours=22)).seconds == 2 * 3600

    # No reply within the wait: closed
    closed = world.dial(texted_at + timedelta(hours=24))
    assert closed == Done(world.message.engagement_id, "no_reply", ("closed", "no_reply"))
    assert [step for step in world.lake.steps() if step[0] != "deferred"] == [
        ("contacted", "voice"),
        ("contacted", "voice"),
        ("contacted", "sms"),
        ("closed", "no_reply"),
    ]
    # The retries are one episode: one contact for the cap, and the gap runs from the text
    assert world.contacts.views[PHONE].contact.history == (format_utc(texted_at),)


def test_the_gap_to_the_next_episode_runs_from_the_last_attempt_of_the_one_before():
    """A first call, then its retry two hours later: the episode is still one contact for
    the cap, and the next episode's first contact waits a whole gap after the retry."""
    world = World()
    start = FIRST + timedelta(minutes=10)
    world.dial(start)
    retried_at = start + timedelta(hours=2)
    world.dial(retried_at)

    history = world.contacts.views[PHONE].contact.history
    assert history == (format_utc(retried_at),)
    later = FIRST + timedelta(hours=23)
    nxt = next_contact(later, later, history, POLICY.contact_rules, (LONDON,))
    assert (nxt.at, nxt.reason) == (retried_at + POLICY.contact_rules.cooldown, "contact_gap")


def test_without_the_second_channel_an_unanswered_episode_closes_as_no_answer():
    world = World(policy=replace(POLICY, sms=replace(POLICY.sms, enabled=False)))
    start = FIRST + timedelta(minutes=10)
    world.dial(start)
    world.dial(start + timedelta(hours=2))

    assert world.dial(start + timedelta(hours=3)) == Done(
        world.message.engagement_id, "no_answer", ("closed", "no_answer")
    )
    assert world.texts == []


def test_a_subscriber_who_prefers_texts_is_texted_first():
    world = World(prefers_sms=True)

    world.dial(FIRST + timedelta(minutes=10))

    assert world.calls == [] and len(world.texts) == 1


@pytest.mark.parametrize("flag", ["opted_out", "do_not_contact"])
def test_an_opt_out_or_do_not_contact_after_the_decision_stops_the_queued_engagement(flag):
    # 9 pressed on an earlier call, or customer care's do-not-contact list
    world = World()
    view = world.contacts.views[PHONE]
    world.contacts.views[PHONE] = replace(view, **{flag: True})

    outcome = world.dial(FIRST + timedelta(minutes=10))

    assert outcome == Done(world.message.engagement_id, flag, ("suppress", flag))
    assert world.calls == [] and world.lake.steps() == [("suppress", flag)]


def test_an_evening_incident_is_called_the_next_morning_in_the_subscribers_zone():
    evening = FIRST.replace(hour=21, minute=5)
    world = World(first_at=evening)

    held = world.dial(evening + timedelta(minutes=10))

    morning = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # 08:00 in London in November
    assert held.reason == "quiet_hours"
    assert held.seconds == int((morning - evening - timedelta(minutes=10)).total_seconds())
    assert world.dial(morning).reason == "awaiting_answer"
    assert world.calls[0]["Attributes"]["incident_time"] == "2026-11-25T21:05:03Z"


def test_a_us_subscriber_is_held_until_their_own_morning():
    honolulu = "+18085550123"
    world = World(phone=honolulu)

    held = world.dial(datetime(2026, 11, 25, 14, 0, tzinfo=UTC))  # 04:00 in Honolulu

    assert held.reason == "quiet_hours"
    assert held.seconds == 4 * 3600  # 08:00 HST is 18:00 UTC


def test_an_engagement_held_past_its_age_limit_is_dropped_as_stale():
    world = World()

    outcome = world.dial(FIRST + timedelta(hours=25))

    assert outcome == Done(world.message.engagement_id, "stale", ("suppress", "stale"))
    assert world.calls == []


def test_during_an_outage_only_the_eligible_sample_is_contacted():
    phones = [f"+4477009{n:05d}" for n in range(400)]
    worlds = [World(phone=phone, cell="LDN-0099") for phone in phones]
    cells = Cells()
    cells.subscribers_in["LDN-0099"] = 400
    contacted = 0
    for world in worlds:
        world.cells = cells
        outcome = world.dial(FIRST + timedelta(minutes=10))
        contacted += isinstance(outcome, Hold)
        if isinstance(outcome, Done):
            assert world.lake.steps() == [("suppress", "cell_outage")]
    assert contacted == POLICY.outage.sample_size
    window = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    eligible = sum(eligible_for_sample(subscriber_key(p), "LDN-0099", window) for p in phones)
    assert abs(eligible / 400 - SAMPLE_FRACTION) < 0.08  # the hash spreads the sample


def test_a_full_minute_budget_holds_the_contact_to_the_next_minute_without_a_record():
    world = World()
    world.cells.budget_left = 0

    held = world.dial(FIRST + timedelta(minutes=10))

    assert held.reason == "pacing" and 57 <= held.seconds <= 67
    assert world.calls == [] and world.lake.steps() == []


def test_a_budget_full_for_long_spaces_the_retries_out_to_spare_the_receive_count():
    world = World()
    world.cells.budget_left = 0

    held = world.dial(FIRST + timedelta(minutes=10), delivery=8)

    assert held.reason == "pacing"
    assert held.seconds == backoff_seconds(8, world.message.engagement_id) >= 700


def test_a_throttled_call_waits_with_back_off_and_a_refused_one_closes_as_failed():
    world = World()
    world.refuse_call = "LimitExceededException"
    held = world.dial(FIRST + timedelta(minutes=10), delivery=3)
    assert held == Hold(
        world.message.engagement_id,
        "LimitExceededException",
        backoff_seconds(3, world.message.engagement_id),
        throttled=True,
    )

    # Not placed: the episode is as it was before the attempt (no attempt, no contact).
    assert (world.episode().status, world.episode().attempts) == ("open", 0)
    assert world.contacts.views[PHONE].contact.history == ()

    world.refuse_call = "DestinationNotAllowedException"
    refused = world.dial(FIRST + timedelta(minutes=11))
    assert refused == Done(
        world.message.engagement_id,
        "DestinationNotAllowedException",
        ("failed", "DestinationNotAllowedException"),
    )
    assert world.lake.steps()[-1] == ("failed", "DestinationNotAllowedException")


def test_a_message_of_an_episode_that_is_no_longer_current_is_done_quietly():
    world = World()
    view = world.contacts.views[PHONE]
    world.contacts.views[PHONE] = replace(view, contact=ContactState(version=5))

    assert world.dial(FIRST + timedelta(minutes=10)) == Done(
        world.message.engagement_id, "superseded"
    )
    assert world.lake.steps() == []


@pytest.mark.parametrize("delivery", [1, 2])
def test_a_repeated_delivery_of_a_placed_call_is_safe(delivery):
    world = World()
    world.dial(FIRST + timedelta(minutes=10))

    again = world.dial(FIRST + timedelta(minutes=10), delivery=delivery)

    # The episode is contacted: the repeat waits for the answer, it does not call again
    assert again == Hold(world.message.engagement_id, "awaiting_answer", 15 * 60)
    assert len(world.calls) == 1


def test_a_run_that_ended_between_the_call_and_its_record_does_not_ring_again():
    """Lambda timed out after StartOutboundVoiceContact: the next delivery finds the
    dialling mark, takes the attempt as made and waits for the answer."""
    world = World()

    class TimedOut(Exception):
        pass

    def place_then_time_out(request):
        world.calls.append(request)
        raise TimedOut

    world.place = place_then_time_out
    with pytest.raises(TimedOut):
        world.dial(FIRST + timedelta(minutes=10))
    assert world.episode().status == "dialling"

    after = world.dial(FIRST + timedelta(minutes=16), delivery=2)

    assert after == Hold(
        world.message.engagement_id, "awaiting_answer", 15 * 60, recorded=("contacted", "voice")
    )
    assert len(world.calls) == 1
    assert (world.episode().status, world.episode().attempts) == ("contacted", 1)
    assert len(world.contacts.views[PHONE].contact.history) == 1


@pytest.mark.parametrize("lost", ["ReadTimeoutError", "ConnectionClosedError"])
def test_a_call_whose_answer_was_lost_is_taken_as_made_and_not_rung_again(lost):
    """Connect placed the call but its response never came back: the attempt counts, the
    subscriber who answered it is not rung a second time about the same engagement."""
    world = World()

    def place_then_lose_the_answer(request):
        world.calls.append(request)
        raise AwsError("connect.StartOutboundVoiceContact", lost)

    world.place = place_then_lose_the_answer
    at = FIRST + timedelta(minutes=10)
    held = world.dial(at)

    assert held == Hold(
        world.message.engagement_id, "awaiting_answer", 15 * 60, recorded=("contacted", "voice")
    )
    assert (world.episode().status, world.episode().attempts) == ("contacted", 1)
    assert len(world.contacts.views[PHONE].contact.history) == 1
    world.answer()
    assert world.dial(at + timedelta(seconds=held.seconds), delivery=2).reason == "answered"
    assert len(world.calls) == 1


@pytest.mark.parametrize("never_sent", ["ConnectTimeoutError", "EndpointConnectionError"])
def test_a_call_request_that_never_reached_connect_is_tried_again(never_sent):
    world = World()
    world.refuse_call = never_sent
    held = world.dial(FIRST + timedelta(minutes=10))

    assert (held.reason, held.throttled) == (never_sent, True)
    assert (world.episode().status, world.episode().attempts) == ("open", 0)
    world.refuse_call = None
    world.dial(FIRST + timedelta(minutes=10, seconds=held.seconds), delivery=2)
    assert len(world.calls) == 1


@pytest.mark.parametrize(
    "refusal", ["ConflictException", "ValidationException", "ServiceQuotaExceededException"]
)
def test_a_text_the_service_refuses_for_good_fails_once_instead_of_blocking_the_queue(refusal):
    """An opted-out or unverified number, a refused country, the month's spend limit: the
    episode fails with the code, instead of being held and retried until the DLQ."""
    world = World(prefers_sms=True)

    def refuse(phone, text, key):
        raise AwsError("pinpoint-sms-voice-v2.SendTextMessage", refusal)

    world.send_text = refuse
    done = world.dial(FIRST + timedelta(minutes=10))

    assert done == Done(world.message.engagement_id, refusal, ("failed", refusal))
    assert world.episode().status == "closed"
