"""The functions' third-party packages beyond boto3 and Powertools, as one Lambda layer.

The packages are named in ``layer/requirements.txt`` (pinned, with everything else, by
``requirements.lock``). They are pure Python, so the layer is made by copying the
installed distributions out of the synthesizing environment: no Docker, no network, the
same bytes on every machine with the same lock. phonenumbers' geocoding and carrier data
(40 of its 48 MB) are left out; the handlers never import them. protobuf's compiled
extension (``google/_upb``, built for this machine, not for the functions' arm64) is left
out too: protobuf then runs its pure-Python implementation, which ``Ingest_probe_events``
also selects explicitly (``PROTOBUF_ENVIRONMENT``).
"""

import re
import shutil
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import cast

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.config import REPO_ROOT

LAYER_SOURCE = REPO_ROOT / "layer"
# Folders of a distribution left out of the layer.
LEFT_OUT = {
    "phonenumbers": ("phonenumbers/geodata", "phonenumbers/carrierdata"),
    "protobuf": ("google/_upb",),
}
# The environment that makes protobuf use the implementation the layer ships.
PROTOBUF_ENVIRONMENT = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
SKIPPED_PARTS = ("__pycache__",)


def layer_packages(source: Path = LAYER_SOURCE) -> list[str]:
    """The distributions named in ``requirements.txt`` of the layer's source folder."""
    names = []
    for line in (source / "requirements.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            names.append(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])
    return names


def layer_files(distribution: str) -> list[tuple[Path, str]]:
    """(installed file, path inside the layer's ``python/``) for each file shipped."""
    dist = metadata.distribution(distribution)
    left_out = LEFT_OUT.get(distribution, ())
    shipped = []
    for file in dist.files or ():
        relative = PurePosixPath(str(file))
        if relative.parts[0].startswith("..") or any(p in SKIPPED_PARTS for p in relative.parts):
            continue  # scripts outside site-packages, byte code
        if any(str(relative).startswith(f"{folder}/") for folder in left_out):
            continue
        shipped.append((Path(str(dist.locate_file(file))), str(relative)))
    return shipped


@jsii.implements(ILocalBundling)
class _CopyInstalledPackages:
    """Local bundling: copy the pinned pure-Python packages into ``python/``."""

    def try_bundle(self, output_dir: str, _options: BundlingOptions) -> bool:
        target = Path(output_dir) / "python"
        for distribution in layer_packages():
            for source, relative in layer_files(distribution):
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination)
        return True


class DependencyLayer(Construct):
    """The layer every function gets alongside Powertools."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            description="Packages of layer/requirements.txt as pinned in requirements.lock",
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            code=lambda_.Code.from_asset(
                str(LAYER_SOURCE),
                # Named after what is shipped, so a new pin in the lock is a new layer.
                asset_hash_type=AssetHashType.OUTPUT,
                bundling=BundlingOptions(
                    # Never pulled: the local bundler always succeeds.
                    image=DockerImage.from_registry("unused-local-bundling"),
                    # jsii.implements makes it an ILocalBundling at run time; mypy cannot see it
                    local=cast(ILocalBundling, _CopyInstalledPackages()),
                ),
            ),
        )
