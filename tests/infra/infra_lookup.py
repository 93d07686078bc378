"""Lookups over a synthesized template by meaning (names, types), never by hashed logical id."""

from typing import Any

FUNCTION_NAMES = (
    "Ingest_probe_events",
    "write_incident_to_S3",
    "Read_after_incident",
    "write_engagement_to_S3",
    "Trigger_Connect",
    "Collect_feedback_from_Connect",
    "write_feedback_to_S3",
    "Archive_probe_records",
)


def of_type(resources: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in resources.items() if r["Type"] == cfn_type}


def find_one(resources: dict[str, Any], cfn_type: str, **props: Any) -> str:
    """Logical id of the single resource of ``cfn_type`` whose properties include ``props``."""
    matches = [
        lid
        for lid, r in of_type(resources, cfn_type).items()
        if all(r.get("Properties", {}).get(k) == v for k, v in props.items())
    ]
    assert len(matches) == 1, f"expected one {cfn_type} with {props}, found {matches}"
    return matches[0]


def function_id(resources: dict[str, Any], name: str) -> str:
    return find_one(resources, "AWS::Lambda::Function", FunctionName=name)


def function_props(resources: dict[str, Any], name: str) -> dict[str, Any]:
    return resources[function_id(resources, name)]["Properties"]


def queue_id(resources: dict[str, Any], name: str) -> str:
    return find_one(resources, "AWS::SQS::Queue", QueueName=name)


def table_id(resources: dict[str, Any], name: str) -> str:
    return find_one(resources, "AWS::DynamoDB::Table", TableName=name)


def referenced_id(value: Any) -> str:
    """The logical id a ``Ref`` / ``Fn::GetAtt`` points at."""
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    raise AssertionError(f"not a reference: {value!r}")


def role_statements(resources: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every statement of every policy attached to ``role_id`` (inline and AWS::IAM::Policy)."""
    statements: list[dict[str, Any]] = []
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    for inline in resources[role_id]["Properties"].get("Policies", []):
        statements += inline["PolicyDocument"]["Statement"]
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def mappings_of(resources: dict[str, Any], name: str) -> list[dict[str, Any]]:
    fid = function_id(resources, name)
    return [
        m["Properties"]
        for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": fid}
    ]
