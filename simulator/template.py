"""The synthesized CloudFormation template the twin is wired from, and its intrinsic functions.

The twin never restates the stack's wiring: names, queue settings, event source
mappings and environment variables all come from the template ``cdk synth`` produces
for the scenario's ``config`` (the same overrides ``cdk deploy -c`` would apply).
Synthesis takes half a minute, so templates are cached under ``cdk.out/twin-templates/`` keyed
by a hash of everything that can change them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / "cdk.out" / "twin-templates"
STACK_NAME = "SubscriberFeedbackLoop"
# Everything a synthesized template depends on, relative to the repo root.
SYNTH_INPUTS = (
    "app.py",
    "cdk.json",
    "stacks",
    "sql",
    "connect_flows",
    "lambdas/feedback_loop/policy.py",
)
NO_VALUE = object()


class WiringError(RuntimeError):
    """The template wires something the twin cannot emulate faithfully, or wires it wrongly."""


def inputs_digest(overrides: Mapping[str, Any] | None, root: Path = REPO_ROOT) -> str:
    """Hash of the synth inputs and the config overrides: the template cache key."""
    digest = hashlib.sha256(json.dumps(overrides or {}, sort_keys=True).encode())
    for name in SYNTH_INPUTS:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or not file.exists():
                continue
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:24]


def synthesize(overrides: Mapping[str, Any] | None = None, cache_dir: Path = CACHE_DIR) -> dict:
    """The stack's template for ``overrides``, from the cache or a fresh ``synth`` in a subprocess.

    The subprocess keeps the jsii/node runtime out of the twin's process; it runs the same
    ``stacks.application.synth_template`` the infra tests use, with cdk-nag off (the
    checks do not change the template and are the infra tests' job).
    """
    path = cache_dir / f"template-{inputs_digest(overrides)}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "eu-west-2"),
    }
    code = (
        "import json, sys\n"
        "sys.path[:0] = [sys.argv[3], sys.argv[3] + '/lambdas']\n"
        "from stacks.application import synth_template\n"
        "template = synth_template(json.loads(sys.argv[1]), checks=False)\n"
        "open(sys.argv[2], 'w').write(json.dumps(template))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(dict(overrides or {})), str(tmp), str(REPO_ROOT)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = [line for line in result.stderr.strip().splitlines() if line.strip()][-1:]
        raise WiringError(f"cdk synth failed: {tail[0] if tail else 'no output'}")
    tmp.replace(path)
    return json.loads(path.read_text(encoding="utf-8"))


class Template:
    """Read access to a template's resources by type and logical id."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.resources: dict[str, dict[str, Any]] = dict(body.get("Resources", {}))
        self.parameters: dict[str, Any] = dict(body.get("Parameters", {}))
        self.conditions: dict[str, Any] = dict(body.get("Conditions", {}))
        self.mappings: dict[str, Any] = dict(body.get("Mappings", {}))

    def of_type(self, resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(logical id, Properties)`` of each resource of ``resource_type``, in order."""
        for logical_id, resource in self.resources.items():
            if resource.get("Type") == resource_type:
                yield logical_id, resource.get("Properties", {})

    def type_of(self, logical_id: str) -> str:
        """The resource type of ``logical_id``; a missing id is a wiring error."""
        if logical_id not in self.resources:
            raise WiringError(f"the template references {logical_id!r}, which it does not define")
        return self.resources[logical_id]["Type"]


_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class Resolver:
    """Evaluates CloudFormation intrinsic functions against provisioned resources.

    ``ref(logical_id)`` and ``get_att(logical_id, attribute)`` come from the provisioner;
    pseudo parameters from the fake account. Unknown intrinsics raise :class:`WiringError`
    rather than passing an unresolved object to a handler.
    """

    def __init__(
        self,
        template: Template,
        ref: Callable[[str], str],
        get_att: Callable[[str, str], Any],
        pseudo: Mapping[str, Any],
    ) -> None:
        self._template = template
        self._ref = ref
        self._get_att = get_att
        self._pseudo = dict(pseudo)

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its concrete value."""
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._resolve_ref(argument)
            if key == "Condition":
                return self._condition(argument)
            if key.startswith("Fn::"):
                method = getattr(self, "_fn_" + key[4:].lower(), None)
                if method is None:
                    raise WiringError(f"intrinsic function {key} is not supported by the twin")
                return method(argument)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _resolve_ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._template.parameters:
            parameter = self._template.parameters[name]
            if "Default" not in parameter:
                raise WiringError(f"parameter {name!r} has no default and the twin passes none")
            return parameter["Default"]
        return self._ref(name)

    def _condition(self, name: str) -> bool:
        if name not in self._template.conditions:
            raise WiringError(f"condition {name!r} is not defined in the template")
        return bool(self.resolve(self._template.conditions[name]))

    def _fn_getatt(self, argument: Any) -> Any:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        logical_id, attribute = argument
        return self._get_att(logical_id, self.resolve(attribute))

    def _fn_join(self, argument: list) -> str:
        separator, items = argument
        return str(separator).join(str(item) for item in self.resolve(items))

    def _fn_select(self, argument: list) -> Any:
        index, items = self.resolve(argument)
        try:
            return items[int(index)]
        except IndexError as error:
            raise WiringError(f"Fn::Select index {index} out of range for {items!r}") from error

    def _fn_split(self, argument: list) -> list[str]:
        separator, text = self.resolve(argument)
        return str(text).split(separator)

    def _fn_sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        variables = self.resolve(variables)

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self._get_att(logical_id, attribute))
            return str(self._resolve_ref(name))

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")

    def _fn_base64(self, argument: Any) -> str:
        return base64.b64encode(str(self.resolve(argument)).encode()).decode()

    def _fn_findinmap(self, argument: list) -> Any:
        name, top, second = self.resolve(argument)
        try:
            return self._template.mappings[name][top][second]
        except KeyError as error:
            raise WiringError(
                f"Fn::FindInMap {name}/{top}/{second} is not in the template"
            ) from error

    def _fn_if(self, argument: list) -> Any:
        condition, when_true, when_false = argument
        return self.resolve(when_true if self._condition(condition) else when_false)

    def _fn_equals(self, argument: list) -> bool:
        left, right = self.resolve(argument)
        return left == right

    def _fn_not(self, argument: list) -> bool:
        return not self.resolve(argument[0])

    def _fn_and(self, argument: list) -> bool:
        return all(self.resolve(argument))

    def _fn_or(self, argument: list) -> bool:
        return any(self.resolve(argument))
