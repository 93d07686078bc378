"""Simulated Amazon Connect instance for the local twin.

It receives ``StartOutboundVoiceContact`` requests and *executes*
``connect_flows/Subscriber_engagement.json`` action by action, so the twin
tests the flow that is deployed, not a re-implementation of it. Only the action
types the flow uses are interpreted; any other type raises
:class:`UnsupportedActionError`, so the flow cannot grow a block the twin
silently skips.

Calls take time on the simulated clock. A call is a generator that yields the
seconds each step lasts; the twin advances it from deadline to deadline
(:meth:`ContactCentre.pump`), so the feedback function runs at the simulated time
the subscriber reached that block, and a call holds its slot of the instance's
concurrency from start to disconnect. Durations (:class:`CallTiming`): ringing
until the subscriber picks up (``ring_seconds``) or, unanswered, the API's
60-second dialing timeout; every prompt read at ``words_per_minute``; input
blocks wait for a key (``key_seconds`` after the prompt) or their
``InputTimeLimitSeconds``; the Lambda block as long as the function ran.

What Amazon Connect enforces, as documented:

* **Quotas** (:class:`~simulator.scenario.ConnectQuotas`): the StartOutboundVoiceContact
  API's token bucket (``ThrottlingException``) and the instance's concurrent active
  calls (``LimitExceededException``).
* **ClientToken idempotency** (StartOutboundVoiceContact API reference): the same token
  returns the existing contact while it is active; once it has disconnected, the same
  token starts a new contact (the token is valid for 7 days).
* **The Lambda block's retry budget** (admin guide, "Flow block: AWS Lambda function";
  flow language ``InvokeLambdaFunction``): a failed invocation is retried up to three
  times while the block's ``InvocationTimeLimitSeconds`` (at most 8 s, default 3 s)
  lasts, counting the function's own duration; an invocation still running when the
  time limit is reached is not waited for (it goes on running in Lambda); then the
  block's error branch runs.

The simulated subscriber is a callable ``subscriber(phone_number, attributes)``
asked once per input prompt. Its first answer is also taken at ring time:
``"no_answer"`` then means the phone is never picked up (the flow does not
run). Other answers: ``"1"``..``"5"``, ``"9"``, any other single key (an
invalid choice) or ``"none"`` (picks up but presses nothing, so the prompt
times out). ``"no_answer"`` at a later prompt means the subscriber hangs up.

Each contact appends one line to ``calls.jsonl`` when it disconnects:
``phone_number``, ``time`` (when the contact started), ``ended``,
``duration_seconds``, ``channel`` (``voice``), ``engagement_id``, ``attributes``,
``outcome`` (``answered`` | ``no_answer`` | ``hung_up``), ``input`` (all digits pressed
during the call, concatenated; ``""`` when none), ``inputs`` (what happened at each
prompt, in order: the key pressed or ``""`` on timeout), ``prompts`` (texts played),
``contact_id``, ``lambda_result`` (the string map the feedback function returned,
``null`` if it was not invoked or failed), ``lambda_error`` (why the last invocation
failed, else ``null``) and ``lambda_attempts`` (invocations the Lambda blocks made).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedback_loop.timeutil import format_utc
from simulator.runtime import Invocation
from simulator.scenario import ConnectQuotas

NO_ANSWER = "no_answer"
NO_INPUT = "none"
MAX_STEPS = 200
# Connect speaks with Joanna until a Set voice block runs (flow language reference).
DEFAULT_VOICE = "Joanna"
LAMBDA_ATTEMPTS = 4  # the invocation and up to three retries
LAMBDA_TIME_LIMIT_MAX = 8.0
LAMBDA_TIME_LIMIT_DEFAULT = 3.0
_CONTACT_NAMESPACE = uuid.UUID("6f1d3c1e-3b7a-4c55-9d0e-5e1f0c6a2b10")
_KEYS = frozenset("0123456789*#")
_REFERENCE = re.compile(
    r"\$\.(Attributes|External)\.([A-Za-z0-9_\-]+)|\$\.([A-Za-z]+(?:\.[A-Za-z]+)?)"
)

Subscriber = Callable[[str, dict[str, str]], str]
# A flow step: yields the seconds each part lasts, returns the next action (None: the end).
Step = Generator[float, None, "str | None"]
InvokeLambda = Callable[[dict[str, Any], float], Invocation]


class FlowError(RuntimeError):
    """The flow cannot be executed as written (missing target, branch or loop)."""


class UnsupportedActionError(FlowError):
    """The flow uses an action type the simulated contact centre does not implement."""


class InvalidRequestError(ValueError):
    """A StartOutboundVoiceContact request the real API would reject."""


class QuotaExceeded(Exception):
    """Connect refused the call: ``ThrottlingException`` or ``LimitExceededException``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Hangup(Exception):
    """The subscriber hung up mid-flow."""


@dataclass(frozen=True)
class CallTiming:
    """How long the parts of a call take (the twin's choices, docs/TWIN.md)."""

    words_per_minute: float = 150.0  # conversational speaking pace of a text-to-speech voice
    ring_seconds: float = 8.0  # until an answering subscriber picks up
    dial_timeout_seconds: float = 60.0  # StartOutboundVoiceContact's dialing timeout
    key_seconds: float = 3.0  # after a prompt ends, until the subscriber presses a key

    def speaking(self, text: str) -> float:
        """Seconds to read ``text`` aloud."""
        return len(text.split()) * 60.0 / self.words_per_minute


@dataclass
class _Contact:
    contact_id: str
    token: str | None
    phone_number: str
    system_number: str
    attributes: dict[str, str]
    first_answer: str | None
    request: dict[str, Any]
    started: float
    external: dict[str, str] = field(default_factory=dict)
    prompts: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    lambda_result: dict[str, str] | None = None
    lambda_error: str | None = None
    lambda_attempts: int = 0
    voice: str = DEFAULT_VOICE
    flow_logging: bool = False
    outcome: str = "answered"
    wake_at: float = 0.0
    steps: Iterator[float] | None = None


class _TokenBucket:
    """The API's request rate: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at: float | None = None

    def take(self, now: float) -> bool:
        """Spend a token for a request at ``now``. Invocations overlap in simulated time,
        so a request may come "before" the last one: it finds the bucket as that left it."""
        if self.at is None or now > self.at:
            if self.at is not None:
                self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ContactCentre:
    """An Amazon Connect instance with one outbound contact flow and a simulated public."""

    def __init__(
        self,
        flow: dict,
        invoke_lambda: InvokeLambda,
        subscriber: Subscriber,
        instance_arn: str,
        source_number: str,
        log_path: Path | None = None,
        quotas: ConnectQuotas | None = None,
        timing: CallTiming | None = None,
    ) -> None:
        self._actions = {action["Identifier"]: action for action in flow["Actions"]}
        self._start = flow["StartAction"]
        if self._start not in self._actions:
            raise FlowError(f"StartAction {self._start!r} is not an action of the flow")
        self._invoke_lambda = invoke_lambda
        self.subscriber = subscriber
        self.instance_arn = instance_arn
        self.instance_id = instance_arn.rsplit("/", 1)[-1]
        self._region = instance_arn.split(":")[3] if instance_arn.count(":") >= 5 else ""
        self.source_number = source_number
        self.log_path = log_path
        self.quotas = quotas or ConnectQuotas()
        self.timing = timing or CallTiming()
        self._bucket = _TokenBucket(self.quotas.api_rate, self.quotas.api_burst)
        self._active: dict[str, _Contact] = {}  # contact id → call in progress
        self._tokens: dict[str, str] = {}  # client token → its active contact id
        self._token_contacts: dict[str, int] = {}
        self.records: list[dict[str, Any]] = []
        self.contacts = 0
        self.answered = 0
        self.no_answer = 0
        self.hung_up = 0
        self.lambda_errors = 0
        self.throttled = 0
        self.limit_exceeded = 0
        self.peak_concurrent = 0

    @property
    def counters(self) -> dict[str, int]:
        """Contact counts for the twin's summary."""
        return {
            "contacts": self.contacts,
            "answered": self.answered,
            "no_answer": self.no_answer,
            "hung_up": self.hung_up,
            "lambda_errors": self.lambda_errors,
            "throttled": self.throttled,
            "limit_exceeded": self.limit_exceeded,
            "peak_concurrent": self.peak_concurrent,
        }

    @property
    def active_calls(self) -> int:
        """Calls started and not yet disconnected."""
        return len(self._active)

    def start_outbound_voice_contact(self, request: dict, now: float) -> dict:
        """Place a call like ``connect.start_outbound_voice_contact`` at simulated time ``now``.

        Answers the contact id at once, as the API does; the call itself then runs on the
        simulated clock (:meth:`pump`). Raises :class:`QuotaExceeded` beyond the API rate
        or the concurrent-call quota, :class:`InvalidRequestError` for a request the API
        rejects.
        """
        if not self._bucket.take(now):
            self.throttled += 1
            raise QuotaExceeded("ThrottlingException", "Rate exceeded")
        self._validate(request)
        token = request.get("ClientToken")
        if token is not None and token in self._tokens:
            return {"ContactId": self._tokens[token]}
        if len(self._active) >= self.quotas.concurrent_calls:
            self.limit_exceeded += 1
            raise QuotaExceeded(
                "LimitExceededException",
                f"The concurrent active calls per instance quota "
                f"({self.quotas.concurrent_calls}) has been reached.",
            )
        contact = self._ring(request, token, now)
        return {"ContactId": contact.contact_id}

    def _contact_id(self, token: str | None) -> str:
        if token is None:
            seed = f"untokened-{self.contacts}"
        else:
            repeat = self._token_contacts.get(token, 0)
            self._token_contacts[token] = repeat + 1
            seed = token if repeat == 0 else f"{token}|{repeat}"
        return str(uuid.uuid5(_CONTACT_NAMESPACE, f"{self.instance_id}|{seed}"))

    def _validate(self, request: dict) -> None:
        for name in ("DestinationPhoneNumber", "ContactFlowId", "InstanceId"):
            if not request.get(name):
                raise InvalidRequestError(f"StartOutboundVoiceContact needs {name}")
        if request["InstanceId"] not in (self.instance_id, self.instance_arn):
            raise InvalidRequestError(
                f"unknown Connect instance {request['InstanceId']!r} (this is {self.instance_id})"
            )
        attributes = request.get("Attributes", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
            raise InvalidRequestError("contact Attributes must map strings to strings")

    def _ring(self, request: dict, token: str | None, now: float) -> _Contact:
        phone = request["DestinationPhoneNumber"]
        attributes = dict(request.get("Attributes", {}))
        first = self.subscriber(phone, dict(attributes))
        contact = _Contact(
            contact_id=self._contact_id(token),
            token=token,
            phone_number=phone,
            system_number=request.get("SourcePhoneNumber") or self.source_number,
            attributes=attributes,
            first_answer=None if first == NO_ANSWER else first,
            request=dict(request),
            started=now,
            wake_at=now,
        )
        self.contacts += 1
        self._active[contact.contact_id] = contact
        if token is not None:
            self._tokens[token] = contact.contact_id
        self.peak_concurrent = max(self.peak_concurrent, len(self._active))
        contact.steps = self._call(contact, answered=first != NO_ANSWER)
        self._advance(contact)
        return contact

    # --- running calls on the simulated clock --------------------------------------------

    def next_deadline(self) -> float | None:
        """When the next call in progress moves on, if any."""
        return min((c.wake_at for c in self._active.values()), default=None)

    def pump(self, now: float) -> bool:
        """Move every call whose next step is due by ``now``; True when any moved."""
        due = sorted(
            (c for c in self._active.values() if c.wake_at <= now), key=lambda c: c.wake_at
        )
        for contact in due:
            self._advance(contact)
        return bool(due)

    def finish(self) -> None:
        """Run every call in progress to its end (for callers without a clock of their own)."""
        while (deadline := self.next_deadline()) is not None:
            self.pump(deadline)

    def _advance(self, contact: _Contact) -> None:
        assert contact.steps is not None
        try:
            contact.wake_at += next(contact.steps)
        except StopIteration:
            self._disconnect(contact)

    def _disconnect(self, contact: _Contact) -> None:
        del self._active[contact.contact_id]
        if contact.token is not None and self._tokens.get(contact.token) == contact.contact_id:
            del self._tokens[contact.token]
        if contact.outcome == "answered":
            self.answered += 1
        elif contact.outcome == "no_answer":
            self.no_answer += 1
        else:
            self.hung_up += 1
        self._log(contact)

    def _call(self, contact: _Contact, answered: bool) -> Iterator[float]:
        """The call, step by step: each ``yield`` is how long that step lasts."""
        if not answered:
            contact.outcome = "no_answer"
            yield self.timing.dial_timeout_seconds
            return
        yield self.timing.ring_seconds
        try:
            yield from self._run(contact)
        except _Hangup:
            contact.outcome = "hung_up"

    def _log(self, contact: _Contact) -> None:
        original = dict(contact.request.get("Attributes", {}))
        record = {
            "phone_number": contact.phone_number,
            "time": _iso(contact.started),
            "ended": _iso(contact.wake_at),
            "duration_seconds": round(contact.wake_at - contact.started, 3),
            "channel": "voice",
            "engagement_id": original.get("engagement_id", ""),
            "attributes": original,
            "outcome": contact.outcome,
            "input": "".join(contact.inputs),
            "inputs": list(contact.inputs),
            "prompts": list(contact.prompts),
            "contact_id": contact.contact_id,
            "lambda_result": contact.lambda_result,
            "lambda_error": contact.lambda_error,
            "lambda_attempts": contact.lambda_attempts,
            "voice": contact.voice,
            "flow_logging": contact.flow_logging,
        }
        self.log(record)

    def log(self, record: dict[str, Any]) -> None:
        """One line of ``calls.jsonl``: the outside world's log of every contact attempt
        (the text centre writes its texts here too)."""
        self.records.append(record)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(record, sort_keys=True) + "\n")

    # --- the interpreter -------------------------------------------------------------------

    def _run(self, contact: _Contact) -> Iterator[float]:
        steps: dict[str, Callable[[_Contact, dict], Step]] = {
            "MessageParticipant": self._message_participant,
            "GetParticipantInput": self._get_participant_input,
            "Compare": self._compare,
            "UpdateContactAttributes": self._update_contact_attributes,
            "UpdateContactTextToSpeechVoice": self._update_voice,
            "UpdateFlowLoggingBehavior": self._update_flow_logging,
            "InvokeLambdaFunction": self._invoke_lambda_function,
            "DisconnectParticipant": self._disconnect_participant,
        }
        current: str | None = self._start
        for _ in range(MAX_STEPS):
            if current is None:
                return
            action = self._actions.get(current)
            if action is None:
                raise FlowError(f"transition to unknown action {current!r}")
            step = steps.get(action["Type"])
            if step is None:
                raise UnsupportedActionError(
                    f"action {current!r} has type {action['Type']!r}, which the simulated "
                    f"contact centre does not implement"
                )
            current = yield from step(contact, action)
        raise FlowError(f"flow did not end within {MAX_STEPS} actions (a loop?)")

    def _message_participant(self, contact: _Contact, action: dict) -> Step:
        text = self._resolve(contact, action["Parameters"]["Text"])
        contact.prompts.append(text)
        yield self.timing.speaking(text)
        return _next(action)

    def _get_participant_input(self, contact: _Contact, action: dict) -> Step:
        text = self._resolve(contact, action["Parameters"]["Text"])
        contact.prompts.append(text)
        yield self.timing.speaking(text)
        answer = self._next_answer(contact)
        if answer == NO_ANSWER:
            raise _Hangup
        if answer == NO_INPUT:
            contact.inputs.append("")
            yield float(action["Parameters"].get("InputTimeLimitSeconds", 5))
            return _error(action, "InputTimeLimitExceeded")
        if len(answer) != 1 or answer not in _KEYS:
            raise ValueError(
                f"subscriber answer {answer!r} is not a single key, {NO_INPUT!r} or {NO_ANSWER!r}"
            )
        contact.inputs.append(answer)
        yield self.timing.key_seconds
        return _match(action, answer)

    def _next_answer(self, contact: _Contact) -> str:
        if contact.first_answer is not None:
            answer, contact.first_answer = contact.first_answer, None
            return answer
        return self.subscriber(contact.phone_number, dict(contact.attributes))

    def _invoke_lambda_function(self, contact: _Contact, action: dict) -> Step:
        parameters = action["Parameters"]
        event = self._lambda_event(
            contact,
            {
                key: self._resolve(contact, value)
                for key, value in parameters.get("LambdaInvocationAttributes", {}).items()
            },
        )
        limit = min(
            float(parameters.get("InvocationTimeLimitSeconds", LAMBDA_TIME_LIMIT_DEFAULT)),
            LAMBDA_TIME_LIMIT_MAX,
        )
        spent = 0.0
        outcome: Invocation | None = None
        for _ in range(LAMBDA_ATTEMPTS):
            if spent >= limit:
                break
            outcome = self._invoke_lambda(event, contact.wake_at)
            contact.lambda_attempts += 1
            waited = min(outcome.duration, limit - spent)
            spent += waited
            yield waited
            if outcome.duration > waited:
                outcome = Invocation(None, f"no response within {limit:g} s", outcome.duration)
                break
            if not outcome.failed:
                break
        if outcome is None or outcome.failed:
            contact.lambda_error = outcome.error if outcome is not None else "not invoked"
            self.lambda_errors += 1
            return _error(action, "NoMatchingError")
        if not _is_string_map(outcome.result):
            contact.lambda_error = f"response is not a flat string map: {outcome.result!r}"
            self.lambda_errors += 1
            return _error(action, "NoMatchingError")
        contact.external = dict(outcome.result)
        contact.lambda_result = dict(outcome.result)
        return _next(action)

    def _compare(self, contact: _Contact, action: dict) -> Step:
        return _instant(
            _match(action, self._resolve(contact, action["Parameters"]["ComparisonValue"]))
        )

    def _update_voice(self, contact: _Contact, action: dict) -> Step:
        voice = self._resolve(contact, action["Parameters"]["TextToSpeechVoice"])
        if not voice.isalnum():  # a placeholder left unsubstituted, or no voice at all
            return _instant(_error(action, "NoMatchingError"))
        contact.voice = voice
        return _instant(_next(action))

    def _update_flow_logging(self, contact: _Contact, action: dict) -> Step:
        behaviour = action["Parameters"]["FlowLoggingBehavior"]
        if behaviour not in ("Enabled", "Disabled"):
            raise FlowError(f"action {action['Identifier']!r}: FlowLoggingBehavior {behaviour!r}")
        contact.flow_logging = behaviour == "Enabled"
        return _instant(_next(action))

    def _update_contact_attributes(self, contact: _Contact, action: dict) -> Step:
        for key, value in action["Parameters"]["Attributes"].items():
            contact.attributes[key] = self._resolve(contact, value)
        return _instant(_next(action))

    def _disconnect_participant(self, contact: _Contact, action: dict) -> Step:
        return _instant(None)

    def _lambda_event(self, contact: _Contact, parameters: dict[str, str]) -> dict[str, Any]:
        """The event Amazon Connect sends to a Lambda function from a contact flow."""
        return {
            "Details": {
                "ContactData": {
                    "Attributes": dict(contact.attributes),
                    "AwsRegion": self._region,
                    "Channel": "VOICE",
                    "ContactId": contact.contact_id,
                    "CustomerEndpoint": {
                        "Address": contact.phone_number,
                        "Type": "TELEPHONE_NUMBER",
                    },
                    "InitialContactId": contact.contact_id,
                    "InitiationMethod": "OUTBOUND",
                    "InstanceARN": self.instance_arn,
                    "LanguageCode": "en-US",
                    "MediaStreams": {"Customer": {"Audio": None}},
                    "PreviousContactId": contact.contact_id,
                    "Queue": None,
                    "SystemEndpoint": {
                        "Address": contact.system_number,
                        "Type": "TELEPHONE_NUMBER",
                    },
                },
                "Parameters": parameters,
            },
            "Name": "ContactFlowEvent",
        }

    def _resolve(self, contact: _Contact, value: str) -> str:
        """Replace flow-language references (``$.Attributes.x``, ``$.External.x``, ...)."""

        def lookup(match: re.Match[str]) -> str:
            namespace, key, system = match.groups()
            if namespace == "Attributes":
                return contact.attributes.get(key, "")
            if namespace == "External":
                return contact.external.get(key, "")
            if system == "CustomerEndpoint.Address":
                return contact.phone_number
            if system == "ContactId":
                return contact.contact_id
            raise FlowError(f"the simulated contact centre cannot resolve $.{system}")

        return _REFERENCE.sub(lookup, value)


def _instant(target: str | None) -> Step:
    """A step that takes no time and goes to ``target``."""
    return target
    yield  # a generator: ``yield from`` it returns ``target`` at once


def _iso(epoch: float) -> str:
    return format_utc(datetime.fromtimestamp(epoch, UTC))


def _next(action: dict) -> str | None:
    return action.get("Transitions", {}).get("NextAction")


def _error(action: dict, error_type: str) -> str:
    errors = action.get("Transitions", {}).get("Errors", [])
    for wanted in (error_type, "NoMatchingError"):
        for branch in errors:
            if branch["ErrorType"] == wanted:
                return branch["NextAction"]
    raise FlowError(f"action {action['Identifier']!r} has no branch for error {error_type}")


# The flow language's condition operators the twin implements (the flow uses these only).
_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "Equals": lambda value, operand: value == operand,
    "TextContains": lambda value, operand: operand in value,
}


def _match(action: dict, value: str) -> str:
    for branch in action.get("Transitions", {}).get("Conditions", []):
        condition = branch["Condition"]
        test = _OPERATORS.get(condition["Operator"])
        if test is None:
            raise UnsupportedActionError(
                f"action {action['Identifier']!r} uses operator {condition['Operator']!r}"
            )
        if test(value, condition["Operands"][0]):
            return branch["NextAction"]
    return _error(action, "NoMatchingCondition")


def _is_string_map(result: object) -> bool:
    return isinstance(result, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in result.items()
    )


def load_flow(path: Path) -> dict:
    """Read a contact flow file (flow language JSON)."""
    return json.loads(path.read_text(encoding="utf-8"))
