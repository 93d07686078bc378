"""cdk-nag (AwsSolutions + Serverless) and cfn-lint over the synthesized stack, and outputs."""

import json

import pytest
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from cfnlint.api import lint

pytestmark = [pytest.mark.xdist_group("synth"), pytest.mark.slow]

OPERATOR_OUTPUTS = {
    "ProbeStreamName", "IncidentQueueUrl", "IncidentDlqUrl", "IngestFailuresDlqUrl",
    "EngagementUpdateQueueUrl", "EngagementUpdateDlqUrl", "EngagementTriggerQueueUrl",
    "EngagementTriggerDlqUrl", "ReadAfterIncidentFailuresDlqUrl", "LakeBucketName",
    "SubscriberTableName", "ConnectInstanceId", "ContactFlowId", "AthenaWorkGroup",
}  # fmt: skip


@pytest.mark.parametrize("pack", [AwsSolutionsChecks, ServerlessChecks])
def test_cdk_nag_has_no_unacknowledged_findings(any_variant, pack) -> None:
    report = pack().validate_scope(any_variant.app)
    findings = [
        f"{v.rule_name} at {[r.construct_path for r in v.violating_resources]}"
        for v in report.violations
    ]
    assert findings == []
    assert report.success


def test_cfn_lint_reports_no_errors_or_warnings(any_variant) -> None:
    matches = lint(json.dumps(any_variant.json), regions=["eu-west-2", "us-east-1"])
    assert [f"{m.rule.id} {m.message} at {m.path}" for m in matches] == []


def test_outputs_give_the_operator_every_entry_point(default, texting) -> None:
    assert set(default.json["Outputs"]) >= OPERATOR_OUTPUTS
    assert not {"SmsRepliesTopicArn", "SmsRepliesDlqUrl"} & set(default.json["Outputs"])
    texting_outputs = texting.json["Outputs"]
    assert set(texting_outputs) >= OPERATOR_OUTPUTS | {"SmsRepliesTopicArn", "SmsRepliesDlqUrl"}
    [topic] = [k for k, v in texting.resources.items() if v["Type"] == "AWS::SNS::Topic"
               and "SMS replies" in v["Properties"].get("DisplayName", "")]  # fmt: skip
    assert texting_outputs["SmsRepliesTopicArn"]["Value"] == {"Ref": topic}


def test_synth_is_environment_agnostic(default) -> None:
    text = json.dumps(default.json)
    assert "111122223333" not in text
    assert '"eu-west-2"' not in text
