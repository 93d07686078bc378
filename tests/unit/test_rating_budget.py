"""The per-cell rating budget: when a cell is measured, and what that changes for the next
subscriber of that cell (decision, dialler, feedback stream, offline plan)."""

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from feedback_loop.adapters.cell_state import CellState
from feedback_loop.contact_policy import (
    RatingBudget,
    RatingTally,
    change_variance_bound,
    interval_half_width,
)
from feedback_loop.contract import FEEDBACK_ATTRIBUTES
from feedback_loop.decision import decide
from feedback_loop.engage import cell_measured
from feedback_loop.episodes import SubscriberView
from feedback_loop.errors import AwsError, ConfigError
from feedback_loop.feedback import Feedback, count_ratings, feedback_records
from feedback_loop.policy import load_policy, policy_from_json
from simulator.contact_plan import plan_contacts
from tests.unit.test_decision import PHONE, incident
from tests.unit.test_dial import FIRST, Cells, World
from tests.unit.test_dial import incident as dial_incident

BUDGET = RatingBudget(enabled=True, mode="measure", half_width=0.125, min_ratings=10)
MEASURE = load_policy({"quiet_hours": None, "rating_budget": {"enabled": True}})
CARE = load_policy({"quiet_hours": None, "rating_budget": {"enabled": True, "mode": "care"}})
OFF = load_policy({"quiet_hours": None})
NOW = datetime(2026, 11, 25, 10, 20, tzinfo=UTC)
DAY = datetime(2026, 11, 25, tzinfo=UTC)


def tally(*changes: float) -> RatingTally:
    result = RatingTally()
    for change in changes:
        result = result.plus(change)
    return result


# --- the rule ------------------------------------------------------------------------------


def test_the_half_width_is_the_maps_shrinkage_formula():
    # sql/priority.sql with n = 4 answers 0.5, -0.5, 0.25, -0.25 (mean 0, (n-1) s2 = 0.625)
    # and the network's variance S2 = 1: spread2 = (2 * 1 + 0.625) / (2 + 3), n + K = 6
    expected = 1.645 * math.sqrt((2 + 0.625) / 5 / 6)
    assert interval_half_width(tally(0.5, -0.5, 0.25, -0.25), 1.0) == pytest.approx(expected)
    # no ratings at all: the prior alone, sqrt(S2 / K)
    assert interval_half_width(RatingTally(), 1.0) == pytest.approx(1.645 * math.sqrt(1 / 2))


def test_the_network_variance_is_replaced_by_the_largest_a_change_can_have():
    # a change lies in [-2 alpha, 2 alpha]; never below the map's floor of 0.0625
    assert change_variance_bound(0.5) == pytest.approx(1.0)
    assert change_variance_bound(0.01) == pytest.approx(0.0625)


def test_not_enough_ratings_is_never_measured_however_tight():
    # nine identical answers: spread only from the prior, but fewer than min_ratings
    nine = tally(*[-0.25] * 9)
    assert not BUDGET.measured(nine, 0.5)
    assert not replace(BUDGET, half_width=1.0).measured(nine, 0.5)
    assert replace(BUDGET, half_width=1.0).measured(nine.plus(-0.25), 0.5)


def test_the_interval_just_above_the_target_is_not_measured_and_just_below_is():
    # identical answers: half-width 1.645 * sqrt(2 / (n + 1) / (n + 2)), 0.1258 at n = 17
    # and 0.1193 at n = 18
    seventeen = tally(*[-0.25] * 17)
    assert interval_half_width(seventeen, 1.0) == pytest.approx(0.12580, abs=1e-5)
    assert not BUDGET.measured(seventeen, 0.5)
    assert BUDGET.measured(seventeen.plus(-0.25), 0.5)
    # the target sits between the two
    assert BUDGET.measured(seventeen, 0.5) is False
    assert replace(BUDGET, half_width=0.1259).measured(seventeen, 0.5)


def test_answers_that_disagree_need_more_ratings():
    split = tally(*[0.5, -0.5] * 9)  # 18 ratings, as many as the identical ones above
    assert not BUDGET.measured(split, 0.5)


def test_the_period_is_the_utc_day_by_default_and_a_window_when_configured():
    assert BUDGET.period(datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC)) == DAY
    assert BUDGET.period(datetime(2026, 11, 26, 0, 0, tzinfo=UTC)) == DAY + timedelta(days=1)
    six = replace(BUDGET, period_hours=6)
    assert six.period(datetime(2026, 11, 25, 13, 5, tzinfo=UTC)) == DAY + timedelta(hours=12)


# --- the setting ---------------------------------------------------------------------------


def test_the_budget_is_off_by_default_and_round_trips_through_the_environment():
    assert load_policy({}).rating_budget == RatingBudget()
    assert not load_policy({}).rating_budget.enabled
    assert policy_from_json(CARE.to_json()) == CARE
    assert MEASURE.rating_budget.suppresses and not CARE.rating_budget.suppresses


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"enabled": "yes"}, "rating_budget.enabled"),
        ({"mode": "all"}, "rating_budget.mode"),
        ({"half_width": 0}, "rating_budget.half_width"),
        ({"min_ratings": 1}, "rating_budget.min_ratings"),
        ({"period_hours": 5}, "rating_budget.period_hours"),
        ({"size": 3}, "rating_budget"),
        ([], "rating_budget"),
    ],
)
def test_bad_budget_values_fail_naming_the_key(value, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_policy({"rating_budget": value})


# --- the decision --------------------------------------------------------------------------


def test_measure_mode_suppresses_a_new_episode_on_a_measured_cell_as_cell_measured():
    decision, after = decide(incident(), SubscriberView(PHONE), MEASURE, NOW, lambda _: True)
    assert (decision.decision, decision.reason) == ("suppress", "cell_measured")
    assert after.contact.episode is None


def test_an_unmeasured_cell_care_mode_and_no_budget_engage_as_usual():
    for policy, measured in ((MEASURE, False), (CARE, True), (OFF, True)):
        decision, _ = decide(
            incident(), SubscriberView(PHONE), policy, NOW, lambda _, m=measured: m
        )
        assert (decision.decision, decision.reason) == ("engage", "above_threshold")


def test_an_incident_joining_an_open_episode_is_merged_without_asking():
    _, opened = decide(incident(), SubscriberView(PHONE), MEASURE, NOW)

    def never(_):
        raise AssertionError("a merge costs no read")

    later = incident("VIDEO_STALLING", time="2026-11-25T10:17:00Z")
    decision, _ = decide(later, opened, MEASURE, NOW, never)
    assert decision.reason == "same_episode"


class TallyCells(Cells):
    """The dialler's cells with rating tallies, counting each engagement once."""

    def __init__(self):
        super().__init__()
        self.tallies: dict[tuple[str, datetime], RatingTally] = {}
        self.marks: set[tuple[str, datetime]] = set()
        self.reads = 0
        self.fail = False
        self.mark_expiry: dict[str, datetime] = {}

    def ratings(self, cell, period):
        self.reads += 1
        return self.tallies.get((cell, period), RatingTally())

    def count_rating(self, cell, period, engagement_id, change, expires, mark_expires):
        if self.fail:
            raise AwsError("dynamodb.TransactWriteItems", "ProvisionedThroughputExceededException")
        assert expires == period + timedelta(days=2)
        self.mark_expiry.setdefault(engagement_id, mark_expires)
        if (engagement_id, period) in self.marks:
            return False
        self.marks.add((engagement_id, period))
        self.tallies[(cell, period)] = self.tallies.get((cell, period), RatingTally()).plus(change)
        return True


def test_the_decisions_read_each_cell_and_period_once_per_record():
    cells = TallyCells()
    cells.tallies[("LDN-0042", DAY)] = tally(*[-0.25] * 18)
    measured = cell_measured(cells, MEASURE)
    assert measured(incident()) and measured(incident(time="2026-11-25T11:00:00Z"))
    assert cells.reads == 1
    assert not measured(incident(time="2026-11-26T00:00:01Z"))  # the next day starts afresh


# --- the dialler ---------------------------------------------------------------------------


def test_the_dialler_drops_an_episode_whose_cell_was_measured_while_it_waited():
    world = World(policy=MEASURE)
    world.cells = TallyCells()
    world.cells.tallies[("LDN-0042", DAY)] = tally(*[-0.25] * 18)
    outcome = world.dial(FIRST + timedelta(minutes=11))
    assert outcome.reason == "cell_measured"
    assert world.lake.steps() == [("suppress", "cell_measured")]
    assert world.calls == []


def test_in_care_mode_the_dialler_calls_a_measured_cells_subscriber():
    world = World(policy=CARE)
    world.cells = TallyCells()
    world.cells.tallies[("LDN-0042", DAY)] = tally(*[-0.25] * 18)
    world.dial(FIRST + timedelta(minutes=11))
    assert len(world.calls) == 1 and world.cells.reads == 0


# --- the feedback stream -------------------------------------------------------------------


def rated_image(
    engagement="eng-1",
    change=-0.25,
    incident_time="2026-11-25T10:15:03Z",
    received_at="2026-11-25T10:31:07Z",
):
    """The NEW image the feedback function's write puts on the table's stream."""
    feedback = Feedback(
        contact_id=f"contact-{engagement}",
        engagement_id=engagement,
        incident_id="incident-1",
        incident_type="CALL_DROP",
        incident_time=incident_time,
        cell="LDN-0042",
        outcome="rated",
        rating=2,
        previous_sentiment=0.0,
        sentiment=change,
        change_sentiment=change,
        received_at=received_at,
    )
    return {"PhoneNumber": PHONE, "LastChange": "feedback", "LastFeedback": feedback.to_item()}


def test_each_rating_is_counted_once_in_its_incidents_period_and_a_replay_adds_nothing():
    # the image is what the lake writer reads too
    assert len(feedback_records(rated_image(), b"key")) == 2
    cells = TallyCells()
    no_rating = rated_image("eng-3")
    unrated = ("rating", "previous_sentiment", "sentiment", "change_sentiment")
    no_rating["LastFeedback"] = {
        key: value
        for key, value in no_rating["LastFeedback"].items()
        if key not in {FEEDBACK_ATTRIBUTES[name] for name in unrated}
    } | {FEEDBACK_ATTRIBUTES["outcome"]: "no_response"}
    batch = [
        ("1", rated_image("eng-1", -0.5)),
        ("2", rated_image("eng-2", 0.25)),
        ("3", no_rating),
        ("4", {"PhoneNumber": PHONE}),  # malformed: the lake writer reports it
        ("5", rated_image("eng-4", -0.25, incident_time="2026-11-24T23:50:00Z")),
    ]
    first = count_ratings(batch, cells, MEASURE)
    replay = count_ratings(batch, cells, MEASURE)

    assert (first.failed, first.counted, replay.counted, replay.replayed) == ([], 3, 0, 3)
    assert cells.tallies[("LDN-0042", DAY)] == tally(-0.5, 0.25)
    assert cells.tallies[("LDN-0042", DAY - timedelta(days=1))] == tally(-0.25)


def test_a_late_ratings_mark_outlives_every_replay_of_it():
    # Given a rating three days after its incident (the episode's first), and one on the day
    cells = TallyCells()
    late = rated_image("eng-late", received_at="2026-11-28T09:00:00Z")
    count_ratings([("1", late), ("2", rated_image("eng-1"))], cells, MEASURE)

    # Then the late rating's mark is kept for more than the stream's 24 hours after it (TTL
    # cannot delete it before a replay, which would count it twice), the on-time one past
    # its period's end; both tallies keep the period's expiry (asserted by TallyCells)
    assert cells.mark_expiry["eng-late"] > datetime(2026, 11, 29, 9, tzinfo=UTC)
    assert cells.mark_expiry["eng-1"] >= DAY + timedelta(days=2)
    replay = count_ratings([("1", late)], cells, MEASURE)
    assert (replay.counted, replay.replayed) == (0, 1)


def test_a_failed_count_retries_that_record_and_every_one_after_it():
    cells = TallyCells()
    cells.fail = True
    outcome = count_ratings(
        [("1", rated_image("eng-1")), ("2", rated_image("eng-2"))], cells, MEASURE
    )
    assert outcome.failed == ["1", "2"]


# --- the offline plan ----------------------------------------------------------------------


def test_the_offline_plan_suppresses_a_measured_cells_later_subscribers_in_measure_mode_only():
    # 30 subscribers of one cell, 20 minutes apart from 08:00, each rating -0.25 when called:
    # called 10 minutes after their incident, answered 15 minutes later
    incidents = [
        dial_incident(phone=f"+4477009{n:05d}", at=DAY + timedelta(hours=8, minutes=20 * n))
        for n in range(30)
    ]

    def rating(_contact):
        return -0.25

    measured = plan_contacts(incidents, MEASURE, rating)
    care = plan_contacts(incidents, CARE, rating)
    off = plan_contacts(incidents, OFF, rating)
    # 18 identical ratings measure the cell: the 19th subscriber, decided before the 18th
    # answer, is dropped by the dialler, the 11 after it at their decision
    assert len(care.contacts) == len(off.contacts) == 30
    assert len(measured.contacts) == 18
    assert measured.dropped["cell_measured"] == 1
    assert measured.not_contacted["cell_measured"] == 12
    assert plan_contacts(incidents, MEASURE).contacts == off.contacts  # no answers, no budget


# --- the tally's transaction ---------------------------------------------------------------


def _cancelled(stub: Stubber, *codes: str) -> None:
    """DynamoDB's answer to a cancelled ``TransactWriteItems``: one reason per action."""
    stub.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        service_message="Transaction cancelled",
        modeled_fields={"CancellationReasons": [{"Code": code} for code in codes]},
    )


@pytest.fixture
def stubbed_state():
    client = boto3.client("dynamodb", region_name="eu-west-2")
    naps: list[float] = []
    state = CellState(client, "Contact_state", sleep=naps.append)
    with Stubber(client) as stub:
        yield state, stub, naps
        stub.assert_no_pending_responses()


def _count(state: CellState) -> bool:
    end = DAY + timedelta(days=1)
    return state.count_rating("LDN-0042", DAY, "eng-1", -0.25, end, end)


def test_a_tally_conflict_with_another_writer_is_tried_again_and_counts_the_rating(stubbed_state):
    state, stub, naps = stubbed_state
    _cancelled(stub, "None", "TransactionConflict")
    _cancelled(stub, "None", "TransactionConflict")
    stub.add_response("transact_write_items", {})
    assert _count(state) is True
    assert len(naps) == 2 and all(0 <= nap <= 0.1 for nap in naps)


def test_a_tally_that_keeps_conflicting_fails_after_a_few_tries(stubbed_state):
    state, stub, naps = stubbed_state
    for _ in range(4):
        _cancelled(stub, "None", "TransactionConflict")
    with pytest.raises(AwsError):
        _count(state)
    assert len(naps) == 3 and sum(naps) <= 0.35


def test_a_rating_already_marked_is_not_tried_again(stubbed_state):
    state, stub, naps = stubbed_state
    _cancelled(stub, "ConditionalCheckFailed", "None")
    assert _count(state) is False
    assert naps == []
