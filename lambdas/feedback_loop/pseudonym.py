"""Keyed pseudonyms: the lake, Athena and QuickSight see these, never a phone number."""

import hashlib
import hmac
import re
from typing import Any

_PHONE_LIKE = re.compile(r"\+?\d[\d\s\-().]{6,}\d")


def subscriber_id(key: bytes, phone_number: str) -> str:
    """HMAC-SHA256 of the phone number: stable per key, so distinct counts still work."""
    return hmac.new(key, phone_number.encode("utf-8"), hashlib.sha256).hexdigest()


def redact(key: bytes, value: Any) -> Any:
    """Replace every phone-number-like string inside ``value`` by its pseudonym.

    Used for rejected payloads, whose shape is unknown by definition.
    """
    if isinstance(value, str):
        return _PHONE_LIKE.sub(lambda match: "sid:" + subscriber_id(key, match.group(0)), value)
    if isinstance(value, dict):
        return {redact(key, k): redact(key, v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(key, item) for item in value]
    return value
