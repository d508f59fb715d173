"""The ``standby`` command line (also ``python -m components``).

Exit codes: 0 success; 2 bad input (arguments, stack file, spec, budget); 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components.errors import BudgetError, SpecError, StackFileError

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    from components.plan.render import FORMATS

    parser = argparse.ArgumentParser(
        prog="standby", description="Active-standby topologies with Pulumi: offline tools."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser(
        "plan",
        help="run the Pulumi program under mocks and show resources, switch wiring, budget",
        description="Offline plan: no cloud, no Pulumi CLI, no credentials.",
    )
    plan.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.<stack>.yaml)")
    plan.add_argument("--format", choices=FORMATS, default="text")
    plan.add_argument(
        "--project-dir", type=Path, default=None,
        help="directory with Pulumi.yaml (default: current directory or a parent)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # argparse exits 2 with a usage message on bad args
    try:
        if args.command == "plan":
            return _plan(args)
    except (SpecError, BudgetError, StackFileError) as exc:
        print(f"standby: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 1  # pragma: no cover - argparse rejects unknown commands


def _plan(args: argparse.Namespace) -> int:
    from components.plan import make_plan
    from components.plan.render import render
    from components.plan.run import find_project_dir

    project_dir = args.project_dir or find_project_dir(Path.cwd())
    plan = make_plan(args.stack, project_dir.resolve())
    sys.stdout.write(render(plan, args.format))
    return 0


def entry() -> None:
    sys.exit(main())
