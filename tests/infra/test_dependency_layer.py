"""The dependency layer ships what the handlers import and nothing they do not."""

import subprocess
import sys
from pathlib import Path

import pytest
from infra_lookup import of_type

from stacks.config import REPO_ROOT

pytestmark = pytest.mark.slow


def _layer_directory(synthesized) -> Path:
    (layer,) = of_type(synthesized.resources, "AWS::Lambda::LayerVersion").values()
    object_key = layer["Properties"]["Content"]["S3Key"]
    return Path(synthesized.app.outdir) / f"asset.{object_key.removesuffix('.zip')}"


def test_layer_holds_the_pinned_packages_without_geocoding_data(default) -> None:
    python = _layer_directory(default) / "python"
    installed = {path.name for path in python.iterdir()}
    assert {"phonenumbers", "tzdata"} <= installed
    assert not (python / "phonenumbers" / "geodata").exists()
    assert not (python / "phonenumbers" / "carrierdata").exists()
    assert not list(python.rglob("__pycache__"))
    size = sum(path.stat().st_size for path in python.rglob("*") if path.is_file())
    assert size < 10 * 1024 * 1024


def test_calling_hours_work_from_the_layer_alone(default) -> None:
    """No site-packages and no system zone files: the number's zone and its local time
    come from the layer (as on Lambda, where neither package is in the runtime)."""
    probe = f"""
import sys, zoneinfo
sys.path[:0] = [{str(_layer_directory(default) / "python")!r}, {str(REPO_ROOT / "lambdas")!r}]
zoneinfo.reset_tzpath(to=[])
from datetime import datetime, UTC
from feedback_loop.contact_policy import subscriber_zone
zone = subscriber_zone(None, "+12125550123", "Europe/London")
import phonenumbers
assert phonenumbers.__file__.startswith(sys.path[0]), phonenumbers.__file__
print(zone.key, datetime(2026, 12, 1, 12, tzinfo=UTC).astimezone(zone).hour)
"""
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["America/New_York", "7"]
