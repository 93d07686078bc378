"""The scenario's optional ``remediation`` key: fixes an operator records on cells."""

import pytest

from simulator.scenario import ScenarioError, parse_scenario


def test_remediation_events_are_kept_with_their_time_in_utc() -> None:
    scenario = parse_scenario(
        {
            "probe_events": [],
            "remediation": [
                {"cell": "LDN-0042", "fixed_at": "2026-11-26T13:30:00+01:00", "note": "antenna"},
                {"cell": "LDN-0007", "fixed_at": "2026-11-27T08:00:00Z"},
            ],
        }
    )

    assert scenario.remediation == [
        {"cell": "LDN-0042", "fixed_at": "2026-11-26T12:30:00Z", "note": "antenna"},
        {"cell": "LDN-0007", "fixed_at": "2026-11-27T08:00:00Z", "note": ""},
    ]
    assert parse_scenario(scenario.to_dict()).remediation == scenario.remediation


def test_without_the_key_there_are_no_remediation_events() -> None:
    assert parse_scenario({"probe_events": []}).remediation == []


@pytest.mark.parametrize(
    ("remediation", "message"),
    [
        ({"cell": "LDN-1"}, r"remediation: expected a list"),
        (["LDN-1"], r"remediation\[0\]: expected an object"),
        ([{"fixed_at": "2026-11-26T12:00:00Z"}], r"remediation\[0\]\.cell: missing"),
        ([{"cell": "LDN-1", "fixed_at": "yesterday"}], r"remediation\[0\]\.fixed_at: expected"),
        ([{"cell": "LDN-1", "fixed_at": "2026-11-26T12:00:00"}], r"fixed_at: .* with a zone"),
        ([{"cell": "LDN-1", "fixed_at": "2026-11-26T12:00:00Z", "by": "x"}], r"unknown keys"),
        ([{"cell": "LDN-1", "fixed_at": "2026-11-26T12:00:00Z", "note": 3}], r"note: expected"),
    ],
)
def test_bad_remediation_events_are_rejected_naming_the_field(remediation, message) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario({"probe_events": [], "remediation": remediation})
