"""The dated price table the model prices usage with (``simulator/prices_eu_west_2.json``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRICES = Path(__file__).resolve().parents[1] / "prices_eu_west_2.json"
BASES = ("quoted", "assumed")


class PriceError(ValueError):
    """A price table entry is missing or malformed."""


@dataclass(frozen=True)
class Price:
    """One list price: value in USD per ``unit``, where it comes from and how sure it is."""

    value: float
    unit: str
    source: str
    basis: str


@dataclass(frozen=True)
class PriceTable:
    """Prices by id (``service.item``), with the table's region and compilation date."""

    region: str
    compiled: str
    prices: Mapping[str, Price]

    def __getitem__(self, price_id: str) -> Price:
        try:
            return self.prices[price_id]
        except KeyError as error:
            raise PriceError(f"the price table has no {price_id!r}") from error

    @property
    def assumed(self) -> list[str]:
        """Ids of the prices not read from their source."""
        return sorted(pid for pid, price in self.prices.items() if price.basis == "assumed")


def _price(price_id: str, raw: Mapping[str, Any]) -> Price:
    for key in ("value", "unit", "source", "basis"):
        if key not in raw:
            raise PriceError(f"price {price_id!r}: missing {key!r}")
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PriceError(f"price {price_id!r}: value must be a number >= 0, got {value!r}")
    if raw["basis"] not in BASES:
        raise PriceError(f"price {price_id!r}: basis must be one of {BASES}, got {raw['basis']!r}")
    return Price(float(value), str(raw["unit"]), str(raw["source"]), str(raw["basis"]))


def load_prices(path: Path | str = PRICES) -> PriceTable:
    """Read and check a price table file."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise PriceError(f"{path}: {error}") from error
    return PriceTable(
        region=str(raw.get("region", "")),
        compiled=str(raw.get("compiled", "")),
        prices={pid: _price(pid, entry) for pid, entry in raw["prices"].items()},
    )
