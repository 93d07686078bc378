"""Running the twin the way a user does (``python -m simulator run``) and reading its outputs."""

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from feedback_loop.lake import decode_jsonl_gz

REPO = Path(__file__).resolve().parents[2]


def run_scenario(folder: Path, document: Mapping[str, Any], timeout: int = 900) -> Path:
    """Write ``document`` as ``folder/scenario.json``, run it with its outputs in ``folder``."""
    path = folder / "scenario.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "run", "--scenario", str(path), "--out", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def lake(out: Path, prefix: str) -> list[dict[str, Any]]:
    """Every record the run left under ``lake/<prefix>/``."""
    return [
        record
        for path in sorted((out / "lake" / prefix).rglob("*.jsonl.gz"))
        for record in decode_jsonl_gz(path.read_bytes())
    ]


def calls(out: Path) -> list[dict[str, Any]]:
    """``calls.jsonl``: every contact attempt the outside world received."""
    lines = (out / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]
