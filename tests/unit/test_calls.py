"""The outbound call request built from an engagement, and which Connect errors are retried."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from feedback_loop.calls import CallCentre, is_permanent, outbound_call_request
from feedback_loop.dial import backoff_seconds
from feedback_loop.errors import InvalidRecord
from feedback_loop.messages import EngagementMessage, decode

EVENTS = Path(__file__).parents[1] / "events"
CENTRE = CallCentre(
    instance_id="instance-1", contact_flow_id="flow-1", source_phone_number="+442079460000"
)


@pytest.fixture
def engagement() -> EngagementMessage:
    event = json.loads((EVENTS / "sqs_fifo_engagement_trigger.json").read_text())
    return decode(event["Records"][0]["body"], EngagementMessage)


def test_request_calls_the_subscriber_from_the_configured_instance(engagement):
    request = outbound_call_request(engagement, CENTRE)

    assert request["DestinationPhoneNumber"] == engagement.phone_number
    assert request["InstanceId"] == CENTRE.instance_id
    assert request["ContactFlowId"] == CENTRE.contact_flow_id
    assert request["SourcePhoneNumber"] == CENTRE.source_phone_number


def test_client_token_is_the_engagement_id(engagement):
    assert outbound_call_request(engagement, CENTRE)["ClientToken"] == engagement.engagement_id


def test_attributes_tell_the_flow_why_it_calls_as_strings(engagement):
    attributes = outbound_call_request(engagement, CENTRE)["Attributes"]

    assert attributes == {
        "engagement_id": engagement.engagement_id,
        "incident_type": engagement.incident_type,
        "incident_time": engagement.incident_time,
        "incident_id": engagement.incident_id,
        "cell": engagement.cell,
    }
    assert all(isinstance(value, str) for value in attributes.values())
    assert engagement.phone_number not in attributes.values()


def test_a_suppressed_decision_never_becomes_a_call(engagement):
    with pytest.raises(InvalidRecord) as raised:
        outbound_call_request(replace(engagement, decision="suppress"), CENTRE)

    assert raised.value.reason == "not_an_engagement"


def test_an_engagement_without_id_is_refused(engagement):
    with pytest.raises(InvalidRecord):
        outbound_call_request(replace(engagement, engagement_id=""), CENTRE)


@pytest.mark.parametrize(
    "code",
    [
        "ThrottlingException",
        "LimitExceededException",
        "ServiceQuotaExceededException",
        "InternalServiceException",
        "ReadTimeoutError",
        "EndpointConnectionError",
    ],
)
def test_capacity_outage_and_transport_errors_are_not_final(code):
    assert not is_permanent(code)


@pytest.mark.parametrize(
    "code",
    [
        "InvalidParameterException",
        "DestinationNotAllowedException",
        "ResourceNotFoundException",
        "InvalidRequestException",
        "OutboundContactNotPermittedException",
        "AccessDeniedException",
    ],
)
def test_errors_a_retry_cannot_fix_are_final(code):
    assert is_permanent(code)


def test_back_off_doubles_is_spread_and_is_capped():
    keys = [f"engagement-{n}" for n in range(200)]
    for attempt, base in ((1, 30), (2, 60), (3, 120), (6, 900), (40, 900)):
        waits = [backoff_seconds(attempt, key) for key in keys]
        assert all(0.8 * base - 1 <= wait <= min(900, 1.2 * base) for wait in waits)
        assert len(set(waits)) > 10  # engagements throttled together come back apart
    assert backoff_seconds(3, "same") == backoff_seconds(3, "same")
