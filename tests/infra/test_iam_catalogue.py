"""Every IAM policy of the stack passes parliament's check against AWS's IAM catalogue."""

import copy
import json
from typing import Any

import pytest
from iam_catalogue import ALLOWED, findings, policies, unexpected

pytestmark = [pytest.mark.xdist_group("synth"), pytest.mark.slow]

POLICY_HOLDERS = {
    "AWS::IAM::Policy", "AWS::IAM::Role", "AWS::KMS::Key", "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy",
}  # fmt: skip


def _with_statement(template: dict[str, Any], statement: dict[str, Any]) -> dict[str, Any]:
    """``template`` with ``statement`` (``TABLE`` standing for a table's logical id) added to
    the first role policy."""
    table = next(k for k, r in template["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table")
    statement = json.loads(json.dumps(statement).replace("TABLE", table))
    changed = copy.deepcopy(template)
    policy = next(r for r in changed["Resources"].values() if r["Type"] == "AWS::IAM::Policy")
    policy["Properties"]["PolicyDocument"]["Statement"].append(statement)
    return changed


def test_every_policy_statement_is_known_to_the_catalogue(variant) -> None:
    assert [str(finding) for finding in unexpected(findings(variant.json))] == []


def test_every_policy_document_of_the_template_is_checked(variant) -> None:
    holders = {
        logical_id
        for logical_id, resource in variant.resources.items()
        if resource["Type"] in POLICY_HOLDERS
    }
    assert holders
    assert {logical_id for logical_id, _, _ in policies(variant.json)} == holders


def test_every_allowance_still_covers_a_finding(default, configured) -> None:
    found = findings(default.json) + findings(configured.json)
    assert [a.reason for a in ALLOWED if not any(a.covers(f) for f in found)] == []


@pytest.mark.parametrize(
    ("statement", "issue"),
    [
        ({"Effect": "Allow", "Action": "sqs:SendMesage", "Resource": "*"}, "UNKNOWN_ACTION"),
        (
            {
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": {"Fn::GetAtt": ["TABLE", "Arn"]},
            },
            "RESOURCE_MISMATCH",
        ),
        (
            {"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": "*"},
            "RESOURCE_STAR",
        ),
    ],
    ids=["misspelt action", "queue action on a table", "table action on every resource"],
)
def test_a_grant_the_catalogue_rejects_is_reported(default, statement, issue) -> None:
    reported = unexpected(findings(_with_statement(default.json, statement)))
    assert [finding.issue for finding in reported] == [issue]
