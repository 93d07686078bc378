"""AWS errors in domain terms: every adapter call that fails becomes :class:`AwsError`.

Use cases never import botocore; they catch ``AwsError`` and decide from its ``code``
(an adapter handles the errors that are answers, such as a failed condition, itself).
"""

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from feedback_loop.errors import AwsError


def error_code(error: ClientError) -> str:
    """The service's error code of a ``ClientError``."""
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def aws_error(operation: str, error: ClientError | BotoCoreError) -> AwsError:
    """``error`` as the domain's :class:`AwsError`."""
    if isinstance(error, ClientError):
        message = str(error.response.get("Error", {}).get("Message", ""))
        return AwsError(operation, error_code(error), message)
    return AwsError(operation, type(error).__name__, str(error))


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """Run AWS calls, re-raising their failures as :class:`AwsError`."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise aws_error(operation, error) from error
