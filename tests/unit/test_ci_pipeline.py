"""The users' GitHub workflow, .ci/run and the Makefile run the same checks."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def _make_targets(commands: list[str]) -> list[str]:
    """The targets of ``make ...`` commands; any other command is a test failure."""
    targets = []
    for command in commands:
        words = command.split()
        assert words[:1] == ["make"], f"not a Make target: {command!r}"
        assert all(re.fullmatch(r"[a-z][a-z-]*", w) for w in words[1:]), command
        targets += words[1:]
    return targets


def _workflow_commands() -> list[str]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return [
        line.strip()
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "run" in step
        for line in step["run"].splitlines()
        if line.strip()
    ]


def _ci_run_commands() -> list[str]:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip().startswith("make")]


def _ci_targets() -> list[str]:
    match = re.search(r"^CI_TARGETS := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match
    return match.group(1).split()


def test_every_workflow_command_is_an_existing_make_target() -> None:
    targets = _make_targets(_workflow_commands())
    assert targets
    for target in targets:
        dry_run = subprocess.run(
            ["make", "--dry-run", target], cwd=ROOT, capture_output=True, text=True
        )
        assert dry_run.returncode == 0, f"make {target}: {dry_run.stderr}"


def test_workflow_and_ci_run_call_the_same_targets_in_the_same_order() -> None:
    assert _make_targets(_workflow_commands()) == _make_targets(_ci_run_commands())


def test_they_run_what_make_pr_runs_after_setup() -> None:
    assert _make_targets(_ci_run_commands()) == ["setup", *_ci_targets()]
    assert {"lint", "synth-check", "test"} <= set(_ci_targets())


def test_a_command_that_is_not_a_make_target_fails_the_check() -> None:
    with pytest.raises(AssertionError, match="not a Make target"):
        _make_targets(["make lint", "pytest -q"])


def test_an_unknown_target_fails_make_dry_run() -> None:
    dry_run = subprocess.run(
        ["make", "--dry-run", "no-such-target"], cwd=ROOT, capture_output=True, text=True
    )
    assert dry_run.returncode != 0
