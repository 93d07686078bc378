"""Amazon Connect: place the outbound call of an engagement."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from feedback_loop.adapters.aws import translated

if TYPE_CHECKING:
    from types_boto3_connect.client import ConnectClient

# One attempt per call, bounded in time: a throttled call is retried by the dialler's
# back-off (it keeps the subscriber's place in the queue), not by the SDK, whose retries,
# times a batch of messages, could outlast the function's timeout. A call whose response
# was lost is taken as made (``calls.may_have_been_placed``): the same ClientToken returns
# the contact only while it is still connected, so a retry could ring the subscriber twice.
CONNECT_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    connect_timeout=3,
    read_timeout=7,
)
CALL_TIME_BUDGET_MS = 12_000
"""Longest one message can take (Connect's timeouts plus the idempotency table's calls)."""


class ConnectCalls:
    """``StartOutboundVoiceContact`` on one client; failures become ``AwsError``."""

    def __init__(self, connect: "ConnectClient") -> None:
        self._connect = connect

    def start(self, request: Mapping[str, Any]) -> str:
        """Place the call ``request`` describes (the API parameters); returns its contact id."""
        with translated("connect.StartOutboundVoiceContact"):
            response = self._connect.start_outbound_voice_contact(**request)
        return response["ContactId"]
