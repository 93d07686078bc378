"""AWS End User Messaging SMS (``pinpoint-sms-voice-v2``): send the rating request as a text."""

from typing import TYPE_CHECKING

from botocore.config import Config

from feedback_loop.adapters.aws import translated

if TYPE_CHECKING:
    from types_boto3_pinpoint_sms_voice_v2.client import PinpointSMSVoiceV2Client


# One attempt per text, with Connect's time bounds: SendTextMessage has no idempotency
# token, so an SDK retry after a lost answer could text the subscriber twice; the dialler
# takes a lost answer as sent (``calls.may_have_been_placed``) and retries a refusal itself.
SMS_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    connect_timeout=3,
    read_timeout=7,
)


class TextSender:
    """``SendTextMessage`` from one origination identity (a phone number or a pool)."""

    def __init__(self, client: "PinpointSMSVoiceV2Client", origination_identity: str) -> None:
        self._client = client
        self._origination = origination_identity

    def send(self, phone_number: str, text: str) -> str:
        """Send ``text`` to ``phone_number`` as a transactional message; returns its id."""
        with translated("pinpoint-sms-voice-v2.SendTextMessage"):
            response = self._client.send_text_message(
                DestinationPhoneNumber=phone_number,
                OriginationIdentity=self._origination,
                MessageBody=text,
                MessageType="TRANSACTIONAL",
            )
        return str(response["MessageId"])
