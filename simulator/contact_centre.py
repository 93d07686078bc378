"""Simulated Amazon Connect instance for the local twin.

It receives ``StartOutboundVoiceContact`` requests and *executes*
``connect_flows/Subscriber_engagement.json`` action by action, so the twin
tests the flow that is deployed, not a re-implementation of it. Only the action
types the flow uses are interpreted; any other type raises
:class:`UnsupportedActionError`, so the flow cannot grow a block the twin
silently skips.

The simulated subscriber is a callable ``subscriber(phone_number, attributes)``
asked once per input prompt. Its first answer is also taken at ring time:
``"no_answer"`` then means the phone is never picked up (the flow does not
run). Other answers: ``"1"``..``"5"``, ``"9"``, any other single key (an
invalid choice) or ``"none"`` (picks up but presses nothing, so the prompt
times out). ``"no_answer"`` at a later prompt means the subscriber hangs up.

Each real contact appends one line to ``calls.jsonl``:
``phone_number``, ``time`` (business time given by the caller), ``engagement_id``,
``attributes``, ``outcome`` (``answered`` | ``no_answer`` | ``hung_up``),
``input`` (all digits pressed during the call, concatenated; ``""`` when none),
``inputs`` (what happened at each prompt, in order: the key pressed or ``""`` on
timeout), ``prompts`` (texts played), ``contact_id``, ``lambda_result`` (the
string map the feedback function returned, ``null`` if it was not invoked or
failed) and ``lambda_error`` (why the invocation failed, else ``null``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NO_ANSWER = "no_answer"
NO_INPUT = "none"
MAX_STEPS = 200
_CONTACT_NAMESPACE = uuid.UUID("6f1d3c1e-3b7a-4c55-9d0e-5e1f0c6a2b10")
_KEYS = frozenset("0123456789*#")
_REFERENCE = re.compile(
    r"\$\.(Attributes|External)\.([A-Za-z0-9_\-]+)|\$\.([A-Za-z]+(?:\.[A-Za-z]+)?)"
)

Subscriber = Callable[[str, dict[str, str]], str]
InvokeLambda = Callable[[dict[str, Any]], dict[str, Any]]


class FlowError(RuntimeError):
    """The flow cannot be executed as written (missing target, branch or loop)."""


class UnsupportedActionError(FlowError):
    """The flow uses an action type the simulated contact centre does not implement."""


class InvalidRequestError(ValueError):
    """A StartOutboundVoiceContact request the real API would reject."""


class _Hangup(Exception):
    """The subscriber hung up mid-flow."""


@dataclass
class _Contact:
    contact_id: str
    phone_number: str
    system_number: str
    attributes: dict[str, str]
    first_answer: str | None
    external: dict[str, str] = field(default_factory=dict)
    prompts: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    lambda_result: dict[str, str] | None = None
    lambda_error: str | None = None


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
    ) -> None:
        self._actions = {action["Identifier"]: action for action in flow["Actions"]}
        self._start = flow["StartAction"]
        if self._start not in self._actions:
            raise FlowError(f"StartAction {self._start!r} is not an action of the flow")
        self._invoke_lambda = invoke_lambda
        self._subscriber = subscriber
        self.instance_arn = instance_arn
        self.instance_id = instance_arn.rsplit("/", 1)[-1]
        self._region = instance_arn.split(":")[3] if instance_arn.count(":") >= 5 else ""
        self.source_number = source_number
        self.log_path = log_path
        self._by_token: dict[str, str] = {}
        self.records: list[dict[str, Any]] = []
        self.contacts = 0
        self.answered = 0
        self.no_answer = 0
        self.hung_up = 0
        self.lambda_errors = 0

    @property
    def counters(self) -> dict[str, int]:
        """Contact counts for the twin's summary."""
        return {
            "contacts": self.contacts,
            "answered": self.answered,
            "no_answer": self.no_answer,
            "hung_up": self.hung_up,
            "lambda_errors": self.lambda_errors,
        }

    def start_outbound_voice_contact(self, request: dict, now: str) -> dict:
        """Place a call like ``connect.start_outbound_voice_contact`` and run the flow to the end.

        ``request`` holds the boto3 parameters; ``now`` is the business time logged
        for the call. A repeated ``ClientToken`` returns the first contact's id and
        does not ring the subscriber again, as the real API's idempotency does.
        """
        self._validate(request)
        token = request.get("ClientToken")
        if token is not None and token in self._by_token:
            return {"ContactId": self._by_token[token]}
        seed = token if token is not None else f"untokened-{self.contacts}"
        contact_id = str(uuid.uuid5(_CONTACT_NAMESPACE, f"{self.instance_id}|{seed}"))
        if token is not None:
            self._by_token[token] = contact_id
        self._ring(request, contact_id, now)
        return {"ContactId": contact_id}

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

    def _ring(self, request: dict, contact_id: str, now: str) -> None:
        phone = request["DestinationPhoneNumber"]
        attributes = dict(request.get("Attributes", {}))
        first = self._subscriber(phone, dict(attributes))
        contact = _Contact(
            contact_id=contact_id,
            phone_number=phone,
            system_number=request.get("SourcePhoneNumber") or self.source_number,
            attributes=attributes,
            first_answer=None if first == NO_ANSWER else first,
        )
        self.contacts += 1
        if first == NO_ANSWER:
            outcome = "no_answer"
            self.no_answer += 1
        else:
            try:
                self._run(contact)
                outcome = "answered"
                self.answered += 1
            except _Hangup:
                outcome = "hung_up"
                self.hung_up += 1
        self._log(contact, request, outcome, now)

    def _log(self, contact: _Contact, request: dict, outcome: str, now: str) -> None:
        original = dict(request.get("Attributes", {}))
        record = {
            "phone_number": contact.phone_number,
            "time": now,
            "engagement_id": original.get("engagement_id", ""),
            "attributes": original,
            "outcome": outcome,
            "input": "".join(contact.inputs),
            "inputs": list(contact.inputs),
            "prompts": list(contact.prompts),
            "contact_id": contact.contact_id,
            "lambda_result": contact.lambda_result,
            "lambda_error": contact.lambda_error,
        }
        self.records.append(record)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(record, sort_keys=True) + "\n")

    # --- the interpreter -------------------------------------------------------------------

    def _run(self, contact: _Contact) -> None:
        handlers: dict[str, Callable[[_Contact, dict], str | None]] = {
            "MessageParticipant": self._message_participant,
            "GetParticipantInput": self._get_participant_input,
            "Compare": self._compare,
            "UpdateContactAttributes": self._update_contact_attributes,
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
            handler = handlers.get(action["Type"])
            if handler is None:
                raise UnsupportedActionError(
                    f"action {current!r} has type {action['Type']!r}, which the simulated "
                    f"contact centre does not implement"
                )
            current = handler(contact, action)
        raise FlowError(f"flow did not end within {MAX_STEPS} actions (a loop?)")

    def _message_participant(self, contact: _Contact, action: dict) -> str | None:
        contact.prompts.append(self._resolve(contact, action["Parameters"]["Text"]))
        return _next(action)

    def _get_participant_input(self, contact: _Contact, action: dict) -> str | None:
        contact.prompts.append(self._resolve(contact, action["Parameters"]["Text"]))
        answer = self._next_answer(contact)
        if answer == NO_ANSWER:
            raise _Hangup
        if answer == NO_INPUT:
            contact.inputs.append("")
            return _error(action, "InputTimeLimitExceeded")
        if len(answer) != 1 or answer not in _KEYS:
            raise ValueError(
                f"subscriber answer {answer!r} is not a single key, {NO_INPUT!r} or {NO_ANSWER!r}"
            )
        contact.inputs.append(answer)
        return _match(action, answer)

    def _next_answer(self, contact: _Contact) -> str:
        if contact.first_answer is not None:
            answer, contact.first_answer = contact.first_answer, None
            return answer
        return self._subscriber(contact.phone_number, dict(contact.attributes))

    def _compare(self, contact: _Contact, action: dict) -> str | None:
        return _match(action, self._resolve(contact, action["Parameters"]["ComparisonValue"]))

    def _update_contact_attributes(self, contact: _Contact, action: dict) -> str | None:
        for key, value in action["Parameters"]["Attributes"].items():
            contact.attributes[key] = self._resolve(contact, value)
        return _next(action)

    def _invoke_lambda_function(self, contact: _Contact, action: dict) -> str | None:
        parameters = action["Parameters"]
        event = self._lambda_event(
            contact,
            {
                key: self._resolve(contact, value)
                for key, value in parameters.get("LambdaInvocationAttributes", {}).items()
            },
        )
        try:
            result = self._invoke_lambda(event)
        except Exception as exc:  # any failure of the function takes the flow's Error branch
            contact.lambda_error = f"{type(exc).__name__}: {exc}"
            self.lambda_errors += 1
            return _error(action, "NoMatchingError")
        if not _is_string_map(result):
            contact.lambda_error = f"response is not a flat string map: {result!r}"
            self.lambda_errors += 1
            return _error(action, "NoMatchingError")
        contact.external = dict(result)
        contact.lambda_result = dict(result)
        return _next(action)

    def _disconnect_participant(self, contact: _Contact, action: dict) -> str | None:
        return None

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


def _next(action: dict) -> str | None:
    return action.get("Transitions", {}).get("NextAction")


def _error(action: dict, error_type: str) -> str:
    errors = action.get("Transitions", {}).get("Errors", [])
    for wanted in (error_type, "NoMatchingError"):
        for branch in errors:
            if branch["ErrorType"] == wanted:
                return branch["NextAction"]
    raise FlowError(f"action {action['Identifier']!r} has no branch for error {error_type}")


def _match(action: dict, value: str) -> str:
    for branch in action.get("Transitions", {}).get("Conditions", []):
        condition = branch["Condition"]
        if condition["Operator"] != "Equals":
            raise UnsupportedActionError(
                f"action {action['Identifier']!r} uses operator {condition['Operator']!r}"
            )
        if value == condition["Operands"][0]:
            return branch["NextAction"]
    return _error(action, "NoMatchingCondition")


def _is_string_map(result: object) -> bool:
    return isinstance(result, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in result.items()
    )


def load_flow(path: Path) -> dict:
    """Read a contact flow file (flow language JSON)."""
    return json.loads(path.read_text(encoding="utf-8"))
