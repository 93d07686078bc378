"""The dependency layer ships what the handlers import and nothing they do not."""

import subprocess
import sys
from pathlib import Path

import pytest
from infra_lookup import function_id, of_type

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
from feedback_loop.contact_policy import CallingHours, subscriber_zones
(zone,) = subscriber_zones(None, "+12125550123", "Europe/London", CallingHours())
import phonenumbers
assert phonenumbers.__file__.startswith(sys.path[0]), phonenumbers.__file__
print(zone.key, datetime(2026, 12, 1, 12, tzinfo=UTC).astimezone(zone).hour)
"""
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["America/New_York", "7"]


def test_layer_holds_nothing_built_for_this_machine(default) -> None:
    """The layer is copied from this machine's packages but runs on arm64: no compiled
    extension may ship (protobuf's ``google/_upb`` is left out)."""
    python = _layer_directory(default) / "python"
    assert (python / "google" / "protobuf").is_dir()
    compiled = [
        str(path.relative_to(python))
        for path in python.rglob("*")
        if path.suffix in {".so", ".pyd", ".dylib"} or ".so." in path.name
    ]
    assert compiled == []


def test_kpl_aggregates_unpack_from_the_layer_alone(default) -> None:
    """What Ingest_probe_events imports to unpack KPL aggregates loads from the layer with
    the function's environment, in protobuf's pure-Python implementation."""
    function = default.resources[function_id(default.resources, "Ingest_probe_events")]
    environment = function["Properties"]["Environment"]["Variables"]
    probe = f"""
import base64, sys
sys.path[:0] = [{str(_layer_directory(default) / "python")!r}, {str(REPO_ROOT / "lambdas")!r}]
from google.protobuf.internal import api_implementation
from aws_kinesis_agg.aggregator import RecordAggregator
from feedback_loop.adapters.kinesis import user_records
packer = RecordAggregator()
for n in range(3):
    packer.add_user_record(f"+4477009001{{n:02d}}", b'{{"n": %d}}' % n)
_, _, data = packer.clear_and_get().get_contents()
record = {{"eventID": "shardId-000000000000:1", "kinesis": {{"sequenceNumber": "1",
          "kinesisSchemaVersion": "1.0", "approximateArrivalTimestamp": 1.0,
          "partitionKey": "+447700900100", "data": base64.b64encode(data).decode()}}}}
print(api_implementation.Type(), len(list(user_records([record]))))
"""
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": environment.get(
                "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "unset"
            )
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "3"]
