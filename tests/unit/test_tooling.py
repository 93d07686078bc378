"""What `make` installs is pinned, consistent, and what deploys: locks, Node.js, CDK flags."""

import json
import re
import tarfile
from pathlib import Path

import aws_cdk

from stacks.functions import POWERTOOLS_LAYER, POWERTOOLS_LAYER_VERSION

ROOT = Path(__file__).resolve().parents[2]
# Flags deliberately left at their old behaviour; each is explained in docs/TOOLING.md.
FLAGS_KEPT_OFF = {"@aws-cdk/core:enableAdditionalMetadataCollection": False}
# Powertools release in each public layer version used (docs/TOOLING.md, Python).
LAYER_SHIPS = {("AWSLambdaPowertoolsPythonV3-python312-arm64", 27): "3.23.0"}
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", re.MULTILINE)


def _recommended_flags() -> dict[str, object]:
    """``recommended-feature-flags.json`` of the installed aws-cdk-lib (what `cdk init` writes)."""
    bundle = next((Path(aws_cdk.__file__).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz"))
    with tarfile.open(bundle) as archive:
        member = archive.extractfile("package/recommended-feature-flags.json")
        assert member is not None
        return dict(json.load(member))


def _context() -> dict[str, object]:
    return dict(json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"])


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text(encoding="utf-8")
    return {name.lower().replace("_", "-"): version for name, version in _PIN.findall(text)}


def test_cdk_json_sets_every_flag_the_installed_library_recommends() -> None:
    recommended, context = _recommended_flags(), _context()
    assert len(recommended) > 50
    assert sorted(set(recommended) - set(context)) == []
    differing = {flag: context[flag] for flag in recommended if context[flag] != recommended[flag]}
    assert differing == FLAGS_KEPT_OFF


def test_every_flag_kept_at_its_old_behaviour_has_its_reason_written() -> None:
    tooling = (ROOT / "docs" / "TOOLING.md").read_text(encoding="utf-8")
    assert all(f"`{flag}`" in tooling for flag in FLAGS_KEPT_OFF)


def test_every_locked_line_is_pinned_with_hashes() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        requirements = re.findall(r"^[A-Za-z0-9].*$", (ROOT / lock).read_text(), re.MULTILINE)
        assert requirements
        assert [r for r in requirements if not re.match(r"^\S+==\S+ \\$", r)] == []


def test_the_dev_lock_installs_the_runtime_lock_unchanged() -> None:
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime


def test_every_requirement_is_locked() -> None:
    for source, lock in (("requirements.txt", "requirements.lock"),
                         ("requirements-dev.txt", "requirements-dev.lock")):  # fmt: skip
        names = re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)", (ROOT / source).read_text(), re.M)
        pinned = _pins(lock)
        assert [n for n in names if n.lower().replace("_", "-") not in pinned] == []


def test_node_version_is_one_major_release_declared_in_both_places() -> None:
    nvmrc = (ROOT / ".nvmrc").read_text(encoding="utf-8").strip()
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    assert re.fullmatch(r"\d+\.\d+\.\d+", nvmrc)
    major = int(nvmrc.split(".")[0])
    assert major in (22, 24)
    assert package["engines"]["node"] == f">={major} <{major + 1}"


def test_the_cdk_cli_is_pinned_exactly_and_locked() -> None:
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    pinned = package["devDependencies"]["aws-cdk"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned)
    assert lock["packages"]["node_modules/aws-cdk"]["version"] == pinned


def test_tests_run_the_powertools_release_the_layer_ships() -> None:
    shipped = LAYER_SHIPS[(POWERTOOLS_LAYER, POWERTOOLS_LAYER_VERSION)]
    assert _pins("requirements.lock")["aws-lambda-powertools"] == shipped
