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
from feedback_loop.feedback import NO_INPUT
from feedback_loop.ids import engagement_id
from simulator.behaviour import DefaultBehaviour, SimulatedSubscribers
from simulator.contact_centre import (
    CallTiming,
    ContactCentre,
    FlowError,
    InvalidRequestError,
    QuotaExceeded,
    UnsupportedActionError,
    load_flow,
)
from simulator.runtime import Invocation
from simulator.scenario import ConnectQuotas

ROOT = Path(__file__).parents[2]
FLOW = load_flow(ROOT / "connect_flows" / "Subscriber_engagement.json")
EVENT_FIXTURE = ROOT / "tests" / "events" / "connect_contact_flow_event.json"
INSTANCE_ID = "9308c2a1-9bc6-4cea-8290-6c0b4a6d38fa"
INSTANCE_ARN = f"arn:aws:connect:eu-west-2:123456789012:instance/{INSTANCE_ID}"
SOURCE = "+442079460000"
PHONE = "+447700900123"
NOW_ISO = "2026-11-25T10:20:00Z"
NOW = 1795602000.0  # 2026-11-25T10:20:00Z
LOG_FIELDS = {
    "channel",
    "ended",
    "duration_seconds",
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


def attributes_for(
    phone: str = PHONE, incident_type: str = "CALL_DROP", incident_types: str | None = None
) -> dict[str, str]:
    incident_time = "2026-11-25T10:15:03Z"
    incident_id = f"incident-of-{phone}-{incident_type}"
    return {
        "engagement_id": engagement_id(phone, incident_type, incident_time, incident_id),
        "incident_type": incident_type,
        "incident_types": incident_types or incident_type,
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
    """Stands in for Collect_feedback_from_Connect: answers as the contract says, records
    events and the simulated time of each invocation; each run takes ``duration`` s."""

    def __init__(self, duration: float = 0.2) -> None:
        self.events: list[dict] = []
        self.times: list[float] = []
        self.duration = duration

    def __call__(self, event: dict, at: float) -> Invocation:
        self.events.append(event)
        self.times.append(at)
        pressed = event["Details"]["Parameters"]["input"]
        result = {NO_INPUT: "no_response", "9": "opted_out"}.get(pressed, "recorded")
        return Invocation(
            {"result": result, "sentiment": "0.0", "change_sentiment": "0.0"}, None, self.duration
        )


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
    invoke: Callable[[dict, float], Invocation] | None = None,
    log_path: Path | None = None,
    flow: dict = FLOW,
    quotas: ConnectQuotas | None = None,
) -> tuple[ContactCentre, FeedbackFunction, Subscriber]:
    feedback = FeedbackFunction()
    subscriber = Subscriber(answers)
    cc = ContactCentre(
        flow, invoke or feedback, subscriber, INSTANCE_ARN, SOURCE, log_path, quotas=quotas
    )
    return cc, feedback, subscriber


def call(cc: ContactCentre, request: dict, now: float = NOW) -> dict:
    """Place a call and let it run to its end."""
    response = cc.start_outbound_voice_contact(request, now)
    cc.finish()
    return response


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

    response = call(cc, request_for(attributes))

    assert len(feedback.events) == 1
    event = feedback.events[0]
    assert event["Name"] == "ContactFlowEvent"
    # every attribute but the list of KPIs, which only the flow's explanation reads
    passed = {k: v for k, v in attributes.items() if k != "incident_types"}
    assert event["Details"]["Parameters"] == {**passed, "input": digit}
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
    call(cc, request_for(attributes_for()))

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
    call(cc, request_for(attributes_for()))
    simulated = feedback.events[0]

    assert set(fixture) == set(simulated)
    assert set(fixture["Details"]["ContactData"]) == set(simulated["Details"]["ContactData"])
    assert set(fixture["Details"]["Parameters"]) == set(simulated["Details"]["Parameters"])
    parsed = ConnectContactFlowEvent(fixture)
    assert parsed.contact_data.customer_endpoint.address.startswith("+")
    assert parsed.parameters["input"] in {"1", "2", "3", "4", "5", "9", NO_INPUT}


def test_opt_out_sends_9_and_confirms() -> None:
    cc, feedback, _ = centre(["9"])

    call(cc, request_for(attributes_for()))

    assert [e["Details"]["Parameters"]["input"] for e in feedback.events] == ["9"]
    assert cc.records[0]["prompts"][-1] == result_prompt("opted_out")


def test_silence_is_retried_once_then_recorded_as_no_response() -> None:
    cc, feedback, subscriber = centre(["none", "none"])

    call(cc, request_for(attributes_for()))

    assert subscriber.asked == 2
    assert [e["Details"]["Parameters"]["input"] for e in feedback.events] == [NO_INPUT]
    record = cc.records[0]
    assert record["input"] == ""
    assert record["inputs"] == ["", ""]
    assert [p for p in record["prompts"] if p in RATING_PROMPTS] == RATING_PROMPTS
    assert record["prompts"][-1] == result_prompt("no_response")


def test_an_invalid_key_then_a_valid_one_records_the_valid_one() -> None:
    cc, feedback, _ = centre(["7", "3"])

    call(cc, request_for(attributes_for()))

    assert [e["Details"]["Parameters"]["input"] for e in feedback.events] == ["3"]
    assert cc.records[0]["inputs"] == ["7", "3"]


def test_two_invalid_keys_are_recorded_as_no_response() -> None:
    cc, feedback, _ = centre(["0", "#"])

    call(cc, request_for(attributes_for()))

    assert [e["Details"]["Parameters"]["input"] for e in feedback.events] == [NO_INPUT]


def test_no_answer_runs_no_flow_and_is_logged(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    cc, feedback, subscriber = centre(["no_answer"], log_path=log)

    call(cc, request_for(attributes_for()))

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

    call(cc, request_for(attributes_for()))

    assert feedback.events == []
    assert cc.records[0]["outcome"] == "hung_up"


def test_the_same_client_token_returns_the_active_contact_without_ringing_again(
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls.jsonl"
    cc, feedback, subscriber = centre(["5"], log_path=log)
    request = request_for(attributes_for())

    first = cc.start_outbound_voice_contact(request, NOW)
    second = cc.start_outbound_voice_contact(request, NOW + 5)
    cc.finish()

    assert first == second
    assert subscriber.asked == 1
    assert len(feedback.events) == 1
    assert len(log.read_text().splitlines()) == 1
    assert cc.counters["contacts"] == 1


def test_the_same_client_token_after_the_call_ended_starts_a_new_call(tmp_path: Path) -> None:
    """StartOutboundVoiceContact API: "If the contact is disconnected, a new contact is
    started." Connect's token is no guard against a retry after the call: the caller's
    own idempotency record is."""
    log = tmp_path / "calls.jsonl"
    cc, feedback, subscriber = centre(["5", "4"], log_path=log)
    request = request_for(attributes_for())

    first = call(cc, request)
    second = call(cc, request, NOW + 600)

    assert first != second
    assert subscriber.asked == 2
    assert [e["Details"]["Parameters"]["input"] for e in feedback.events] == ["5", "4"]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["engagement_id"] for line in lines] == [request["ClientToken"]] * 2


def test_contact_ids_are_reproducible_and_distinct_per_engagement() -> None:
    a = attributes_for(incident_type="CALL_DROP")
    b = attributes_for(incident_type="LOW_BITRATE")
    first_run, _, _ = centre(["1", "2"])
    second_run, _, _ = centre(["1", "2"])

    ids_1 = [call(first_run, request_for(x))["ContactId"] for x in (a, b)]
    ids_2 = [call(second_run, request_for(x))["ContactId"] for x in (a, b)]

    assert ids_1 == ids_2
    assert ids_1[0] != ids_1[1]


def test_calls_log_has_one_line_per_contact_with_the_fixed_fields(tmp_path: Path) -> None:
    log = tmp_path / "out" / "calls.jsonl"
    cc, _, _ = centre(["4", "no_answer"], log_path=log)
    phones = [PHONE, "+447700900456"]
    for phone in phones:
        call(cc, request_for(attributes_for(phone), phone))

    lines = [json.loads(line) for line in log.read_text().splitlines()]

    assert len(lines) == 2
    for line, phone in zip(lines, phones, strict=True):
        assert set(line) >= LOG_FIELDS
        assert line["phone_number"] == phone
        assert line["time"] == NOW_ISO
        assert line["channel"] == "voice"
        assert line["engagement_id"] == attributes_for(phone)["engagement_id"]
        assert line["attributes"] == attributes_for(phone)
        assert isinstance(line["input"], str)
    assert [line["outcome"] for line in lines] == ["answered", "no_answer"]
    assert lines == cc.records


def reason_text(incident_type: str | None) -> str:
    """The flow's sentence for one KPI (``None``: the generic one)."""
    slug = "generic" if incident_type is None else incident_type.lower().replace("_", "-")
    return action_text(lambda a: a["Identifier"] == f"reason-{slug}")


@pytest.mark.parametrize("incident_type", EVENT_TYPES)
def test_the_call_explains_the_incident_type_then_asks(incident_type: str) -> None:
    cc, _, _ = centre(["3"])

    call(cc, request_for(attributes_for(incident_type=incident_type)))

    prompts = cc.records[0]["prompts"]
    assert prompts[1] == reason_text(incident_type)
    assert prompts[1] != reason_text(None), "each incident type has its own sentence"
    assert prompts[2] == action_text(lambda a: a["Identifier"] == "apologise")
    assert prompts[3] in RATING_PROMPTS


def test_one_call_about_several_incident_types_explains_each_once() -> None:
    cc, _, _ = centre(["2"])
    kpis = "VIDEO_STALLING,CALL_DROP"

    call(cc, request_for(attributes_for(incident_type="VIDEO_STALLING", incident_types=kpis)))

    prompts = cc.records[0]["prompts"]
    assert prompts[1:3] == [reason_text("CALL_DROP"), reason_text("VIDEO_STALLING")]
    assert prompts.count(reason_text("CALL_DROP")) == 1


def test_an_unknown_incident_type_gets_the_generic_explanation_and_is_still_asked() -> None:
    cc, feedback, _ = centre(["2"])

    call(cc, request_for(attributes_for(incident_type="SMS_DELAY")))

    assert cc.records[0]["prompts"][1] == reason_text(None)
    assert feedback.events[0]["Details"]["Parameters"]["input"] == "2"


@pytest.mark.parametrize(
    "invoke",
    [
        pytest.param(lambda event, at: Invocation(None, "TimeoutError: 8 s", 0.5), id="fails"),
        pytest.param(
            lambda event, at: Invocation({"result": "recorded", "sentiment": 0.5}, None, 0.1),
            id="not-a-string-map",
        ),
        pytest.param(
            lambda event, at: Invocation({"result": "rejected"}, None, 0.1), id="rejected"
        ),
    ],
)
def test_a_failed_or_rejected_recording_ends_with_an_apology(invoke: Callable) -> None:
    cc, _, _ = centre(["4"], invoke=invoke)

    call(cc, request_for(attributes_for()))

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
        call(cc, request_for(attributes_for()))


def test_a_flow_that_loops_forever_is_an_error() -> None:
    flow = copy.deepcopy(FLOW)
    for action in flow["Actions"]:
        if action["Type"] == "GetParticipantInput":
            for branch in action["Transitions"]["Errors"]:
                branch["NextAction"] = flow["StartAction"]
    cc, _, _ = centre(iter(lambda: "none", None), flow=flow)

    with pytest.raises(FlowError, match="loop"):
        call(cc, request_for(attributes_for()))


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
        call(cc, {**request_for(attributes_for()), **change})
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

    call(cc, request_for(attributes_for()))

    assert [e["Details"]["Parameters"]["input"] for e in feedback.events] == [NO_INPUT]
    assert cc.records[0]["inputs"] == ["", ""]


# --- Connect's limits, call durations and the Lambda block's retry budget ------------------


def phones(n: int) -> list[str]:
    return [f"+4477009{i:05d}" for i in range(n)]


def test_calls_beyond_the_concurrent_call_quota_are_refused_until_a_slot_frees() -> None:
    cc, _, _ = centre(iter(lambda: "5", None), quotas=ConnectQuotas(concurrent_calls=3))
    for i, phone in enumerate(phones(3)):
        cc.start_outbound_voice_contact(request_for(attributes_for(phone), phone), NOW + i)

    with pytest.raises(QuotaExceeded) as refused:
        fourth = phones(4)[3]
        cc.start_outbound_voice_contact(request_for(attributes_for(fourth), fourth), NOW + 3)

    assert refused.value.code == "LimitExceededException"
    assert cc.active_calls == 3
    cc.finish()  # the three calls end
    cc.start_outbound_voice_contact(request_for(attributes_for(fourth), fourth), NOW + 600)
    assert cc.counters["limit_exceeded"] == 1
    assert cc.counters["peak_concurrent"] == 3


def test_the_api_rate_is_a_token_bucket_of_rate_and_burst() -> None:
    cc, _, _ = centre(
        iter(lambda: "no_answer", None),
        quotas=ConnectQuotas(concurrent_calls=100, api_rate=2, api_burst=5),
    )
    numbers = phones(8)

    def start(phone: str, at: float) -> None:
        cc.start_outbound_voice_contact(request_for(attributes_for(phone), phone), at)

    for phone in numbers[:5]:
        start(phone, NOW)  # the burst
    with pytest.raises(QuotaExceeded) as throttled:
        start(numbers[5], NOW)
    start(numbers[5], NOW + 0.5)  # one token back after half a second at 2/s

    assert throttled.value.code == "ThrottlingException"
    assert cc.counters["throttled"] == 1
    assert cc.counters["contacts"] == 6


def test_a_call_lasts_as_long_as_its_flow_read_at_speaking_pace() -> None:
    timing = CallTiming()
    cc, feedback, _ = centre(["4"])
    call(cc, request_for(attributes_for()))

    record = cc.records[0]
    spoken = sum(timing.speaking(p) for p in record["prompts"])
    expected = timing.ring_seconds + spoken + timing.key_seconds + feedback.duration
    assert record["duration_seconds"] == pytest.approx(expected, abs=0.01)
    assert 30 < record["duration_seconds"] < 120, "a short survey call takes about a minute"
    # the feedback function runs when the subscriber has pressed the key, not at dialing
    first_prompts = sum(timing.speaking(p) for p in record["prompts"][:2])
    assert feedback.times == [
        pytest.approx(NOW + timing.ring_seconds + first_prompts + timing.key_seconds)
    ]


def test_silence_waits_for_each_input_block_time_limit_and_no_answer_for_the_dial_timeout() -> None:
    silent, _, _ = centre(["none", "none"])
    unanswered, _, _ = centre(["no_answer"])
    call(silent, request_for(attributes_for()))
    call(unanswered, request_for(attributes_for()))

    timing = CallTiming()
    waits = [
        float(a["Parameters"]["InputTimeLimitSeconds"])
        for a in FLOW["Actions"]
        if a["Type"] == "GetParticipantInput"
    ]
    spoken = sum(timing.speaking(p) for p in silent.records[0]["prompts"])
    assert silent.records[0]["duration_seconds"] == pytest.approx(
        timing.ring_seconds + spoken + sum(waits) + 0.2, abs=0.01
    )
    assert unanswered.records[0]["duration_seconds"] == timing.dial_timeout_seconds


class FlakyFunction(FeedbackFunction):
    """Fails its first ``failures`` invocations, each after ``duration`` seconds."""

    def __init__(self, failures: int, duration: float) -> None:
        super().__init__(duration)
        self.failures = failures

    def __call__(self, event: dict, at: float) -> Invocation:
        answer = super().__call__(event, at)
        if len(self.events) <= self.failures:
            return Invocation(None, "ClientError: S3 is down", self.duration)
        return answer


@pytest.mark.parametrize(
    ("failures", "duration", "attempts", "recorded"),
    [
        pytest.param(1, 0.5, 2, True, id="one-quick-failure-is-retried"),
        pytest.param(3, 0.5, 4, True, id="three-retries-then-success"),
        pytest.param(4, 0.5, 4, False, id="no-fourth-retry"),
        pytest.param(1, 5.0, 2, False, id="the-retry-is-cut-at-the-8-s-limit"),
        pytest.param(0, 9.0, 1, False, id="a-slow-success-is-not-waited-for"),
    ],
)
def test_the_lambda_block_retries_three_times_within_its_time_limit(
    failures: int, duration: float, attempts: int, recorded: bool
) -> None:
    function = FlakyFunction(failures, duration)
    cc, _, _ = centre(["4"], invoke=function)

    call(cc, request_for(attributes_for()))

    record = cc.records[0]
    assert record["lambda_attempts"] == attempts == len(function.events)
    gaps = [b - a for a, b in zip(function.times, function.times[1:], strict=False)]
    assert gaps == [pytest.approx(duration)] * (attempts - 1), "each retry waits for the last"
    assert (record["prompts"][-1] == result_prompt("recorded")) is recorded
    assert (record["prompts"][-1] == result_prompt("rejected")) is not recorded


def test_a_request_from_an_invocation_behind_in_time_does_not_drain_the_bucket() -> None:
    """Invocations overlap in simulated time: one may ask at an earlier moment than the
    last request; that must not take tokens away for the future."""
    cc, _, _ = centre(
        iter(lambda: "no_answer", None),
        quotas=ConnectQuotas(concurrent_calls=100, api_rate=2, api_burst=5),
    )
    numbers = iter(phones(40))

    def start(at: float) -> None:
        phone = next(numbers)
        cc.start_outbound_voice_contact(request_for(attributes_for(phone), phone), at)

    for _ in range(5):
        start(NOW + 30)
    for _ in range(20):
        with pytest.raises(QuotaExceeded):
            start(NOW)
    for _ in range(5):
        start(NOW + 60)  # a full burst again once the clock has moved on

    assert cc.counters["contacts"] == 10
