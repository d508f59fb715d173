"""``standby readiness --stack NAME [--format table|json] [--fail-on STATUS]
[--endpoint-url URL]``: the arguments and the run, wired into ``components.cli``.

Exit 0 when the check ran (whatever it found), 1 with ``--fail-on S`` when the overall
status is S or worse (READY < UNKNOWN < NOT_AUTHORIZED < NOT_READY), 2 on bad arguments or
a bad stack file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from components.dr.readiness import (
    STATUSES,
    Report,
    check_stack,
    fails,
    render_json,
    render_table,
)

EXIT_FAILED = 1
_FAIL_ON = STATUSES[1:]  # failing on READY would fail every run


def fail_on(value: str) -> str:
    if value not in _FAIL_ON:
        raise argparse.ArgumentTypeError(
            f"{value!r}; allowed: {', '.join(_FAIL_ON)} (exit 1 when the overall status is "
            "that or worse, in the order " + " < ".join(STATUSES) + ")")
    return value


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    from components.cli import endpoint_url, project_dir, stack_name

    help_ = "is the standby ready? parity of both sides and conformance to the plan"
    p = sub.add_parser("readiness", help=help_, description=help_, parents=[common])
    p.add_argument("--stack", required=True, type=stack_name,
                   help="stack name (stacks/Pulumi.<stack>.yaml)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--fail-on", type=fail_on, default=None, metavar="STATUS",
                   help="exit 1 when the overall status is STATUS or worse: "
                        + ", ".join(_FAIL_ON))
    p.add_argument("--endpoint-url", default=None, type=endpoint_url,
                   help="AWS endpoint (e.g. a local moto server); "
                        "AWS_ENDPOINT_URL_<SERVICE> still wins for that service")
    p.add_argument("--project-dir", type=project_dir, default=None)


def check_named_stack(stack_name: str, project_dir: Path | None = None,
                      endpoint_url: str | None = None) -> Report:
    """The readiness report of a stack by name, as the command computes it (for callers
    such as a drill's preflight). Raises ``StackFileError``/``SpecError`` on a bad stack."""
    from components.cli import _load

    stack, spec = _load(argparse.Namespace(stack=stack_name, project_dir=project_dir))
    plan_run = None
    clients = None
    if spec.cloud == "aws":
        import pulumi

        from components.errors import StackFileError
        from components.plan.run import run_program
        from components.program import main
        from components.runtime.aws.clients import Clients

        try:
            plan_run = run_program(stack, main)
        except pulumi.InputPropertiesError as exc:  # the program's own refusal of an input
            raise StackFileError(str(exc)) from None
        clients = Clients(endpoint_url=endpoint_url)
    return check_stack(stack_name, spec, plan_run, clients)


def run(args: argparse.Namespace) -> int:
    report = check_named_stack(args.stack, args.project_dir, args.endpoint_url)
    sys.stdout.write(render_table(report) if args.format == "table" else render_json(report))
    return EXIT_FAILED if fails(report.overall, args.fail_on) else 0
