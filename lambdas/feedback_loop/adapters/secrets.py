"""The pseudonymisation key, read once per cold start from Secrets Manager."""

from typing import Any


def load_pseudonym_key(secretsmanager: Any, secret_arn: str) -> bytes:
    """Return the HMAC key stored in the secret (its SecretString, UTF-8 encoded)."""
    secret = secretsmanager.get_secret_value(SecretId=secret_arn)
    value = secret.get("SecretString") or secret["SecretBinary"]
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)
