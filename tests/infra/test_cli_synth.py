"""`cdk synth` through the pinned CLI: the locked version, no notices, the tests' template."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.xdist_group("synth"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# What the CLI adds to what the app synthesizes (path and asset metadata, version reporting).
CLI_ONLY_RESOURCES = {"CDKMetadata"}
CLI_ONLY_CONDITIONS = {"CDKMetadataAvailable"}


def _cdk(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI from package-lock.json (`make setup`), with no silenced Node.js warning."""
    env = {
        k: v for k, v in os.environ.items() if k != "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"
    }
    return subprocess.run(
        ["npx", "--no-install", "cdk", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def _without_cli_metadata(template: dict[str, Any]) -> dict[str, Any]:
    resources = {
        logical_id: {key: value for key, value in resource.items() if key != "Metadata"}
        for logical_id, resource in template["Resources"].items()
        if logical_id not in CLI_ONLY_RESOURCES
    }
    conditions = {
        name: value
        for name, value in template.get("Conditions", {}).items()
        if name not in CLI_ONLY_CONDITIONS
    }
    return {**template, "Resources": resources, "Conditions": conditions}


@pytest.fixture(scope="module")
def cli_synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    outdir = tmp_path_factory.mktemp("cli.out")
    result = _cdk("synth", "--quiet", "--output", str(outdir))
    assert result.returncode == 0, result.stderr
    template = json.loads((outdir / "SubscriberFeedbackLoop.template.json").read_text())
    return result.stdout + result.stderr, template


def test_the_cli_is_the_version_package_json_pins() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    version = _cdk("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.split()[0] == pinned


def test_synth_prints_no_feature_flag_or_node_end_of_life_notice(cli_synth) -> None:
    output, _ = cli_synth
    assert "feature flags are not configured" not in output
    assert "end-of-life" not in output
    assert "not supported" not in output


def test_the_cli_synthesizes_the_template_the_tests_check(cli_synth, default) -> None:
    _, template = cli_synth
    assert "CDKMetadata" in template["Resources"]
    stripped = _without_cli_metadata(template)
    assert stripped["Resources"].keys() == default.json["Resources"].keys()
    assert stripped == {**default.json, "Conditions": default.json.get("Conditions", {})}
