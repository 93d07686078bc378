"""``python -m simulator cost``: the fixed contract (DESIGN.md 6a) and the committed inputs."""

import json
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.cost import deployed_policy, load_inputs
from simulator.cost.calls import calls_per_day
from simulator.cost.measure import INPUTS
from simulator.cost.model import candidates_of
from simulator.cost.prices import PRICES, PriceError, load_prices
from tests.cost_fixtures import tiny_inputs


def _run_cost(tmp_path: Path, *extra: str) -> tuple[int, dict]:
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps(tiny_inputs()))
    code = main(["cost", "--out", str(tmp_path / "out"), "--inputs", str(inputs), *extra])
    document = json.loads((tmp_path / "out" / "cost.json").read_text()) if code == 0 else {}
    return code, document


def test_cost_writes_the_total_and_lines_largest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = _run_cost(tmp_path, "--subscribers", "1000000")
    assert code == 0
    assert isinstance(document["monthly_usd_total"], int | float)
    lines = document["lines"]
    assert lines and all({"service", "item", "monthly_usd"} <= set(line) for line in lines)
    amounts = [line["monthly_usd"] for line in lines]
    assert amounts == sorted(amounts, reverse=True)
    assert document["monthly_usd_total"] == pytest.approx(sum(amounts), abs=0.01 * len(amounts))
    assert document["records_per_subscriber_day"] == 50
    printed = capsys.readouterr().out
    assert "TOTAL $" in printed and "reference pattern" in printed


def test_cost_warns_when_a_dashboard_query_would_pass_the_workgroups_cutoff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the tiny day's lake: a query reads 0.49 GiB per 100,000 subscribers if it reads each
    # table once
    _, small = _run_cost(tmp_path, "--subscribers", "100000")
    assert "WARNING" not in capsys.readouterr().out
    _, medium = _run_cost(tmp_path, "--subscribers", "10000000")
    assert "may be cancelled" in capsys.readouterr().out.split("WARNING")[1]
    _, large = _run_cost(tmp_path, "--subscribers", "100000000")
    printed = capsys.readouterr().out
    assert "would be cancelled" in printed.split("WARNING")[1]
    assert printed.count("WARNING") == 1 and "may be cancelled" not in printed
    assert "at most 7,334.2 GiB (priority.sql)" in printed
    small, medium, large = (document["dashboard_query"] for document in (small, medium, large))
    assert {query["workgroup_cutoff_gib"] for query in (small, medium, large)} == {100}  # cdk.json
    # read once, 10M fits and 100M does not; read for every WITH reference, 10M may not
    assert small["gib_read_once"] < medium["gib_read_once"] < 100 < large["gib_read_once"]
    assert small["gib_at_most"] < 100 < medium["gib_at_most"]
    assert large["gib_read_once"] == pytest.approx(1000 * small["gib_read_once"], rel=0.01)
    assert [(q["within_cutoff"], q["within_cutoff_at_most"]) for q in (small, medium, large)] == [
        (True, True),
        (True, False),
        (False, False),
    ]
    # the largest query decides
    assert small["gib_at_most"] == max(q["gib_at_most"] for q in small["queries"])


def test_more_records_per_subscriber_cost_more(tmp_path: Path) -> None:
    _, fifty = _run_cost(tmp_path, "--subscribers", "100000")
    _, hundred = _run_cost(
        tmp_path, "--subscribers", "100000", "--records-per-subscriber-day", "100"
    )

    def data_in(document: dict) -> float:
        (line,) = [x for x in document["lines"] if x["item"].startswith("data in")]
        return line["monthly_usd"]

    assert data_in(hundred) == pytest.approx(2 * data_in(fifty), rel=0.01)
    assert hundred["monthly_usd_total"] > fifty["monthly_usd_total"]


def test_cost_needs_a_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _run_cost(tmp_path)
    assert code == 2
    assert "--subscribers" in capsys.readouterr().err


def test_a_bad_price_table_is_an_error_naming_the_price(tmp_path: Path) -> None:
    table = json.loads(PRICES.read_text())
    table["prices"]["lambda.requests_per_million"]["basis"] = "guessed"
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps(table))
    with pytest.raises(PriceError, match=r"lambda\.requests_per_million"):
        load_prices(bad)


def test_the_price_table_says_where_every_price_comes_from() -> None:
    table = load_prices()
    assert table.region == "eu-west-2" and table.compiled
    for price_id, price in table.prices.items():
        assert price.source.startswith("https://aws.amazon.com/"), price_id
        assert price.basis in ("quoted", "assumed")


def test_committed_inputs_replay_to_the_calls_the_twin_made() -> None:
    # The calls-per-day function, at the deployed policy, contacts exactly as many episodes
    # as the handlers did in the measured twin run: the same policy code, the same order.
    inputs = load_inputs(INPUTS)
    day = inputs["day"]
    made = calls_per_day(candidates_of(day), day["subscribers"], day["days"], deployed_policy())
    assert day["first_contacts"] > 100
    assert made.calls == day["first_contacts"]
