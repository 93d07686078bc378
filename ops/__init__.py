"""Operator tools run by hand against the account (or the twin): redrive, erasure.

They reuse the Lambda code's shared package ``feedback_loop``, which lives in
``lambdas/`` (the Lambda asset root); the directory is put on ``sys.path`` here
so ``python -m ops.<tool>`` works from the repository root.
"""

import sys
from pathlib import Path

_LAMBDAS = str(Path(__file__).resolve().parent.parent / "lambdas")
if _LAMBDAS not in sys.path:
    sys.path.append(_LAMBDAS)
