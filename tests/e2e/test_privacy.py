"""End to end: no phone number reaches the lake, yet the cells still count subscribers right.

After a twin run, every object under ``out/lake/`` is decompressed and scanned for every
written form of every phone number in the scenario (E.164, without ``+``, national
``07…``, split by spaces), including the numbers inside the malformed records the
ingest handler rejects into ``rejected/``.
"""

import gzip
import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from twin_cli import run_scenario

pytestmark = [pytest.mark.xdist_group("twin"), pytest.mark.slow]

DAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SUBSCRIBERS = {  # phone → (cell, sessions: o = ok, x = failed)
    "+447700900311": ("LDN-0010", "ooxox"),
    "+447700900312": ("LDN-0010", "oxoxx"),
    "+447700900313": ("LDN-0010", "ooooo"),
    "+447700900314": ("LDN-0020", "ooxx"),
    "+447700900315": ("LDN-0030", "oox"),
    "+447700900316": ("LDN-0030", "oooox"),
}
# Phone numbers only malformed records carry (the ingest handler must reject them).
MALFORMED_ONLY = ("+447700900901", "+447700900902", "+447700900903", "+447700900904")


def _record(phone: Any, minute: int, success: bool, cell: Any, kpi: str = "CALL_DROP") -> dict:
    return {
        "timestamp": (DAY + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "phone_number": phone,
        "cell": cell,
        "event_type": kpi,
        "success": success,
        "device": "Pixel 8",
        "vendor": "VendorB",
    }


def malformed() -> list[Any]:
    """Bad records of several kinds, each carrying a phone number in some written form."""
    a, b, c, d = MALFORMED_ONLY
    return [
        _record("07700 900901", 3, False, "LDN-0010"),  # national, spaced
        _record(a[1:], 4, False, "LDN-0010"),  # E.164 without +
        _record(b, 5, False, "LDN-0010", kpi="SMS_FAILURE"),  # unknown event type
        _record(c, 6, "false", "LDN-0020"),  # mistyped success
        {**_record(d, 7, False, "LDN-0020"), "timestamp": "yesterday"},
        f"not json, call me on {d} or 07700 900904",
        _record("+447700900311", 8, False, None),  # a real subscriber, bad cell
    ]


def scenario() -> dict[str, Any]:
    events: list[Any] = []
    for n, (phone, (cell, sessions)) in enumerate(SUBSCRIBERS.items()):
        events += [_record(phone, 10 + n * 7 + i, s == "o", cell) for i, s in enumerate(sessions)]
    events += malformed()
    return {
        "config": {"source_phone_number": "+442079460001"},
        "subscribers": [{"phone_number": p, "cell": c} for p, (c, _) in SUBSCRIBERS.items()],
        "probe_events": events,
        "answers": dict.fromkeys(SUBSCRIBERS, "2"),
    }


def written_forms(e164: str) -> set[str]:
    """The ways a UK number is written: +447700900311, 447700900311, 07700900311, spaced."""
    national = "0" + e164[3:]
    return {
        e164,
        e164[1:],
        national,
        f"{national[:5]} {national[5:]}",
        f"{e164[:3]} {e164[3:7]} {e164[7:]}",
        f"{e164[1:3]} {e164[3:7]} {e164[7:]}",
    }


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_scenario(tmp_path_factory.mktemp("privacy"), scenario())


def lake_texts(out: Path) -> dict[str, str]:
    texts = {}
    for path in sorted((out / "lake").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            texts[str(path.relative_to(out))] = data.decode("utf-8", "replace")
    return texts


def test_the_lake_holds_every_kind_of_record(out: Path) -> None:
    prefixes = {name.split("/")[1] for name in lake_texts(out)}

    assert {"incidents", "engagement", "feedback", "sentiment", "rejected"} <= prefixes


def test_every_malformed_record_is_rejected_into_the_lake(out: Path) -> None:
    rejected = json.loads((out / "summary.json").read_text(encoding="utf-8"))["rejected_records"]

    assert rejected == len(malformed())


def test_no_phone_number_in_any_form_appears_in_the_lake(out: Path) -> None:
    forms = {form for phone in [*SUBSCRIBERS, *MALFORMED_ONLY] for form in written_forms(phone)}
    digits = re.compile(r"\d[\d ]{8,}\d")
    leaks = {
        name: sorted(form for form in forms if form in text)
        for name, text in lake_texts(out).items()
    }
    spaced = {
        name: [
            m for m in digits.findall(text) if m.replace(" ", "")[-9:] in {f[-9:] for f in forms}
        ]
        for name, text in lake_texts(out).items()
    }

    assert {name: found for name, found in leaks.items() if found} == {}
    assert {name: found for name, found in spaced.items() if found} == {}


def test_distinct_subscribers_per_cell_match_the_scenario(out: Path) -> None:
    expected: dict[str, set[str]] = defaultdict(set)
    for phone, (cell, sessions) in SUBSCRIBERS.items():
        if "x" in sessions:
            expected[cell].add(phone)
    rows = json.loads((out / "cell_priority.json").read_text(encoding="utf-8"))

    assert {row["cell"]: row["subscribers"] for row in rows} == {
        cell: len(phones) for cell, phones in expected.items()
    }
