"""Amazon Connect: instance, the engagement flow with the real function ARN, the association."""

import json

import pytest
from infra_lookup import find_one, function_id, of_type

from feedback_loop.errors import ConfigError
from stacks.contact_centre import FLOW_FILE, FUNCTION_PLACEHOLDER, flow_content

pytestmark = [pytest.mark.xdist_group("synth"), pytest.mark.slow]


def test_instance_is_outbound_only_and_connect_managed(default) -> None:
    (instance,) = of_type(default.resources, "AWS::Connect::Instance").values()
    props = instance["Properties"]
    assert props["IdentityManagementType"] == "CONNECT_MANAGED"
    assert props["Attributes"]["OutboundCalls"] is True
    assert props["Attributes"]["InboundCalls"] is False


def test_existing_instance_is_used_instead_of_creating_one(configured) -> None:
    assert not of_type(configured.resources, "AWS::Connect::Instance")
    arn = configured.config.connect_instance_arn
    (flow,) = of_type(configured.resources, "AWS::Connect::ContactFlow").values()
    (association,) = of_type(configured.resources, "AWS::Connect::IntegrationAssociation").values()
    (number,) = of_type(configured.resources, "AWS::Connect::PhoneNumber").values()
    assert flow["Properties"]["InstanceArn"] == arn
    assert association["Properties"]["InstanceId"] == arn
    assert number["Properties"]["TargetArn"] == arn


def test_flow_is_the_repo_flow_with_the_feedback_function_arn(variant) -> None:
    resources = variant.resources
    flow_id = find_one(resources, "AWS::Connect::ContactFlow", Name="Subscriber_engagement")
    flow = resources[flow_id]["Properties"]
    assert flow["Type"] == "CONTACT_FLOW"
    content = json.dumps(flow["Content"])
    assert FUNCTION_PLACEHOLDER not in content
    feedback = function_id(resources, "Collect_feedback_from_Connect")
    assert json.dumps({"Fn::GetAtt": [feedback, "Arn"]}) in content
    # Every action of the repo's flow survives the substitution.
    rendered = "".join(p if isinstance(p, str) else "<arn>" for p in flow["Content"]["Fn::Join"][1])
    actions = {a["Identifier"] for a in json.loads(rendered)["Actions"]}
    assert actions == {a["Identifier"] for a in json.loads(FLOW_FILE.read_text())["Actions"]}


def test_flow_waits_for_the_lambda_association(default) -> None:
    resources = default.resources
    flow = resources[find_one(resources, "AWS::Connect::ContactFlow")]
    (association_id,) = of_type(resources, "AWS::Connect::IntegrationAssociation")
    assert association_id in flow.get("DependsOn", [])
    association = resources[association_id]["Properties"]
    assert association["IntegrationType"] == "LAMBDA_FUNCTION"
    feedback = function_id(resources, "Collect_feedback_from_Connect")
    assert association["IntegrationArn"] == {"Fn::GetAtt": [feedback, "Arn"]}


def test_by_default_one_number_is_claimed_in_the_configured_country(default) -> None:
    (number,) = of_type(default.resources, "AWS::Connect::PhoneNumber").values()
    assert number["Properties"]["CountryCode"] == default.config.phone_number_country_code


def test_flow_without_placeholder_is_refused(tmp_path) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"Version": "2019-10-30", "StartAction": "x", "Actions": []}))
    with pytest.raises(ConfigError, match=FUNCTION_PLACEHOLDER):
        flow_content(flow, "arn:aws:lambda:eu-west-2:111122223333:function:f")


def test_placeholder_is_replaced_wherever_it_appears(tmp_path) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(
        json.dumps(
            {
                "Actions": [
                    {"Parameters": {"LambdaFunctionARN": FUNCTION_PLACEHOLDER}},
                    {"Parameters": {"Text": f"calls {FUNCTION_PLACEHOLDER} twice"}},
                ]
            }
        )
    )
    content = flow_content(flow, "ARN")
    assert content["Actions"][0]["Parameters"]["LambdaFunctionARN"] == "ARN"
    assert content["Actions"][1]["Parameters"]["Text"] == "calls ARN twice"
