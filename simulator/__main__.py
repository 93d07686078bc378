"""``python -m simulator``: the local twin's command line."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lambdas"))

from simulator.cli import main

sys.exit(main())
