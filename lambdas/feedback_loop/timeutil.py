"""ISO-8601 UTC helpers; business time always comes from the records."""

from datetime import UTC, datetime


def parse_utc(value: str) -> datetime:
    """Parse an ISO-8601 timestamp with an explicit offset (``Z`` allowed) into aware UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {value!r}")
    return parsed.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    """Format an aware datetime as ``YYYY-MM-DDTHH:MM:SSZ`` (second precision, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
