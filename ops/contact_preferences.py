"""Set subscribers' contact preferences: do not contact, time zone, preferred channel.

Customer care records what a subscriber asked for (never call me, text me instead, I
live in another time zone) and the CSP's do-not-contact list; the contact policy reads
them on the subscriber's profile before deciding and again right before every contact,
so a change stops calls that are already queued.

    python -m ops.contact_preferences --file preferences.csv [--table Subscriber_table]
    python -m ops.contact_preferences --phone-number +447700900123 --do-not-contact yes

The CSV has the header ``phone_number,do_not_contact,time_zone,channel``; an empty field
leaves that preference as it is, ``-`` clears it. ``do_not_contact`` is ``yes``/``no``,
``time_zone`` an IANA name (``Europe/London``), ``channel`` ``voice`` or ``sms``. Rows
with an error are listed and nothing of them is written; the others are applied.
"""

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedback_loop.contract import LAST_CHANGE, PHONE_NUMBER, LastChange, is_e164
from feedback_loop.episodes import CHANNELS, DO_NOT_CONTACT, PREFERRED_CHANNEL, TIME_ZONE
from feedback_loop.timeutil import format_utc

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

COLUMNS = ("phone_number", "do_not_contact", "time_zone", "channel")
CLEAR = "-"
YES, NO = ("yes", "true", "1"), ("no", "false", "0")
PROGRESS_EVERY = 1000


class InvalidPreference(ValueError):
    """A row that cannot be applied; the message says why."""


@dataclass(frozen=True)
class Preference:
    """One subscriber's changes: a value sets, ``CLEAR`` removes, ``None`` leaves alone."""

    phone_number: str
    do_not_contact: bool | None = None
    time_zone: str | None = None
    channel: str | None = None

    @classmethod
    def parse(cls, row: dict[str, str | None]) -> "Preference":
        """Validate one CSV row (or the CLI's flags)."""
        phone = (row.get("phone_number") or "").strip()
        if not is_e164(phone):
            raise InvalidPreference(f"phone_number must be E.164 (+447700900123), got {phone!r}")
        preference = cls(
            phone_number=phone,
            do_not_contact=_yes_no(row.get("do_not_contact")),
            time_zone=_zone(row.get("time_zone")),
            channel=_channel(row.get("channel")),
        )
        if preference == cls(phone_number=phone):
            raise InvalidPreference("nothing to change: every preference is empty")
        return preference

    def update(self, now: datetime) -> dict[str, Any]:
        """``UpdateItem`` arguments (without table and key) that apply the changes.

        Every attribute goes through a placeholder name: ``TimeZone`` is a DynamoDB
        reserved word."""
        names = {"#change": LAST_CHANGE, "#at": "PreferencesUpdatedAt"}
        sets = ["#change = :change", "#at = :at"]
        removes = []
        values: dict[str, Any] = {
            ":change": {"S": LastChange.OPERATOR},
            ":at": {"S": format_utc(now)},
        }
        if self.do_not_contact is not None:
            names["#dnc"] = DO_NOT_CONTACT
            sets.append("#dnc = :dnc")
            values[":dnc"] = {"BOOL": self.do_not_contact}
        for attribute, value, name in (
            (TIME_ZONE, self.time_zone, "zone"),
            (PREFERRED_CHANNEL, self.channel, "channel"),
        ):
            if value is None:
                continue
            names[f"#{name}"] = attribute
            if value == CLEAR:
                removes.append(f"#{name}")
            else:
                sets.append(f"#{name} = :{name}")
                values[f":{name}"] = {"S": value}
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return {
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _yes_no(value: str | None) -> bool | None:
    text = _blank(value)
    if text is None:
        return None
    if text.lower() in YES:
        return True
    if text.lower() in NO or text == CLEAR:
        return False
    raise InvalidPreference(f"do_not_contact must be yes or no, got {text!r}")


def _zone(value: str | None) -> str | None:
    text = _blank(value)
    if text is None or text == CLEAR:
        return text
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidPreference(
            f"time_zone must be an IANA zone (Europe/London), got {text!r}"
        ) from None
    return text


def _channel(value: str | None) -> str | None:
    text = _blank(value)
    if text is None or text == CLEAR:
        return text
    if text.lower() not in CHANNELS:
        raise InvalidPreference(f"channel must be one of {', '.join(CHANNELS)}, got {text!r}")
    return text.lower()


@dataclass
class PreferencesReport:
    """What was applied; ``rejected`` names each row left out and why."""

    applied: int = 0
    rejected: list[str] = field(default_factory=list)


def read_preferences(lines: TextIO) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line number, row) for each data row of a preferences CSV."""
    reader = csv.DictReader(lines)
    missing = [column for column in ("phone_number",) if column not in (reader.fieldnames or ())]
    unknown = [c for c in reader.fieldnames or () if c not in COLUMNS]
    if missing or unknown:
        raise InvalidPreference(
            f"the header must be {','.join(COLUMNS)} (phone_number and any of the others); "
            f"missing {missing or 'none'}, unknown {unknown or 'none'}"
        )
    for row in reader:
        yield reader.line_num, row


def apply_preferences(
    rows: Iterable[tuple[int, dict[str, str | None]]],
    *,
    dynamodb: "DynamoDBClient",
    table_name: str,
    now: datetime,
    progress: TextIO | None = None,
) -> PreferencesReport:
    """Write each valid row's changes to its subscriber's profile (created if absent)."""
    report = PreferencesReport()
    for line, row in rows:
        try:
            preference = Preference.parse(row)
        except InvalidPreference as error:
            report.rejected.append(f"line {line}: {error}")
            continue
        dynamodb.update_item(
            TableName=table_name,
            Key={PHONE_NUMBER: {"S": preference.phone_number}},
            **preference.update(now),
        )
        report.applied += 1
        if progress is not None and report.applied % PROGRESS_EVERY == 0:
            print(f"{report.applied} subscribers updated", file=progress, flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; uses the default AWS credentials and region of the environment."""
    import boto3

    parser = argparse.ArgumentParser(
        prog="python -m ops.contact_preferences", description=__doc__.split("\n")[0]
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=argparse.FileType("r"), help="preferences CSV")
    source.add_argument("--phone-number", help="one subscriber's E.164 number")
    parser.add_argument("--do-not-contact", choices=["yes", "no"])
    parser.add_argument("--time-zone", help=f"IANA zone, or {CLEAR} to clear")
    parser.add_argument("--channel", choices=[*CHANNELS, CLEAR])
    parser.add_argument("--table", default="Subscriber_table", help="subscriber table name")
    parser.add_argument("--region", default=None, help="AWS region (default: from the environment)")
    args = parser.parse_args(argv)
    try:
        if args.file is not None:
            rows = list(read_preferences(args.file))
        else:
            flags = {
                "phone_number": args.phone_number,
                "do_not_contact": args.do_not_contact,
                "time_zone": args.time_zone,
                "channel": args.channel,
            }
            Preference.parse(flags)
            rows = [(1, flags)]
    except InvalidPreference as error:
        parser.error(str(error))
    report = apply_preferences(
        rows,
        dynamodb=boto3.Session(region_name=args.region).client("dynamodb"),
        table_name=args.table,
        now=datetime.now(UTC),
        progress=sys.stderr,
    )
    print(json.dumps(asdict(report), indent=2))
    return 1 if report.rejected else 0


if __name__ == "__main__":
    sys.exit(main())
