"""Synthesize the stack once per session (per variant) and share the templates."""

import os

# Before the first aws_cdk import starts the jsii runtime.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-2")

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from stacks.application import build_app
from stacks.config import FeedbackLoopConfig, cdk_json_context, config_from_context
from stacks.feedback_loop_stack import STACK_NAME

EXISTING_INSTANCE_ARN = (
    "arn:aws:connect:eu-west-2:111122223333:instance/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
)
# Everything optional switched on, and a few policy values moved off their defaults.
CONFIGURED = {
    "connect_instance_arn": EXISTING_INSTANCE_ARN,
    "phone_number_country_code": "GB",
    "quicksight_principal_arn": "arn:aws:quicksight:eu-west-2:111122223333:user/default/ops",
    "alarm_email": "noc@example.com",
    "max_concurrent_calls": 2,
    "ingest_parallelization_factor": 1,
    "min_sessions": 4,
    "lake_retention_days": 90,
    "log_retention_days": 14,
    "athena_scan_cutoff_gib": 25,
    "counters_capacity": {"min_write_units": 50, "max_write_units": 5000},
}
TEXTING = {
    "sms": {"enabled": True},
    "sms_origination_identity": (
        "arn:aws:sms-voice:eu-west-2:111122223333:phone-number/phone-0123456789abcdef"
    ),
}


@dataclass
class Synthesized:
    """One synthesized variant of the app."""

    app: cdk.App
    config: FeedbackLoopConfig
    raw: dict[str, Any]
    json: dict[str, Any]

    @property
    def template(self) -> Template:
        return Template.from_json(self.json)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.json["Resources"]


def _synth(tmp_path_factory: pytest.TempPathFactory, overrides: dict[str, Any]) -> Synthesized:
    app = build_app(overrides, outdir=str(tmp_path_factory.mktemp("cdk.out")), checks=False)
    template = app.synth().get_stack_by_name(STACK_NAME).template
    config, raw = config_from_context(cdk.App(context=cdk_json_context()).node, overrides)
    return Synthesized(app=app, config=config, raw=raw, json=template)


@pytest.fixture(scope="session")
def default(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The stack as `cdk deploy` builds it from cdk.json alone."""
    return _synth(tmp_path_factory, {})


@pytest.fixture(scope="session")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Existing Connect instance, claimed number, QuickSight, alarm e-mail, policy overrides."""
    return _synth(tmp_path_factory, CONFIGURED)


@pytest.fixture(scope="session")
def texting(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Texts as the second channel: SMS on, from an End User Messaging phone number."""
    return _synth(tmp_path_factory, TEXTING)


@pytest.fixture(params=["default", "configured"])
def variant(request: pytest.FixtureRequest) -> Synthesized:
    """Both variants, for properties that must hold whatever the config."""
    return request.getfixturevalue(request.param)


@pytest.fixture(params=["default", "configured", "texting"])
def any_variant(request: pytest.FixtureRequest) -> Synthesized:
    """Every variant, texting included, for the checks every template must pass."""
    return request.getfixturevalue(request.param)
