"""cdk-nag v3 acknowledgements: one rule, one construct, one reason."""

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge ``rule`` (``Pack-Rule`` or ``Pack-Rule[finding]``) on ``scope`` and below."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
