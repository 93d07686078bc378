"""The shared contract: one E.164 rule everywhere, lake records shaped by their schema."""

import json
from pathlib import Path

import pytest

from feedback_loop.contract import ANALYTICS_TABLES, LAKE_TABLES, Reason, is_e164
from feedback_loop.errors import ConfigError
from stacks.config import load_config


@pytest.mark.parametrize("number", ["+447700900123", "+12025550123", "+49301234", "+1" + "9" * 14])
def test_e164_accepts_eight_to_fifteen_ascii_digits(number: str) -> None:
    assert is_e164(number)


@pytest.mark.parametrize(
    "number",
    [
        "+4477009",  # 7 digits
        "+1" + "9" * 15,  # 16 digits
        "+0447700900123",  # leading zero
        "447700900123",  # no plus
        "+447700900123\n",  # trailing newline
        "+\uff14\uff147700900123",  # full-width digits
        "+\u0664\u06647700900123",  # Arabic-Indic digits
        "+44 7700 900123",
        447700900123,
        None,
    ],
)
def test_e164_rejects_everything_else(number: object) -> None:
    assert not is_e164(number)


@pytest.mark.parametrize("number", ["+\uff14\uff147700900123", "+447700900123\n", "+4477009"])
def test_config_uses_the_same_rule_for_the_caller_id(number: str) -> None:
    with pytest.raises(ConfigError, match="source_phone_number"):
        load_config({"source_phone_number": number})


def test_a_record_with_a_missing_or_extra_column_is_refused() -> None:
    table = LAKE_TABLES["sentiment"]
    full = dict.fromkeys(table.column_names, "x")
    assert list(table.record(full)) == list(table.column_names)
    with pytest.raises(KeyError, match="missing"):
        table.record({k: v for k, v in full.items() if k != "cell"})
    with pytest.raises(KeyError, match="extra"):
        table.record({**full, "phone_number": "+447700900123"})


def test_every_analytics_table_has_a_time_field_among_its_columns() -> None:
    for name in ANALYTICS_TABLES:
        table = LAKE_TABLES[name]
        assert table.time_field in table.column_names
        assert dict(table.engine_columns("glue"))["subscriber_id"] == "string"


def test_every_reason_the_bad_input_corpus_expects_is_a_contract_reason() -> None:
    corpus = Path(__file__).parents[1] / "reliability" / "corpus"
    expected = {
        case["expect"]["reason"]
        for path in corpus.glob("*.json")
        for case in json.loads(path.read_text(encoding="utf-8"))["cases"]
        if "reason" in case["expect"]
    }
    assert expected
    assert expected <= {reason.value for reason in Reason}
