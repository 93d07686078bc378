"""The pseudonymisation key, read once per cold start from Secrets Manager."""

from typing import TYPE_CHECKING

from feedback_loop.adapters.aws import translated

if TYPE_CHECKING:
    from types_boto3_secretsmanager.client import SecretsManagerClient


def load_pseudonym_key(secretsmanager: "SecretsManagerClient", secret_arn: str) -> bytes:
    """Return the HMAC key stored in the secret (its SecretString, UTF-8 encoded)."""
    with translated("secretsmanager.GetSecretValue"):
        secret = secretsmanager.get_secret_value(SecretId=secret_arn)
    value = secret.get("SecretString") or secret["SecretBinary"]
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)
