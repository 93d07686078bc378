"""How AWS meters items and records (simulator/units.py), on hand-computed examples."""

import pytest

from simulator.units import item_size, kinesis_billed_kib, read_units, write_units


def test_item_size_follows_the_documented_rules() -> None:
    # Given an item with a string, a number, a Boolean, a list and a map
    item = {
        "PhoneNumber": {"S": "+447700900123"},  # 11 + 13
        "Sessions": {"N": "120"},  # 8 + (2 significant digits -> 1) + 1
        "OptedOut": {"BOOL": True},  # 8 + 1
        "Ids": {"L": [{"S": "ab"}, {"S": "c"}]},  # 3 + 3 + (1 + 2) + (1 + 1)
        "Last": {"M": {"At": {"S": "2026"}}},  # 4 + 3 + (1 + 2 + 4)
    }
    # Then its size is the sum of names and values, with list/map overheads
    assert item_size(item) == (11 + 13) + (8 + 2) + (8 + 1) + (3 + 3 + 3 + 2) + (4 + 3 + 7)


@pytest.mark.parametrize(
    ("number", "size"),
    [("0", 2), ("7", 2), ("12", 2), ("123", 3), ("0.001", 2), ("1795600000", 4), ("-12.5", 3)],
)
def test_numbers_cost_a_byte_per_two_significant_digits_plus_one(number: str, size: int) -> None:
    assert item_size({"": {"N": number}}) == size


def test_no_item_has_no_size() -> None:
    assert item_size(None) == 0
    assert item_size({}) == 0


@pytest.mark.parametrize(
    ("before", "after", "units"),
    [(0, 100, 1), (0, 1024, 1), (0, 1025, 2), (4800, 4900, 5), (3000, 500, 3), (0, 0, 1)],
)
def test_a_write_costs_the_larger_image_per_kb_and_at_least_one_unit(
    before: int, after: int, units: int
) -> None:
    assert write_units(before, after) == units


def test_reads_cost_per_4_kb_and_half_when_eventually_consistent() -> None:
    assert read_units(100, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(4097, consistent=False) == 1
    assert read_units(0, consistent=False) == 0.5


@pytest.mark.parametrize(("size", "kib"), [(1, 1), (183, 1), (1024, 1), (1025, 2), (4608, 5)])
def test_on_demand_kinesis_bills_each_record_rounded_up_to_a_kib(size: int, kib: int) -> None:
    assert kinesis_billed_kib(size) == kib
