"""Scenario files are validated with messages that name the field; the default day is realistic."""

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from feedback_loop.contract import EVENT_TYPES, is_e164
from feedback_loop.policy import DEFAULT_THRESHOLDS, Policy
from feedback_loop.timeutil import parse_utc
from simulator.behaviour import ANGER_SLOPE, CONTENT_MEAN
from simulator.scenario import (
    FAULT_KEYS,
    Faults,
    ScenarioError,
    default_scenario,
    load_scenario,
    parse_scenario,
)

PROBE_KEYS = ["timestamp", "phone_number", "cell", "event_type", "success", "device", "vendor"]


@pytest.fixture(scope="module")
def day():
    return default_scenario(11)


def _well_formed(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and list(record) == PROBE_KEYS
        and isinstance(record["phone_number"], str)
        and is_e164(record["phone_number"])
        and record["event_type"] in EVENT_TYPES
        and isinstance(record["success"], bool)
        and isinstance(record["cell"], str)
        and bool(record["cell"])
        and isinstance(record["timestamp"], str)
        and bool(re.match(r"^2026-11-25T\d\d:\d\d:\d\dZ$", record["timestamp"]))
    )


def test_default_scenario_is_a_city_day_of_the_documented_size(day) -> None:
    good = [r for r in day.probe_events if _well_formed(r)]

    assert 10_000 <= len(day.probe_events) <= 20_000
    assert 1_500 <= len(day.subscribers) <= 2_500
    assert 150 <= len({r["cell"] for r in good}) <= 250
    assert 8 <= len({r["device"] for r in good}) <= 12
    assert {r["vendor"] for r in good} == {"VendorA", "VendorB", "VendorC"}
    assert 4 <= len(day.degraded_cells) <= 6
    assert [r["timestamp"] for r in good] == sorted(r["timestamp"] for r in good)
    sessions = Counter(r["phone_number"] for r in good)
    assert 5 <= sum(sessions.values()) / len(sessions) <= 10


def test_default_scenario_has_more_traffic_by_day_than_by_night(day) -> None:
    hours = Counter(int(r["timestamp"][11:13]) for r in day.probe_events if _well_formed(r))

    assert sum(hours[h] for h in range(10, 16)) > 4 * sum(hours[h] for h in range(1, 7))


def test_about_half_a_percent_of_records_are_malformed_in_varied_ways(day) -> None:
    bad = [r for r in day.probe_events if not _well_formed(r)]
    kinds = Counter(
        "not an object"
        if not isinstance(r, dict)
        else "missing field"
        if set(PROBE_KEYS) - set(r)
        else "bad phone"
        if not is_e164(r["phone_number"])
        else "unknown event type"
        if r["event_type"] not in EVENT_TYPES
        else "wrong type or value"
        for r in bad
    )

    assert 0.003 <= len(bad) / len(day.probe_events) <= 0.008
    assert len(kinds) == 5, kinds


def test_degraded_cells_fail_far_more_than_healthy_cells(day) -> None:
    sessions: dict[tuple[bool, str], list[bool]] = defaultdict(list)
    degraded_device = set(day.degraded_devices)
    for record in filter(_well_formed, day.probe_events):
        if record["device"] in degraded_device:
            continue
        sessions[(record["cell"] in day.degraded_cells, record["event_type"])].append(
            record["success"]
        )

    for kpi in EVENT_TYPES:
        degraded = sessions[(True, kpi)]
        healthy = sessions[(False, kpi)]
        degraded_rate = degraded.count(False) / len(degraded)
        healthy_rate = healthy.count(False) / len(healthy)
        assert healthy_rate < DEFAULT_THRESHOLDS[kpi] / 4, kpi
        assert degraded_rate > DEFAULT_THRESHOLDS[kpi] * 1.3, kpi


def test_people_living_on_degraded_cells_have_a_bad_day_and_the_others_do_not(day) -> None:
    """The behaviour model rates 3 (no change in sentiment) at this share of failed sessions."""
    indifferent = (CONTENT_MEAN - 3) / ANGER_SLOPE
    home = {s.phone_number: s.cell for s in day.subscribers}
    outcomes: dict[str, list[bool]] = defaultdict(list)
    for record in filter(_well_formed, day.probe_events):
        outcomes[record["phone_number"]].append(record["success"])
    ratio = {phone: ok.count(False) / len(ok) for phone, ok in outcomes.items()}

    degraded = sorted(r for p, r in ratio.items() if home[p] in day.degraded_cells)
    healthy = sorted(r for p, r in ratio.items() if home[p] not in day.degraded_cells)

    assert degraded[len(degraded) // 2] > indifferent
    assert healthy[len(healthy) // 2] < indifferent / 4


def test_degraded_cells_carry_traffic_and_stay_out_of_the_records(day) -> None:
    subscribers = defaultdict(set)
    for record in filter(_well_formed, day.probe_events):
        subscribers[record["cell"]].add(record["phone_number"])

    for cell in day.degraded_cells:
        assert len(subscribers[cell]) >= 5, cell
    assert "degraded" not in json.dumps(day.to_dict()["probe_events"][:1000])


def test_most_subscribers_stay_home_and_some_move(day) -> None:
    home = {s.phone_number: s.cell for s in day.subscribers}
    cells = defaultdict(set)
    for record in filter(_well_formed, day.probe_events):
        cells[record["phone_number"]].add(record["cell"])

    stay_home = sum(1 for phone, seen in cells.items() if seen == {home[phone]})
    assert 0.4 < stay_home / len(cells) < 0.95


def test_default_scenario_is_deterministic_and_seed_dependent() -> None:
    assert default_scenario(3).to_dict() == default_scenario(3).to_dict()
    assert default_scenario(3).probe_events != default_scenario(4).probe_events


def test_default_scenario_round_trips_through_a_file(tmp_path: Path, day) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(day.to_dict()))

    loaded = load_scenario(path)

    assert loaded.probe_events == day.probe_events
    assert loaded.subscribers == day.subscribers
    assert loaded.faults == Faults()


def test_minimal_scenario_needs_only_probe_events_and_keeps_malformed_ones() -> None:
    events = ["garbage", {"phone_number": "nope"}, 42]

    scenario = parse_scenario({"probe_events": events})

    assert scenario.probe_events == events
    assert (scenario.config, scenario.subscribers, scenario.answers) == ({}, [], {})


def test_valid_sections_are_kept() -> None:
    scenario = parse_scenario(
        {
            "config": {"min_sessions": 2, "thresholds": {"CALL_DROP": 0.2}, "alarm_email": None},
            "subscribers": [
                {"phone_number": "+447700900001", "cell": "LDN-0001"},
                {"phone_number": "+15550100001", "cell": "NYC-1", "timezone": "America/New_York"},
            ],
            "probe_events": [],
            "answers": {"+447700900001": "1", "+447700900002": "no_answer"},
            "faults": {
                "s3_error_rate": 0.1,
                "handler_crash_rate": 0,
                "outages": [
                    {
                        "service": "s3",
                        "from": "2026-11-25T10:00:00Z",
                        "until": "2026-11-25T10:05:00Z",
                    }
                ],
            },
            "connect": {"concurrent_calls": 3, "api_rate": 0.5},
        }
    )

    assert scenario.config["min_sessions"] == 2
    assert scenario.subscribers[0].cell == "LDN-0001"
    assert scenario.subscribers[0].device is None
    assert scenario.subscribers[1].timezone == "America/New_York"
    assert scenario.answers["+447700900002"] == "no_answer"
    assert scenario.faults.s3_error_rate == pytest.approx(0.1)
    (outage,) = scenario.faults.outages
    assert (outage.service, outage.end - outage.start) == ("s3", 300)
    assert (scenario.connect.concurrent_calls, scenario.connect.api_rate) == (3, 0.5)
    assert scenario.connect.api_burst == 5  # the documented default stays
    assert set(FAULT_KEYS) == {
        "duplicate_delivery_rate",
        "connect_throttle_rate",
        "s3_error_rate",
        "dynamodb_error_rate",
        "handler_crash_rate",
        "sqs_send_error_rate",
        "sqs_batch_entry_failure_rate",
        "secretsmanager_error_rate",
    }
    assert parse_scenario(scenario.to_dict()) == scenario


def test_connect_quotas_default_to_a_new_instance() -> None:
    quotas = parse_scenario({"probe_events": []}).connect

    assert (quotas.concurrent_calls, quotas.api_rate, quotas.api_burst) == (10, 2.0, 5)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, r"^probe_events: missing$"),
        ({"probe_events": {}}, r"^probe_events: expected a list"),
        ({"probe_events": [], "extra": 1}, r"^scenario: unknown keys \['extra'\]"),
        (
            {"probe_events": [], "answers": {"+447700900123": "x"}},
            r'^answers\["\+447700900123"\]: '
            r'expected "1".."5", "9", "none" or "no_answer", got "x"$',
        ),
        (
            {"probe_events": [], "answers": {"+447700900123": 3}},
            r'answers\["\+447700900123"\].*got 3$',
        ),
        ({"probe_events": [], "answers": {"0770": "1"}}, r'^answers\["0770"\]: key must be'),
        (
            {
                "probe_events": [],
                "subscribers": [
                    {"phone_number": "+447700900001", "cell": "A"},
                    {"phone_number": "+447700900002", "cell": "A"},
                    {"cell": "A"},
                ],
            },
            r"^subscribers\[2\]\.phone_number: missing$",
        ),
        (
            {"probe_events": [], "subscribers": [{"phone_number": "07700", "cell": "A"}]},
            r"^subscribers\[0\]\.phone_number: expected E\.164",
        ),
        (
            {"probe_events": [], "subscribers": [{"phone_number": "+447700900001"}]},
            r"^subscribers\[0\]\.cell: missing$",
        ),
        (
            {"probe_events": [], "subscribers": [{"phone_number": "+447700900001", "cell": 7}]},
            r"^subscribers\[0\]\.cell: expected a non-empty string",
        ),
        ({"probe_events": [], "config": {"min_sessions": 0}}, r"^config\.min_sessions"),
        (
            {"probe_events": [], "config": {"thresholds": {"CALL_DROP": 2}}},
            r"^config\.thresholds\.CALL_DROP",
        ),
        ({"probe_events": [], "config": {"timezone": "Mars/Base"}}, r"^config\.timezone"),
        (
            {"probe_events": [], "config": {"min_sesions": 2}},
            r"^config: unknown keys \['min_sesions'\]",
        ),
        (
            {"probe_events": [], "faults": {"s3_error_rate": 1.5}},
            r"^faults\.s3_error_rate: expected a number",
        ),
        ({"probe_events": [], "faults": {"s3_error_rate": True}}, r"^faults\.s3_error_rate"),
        (
            {"probe_events": [], "faults": {"cosmic_rays": 0.1}},
            r"^faults: unknown keys \['cosmic_rays'\]",
        ),
        (
            {"probe_events": [], "faults": {"outages": [{"service": "s3", "from": "x"}]}},
            r"^faults\.outages\[0\]: expected",
        ),
        (
            {
                "probe_events": [],
                "faults": {"outages": [{"service": "ec2", "from": "x", "until": "y"}]},
            },
            r"^faults\.outages\[0\]\.service: expected one of",
        ),
        (
            {
                "probe_events": [],
                "faults": {
                    "outages": [
                        {"service": "s3", "from": "2026-11-25T10:00:00Z", "until": "2026-11-25"}
                    ]
                },
            },
            r"^faults\.outages\[0\]\.until: expected an ISO time",
        ),
        (
            {
                "probe_events": [],
                "faults": {
                    "outages": [
                        {
                            "service": "s3",
                            "from": "2026-11-25T10:00:00Z",
                            "until": "2026-11-25T09:00:00Z",
                        }
                    ]
                },
            },
            r"^faults\.outages\[0\]: until must be after from$",
        ),
        ({"probe_events": [], "connect": {"calls": 3}}, r"^connect: unknown keys \['calls'\]"),
        (
            {"probe_events": [], "connect": {"concurrent_calls": 2.5}},
            r"^connect\.concurrent_calls: expected a whole number above 0",
        ),
        (
            {"probe_events": [], "connect": {"api_rate": 0}},
            r"^connect\.api_rate: expected a number",
        ),
        (
            {
                "probe_events": [],
                "subscribers": [{"phone_number": "+447700900001", "cell": "A", "timezone": "Mars"}],
            },
            r"^subscribers\[0\]\.timezone: expected an IANA time zone name",
        ),
        (
            {"probe_events": [{"timestamp": "2026-11-25T10:00:00Z", "arrival": "soon"}]},
            r"^probe_events\[0\]\.arrival: expected an ISO time",
        ),
        (
            {
                "probe_events": [
                    {"timestamp": "2026-11-25T10:00:00Z", "arrival": "2026-11-25T10:05:00Z"},
                    {"timestamp": "2026-11-25T10:01:00Z", "arrival": "2026-11-25T10:04:00Z"},
                ]
            },
            r"^probe_events\[1\]\.arrival: .* is before the previous record's arrival",
        ),
    ],
)
def test_invalid_scenarios_are_rejected_naming_the_field(
    tmp_path: Path, document: dict[str, Any], message: str
) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(document))

    with pytest.raises(ScenarioError, match=message) as raised:
        load_scenario(path)
    assert "\n" not in str(raised.value)


def test_file_that_is_not_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "probe_events": [\n    {"a": 1,}\n  ]\n}\n')

    with pytest.raises(ScenarioError, match=r"broken\.json: not valid JSON: .* line 3, column \d+"):
        load_scenario(path)


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.json: cannot read"):
        load_scenario(tmp_path / "nope.json")


def test_degraded_cells_stand_out_under_the_default_engagement_rule(day) -> None:
    """Per cell, count subscribers with a failure whose KPI window is above threshold."""
    policy = Policy()
    history: dict[tuple[str, str], list[tuple[float, bool]]] = defaultdict(list)
    above = defaultdict(set)
    for record in filter(_well_formed, day.probe_events):
        kpi, moment = record["event_type"], parse_utc(record["timestamp"]).timestamp()
        sessions = history[(record["phone_number"], kpi)]
        sessions.append((moment, record["success"]))
        if record["success"]:
            continue
        window = [ok for t, ok in sessions if t > moment - policy.windows_minutes[kpi] * 60]
        rate = window.count(False) / len(window)
        if rate > policy.thresholds[kpi] and len(window) >= policy.min_sessions:
            above[record["cell"]].add(record["phone_number"])

    healthy_worst = max(len(s) for cell, s in above.items() if cell not in day.degraded_cells)
    assert min(len(above[cell]) for cell in day.degraded_cells) > healthy_worst
