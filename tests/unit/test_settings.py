"""Handler settings from the environment: whole numbers are parsed, anything else refused."""

from dataclasses import dataclass

import pytest

from feedback_loop.adapters.settings import load_settings
from feedback_loop.errors import ConfigError


@dataclass(frozen=True)
class _Settings:
    lake_bucket: str
    parallelization_factor: int


def test_a_whole_number_setting_is_an_int(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKE_BUCKET", "lake")
    monkeypatch.setenv("PARALLELIZATION_FACTOR", "10")
    assert load_settings(_Settings) == _Settings("lake", 10)


@pytest.mark.parametrize("value", ["ten", "1.5", None])
def test_a_whole_number_setting_that_is_missing_or_not_one_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    monkeypatch.setenv("LAKE_BUCKET", "lake")
    if value is None:
        monkeypatch.delenv("PARALLELIZATION_FACTOR", raising=False)
    else:
        monkeypatch.setenv("PARALLELIZATION_FACTOR", value)
    with pytest.raises(ConfigError, match="PARALLELIZATION_FACTOR"):
        load_settings(_Settings)
