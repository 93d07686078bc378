"""End to end: the contact policy as the subscribers it rings would see it (issue 9).

One scenario through ``python -m simulator run``, each subscriber there for one rule:
two KPIs failing minutes apart make one call that explains both; an evening incident is
called the next morning; three US subscribers are called in their own morning; an outage
on one cell rings a sample and raises one signal; nobody answering gets a second attempt
and then a text; a subscriber who prefers texts is texted first and the reply counts.
Figures come from ``calls.jsonl``, the lake and ``summary.json``.
"""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from twin_cli import REPO, calls, lake, run_scenario

from feedback_loop.policy import load_policy
from feedback_loop.timeutil import parse_utc
from stacks.config import cdk_json_context

pytestmark = [pytest.mark.xdist_group("twin"), pytest.mark.slow]

FLOW = json.loads((REPO / "connect_flows" / "Subscriber_engagement.json").read_text())
DAY = datetime(2026, 11, 25, tzinfo=UTC)
POLICY = load_policy(cdk_json_context()["feedback_loop"])

TWO_KPIS = "+447700900001"
EVENING = "+447700900002"
SILENT = "+447700900003"
TEXTER = "+447700900004"
SMS_IDENTITY = "arn:aws:sms-voice:eu-west-2:123456789012:phone-number/phone-0123456789abcdef"
US = {
    "+12125550101": ("NYC-0001", "America/New_York"),
    "+14155550101": ("SFO-0001", "America/Los_Angeles"),
    "+18085550101": ("HNL-0001", "Pacific/Honolulu"),
}
OUTAGE_CELL = "LDN-0900"
OUTAGE = [f"+4477009002{n:02d}" for n in range(30)]


def _burst(phone: str, cell: str, start: datetime, kpi: str = "CALL_DROP") -> list[dict]:
    """Five sessions a minute apart, the 3rd and 5th failed: two incidents above threshold."""
    return [
        {
            "timestamp": (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "phone_number": phone,
            "cell": cell,
            "event_type": kpi,
            "success": outcome == "o",
            "device": "Pixel 8",
            "vendor": "VendorA",
        }
        for i, outcome in enumerate("ooxox")
    ]


def scenario() -> dict[str, Any]:
    at = DAY.replace(hour=9)
    events = _burst(TWO_KPIS, "LDN-0001", at + timedelta(minutes=10))
    events += _burst(TWO_KPIS, "LDN-0001", at + timedelta(minutes=13), "VIDEO_STALLING")
    events += _burst(EVENING, "LDN-0002", DAY.replace(hour=21, minute=30))
    events += _burst(SILENT, "LDN-0003", DAY.replace(hour=11))
    events += _burst(TEXTER, "LDN-0004", DAY.replace(hour=11, minute=30))
    for phone, (cell, _) in US.items():
        events += _burst(phone, cell, DAY.replace(hour=12))
    for n, phone in enumerate(OUTAGE):
        events += _burst(phone, OUTAGE_CELL, DAY.replace(hour=10) + timedelta(seconds=20 * n))
    events.sort(key=lambda event: event["timestamp"])
    subscribers = [
        {"phone_number": TWO_KPIS, "cell": "LDN-0001"},
        {"phone_number": EVENING, "cell": "LDN-0002"},
        {"phone_number": SILENT, "cell": "LDN-0003"},
        {"phone_number": TEXTER, "cell": "LDN-0004", "channel": "sms"},
        *({"phone_number": p, "cell": c, "timezone": z} for p, (c, z) in US.items()),
        *({"phone_number": p, "cell": OUTAGE_CELL} for p in OUTAGE),
    ]
    answers = {s["phone_number"]: "3" for s in subscribers} | {SILENT: "no_answer", TEXTER: "2"}
    return {
        "config": {
            "source_phone_number": "+442079460001",
            "sms": {"enabled": True},
            "sms_origination_identity": SMS_IDENTITY,
        },
        "subscribers": subscribers,
        "probe_events": events,
        "answers": answers,
    }


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_scenario(tmp_path_factory.mktemp("contact_policy"), scenario())


def _calls(out: Path, phone: str) -> list[dict[str, Any]]:
    return [c for c in calls(out) if c["phone_number"] == phone]


def _reason(kpi: str) -> str:
    slug = kpi.lower().replace("_", "-")
    return next(a for a in FLOW["Actions"] if a["Identifier"] == f"reason-{slug}")["Parameters"][
        "Text"
    ]


def test_nobody_is_called_at_night_twice_or_lost(out: Path) -> None:
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["calls_in_local_quiet_hours"] == 0
    assert summary["duplicate_calls"] == 0
    assert summary["engagements_lost"] == 0
    assert summary["dead_lettered"] == 0
    # one engagement per subscriber, whatever its KPIs; only the silent one is tried again
    per_phone = Counter(c["phone_number"] for c in calls(out))
    assert {phone: n for phone, n in per_phone.items() if n > 1} == {SILENT: 3}


def test_two_kpis_minutes_apart_are_one_call_that_explains_both(out: Path) -> None:
    (call,) = _calls(out, TWO_KPIS)
    assert _reason("CALL_DROP") in call["prompts"]
    assert _reason("VIDEO_STALLING") in call["prompts"]
    first_incident = DAY.replace(hour=9, minute=12)
    waited = parse_utc(call["time"]) - first_incident
    assert timedelta(minutes=POLICY.gather_minutes) <= waited < timedelta(minutes=20)


def test_an_evening_incident_is_called_the_next_morning(out: Path) -> None:
    (call,) = _calls(out, EVENING)
    morning = DAY.replace(day=26, hour=8)
    assert morning <= parse_utc(call["time"]) < morning + timedelta(minutes=30)


@pytest.mark.parametrize("phone", sorted(US))
def test_us_subscribers_are_called_in_their_own_morning(out: Path, phone: str) -> None:
    (call,) = _calls(out, phone)
    local = parse_utc(call["time"]).astimezone(ZoneInfo(US[phone][1]))
    assert (local.hour, local.date().isoformat()) == (8, "2026-11-25")


def test_an_outage_rings_a_sample_and_raises_one_signal(out: Path) -> None:
    called = {c["phone_number"] for c in calls(out) if c["phone_number"] in OUTAGE}
    assert 1 <= len(called) <= POLICY.outage.sample_size
    signals = {(r["cell"], r["window_start"]) for r in lake(out, "outages")}
    assert signals == {(OUTAGE_CELL, "2026-11-25T10:00:00Z")}
    steps = [r for r in lake(out, "engagement") if r["cell"] == OUTAGE_CELL]
    suppressed = {r["engagement_id"] for r in steps if r["reason"] == "cell_outage"}
    engaged = {r["engagement_id"] for r in steps if r["decision"] == "engage"}
    assert len(engaged) == len(OUTAGE)
    assert len(suppressed) == len(OUTAGE) - len(called)


def test_nobody_answering_gets_a_second_attempt_then_a_text(out: Path) -> None:
    first, second, text = _calls(out, SILENT)
    assert first["engagement_id"] == second["engagement_id"] == text["engagement_id"]
    assert [c.get("channel", "voice") for c in (first, second, text)] == ["voice", "voice", "sms"]
    assert [first["attributes"]["attempt"], second["attributes"]["attempt"]] == ["1", "2"]
    gap = parse_utc(second["time"]) - parse_utc(first["time"])
    assert gap >= timedelta(minutes=POLICY.retry_after_minutes)
    assert text["outcome"] == "no_reply"
    closed = [
        r
        for r in lake(out, "engagement")
        if r["engagement_id"] == first["engagement_id"] and r["decision"] == "closed"
    ]
    assert {r["reason"] for r in closed} == {"no_reply"}
    # The reply is awaited for the whole wait, across the holds SQS allows (11 hours each)
    awaited = min(parse_utc(r["decided_at"]) for r in closed) - parse_utc(text["time"])
    assert awaited >= timedelta(hours=POLICY.sms.reply_wait_hours)


def test_a_subscriber_who_prefers_texts_is_texted_and_the_reply_counts(out: Path) -> None:
    (text,) = _calls(out, TEXTER)
    assert (text["channel"], text["outcome"], text["input"]) == ("sms", "replied", "2")
    assert "Reply 1 (very poor) to 5 (very good)" in text["text"]
    feedback = [r for r in lake(out, "feedback") if r["engagement_id"] == text["engagement_id"]]
    assert [(r["outcome"], r["rating"]) for r in feedback] == [("rated", 2)]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["access_denied"] == 0
