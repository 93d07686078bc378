"""The ``cost`` subcommand's arguments and body (``simulator/cli.py`` only wires them in).

python -m simulator cost --subscribers N [--records-per-subscriber-day M] [--out DIR]
python -m simulator cost --measure RUN_DIR [--scenario FILE] [--dense FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulator.cost.measure import INPUTS, MeasureError, measure
from simulator.cost.prices import PRICES, PriceError
from stacks.config import CONTEXT_KEY, cdk_json_context

EXIT_USAGE = 2
DENSE = Path("out") / "dense" / "dense.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``cost`` subcommand's options."""
    parser.add_argument("--subscribers", type=float, help="subscribers to price")
    parser.add_argument(
        "--records-per-subscriber-day",
        type=float,
        default=50.0,
        help="probe records per subscriber and day (default 50)",
    )
    parser.add_argument("--out", type=Path, default=Path("out"), help="where cost.json goes")
    parser.add_argument("--prices", type=Path, default=PRICES, help="price table (JSON)")
    parser.add_argument("--inputs", type=Path, default=INPUTS, help="measured inputs (JSON)")
    parser.add_argument(
        "--measure",
        type=Path,
        metavar="RUN_DIR",
        help="instead of pricing, measure the inputs from a twin run's output directory",
    )
    parser.add_argument(
        "--scenario", type=Path, help="with --measure: the scenario file the run ran"
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="with --measure and no --scenario: the default day's"
    )
    parser.add_argument(
        "--dense", type=Path, default=DENSE, help="with --measure: the dense bench's dense.json"
    )


def _measure(args: argparse.Namespace) -> int:
    from simulator.scenario import ScenarioError, default_scenario, load_scenario
    from simulator.template import synthesize

    try:
        scenario = load_scenario(args.scenario) if args.scenario else default_scenario(args.seed)
        dense = json.loads(args.dense.read_text(encoding="utf-8"))
        template = synthesize(scenario.config)
        config = cdk_json_context()[CONTEXT_KEY] | dict(scenario.config)
        inputs = measure(args.measure, scenario, dense, template, config)
    except (ScenarioError, MeasureError, OSError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    inputs["provenance"] = {
        "regenerate": "make cost-inputs",
        "run": str(args.measure),
        "scenario": args.scenario.as_posix() if args.scenario else f"default day, seed {args.seed}",
        "dense": args.dense.as_posix(),
        "description": scenario.description,
    }
    args.inputs.write_text(json.dumps(inputs, indent=1) + "\n", encoding="utf-8")
    day = inputs["day"]
    print(
        f"measured {day['records_per_subscriber_day']} records/subscriber-day, "
        f"{day['incidents_per_record']:.4f} incidents/record, {len(day['candidates'])} "
        f"candidate engagements, {day['engagements']} calls -> {args.inputs}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """Price a size, or measure the inputs; returns the exit code."""
    if args.measure is not None:
        return _measure(args)
    if args.subscribers is None or args.subscribers <= 0:
        print("error: --subscribers N (a positive number) is required", file=sys.stderr)
        return EXIT_USAGE
    if args.records_per_subscriber_day <= 0:
        print("error: --records-per-subscriber-day must be positive", file=sys.stderr)
        return EXIT_USAGE
    from simulator.cost import report

    try:
        report(
            args.subscribers,
            args.records_per_subscriber_day,
            out_dir=args.out,
            inputs_path=args.inputs,
            prices_path=args.prices,
        )
    except (PriceError, OSError, json.JSONDecodeError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0
