"""Hooks on boto3's default session: count the handlers' AWS calls and intercept Connect.

Handlers create their clients from boto3's default session, so hooks registered on it
see every call they make. The twin's own clients (provisioning, polling) come from a
separate session and are never counted.

The one place outbound calls leave the AWS emulation is here: moto does not implement
``connect:StartOutboundVoiceContact``, so a ``before-call`` handler answers it with the
simulated contact centre's response. botocore's ``BaseClient._make_api_call`` uses the
first non-``None`` ``(http_response, parsed)`` returned by a ``before-call`` handler
instead of sending the request, then raises the modelled ``ClientError`` when the
status is 300 or more, exactly as for a real error response.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

PARAMS_KEY = "twin_api_params"


class ApiError(Exception):
    """Raised by an interception to answer with an AWS error response."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def _response(status: int, parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = status
    return AWSResponse("https://twin.local/", status, {}, None), parsed


def _error_response(error: ApiError) -> tuple[AWSResponse, dict[str, Any]]:
    return _response(error.status, {"Error": {"Code": error.code, "Message": error.message}})


class AwsHooks:
    """Installs the counting and interception hooks on a fresh boto3 default session."""

    def __init__(self, region: str, active: Callable[[], bool]) -> None:
        self.counts: Counter[str] = Counter()
        self._active = active
        self._intercepts: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
        self.fault: Callable[[str], ApiError | None] = lambda operation: None
        boto3.setup_default_session(region_name=region)
        events = boto3.DEFAULT_SESSION.events
        events.register("before-parameter-build", self._capture_params)
        events.register_first("before-call", self._count)
        events.register_last("before-call", self._intercept)

    def intercept(self, operation: str, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Answer ``"service.Operation"`` with ``answer(params)``, which may raise ApiError."""
        self._intercepts[operation] = answer

    @staticmethod
    def _name(model: Any) -> str:
        return f"{model.service_model.service_name}.{model.name}"

    def _capture_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[PARAMS_KEY] = dict(params)

    def _count(self, model: Any, **_: Any) -> None:
        if self._active():
            self.counts[self._name(model)] += 1

    def _intercept(
        self, model: Any, context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        name = self._name(model)
        error = self.fault(name) if self._active() else None
        if error is not None:
            return _error_response(error)
        answer = self._intercepts.get(name)
        if answer is None:
            return None
        try:
            return _response(200, answer(context.get(PARAMS_KEY, {})))
        except ApiError as error:
            return _response(
                error.status, {"Error": {"Code": error.code, "Message": error.message}}
            )

    def summary(self) -> dict[str, int]:
        """``"service.Operation"`` → count, sorted by name."""
        return dict(sorted(self.counts.items()))


def count_calls(client: Any, counts: Counter[str]) -> None:
    """Count every call ``client`` makes in ``counts`` as ``"service.Operation"``."""

    def count(model: Any, **_: Any) -> None:
        counts[AwsHooks._name(model)] += 1

    client.meta.events.register_first("before-call", count)
