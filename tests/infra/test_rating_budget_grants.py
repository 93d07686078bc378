"""The rating budget's grants: only when it is on, and only what it uses."""

from typing import Any

import pytest
from infra_lookup import as_list, function_props, referenced_id, role_statements, table_id

from tests.infra.conftest import Synthesized, _synth

WRITER = "write_feedback_to_S3"
DECIDER = "Read_after_incident"


@pytest.fixture(scope="module")
def measure(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return _synth(tmp_path_factory, {"rating_budget": {"enabled": True}})


@pytest.fixture(scope="module")
def care(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return _synth(tmp_path_factory, {"rating_budget": {"enabled": True, "mode": "care"}})


def contact_state_actions(synthesized: Synthesized, function: str) -> set[str]:
    resources: dict[str, Any] = synthesized.resources
    role = referenced_id(function_props(resources, function)["Role"])
    table = table_id(resources, "Contact_state")
    return {
        action
        for statement in role_statements(resources, role)
        if statement["Effect"] == "Allow"
        and any(
            isinstance(r, dict) and "Fn::GetAtt" in r and referenced_id(r) == table
            for r in as_list(statement["Resource"])
        )
        for action in as_list(statement["Action"])
    }


def test_off_the_writer_has_no_tally_and_the_decision_reads_no_cell(default) -> None:
    env = function_props(default.resources, WRITER)["Environment"]["Variables"]
    assert "CONTACT_STATE_TABLE" not in env
    assert contact_state_actions(default, WRITER) == set()
    assert contact_state_actions(default, DECIDER) == {"dynamodb:UpdateItem"}


def test_in_measure_mode_the_writer_tallies_and_the_decision_reads_the_tally(measure) -> None:
    env = function_props(measure.resources, WRITER)["Environment"]["Variables"]
    assert "CONTACT_STATE_TABLE" in env
    # TransactWriteItems of two Update actions is authorised as dynamodb:UpdateItem
    assert contact_state_actions(measure, WRITER) == {"dynamodb:UpdateItem"}
    assert contact_state_actions(measure, DECIDER) == {"dynamodb:GetItem", "dynamodb:UpdateItem"}


def test_in_care_mode_the_tally_is_kept_but_never_read_to_decide(care) -> None:
    assert contact_state_actions(care, WRITER) == {"dynamodb:UpdateItem"}
    assert contact_state_actions(care, DECIDER) == {"dynamodb:UpdateItem"}
