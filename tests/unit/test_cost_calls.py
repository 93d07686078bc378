"""Call durations from the twin's contact centre, and calls per day under a contact policy."""

from dataclasses import replace
from typing import Any

import pytest

from feedback_loop.contact_policy import CARE, MEASURE, RatingBudget
from feedback_loop.policy import load_policy
from simulator.contact_centre import CallTiming
from simulator.cost.calls import (
    Candidate,
    ContactPolicy,
    call_timing,
    calls_per_day,
    pattern_of,
    rating_changes,
    ratings_needed,
)
from tests.cost_fixtures import tiny_flow

# 150 words a minute, 8 s of ringing, a key 2 s after the prompt ends
TIMING = CallTiming(words_per_minute=150, ring_seconds=8.0, key_seconds=2.0)


def test_a_call_is_connected_for_its_prompts_the_key_and_the_function() -> None:
    # 15 + 10 words at 150 wpm = 10 s, the key 2 s later, one 0.5 s invocation; the 8 s
    # of ringing before pick-up are not connected time
    timing = call_timing(("3",), tiny_flow(), TIMING, lambda_seconds=0.5)
    assert timing.connected_seconds == pytest.approx(10 + 2 + 0.5)
    assert timing.invocations == 1


def test_no_input_waits_the_flows_input_time_limit() -> None:
    timing = call_timing(("none",), tiny_flow(), TIMING, lambda_seconds=0.5)
    assert timing.connected_seconds == pytest.approx(10 + 8 + 0.5)


def test_the_twins_speaking_pace_sets_the_length() -> None:
    slow = CallTiming(words_per_minute=75, ring_seconds=8.0, key_seconds=2.0)
    # the same 25 words take twice as long
    assert call_timing(("3",), tiny_flow(), slow).connected_seconds == pytest.approx(20 + 2)


def test_a_call_nobody_picks_up_is_not_connected_and_invokes_nothing() -> None:
    timing = call_timing(("no_answer",), tiny_flow(), TIMING)
    assert (timing.connected_seconds, timing.invocations, timing.rated) == (0.0, 0, False)


def test_the_deployed_flow_retries_once_then_records_no_response() -> None:
    rated = call_timing(("2",))
    retried = call_timing(("none", "4"))
    silent = call_timing(("none", "none"))
    hung_up = call_timing(("none", "no_answer"))
    assert rated.rated and retried.rated and not silent.rated and not hung_up.rated
    assert rated.connected_seconds < retried.connected_seconds < silent.connected_seconds
    assert hung_up.connected_seconds < silent.connected_seconds
    assert (rated.invocations, retried.invocations, silent.invocations) == (1, 1, 1)
    assert hung_up.invocations == 0


def test_pattern_of_a_call_log_line_reproduces_the_answers() -> None:
    assert pattern_of({"outcome": "no_answer", "inputs": []}) == ("no_answer",)
    assert pattern_of({"outcome": "answered", "inputs": ["", "3"]}) == ("none", "3")
    assert pattern_of({"outcome": "hung_up", "inputs": [""]}) == ("none", "no_answer")


NO_QUIET = ContactPolicy(rules=load_policy({"quiet_hours": None}))


def _at(subscriber: int, minute: int, kpi: str = "CALL_DROP", cell: str = "C1") -> Candidate:
    return Candidate(subscriber, cell, kpi, minute)


def test_one_call_per_episode_across_kpis_and_the_gap_defers_the_next() -> None:
    day = [_at(0, 600), _at(0, 605, "LOW_BITRATE"), _at(0, 700), _at(0, 600 + 1440)]
    result = calls_per_day(day, subscribers=1, days=2, policy=NO_QUIET)
    # 605 joins the episode of 600 (one call at 610); 700 opens the next episode, which
    # waits out the 24 h gap (a call at 2050), and 2040 joins it
    assert result.calls == 2
    assert result.suppressed == {"same_episode": 2}
    assert result.per_subscriber_day == 1.0


def test_the_cap_over_days_suppresses_what_it_would_push_past_the_incident_age() -> None:
    kpis = ("CALL_DROP", "CALL_QUALITY", "LOW_BITRATE", "VIDEO_STALLING")
    day = [_at(0, 600 + 100 * i, kpi) for i, kpi in enumerate(kpis)]
    rules = load_policy({"quiet_hours": None, "cooldown_minutes": 60, "max_contacts": 2})
    result = calls_per_day(day, 1, 1, ContactPolicy(rules=rules))
    assert (result.calls, result.suppressed) == (2, {"contact_cap": 2})


def test_quiet_hours_defer_a_call_and_drop_it_only_when_it_would_be_stale() -> None:
    day = [_at(0, 22 * 60), _at(1, 7 * 60 + 59), _at(2, 8 * 60)]
    deferred = calls_per_day(day, 3, 1, ContactPolicy())  # 21:00-08:00 UTC, 24 h
    assert (deferred.calls, deferred.suppressed) == (3, {})
    strict = ContactPolicy(rules=load_policy({"max_incident_age_hours": 6}))
    result = calls_per_day(day, 3, 1, strict)  # 22:00 would wait 10 h
    assert (result.calls, result.suppressed) == (2, {"quiet_hours": 1})


def test_outage_sample_calls_a_share_of_an_outage_cells_subscribers() -> None:
    # 4 of the 10 subscribers of cell C1 are eligible the same day: an outage (>= 20%)
    day = [_at(s, 600 + s) for s in range(4)] + [_at(9, 600, cell="C2")]
    population = {"C1": 10, "C2": 10}
    sampled = replace(NO_QUIET, outage_sample=0.5)
    result = calls_per_day(day, 20, 1, sampled, cell_population=population)
    assert result.calls == 2 + 1  # half of C1, and C2 (1 in 10 is no outage)
    assert result.suppressed == {"outage_sample": 2}


def _budget(mode: str, **settings: Any) -> ContactPolicy:
    budget = RatingBudget(enabled=True, mode=mode, **settings)
    return replace(NO_QUIET, rules=replace(NO_QUIET.rules, rating_budget=budget))


def test_ratings_needed_is_the_deployed_rule_on_the_expected_tally() -> None:
    # Every rating changes sentiment by exactly 0.25: no spread of its own, so only the
    # prior term is left: 1.645 * sqrt(2 * 1 / (n + 1) / (n + 2)) <= 0.125 first at n = 18.
    budget = RatingBudget(enabled=True, half_width=0.125, min_ratings=10)
    assert ratings_needed(budget, 0.5, {0.25: 1.0}) == 18
    # ... and never before min_ratings, however tight
    assert ratings_needed(replace(budget, min_ratings=20), 0.5, {0.25: 1.0}) == 20
    # a wider spread needs more ratings
    assert ratings_needed(budget, 0.5, {-0.5: 0.5, 0.5: 0.5}) > 18
    assert ratings_needed(budget, 0.5, {}) is None


def test_rating_changes_take_each_patterns_first_rating_from_neutral() -> None:
    patterns = {"1": 1, "none,5": 1, "9": 5, "no_answer": 3}
    assert rating_changes(patterns, 0.5) == {-0.5: 0.5, 0.5: 0.5}


def test_the_rating_budget_in_measure_mode_and_care_mode() -> None:
    # 6 eligible subscribers on a measured cell of 10; a production cell has 100 subscribers.
    # At 0.25 a rating the rule needs 18 ratings there: 1.8 here, 3.6 calls at 0.5 per call.
    day = [_at(s, 600 + s) for s in range(6)]
    kwargs: dict[str, Any] = {
        "cell_population": {"C1": 10},
        "subscribers_per_cell": 100,
        "ratings_per_call": 0.5,
        "changes": {0.25: 1.0},
    }
    measured = calls_per_day(day, 10, 1, _budget(MEASURE, half_width=0.125), **kwargs)
    assert measured.calls == pytest.approx(3.6)
    assert measured.suppressed == {"cell_measured": pytest.approx(2.4)}
    assert calls_per_day(day, 10, 1, _budget(CARE, half_width=0.125), **kwargs).calls == 6
    assert calls_per_day(day, 10, 1, NO_QUIET, **kwargs).calls == 6
