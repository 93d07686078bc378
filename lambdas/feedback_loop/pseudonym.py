"""Keyed pseudonyms: the lake, Athena and QuickSight see these, never a phone number."""

import hashlib
import hmac
import re
from typing import Any

# ISO dates and times are matched first so they are kept, not mistaken for numbers.
_PHONE_LIKE = re.compile(
    r"(?P<datetime>(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"(?:[T ][0-2]\d:[0-5]\d(?::[0-5]\d(?:\.\d+)?)?)?)"
    r"|(?P<phone>\+?\d[\d\s\-().]{6,}\d)"
)


def subscriber_id(key: bytes, phone_number: str) -> str:
    """HMAC-SHA256 of the phone number: stable per key, so distinct counts still work."""
    return hmac.new(key, phone_number.encode("utf-8"), hashlib.sha256).hexdigest()


def _pseudonym_of(key: bytes, match: re.Match[str]) -> str:
    if match.group("datetime"):
        return match.group(0)
    return "sid:" + subscriber_id(key, match.group(0))


def redact(key: bytes, value: Any) -> Any:
    """Replace every phone-number-like string inside ``value`` by its pseudonym.

    Used for rejected payloads, whose shape is unknown by definition.
    """
    if isinstance(value, str):
        return _PHONE_LIKE.sub(lambda match: _pseudonym_of(key, match), value)
    if isinstance(value, dict):
        return {redact(key, k): redact(key, v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(key, item) for item in value]
    return value
