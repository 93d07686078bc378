#!/usr/bin/env python3
"""CDK entry point: read the ``feedback_loop`` config, build the stack, attach cdk-nag, synth."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lambdas"))

from stacks.application import build_app

if __name__ == "__main__":
    build_app(outdir=os.environ.get("CDK_OUTDIR", "cdk.out")).synth()
