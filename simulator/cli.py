"""``python -m simulator run [--scenario FILE] [--out DIR] [--seed N]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from feedback_loop.errors import ConfigError
from simulator.scenario import ScenarioError, default_scenario, load_scenario
from simulator.template import WiringError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a scenario through the local twin")
    run.add_argument("--scenario", type=Path, help="scenario JSON file (default: a generated day)")
    run.add_argument("--out", type=Path, default=Path("out"), help="output directory (out/)")
    run.add_argument("--seed", type=int, default=7, help="seed of the default scenario and model")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    from simulator.twin import run_twin  # imports moto and the analytics: only when running

    try:
        if args.scenario is not None:
            scenario = load_scenario(args.scenario)
        else:
            scenario = default_scenario(args.seed)
            print(scenario.description, file=sys.stderr)
    except (ScenarioError, ConfigError) as error:
        print(f"error: scenario {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = run_twin(scenario, args.out, args.seed)
    except WiringError as error:
        print(f"error: wiring: {error}", file=sys.stderr)
        return 1
    summary = result.summary
    print(
        f"{summary['probe_events']} probe events, {summary['incidents']} incidents, "
        f"{summary['engagements']} engagements, {summary['calls_started']} calls, "
        f"{summary['feedback_received']} feedback, {summary['dead_lettered']} dead-lettered "
        f"in {summary['wall_seconds']} s"
    )
    print(f"Report: {result.report.resolve()}")
    return 0
