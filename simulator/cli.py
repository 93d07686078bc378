"""``python -m simulator run|redrive|bench|cost|whatif|export``: the local twin's command line.

``run [--scenario FILE] [--out DIR] [--seed N]`` replays a scenario through the twin;
``redrive`` does the same, then moves every dead-letter queue back to its source with
faults switched off (simulator/redrive.py). ``bench`` times the default day; ``bench
--dense`` is the dense-load bench (simulator/dense.py). ``cost`` prices a size
(simulator/cost/). ``whatif`` replays a probe export against candidate configs
(simulator/whatif.py); ``export`` writes a large synthetic probe export (simulator/export.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from feedback_loop.errors import ConfigError
from simulator.cost.command import add_arguments as add_cost_arguments
from simulator.dense import add_arguments as add_dense_arguments
from simulator.scenario import ScenarioError, default_scenario, load_scenario
from simulator.template import WiringError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run", "run a scenario through the local twin"),
        ("redrive", "run a scenario, then redrive its dead-letter queues with faults off"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--scenario", type=Path, help="scenario JSON file (default: a generated day)"
        )
        command.add_argument("--out", type=Path, default=Path("out"), help="output directory")
        command.add_argument(
            "--seed", type=int, default=7, help="seed of the default scenario, model and faults"
        )
    bench = commands.add_parser("bench", help="time the default scenario and count its AWS calls")
    bench.add_argument("--seed", type=int, default=7, help="seed of the default scenario")
    add_dense_arguments(bench)
    add_cost_arguments(commands.add_parser("cost", help="monthly cost estimate at a given size"))
    _whatif_parser(commands)
    return parser


def _whatif_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    whatif = commands.add_parser("whatif", help="replay a probe export against candidate configs")
    whatif.add_argument(
        "--probe-export",
        required=True,
        help="JSON Lines or Parquet file or folder of probe records, or s3://<lake>/probes/",
    )
    whatif.add_argument(
        "--config", type=Path, action="append", default=[], help="JSON of cdk.json keys; repeat"
    )
    whatif.add_argument("--out", type=Path, default=Path("out"), help="output directory")
    athena = whatif.add_argument_group("the archive in the account (s3:// export)")
    athena.add_argument("--from", dest="first_day", help="first day, YYYY-MM-DD")
    athena.add_argument("--to", dest="last_day", help="last day, YYYY-MM-DD")
    athena.add_argument("--workgroup", help="Athena workgroup (the stack's output WhatIfWorkGroup)")
    athena.add_argument("--region", help="AWS region (default: from the environment)")
    export = commands.add_parser("export", help="write a large synthetic probe export")
    export.add_argument("--subscribers", type=int, required=True)
    export.add_argument("--days", type=int, required=True)
    export.add_argument(
        "--out", type=Path, default=Path("out/probes.parquet"), help=".parquet or .jsonl file"
    )
    export.add_argument("--seed", type=int, default=7, help="seed of the generator")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command in ("whatif", "export"):
        return _offline(args)
    if args.command == "cost":
        from simulator.cost.command import run

        return run(args)
    if args.command == "bench" and (args.dense or args.write_day):
        from simulator.dense import run_bench_command

        return run_bench_command(args)
    if args.command == "bench":
        from simulator.bench import run_bench

        run_bench(args.seed)
        return 0
    # moto and the analytics are imported only when running
    from simulator.redrive import run_redrive
    from simulator.twin import run_twin

    try:
        if args.scenario is not None:
            scenario = load_scenario(args.scenario)
        else:
            scenario = default_scenario(args.seed)
            print(scenario.description, file=sys.stderr)
    except (ScenarioError, ConfigError) as error:
        print(f"error: scenario {error}", file=sys.stderr)
        return EXIT_USAGE
    from simulator.iam import UnmodelledCall

    try:
        runner = run_redrive if args.command == "redrive" else run_twin
        result = runner(scenario, args.out, args.seed)
    except (WiringError, UnmodelledCall) as error:
        print(f"error: wiring: {error}", file=sys.stderr)
        return 1
    summary = result.summary
    print(
        f"{summary['probe_events']} probe events, {summary['incidents']} incidents, "
        f"{summary['engagements']} engagements, {summary['calls_started']} calls, "
        f"{summary['feedback_received']} feedback, {summary['dead_lettered']} dead-lettered "
        f"in {summary['wall_seconds']} s"
    )
    print(
        f"duplicate calls {summary['duplicate_calls']}, "
        f"engagements lost {summary['engagements_lost']}, "
        f"access denied {summary['access_denied']}, "
        f"peak concurrent calls {summary['peak_concurrent_calls']}, "
        f"throttles absorbed {summary['throttles_absorbed']}, faults {summary['faults_injected']}"
    )
    for queue, figures in summary.get("redriven", {}).items():
        print(f"redrive {queue}: {json.dumps(figures, sort_keys=True)}")
    print(f"Report: {result.report.resolve()}")
    return 0


def _offline(args: argparse.Namespace) -> int:
    """``whatif`` and ``export``: no twin, no moto."""
    if args.command == "export":
        from simulator.export import main as export_main

        return export_main(args.subscribers, args.days, args.out, args.seed)
    from simulator.whatif import WhatIfError
    from simulator.whatif import main as whatif_main

    athena = {
        "first_day": args.first_day,
        "last_day": args.last_day,
        "workgroup": args.workgroup,
        "region": args.region,
    }
    try:
        whatif_main(args.probe_export, args.config, args.out, athena)
    except WhatIfError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0
