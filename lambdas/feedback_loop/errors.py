"""Exceptions shared by the domain code and the handlers."""

from feedback_loop.contract import Reason


class FeedbackLoopError(Exception):
    """Base class for the errors this package raises on purpose."""


class InvalidRecord(FeedbackLoopError):
    """An input record that can never be processed; it is rejected with ``reason``."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class UnknownSchema(InvalidRecord):
    """A queue message whose schema name or version this code does not understand."""


class ConfigError(FeedbackLoopError):
    """A missing or malformed setting, raised at cold start with the setting's name."""


class AwsError(FeedbackLoopError):
    """An AWS call failed after the SDK's own retries; adapters raise it, use cases catch it.

    ``code`` is the service's error code (``ThrottlingException``, ``AccessDenied``...) or,
    for a failure below the API (timeout, connection), the botocore exception's name.
    """

    def __init__(self, operation: str, code: str, message: str = "") -> None:
        super().__init__(f"{operation} failed: {code}" + (f" ({message})" if message else ""))
        self.operation = operation
        self.code = code
