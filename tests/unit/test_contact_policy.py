"""The contact policy's rules at their boundaries: zones, DST, gap, cap, gathering, staleness."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from feedback_loop.contact_policy import (
    CallingHours,
    ContactRules,
    contacts_in_window,
    is_stale,
    next_contact,
    subscriber_zones,
    zones_of_number,
)
from feedback_loop.timeutil import format_utc

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
HOURS = CallingHours("21:00", "08:00")
UK_MOBILE = "+447911123456"  # a real UK mobile range, not one reserved for fiction
AU_MOBILE = "+61412345678"
RU_MOBILE = "+79161234567"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        ("2026-11-25T07:59:59Z", False),
        ("2026-11-25T08:00:00Z", True),
        ("2026-11-25T20:59:59Z", True),
        ("2026-11-25T21:00:00Z", False),
        ("2026-11-25T23:30:00Z", False),
    ],
)
def test_quiet_hours_include_their_start_exclude_their_end_and_wrap_midnight(moment, allowed):
    assert HOURS.allows(utc(moment), (LONDON,)) is allowed  # November: London is UTC


def test_an_evening_incident_is_contacted_at_the_end_of_quiet_hours_next_morning():
    assert HOURS.next_allowed(utc("2026-11-25T21:05:00Z"), (LONDON,)) == utc("2026-11-26T08:00:00Z")


def test_a_moment_after_midnight_is_contacted_the_same_morning():
    assert HOURS.next_allowed(utc("2026-11-26T01:00:00Z"), (LONDON,)) == utc("2026-11-26T08:00:00Z")


def test_calling_hours_follow_the_subscribers_zone():
    # 14:00 UTC is 09:00 in New York (allowed) but 05:00 in Honolulu (quiet).
    moment = utc("2026-11-25T14:00:00Z")
    honolulu = ZoneInfo("Pacific/Honolulu")
    assert HOURS.allows(moment, (NEW_YORK,))
    assert not HOURS.allows(moment, (honolulu,))
    assert HOURS.next_allowed(moment, (honolulu,)) == utc("2026-11-25T18:00:00Z")  # 08:00 HST


def test_daylight_saving_moves_the_utc_time_of_the_morning_not_the_local_one():
    # London: 08:00 is 07:00 UTC in summer (BST) and 08:00 UTC in winter (GMT).
    before = HOURS.next_allowed(utc("2026-03-28T22:00:00Z"), (LONDON,))  # night before the change
    after = HOURS.next_allowed(utc("2026-10-24T22:00:00Z"), (LONDON,))  # night before it ends
    assert before == utc("2026-03-29T07:00:00Z")
    assert after == utc("2026-10-25T08:00:00Z")
    assert before.astimezone(LONDON).hour == after.astimezone(LONDON).hour == 8


def test_quiet_hours_ending_in_a_skipped_hour_end_when_the_clock_reads_it_again():
    hours = CallingHours("00:30", "01:30")  # 01:00-02:00 does not exist on 29 March in London
    moment = utc("2026-03-29T00:40:00Z")  # 00:40 GMT: quiet
    allowed = hours.next_allowed(moment, (LONDON,))
    assert allowed > moment
    assert hours.allows(allowed, (LONDON,))


def test_blocked_days_move_the_contact_to_the_next_open_morning():
    weekdays_only = CallingHours("21:00", "08:00", ("sat", "sun"))
    saturday_noon = utc("2026-11-28T12:00:00Z")
    assert not weekdays_only.allows(saturday_noon, (LONDON,))
    assert weekdays_only.next_allowed(saturday_noon, (LONDON,)) == utc("2026-11-30T08:00:00Z")


def test_calling_hours_without_a_zone_refuse_rather_than_allow():
    with pytest.raises(ValueError, match="time zone"):
        HOURS.allows(utc("2026-11-25T03:00:00Z"), ())


def test_equal_start_and_end_mean_no_quiet_hours():
    assert CallingHours("00:00", "00:00").allows(utc("2026-11-25T03:00:00Z"), (LONDON,))


def test_the_zone_comes_from_the_profile_then_the_number_then_the_default():
    assert subscriber_zones("Asia/Tokyo", "+14155550123", "UTC", HOURS) == (ZoneInfo("Asia/Tokyo"),)
    assert subscriber_zones(None, "+14155550123", "UTC", HOURS) == (
        ZoneInfo("America/Los_Angeles"),
    )
    assert subscriber_zones(None, "+18085550123", "UTC", HOURS) == (ZoneInfo("Pacific/Honolulu"),)
    # Ranges reserved for fiction map to no zone: the deployment default applies.
    assert zones_of_number("+447700900123") == ()
    assert subscriber_zones(None, "+447700900123", "Europe/London", HOURS) == (LONDON,)
    assert subscriber_zones("Not/AZone", "+447700900123", "UTC", HOURS) == (ZoneInfo("UTC"),)


def test_a_uk_mobile_is_not_called_in_a_summer_evening_on_a_utc_deployment():
    """A real UK mobile maps to four zones that keep London's clock: their calling hours
    apply, not the deployment's UTC (21:30 BST is quiet though it is 20:30 UTC)."""
    zones = subscriber_zones(None, UK_MOBILE, "UTC", HOURS)
    assert {zone.key for zone in zones} == {
        "Europe/London",
        "Europe/Guernsey",
        "Europe/Jersey",
        "Europe/Isle_of_Man",
    }
    evening = utc("2026-07-15T20:30:00Z")
    assert not HOURS.allows(evening, zones)
    assert HOURS.next_allowed(evening, zones) == utc("2026-07-16T07:00:00Z")  # 08:00 BST


def test_a_number_spanning_zones_is_contacted_only_when_every_zone_allows_it():
    """An Australian mobile may be anywhere from the Cocos Islands (UTC+6:30) to Lord Howe
    (UTC+11 in summer): 09:00 in Sydney is 06:00 in Perth, so the call waits until it is
    08:00 in the westernmost zone, and stops when it is 21:00 in the easternmost."""
    zones = subscriber_zones(None, AU_MOBILE, "Australia/Sydney", HOURS)
    assert {"Australia/Perth", "Australia/Sydney", "Indian/Cocos"} <= {z.key for z in zones}
    sydney_nine = utc("2026-11-25T22:00:00Z")
    assert not HOURS.allows(sydney_nine, zones)
    allowed = HOURS.next_allowed(sydney_nine, zones)
    assert allowed == utc("2026-11-26T01:30:00Z")  # 08:00 in Cocos, 09:30 in Perth
    assert all(HOURS.allows(allowed, (zone,)) for zone in zones)
    assert HOURS.allows(utc("2026-11-26T09:59:00Z"), zones)
    assert not HOURS.allows(utc("2026-11-26T10:00:00Z"), zones)  # 21:00 on Lord Howe


def test_night_hours_with_blocked_days_fall_back_to_the_default_for_many_zones():
    """Calling hours across midnight (21:30 to 08:00) with six blocked days: one zone's
    blocked day cuts another's night, so no moment may suit every Russian zone."""
    nights = CallingHours("08:00", "21:30", ("mon", "tue", "wed", "thu", "fri", "sat"))
    zones = subscriber_zones(None, RU_MOBILE, "Europe/Moscow", nights)
    assert zones == (ZoneInfo("Europe/Moscow"),)
    assert nights.allows(nights.next_allowed(utc("2026-11-25T12:00:00Z"), zones), zones)


def test_zones_further_apart_than_the_calling_hours_last_fall_back_to_the_default():
    """A Russian mobile spans UTC+2 to UTC+12: ten hours, within the default thirteen
    calling hours but not within eight, where no moment suits every zone."""
    assert len(subscriber_zones(None, RU_MOBILE, "Europe/Moscow", HOURS)) > 1
    office_hours = CallingHours("17:00", "09:00")
    assert office_hours.daily_hours() == timedelta(hours=8)
    assert subscriber_zones(None, RU_MOBILE, "Europe/Moscow", office_hours) == (
        ZoneInfo("Europe/Moscow"),
    )


RULES = ContactRules(
    cooldown=timedelta(hours=24),
    max_contacts=2,
    max_contacts_window=timedelta(days=7),
    gather=timedelta(minutes=10),
    max_incident_age=timedelta(hours=24),
    hours=CallingHours("00:00", "00:00"),
)


def test_dialling_waits_the_gathering_delay_after_the_first_incident():
    first = utc("2026-11-25T10:00:00Z")
    nxt = next_contact(first + timedelta(minutes=3), first, [], RULES, (LONDON,))
    assert (nxt.at, nxt.reason) == (first + timedelta(minutes=10), "gathering")
    assert next_contact(first + timedelta(minutes=10), first, [], RULES, (LONDON,)).reason is None


@pytest.mark.parametrize(("gap_hours", "waits"), [(23.99, True), (24, False)])
def test_the_gap_counts_from_the_last_contact_whatever_the_kpi(gap_hours, waits):
    last = utc("2026-11-24T10:00:00Z")
    now = last + timedelta(hours=gap_hours)
    nxt = next_contact(now, now - timedelta(minutes=30), [format_utc(last)], RULES, (LONDON,))
    assert (nxt.reason == "contact_gap") is waits
    assert nxt.at == max(now, last + timedelta(hours=24))


def test_the_cap_reopens_when_the_oldest_contact_leaves_the_window():
    contacts = ["2026-11-18T12:00:00Z", "2026-11-23T12:00:00Z"]
    now = utc("2026-11-25T09:00:00Z")
    nxt = next_contact(now, now - timedelta(hours=1), contacts, RULES, (LONDON,))
    assert (nxt.at, nxt.reason) == (utc("2026-11-25T12:00:00Z"), "contact_cap")
    assert contacts_in_window(contacts, now, timedelta(days=7)) == 2
    assert contacts_in_window(contacts, utc("2026-11-25T12:00:00Z"), timedelta(days=7)) == 1


def test_calling_hours_apply_after_the_gap_and_name_the_reason():
    rules = ContactRules(hours=HOURS)
    last = utc("2026-11-24T22:30:00Z")  # the gap ends at 22:30 the next day: quiet
    now = utc("2026-11-25T21:00:00Z")
    nxt = next_contact(now, now - timedelta(minutes=30), [format_utc(last)], rules, (LONDON,))
    assert (nxt.at, nxt.reason) == (utc("2026-11-26T08:00:00Z"), "quiet_hours")


@pytest.mark.parametrize(("hours", "stale"), [(24, False), (24.01, True)])
def test_an_incident_is_stale_past_the_age_limit(hours, stale):
    first = utc("2026-11-25T10:00:00Z")
    assert is_stale(first, first + timedelta(hours=hours), RULES) is stale
