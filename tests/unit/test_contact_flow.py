"""Static checks of the Amazon Connect flow: a broken flow fails only at deploy or on a call."""

import json
from pathlib import Path

import pytest

from feedback_loop.contract import EVENT_TYPES
from feedback_loop.feedback import NO_INPUT

FLOW_PATH = Path(__file__).parents[2] / "connect_flows" / "Subscriber_engagement.json"
ARN_PLACEHOLDER = "__FEEDBACK_FUNCTION_ARN__"
# What Collect_feedback_from_Connect reads from Details.Parameters (docs/ARCHITECTURE.md).
FROM_ATTRIBUTES = {"engagement_id", "incident_type", "incident_time", "incident_id", "cell"}
HANDLER_PARAMETERS = {*FROM_ATTRIBUTES, "input"}
HANDLER_RESULTS = {"recorded", "opted_out", "no_response", "rejected"}
VALID_KEYS = {"1", "2", "3", "4", "5", "9"}
NEEDS_ERROR_BRANCH = {
    "MessageParticipant",
    "GetParticipantInput",
    "UpdateContactAttributes",
    "InvokeLambdaFunction",
}
INPUT_ERRORS = {"InputTimeLimitExceeded", "NoMatchingCondition", "NoMatchingError"}


@pytest.fixture(scope="module")
def flow() -> dict:
    return json.loads(FLOW_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def actions(flow: dict) -> dict[str, dict]:
    return {action["Identifier"]: action for action in flow["Actions"]}


def targets(action: dict) -> list[str]:
    transitions = action.get("Transitions", {})
    found = [transitions["NextAction"]] if "NextAction" in transitions else []
    found += [branch["NextAction"] for branch in transitions.get("Conditions", [])]
    found += [branch["NextAction"] for branch in transitions.get("Errors", [])]
    return found


def of_type(actions: dict[str, dict], action_type: str) -> list[dict]:
    return [action for action in actions.values() if action["Type"] == action_type]


def operands(action: dict) -> set[str]:
    return {
        operand
        for branch in action["Transitions"].get("Conditions", [])
        for operand in branch["Condition"]["Operands"]
    }


def test_is_flow_language_2019_10_30(flow: dict) -> None:
    assert flow["Version"] == "2019-10-30"
    assert isinstance(flow["Metadata"], dict)
    assert flow["Actions"], "the flow has no actions"


def test_identifiers_are_unique(flow: dict) -> None:
    identifiers = [action["Identifier"] for action in flow["Actions"]]
    assert len(identifiers) == len(set(identifiers))


def test_start_and_every_transition_target_exist(flow: dict, actions: dict[str, dict]) -> None:
    assert flow["StartAction"] in actions
    dangling = {
        (identifier, target)
        for identifier, action in actions.items()
        for target in targets(action)
        if target not in actions
    }
    assert not dangling


def test_every_path_from_start_ends_in_a_disconnect(flow: dict, actions: dict[str, dict]) -> None:
    """Depth-first walk: a cycle or an action with nowhere to go would leave a caller hanging."""
    finished: set[str] = set()
    on_path: list[str] = []

    def walk(identifier: str) -> None:
        assert identifier not in on_path, f"cycle: {[*on_path, identifier]}"
        if identifier in finished:
            return
        action = actions[identifier]
        next_actions = targets(action)
        if action["Type"] == "DisconnectParticipant":
            assert not next_actions, f"{identifier} disconnects but still transitions"
        else:
            assert next_actions, f"{identifier} ({action['Type']}) is a dead end"
        on_path.append(identifier)
        for target in next_actions:
            walk(target)
        on_path.pop()
        finished.add(identifier)

    walk(flow["StartAction"])
    assert finished == set(actions), f"unreachable actions: {set(actions) - finished}"


def test_every_error_branch_is_handled(actions: dict[str, dict]) -> None:
    """A block without an Error branch stops the contact flow on a transient failure."""
    for identifier, action in actions.items():
        if action["Type"] in NEEDS_ERROR_BRANCH:
            error_types = {branch["ErrorType"] for branch in action["Transitions"]["Errors"]}
            assert "NoMatchingError" in error_types, identifier
        if action["Type"] == "Compare":
            error_types = {branch["ErrorType"] for branch in action["Transitions"]["Errors"]}
            assert "NoMatchingCondition" in error_types, identifier


def test_feedback_lambda_gets_exactly_the_parameters_the_handler_reads(
    actions: dict[str, dict],
) -> None:
    invocations = of_type(actions, "InvokeLambdaFunction")
    assert invocations
    for action in invocations:
        parameters = action["Parameters"]
        attributes = parameters["LambdaInvocationAttributes"]
        assert parameters["LambdaFunctionARN"] == ARN_PLACEHOLDER
        assert set(attributes) == HANDLER_PARAMETERS
        for name in FROM_ATTRIBUTES:
            assert attributes[name] == f"$.Attributes.{name}"
        assert parameters["ResponseValidation"] == {"ResponseType": "STRING_MAP"}
        assert 1 <= int(parameters["InvocationTimeLimitSeconds"]) <= 8


def test_no_response_is_recorded_with_the_no_input_marker(actions: dict[str, dict]) -> None:
    # A static parameter must not be empty in Connect, so silence is passed as "none".
    inputs = {
        action["Parameters"]["LambdaInvocationAttributes"]["input"]
        for action in of_type(actions, "InvokeLambdaFunction")
    }
    assert inputs == {"$.Attributes.feedback_input", NO_INPUT}


def test_rating_prompts_handle_every_valid_key_and_every_input_error(
    actions: dict[str, dict],
) -> None:
    prompts = of_type(actions, "GetParticipantInput")
    assert len(prompts) == 2, "one rating prompt and exactly one retry"
    for action in prompts:
        assert operands(action) == VALID_KEYS
        error_types = {branch["ErrorType"] for branch in action["Transitions"]["Errors"]}
        assert error_types >= INPUT_ERRORS
        assert 5 <= int(action["Parameters"]["InputTimeLimitSeconds"]) <= 10
        assert "1" in action["Parameters"]["Text"] and "9" in action["Parameters"]["Text"]


def test_every_incident_type_of_the_call_is_explained_in_turn(
    actions: dict[str, dict],
) -> None:
    # One call can be about several KPIs (the episode's incident_types, comma-separated):
    # a chain of TextContains checks, one per KPI, each with its own sentence, then the
    # apology; a call about none of them gets the generic explanation.
    checks = [
        action
        for action in of_type(actions, "Compare")
        if action["Parameters"]["ComparisonValue"] == "$.Attributes.incident_types"
    ]
    assert all(
        branch["Condition"]["Operator"] == "TextContains"
        for action in checks
        for branch in action["Transitions"]["Conditions"]
    )
    sentences = set()
    action = actions["explain-reason"]
    assert operands(action) == set(EVENT_TYPES)
    assert actions[action["Transitions"]["NextAction"]]["Identifier"] == "reason-generic"
    action = actions[action["Transitions"]["Conditions"][0]["NextAction"]]
    for kpi in EVENT_TYPES:
        assert operands(action) == {kpi}
        reason = actions[action["Transitions"]["Conditions"][0]["NextAction"]]
        sentences.add(reason["Parameters"]["Text"])
        following = actions[action["Transitions"]["NextAction"]]
        assert actions[reason["Transitions"]["NextAction"]] is following
        action = following
    assert action["Identifier"] == "apologise"
    assert len(sentences) == len(EVENT_TYPES), "each incident type has its own explanation"


def test_every_handler_result_has_its_own_branch(actions: dict[str, dict]) -> None:
    results = [
        action
        for action in of_type(actions, "Compare")
        if action["Parameters"]["ComparisonValue"] == "$.External.result"
    ]
    assert len(results) == 1
    assert operands(results[0]) == HANDLER_RESULTS
