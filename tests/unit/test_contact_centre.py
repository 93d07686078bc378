"""The simulated contact centre runs the real flow file; the default subscriber behaviour model."""

import copy
import json
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.data_classes import ConnectContactFlowEvent

from feedback_loop.contract import EVENT_TYPES
from feedback_loop.ids import engagement_id
from simulator.behaviour import DefaultBehaviour, SimulatedSubscribers
from simulator.contact_centre import (
    ContactCentre,
    FlowError,
    InvalidRequestError,
    UnsupportedActionError,
    load_flow,
)

ROOT = Path(__file__).parents[2]
FLOW = load_flow(ROOT / "connect_flows" / "Subscriber_engagement.json")
EVENT_FIXTURE = ROOT / "tests" / "events" / "connect_contact_flow_event.json"
INSTANCE_ID = "9308c2a1-9bc6-4cea-8290-6c0b4a6d38fa"
INSTANCE_ARN = f"arn:aws:connect:eu-west-2:123456789012:instance/{INSTANCE_ID}"
SOURCE = "+442079460000"
PHONE = "+447700900123"
NOW = "2026-11-25T10:20:00Z"
LOG_FIELDS = {
    "phone_number",
    "time",
    "engagement_id",
    "attributes",
    "outcome",
    "input",
    "prompts",
    "contact_id",
    "lambda_result",
}


def attributes_for(phone: str = PHONE, incident_type: str = "CALL_DROP") -> dict[str, str]:
    incident_time = "2026-11-25T10:15:03Z"
    incident_id = f"incident-of-{phone}-{incident_type}"
    return {
        "engagement_id": engagement_id(phone, incident_type, incident_time, incident_id),
        "incident_type": incident_type,
        "incident_time": incident_time,
        "incident_id": incident_id,
        "cell": "LDN-0042",
    }


def request_for(attributes: dict[str, str], phone: str = PHONE) -> dict:
    return {
        "DestinationPhoneNumber": phone,
        "ContactFlowId": "b1d4e3a2-0000-4000-8000-000000000001",
        "InstanceId": INSTANCE_ID,
        "SourcePhoneNumber": SOURCE,
        "Attributes": attributes,
        "ClientToken": attributes["engagement_id"],
    }


class FeedbackFunction:
    """Stands in for Collect_feedback_from_Connect: answers as the contract says, records events."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> dict:
        self.events.append(event)
        pressed = event["Details"]["Parameters"]["input"]
        result = {"": "no_response", "9": "opted_out"}.get(pressed, "recorded")
        return {"result": result, "sentiment": "0.0", "change_sentiment": "0.0"}


class Subscriber:
    """Answers the prompts from a script and remembers how often it was asked."""

    def __init__(self, answers: Iterable[str]) -> None:
        self._answers = iter(answers)
        self.asked = 0

    def __call__(self, phone: str, attributes: dict[str, str]) -> str:
        self.asked += 1
        return next(self._answers)


def centre(
    answers: Iterable[str],
    invoke: Callable[[dict], dict] | None = None,
    log_path: Path | None = None,
    flow: dict = FLOW,
) -> tuple[ContactCentre, FeedbackFunction, Subscriber]:
    feedback = FeedbackFunction()
    subscriber = Subscriber(answers)
    cc = ContactCentre(flow, invoke or feedback, subscriber, INSTANCE_ARN, SOURCE, log_path)
    return cc, feedback, subscriber


def action_text(predicate: Callable[[dict], bool]) -> str:
    return next(a["Parameters"]["Text"] for a in FLOW["Actions"] if predicate(a))


def compare_target(comparison_value: str, operand: str | None) -> dict:
    """The action the flow's Compare on ``comparison_value`` goes to for ``operand``."""
    compare = next(
        a
        for a in FLOW["Actions"]
        if a["Type"] == "Compare" and a["Parameters"]["ComparisonValue"] == comparison_value
    )
    transitions = compare["Transitions"]
    target = next(
        (
            c["NextAction"]
            for c in transitions["Conditions"]
            if operand in c["Condition"]["Operands"]
        ),
        next(
            e["NextAction"]
            for e in transitions["Errors"]
            if e["ErrorType"] == "NoMatchingCondition"
        ),
    )
    return next(a for a in FLOW["Actions"] if a["Identifier"] == target)


def result_prompt(result: str) -> str:
    return compare_target("$.External.result", result)["Parameters"]["Text"]


RATING_PROMPTS = [
    a["Parameters"]["Text"] for a in FLOW["Actions"] if a["Type"] == "GetParticipantInput"
]


@pytest.mark.parametrize("digit", ["1", "2", "3", "4", "5"])
def test_a_rating_is_sent_once_to_the_feedback_function(digit: str) -> None:
    attributes = attributes_for()
    cc, feedback, _ = centre([digit])

    response = cc.start_outbound_voice_contact(request_for(attributes), NOW)

    assert len(feedback.events) == 1
    event = feedback.events[0]
    assert event["Name"] == "ContactFlowEvent"
    assert event["Details"]["Parameters"] == {**attributes, "input": digit}
    contact = event["Details"]["ContactData"]
    assert contact["ContactId"] == response["ContactId"]
    assert contact["CustomerEndpoint"] == {"Address": PHONE, "Type": "TELEPHONE_NUMBER"}
    assert contact["SystemEndpoint"]["Address"] == SOURCE
    assert contact["InstanceARN"] == INSTANCE_ARN
    assert cc.records[0]["outcome"] == "answered"
    assert cc.records[0]["input"] == digit
    assert cc.records[0]["prompts"][-1] == result_prompt("recorded")


def test_the_lambda_event_parses_as_a_connect_contact_flow_event() -> None:
    cc, feedback, _ = centre(["4"])
    cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)

    event = ConnectContactFlowEvent(feedback.events[0])

    assert event.contact_data.customer_endpoint.address == PHONE
    assert event.contact_data.initiation_method.name == "OUTBOUND"
    assert event.contact_data.channel.name == "VOICE"
    assert event.contact_data.queue is None
    assert event.parameters["input"] == "4"


def test_the_event_fixture_has_the_shape_the_simulator_sends() -> None:
    """Handler tests use the fixture; the twin uses the simulator: they must agree."""
    fixture = json.loads(EVENT_FIXTURE.read_text(encoding="utf-8"))
    cc, feedback, _ = centre(["2"])
    cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)
    simulated = feedback.events[0]

    assert set(fixture) == set(simulated)
    assert set(fixture["Details"]["ContactData"]) == set(simulated["Details"]["ContactData"])
    assert set(fixture["Details"]["Parameters"]) == set(simulated["Details"]["Parameters"])
    parsed = ConnectContactFlowEvent(fixture)
    assert parsed.contact_data.customer_endpoint.address.startswith("+")
    assert parsed.parameters["input"] in {"1", "2", "3", "4", "5", "9", ""}


def test_opt_out_sends_9_and_confirms() -> None:
    cc, feedback, _ = centre(["9"])

    cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)

    assert [e["Details"]["Parameters"]["input"] for e in feedback.events] == ["9"]
    assert cc.records[0]["prompts"][-1] == result_prompt("opted_out")


def test_silence_is_retried_once_then_recorded_as_no_response() -> None:
    cc, feedback, subscriber = centre(["none", "none"])

    cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)

    assert subscriber.asked == 2
    assert [e["Details"]["Parameters"]["input"] for e in feedback.events] == [""]
    record = cc.records[0]
    assert record["input"] == ""
    assert record["inputs"] == ["", ""]
    assert [p for p in record["prompts"] if p in RATING_PROMPTS] == RATING_PROMPTS
    assert record["prompts"][-1] == result_prompt("no_response")


def test_an_invalid_key_then_a_valid_one_records_the_valid_one() -> None:
    cc, feedback, _ = centre(["7", "3"])

    cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)

    assert [e["Details"]["Parameters"]["input"] for e in feedback.events] == ["3"]
    assert cc.records[0]["inputs"] == ["7", "3"]


def test_two_invalid_keys_are_recorded_as_no_response() -> None:
    cc, feedback, _ = centre(["0", "#"])

    cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)

    assert [e["Details"]["Parameters"]["input"] for e in feedback.events] == [""]


def test_no_answer_runs_no_flow_and_is_logged(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    cc, feedback, subscriber = centre(["no_answer"], log_path=log)

    cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)

    assert feedback.events == []
    assert subscriber.asked == 1
    record = json.loads(log.read_text().splitlines()[0])
    assert record["outcome"] == "no_answer"
    assert record["prompts"] == []
    assert record["input"] == ""
    assert record["lambda_result"] is None
    assert cc.counters["no_answer"] == 1 and cc.counters["answered"] == 0


def test_hanging_up_at_the_retry_records_nothing() -> None:
    cc, feedback, _ = centre(["none", "no_answer"])

    cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)

    assert feedback.events == []
    assert cc.records[0]["outcome"] == "hung_up"


def test_the_same_client_token_rings_once(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    cc, feedback, subscriber = centre(["5"], log_path=log)
    request = request_for(attributes_for())

    first = cc.start_outbound_voice_contact(request, NOW)
    second = cc.start_outbound_voice_contact(request, "2026-11-25T10:25:00Z")

    assert first == second
    assert subscriber.asked == 1
    assert len(feedback.events) == 1
    assert len(log.read_text().splitlines()) == 1
    assert cc.counters["contacts"] == 1


def test_contact_ids_are_reproducible_and_distinct_per_engagement() -> None:
    a = attributes_for(incident_type="CALL_DROP")
    b = attributes_for(incident_type="LOW_BITRATE")
    first_run, _, _ = centre(["1", "2"])
    second_run, _, _ = centre(["1", "2"])

    ids_1 = [
        first_run.start_outbound_voice_contact(request_for(x), NOW)["ContactId"] for x in (a, b)
    ]
    ids_2 = [
        second_run.start_outbound_voice_contact(request_for(x), NOW)["ContactId"] for x in (a, b)
    ]

    assert ids_1 == ids_2
    assert ids_1[0] != ids_1[1]


def test_calls_log_has_one_line_per_contact_with_the_fixed_fields(tmp_path: Path) -> None:
    log = tmp_path / "out" / "calls.jsonl"
    cc, _, _ = centre(["4", "no_answer"], log_path=log)
    phones = [PHONE, "+447700900456"]
    for phone in phones:
        cc.start_outbound_voice_contact(request_for(attributes_for(phone), phone), NOW)

    lines = [json.loads(line) for line in log.read_text().splitlines()]

    assert len(lines) == 2
    for line, phone in zip(lines, phones, strict=True):
        assert set(line) >= LOG_FIELDS
        assert line["phone_number"] == phone
        assert line["time"] == NOW
        assert line["engagement_id"] == attributes_for(phone)["engagement_id"]
        assert line["attributes"] == attributes_for(phone)
        assert isinstance(line["input"], str)
    assert [line["outcome"] for line in lines] == ["answered", "no_answer"]
    assert lines == cc.records


@pytest.mark.parametrize("incident_type", EVENT_TYPES)
def test_the_first_prompt_explains_the_incident_type(incident_type: str) -> None:
    cc, _, _ = centre(["3"])

    cc.start_outbound_voice_contact(request_for(attributes_for(incident_type=incident_type)), NOW)

    explanation = compare_target("$.Attributes.incident_type", incident_type)
    assert (
        explanation["Identifier"]
        != compare_target("$.Attributes.incident_type", None)["Identifier"]
    ), "the incident type must have its own sentence, not the generic one"
    assert cc.records[0]["prompts"][0] == explanation["Parameters"]["Text"]
    assert cc.records[0]["prompts"][1] in RATING_PROMPTS


def test_an_unknown_incident_type_gets_the_generic_explanation_and_is_still_asked() -> None:
    cc, feedback, _ = centre(["2"])

    cc.start_outbound_voice_contact(request_for(attributes_for(incident_type="SMS_DELAY")), NOW)

    generic = compare_target("$.Attributes.incident_type", None)["Parameters"]["Text"]
    assert cc.records[0]["prompts"][0] == generic
    assert feedback.events[0]["Details"]["Parameters"]["input"] == "2"


@pytest.mark.parametrize(
    "invoke",
    [
        pytest.param(lambda event: (_ for _ in ()).throw(TimeoutError("8 s")), id="raises"),
        pytest.param(lambda event: {"result": "recorded", "sentiment": 0.5}, id="not-a-string-map"),
        pytest.param(lambda event: {"result": "rejected"}, id="rejected"),
    ],
)
def test_a_failed_or_rejected_recording_ends_with_an_apology(invoke: Callable) -> None:
    cc, _, _ = centre(["4"], invoke=invoke)

    cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)

    record = cc.records[0]
    assert record["outcome"] == "answered"
    assert record["prompts"][-1] == result_prompt("rejected")
    assert record["prompts"][-1] != result_prompt("recorded")


def test_an_action_type_the_simulator_does_not_know_is_an_error() -> None:
    flow = copy.deepcopy(FLOW)
    start = next(a for a in flow["Actions"] if a["Identifier"] == flow["StartAction"])
    start["Type"] = "TransferContactToQueue"
    cc, _, _ = centre(["1"], flow=flow)

    with pytest.raises(UnsupportedActionError, match="TransferContactToQueue"):
        cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)


def test_a_flow_that_loops_forever_is_an_error() -> None:
    flow = copy.deepcopy(FLOW)
    for action in flow["Actions"]:
        if action["Type"] == "GetParticipantInput":
            for branch in action["Transitions"]["Errors"]:
                branch["NextAction"] = flow["StartAction"]
    cc, _, _ = centre(iter(lambda: "none", None), flow=flow)

    with pytest.raises(FlowError, match="loop"):
        cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)


@pytest.mark.parametrize(
    "change",
    [
        {"DestinationPhoneNumber": ""},
        {"InstanceId": "another-instance"},
        {"Attributes": {"engagement_id": 42}},
    ],
)
def test_requests_the_real_api_rejects_are_rejected(change: dict) -> None:
    cc, _, subscriber = centre(["1"])

    with pytest.raises(InvalidRequestError):
        cc.start_outbound_voice_contact({**request_for(attributes_for()), **change}, NOW)
    assert subscriber.asked == 0


# --- default behaviour model -------------------------------------------------------------

PHONES = [f"+4477009{n:05d}" for n in range(4000)]


def test_behaviour_is_deterministic_per_seed() -> None:
    first, second, other = DefaultBehaviour(7), DefaultBehaviour(7), DefaultBehaviour(8)

    run_1 = [first.respond(p, 0.3) for p in PHONES[:300] for _ in range(2)]
    run_2 = [second.respond(p, 0.3) for p in PHONES[:300] for _ in range(2)]
    run_3 = [other.respond(p, 0.3) for p in PHONES[:300] for _ in range(2)]

    assert run_1 == run_2
    assert run_1 != run_3


def test_repeated_calls_to_one_subscriber_are_not_all_the_same() -> None:
    behaviour = DefaultBehaviour(1)

    answers = {behaviour.respond(PHONE, 0.2) for _ in range(50)}

    assert len(answers) > 2


def test_behaviour_mix_matches_the_documented_shares() -> None:
    behaviour = DefaultBehaviour(11)

    counts = Counter(behaviour.respond(p, 0.2) for p in PHONES)

    share = {answer: count / len(PHONES) for answer, count in counts.items()}
    assert share["no_answer"] == pytest.approx(0.15, abs=0.025)
    assert share["9"] == pytest.approx(0.03, abs=0.012)
    assert share["none"] == pytest.approx(0.05, abs=0.015)
    assert set(counts) <= {"1", "2", "3", "4", "5", "9", "none", "no_answer"}


def mean_rating(failure_ratio: float) -> float:
    behaviour = DefaultBehaviour(3)
    answers = [behaviour.respond(p, failure_ratio) for p in PHONES]
    return statistics.mean(int(a) for a in answers if a in {"1", "2", "3", "4", "5"})


def test_subscribers_with_more_failures_rate_lower() -> None:
    content, annoyed, angry = mean_rating(0.0), mean_rating(0.5), mean_rating(1.0)

    assert content > annoyed > angry
    assert content - angry > 1.5
    assert content >= 3.5 and angry <= 2.0


@pytest.mark.parametrize("failure_ratio", [-0.1, 1.5])
def test_failure_ratio_outside_0_1_is_refused(failure_ratio: float) -> None:
    with pytest.raises(ValueError, match="failure_ratio"):
        DefaultBehaviour(1).respond(PHONE, failure_ratio)


def test_scenario_answers_win_and_others_follow_the_model() -> None:
    ratios: list[str] = []

    def failure_ratio(phone: str) -> float:
        ratios.append(phone)
        return 0.5

    subscribers = SimulatedSubscribers({PHONE: "none"}, DefaultBehaviour(5), failure_ratio)
    reference = DefaultBehaviour(5)
    other = "+447700900999"

    assert [subscribers(PHONE, {}) for _ in range(3)] == ["none"] * 3
    assert [subscribers(other, {}) for _ in range(5)] == [
        reference.respond(other, 0.5) for _ in range(5)
    ]
    assert set(ratios) == {other}


def test_a_scripted_silent_subscriber_runs_through_the_real_flow_as_no_response() -> None:
    feedback = FeedbackFunction()
    subscribers = SimulatedSubscribers({PHONE: "none"}, DefaultBehaviour(5), lambda phone: 0.0)
    cc = ContactCentre(FLOW, feedback, subscribers, INSTANCE_ARN, SOURCE)

    cc.start_outbound_voice_contact(request_for(attributes_for()), NOW)

    assert [e["Details"]["Parameters"]["input"] for e in feedback.events] == [""]
    assert cc.records[0]["inputs"] == ["", ""]
