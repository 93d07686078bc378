"""cdk-nag v3 acknowledgements (one rule, one construct, one reason) and the names they cite."""

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge ``rule`` (``Pack-Rule`` or ``Pack-Rule[finding]``) on ``scope`` and below."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge_grantee(grantee: iam.IGrantable, rule: str, reason: str) -> None:
    """Acknowledge ``rule`` on the construct that holds ``grantee``'s grants (its role)."""
    principal = grantee.grant_principal
    if not isinstance(principal, Construct):
        raise TypeError(f"{principal} is not a construct: acknowledge on its role instead")
    acknowledge(principal, rule, reason)


def logical_id(construct: IConstruct) -> str:
    """The logical id of the CloudFormation resource behind ``construct`` (its default child)."""
    resource = construct.node.default_child
    if not isinstance(resource, CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    return Stack.of(construct).get_logical_id(resource)
