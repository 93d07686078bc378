"""Amazon Connect: place the outbound call of an engagement."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from feedback_loop.adapters.aws import translated

if TYPE_CHECKING:
    from types_boto3_connect.client import ConnectClient


class ConnectCalls:
    """``StartOutboundVoiceContact`` on one client; failures become ``AwsError``."""

    def __init__(self, connect: "ConnectClient") -> None:
        self._connect = connect

    def start(self, request: Mapping[str, Any]) -> str:
        """Place the call ``request`` describes (the API parameters); returns its contact id."""
        with translated("connect.StartOutboundVoiceContact"):
            response = self._connect.start_outbound_voice_contact(**request)
        return response["ContactId"]
