"""ops.contact_preferences under moto: what customer care records is what the policy reads."""

import io
from datetime import UTC, datetime

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from moto import mock_aws

from feedback_loop.episodes import SubscriberView
from ops.contact_preferences import (
    InvalidPreference,
    apply_preferences,
    main,
    read_preferences,
)
from tests.moto_tables import create_tables

REGION = "eu-west-2"
TABLE = "Subscriber_table"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
KNOWN = "+447700900123"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch):
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_tables(client, TABLE)
        client.put_item(
            TableName=TABLE,
            Item={"PhoneNumber": {"S": KNOWN}, "Sentiment": {"N": "0.25"}},
        )
        yield client


def _profile(dynamodb, phone: str) -> dict:
    item = dynamodb.get_item(TableName=TABLE, Key={"PhoneNumber": {"S": phone}})["Item"]
    return {name: TypeDeserializer().deserialize(value) for name, value in item.items()}


def _apply(dynamodb, text: str):
    rows = read_preferences(io.StringIO(text))
    return apply_preferences(rows, dynamodb=dynamodb, table_name=TABLE, now=NOW)


def test_preferences_land_on_the_profile_the_policy_reads(dynamodb) -> None:
    report = _apply(
        dynamodb,
        "phone_number,do_not_contact,time_zone,channel\n"
        f"{KNOWN},yes,America/New_York,sms\n"
        "+447700900999,,Europe/London,\n",
    )

    assert (report.applied, report.rejected) == (2, [])
    known = _profile(dynamodb, KNOWN)
    assert known["Sentiment"] == pytest.approx(0.25), "the rest of the profile is kept"
    assert known["LastChange"] == "operator", "not an incident: Read_after_incident ignores it"
    view = SubscriberView.from_profile(KNOWN, known)
    assert (view.do_not_contact, view.time_zone, view.prefers_sms) == (
        True,
        "America/New_York",
        True,
    )
    new = SubscriberView.from_profile("+447700900999", _profile(dynamodb, "+447700900999"))
    assert (new.do_not_contact, new.time_zone, new.prefers_sms) == (False, "Europe/London", False)


def test_an_empty_field_leaves_a_preference_and_a_dash_clears_it(dynamodb) -> None:
    _apply(dynamodb, f"phone_number,do_not_contact,time_zone,channel\n{KNOWN},yes,Asia/Tokyo,sms\n")

    _apply(dynamodb, f"phone_number,do_not_contact,time_zone,channel\n{KNOWN},,-,-\n")

    view = SubscriberView.from_profile(KNOWN, _profile(dynamodb, KNOWN))
    assert (view.do_not_contact, view.time_zone, view.prefers_sms) == (True, None, False)


def test_bad_rows_are_named_and_left_out_and_the_good_ones_applied(dynamodb) -> None:
    report = _apply(
        dynamodb,
        "phone_number,do_not_contact,time_zone,channel\n"
        "07700900123,yes,,\n"
        f"{KNOWN},maybe,,\n"
        f"{KNOWN},,Mars/Olympus,\n"
        f"{KNOWN},,,fax\n"
        f"{KNOWN},,,\n"
        "+447700900555,no,,voice\n",
    )

    assert report.applied == 1
    assert [line.split(":")[0] for line in report.rejected] == [
        "line 2",
        "line 3",
        "line 4",
        "line 5",
        "line 6",
    ]
    assert "E.164" in report.rejected[0] and "yes or no" in report.rejected[1]
    assert "IANA" in report.rejected[2] and "nothing to change" in report.rejected[4]
    assert "DoNotContact" not in _profile(dynamodb, KNOWN)


def test_a_file_with_an_unknown_column_is_refused_before_anything_is_written(dynamodb) -> None:
    with pytest.raises(InvalidPreference, match="unknown \\['email'\\]"):
        _apply(dynamodb, f"phone_number,email\n{KNOWN},a@b.c\n")


def test_the_command_line_sets_one_subscriber_and_fails_on_a_bad_row(
    dynamodb, tmp_path, capsys
) -> None:
    assert main(["--phone-number", KNOWN, "--do-not-contact", "yes", "--region", REGION]) == 0
    assert _profile(dynamodb, KNOWN)["DoNotContact"] is True

    csv = tmp_path / "preferences.csv"
    csv.write_text(f"phone_number,channel\n{KNOWN},voice\nnot-a-number,sms\n", encoding="utf-8")
    assert main(["--file", str(csv), "--region", REGION]) == 1
    assert '"applied": 1' in capsys.readouterr().out
