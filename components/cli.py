"""The ``standby`` command line (also ``python -m components``).

Exit codes: 0 success; 2 bad input (arguments, stack file, spec, budget, monitor
configuration); 1 anything else (a refused or failed switch, a cloud error).

``status`` and ``switch`` talk to the deployed stack (or a local sandbox with
``--endpoint-url``). They resolve names from the stack file, read the deployed monitor's
environment for the switch wiring, and use the monitors' own lease, switchers and log.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

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
    for name, help_ in (("status", "the active side of every layer and the last switches"),
                        ("switch", "a planned switchover or failback of one layer")):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.<stack>.yaml)")
        p.add_argument("--endpoint-url", default=None,
                       help="AWS endpoint (e.g. a local moto server); "
                            "AWS_ENDPOINT_URL_<SERVICE> still wins for that service")
        p.add_argument("--project-dir", type=Path, default=None)
        if name == "status":
            p.add_argument("--format", choices=("text", "json"), default="text")
            p.add_argument("--limit", type=int, default=5, help="switches shown per layer")
        else:
            p.add_argument("--layer", required=True, choices=("dns", "gateway", "logic", "data"))
            p.add_argument("--to", required=True, choices=("standby", "primary"))
            p.add_argument("--reason", required=True, help="recorded in the switch log")
            p.add_argument("--scope", action="append", default=None,
                           help="only this scope (repeatable; default: every scope)")
            p.add_argument("--region", default=None,
                           help="region of the monitor whose wiring is used "
                                "(default: the control region, which survives the primary)")
            p.add_argument("--force", action="store_true",
                           help="switch even if the target side fails its probes")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # argparse exits 2 with a usage message on bad args
    try:
        if args.command == "plan":
            return _plan(args)
        if args.command in ("status", "switch"):
            return _ops(args)
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


def _ops(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from components import naming
    from components.plan.run import find_project_dir, read_stack
    from components.program import CONFIG_KEY
    from components.runtime.aws import ops
    from components.runtime.aws.clients import Clients
    from components.runtime.errors import ConfigError, RuntimeFailure
    from components.spec import parse_spec

    project_dir = (args.project_dir or find_project_dir(Path.cwd())).resolve()
    stack = read_stack(args.stack, project_dir)
    raw = stack.raw.get(f"{stack.project}:{CONFIG_KEY}")
    if raw is None:
        raise StackFileError(f"{stack.path}: no {stack.project}:{CONFIG_KEY} config")
    spec = parse_spec(raw)
    clients = Clients(endpoint_url=args.endpoint_url)
    control = spec.data_standby_region
    try:
        if args.command == "status":
            layers = ops.status(clients, naming.state_table(spec.name), control, args.limit)
            sys.stdout.write(_status_text(spec.name, layers) if args.format == "text"
                             else json.dumps([vars(x) for x in layers], indent=2) + "\n")
            return 0
        region = args.region or control
        if region not in spec.all_regions:
            print(f"standby: error: --region: {region!r}; allowed: "
                  f"{', '.join(spec.all_regions)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        function = naming.monitor_function(spec.name, args.layer, region)
        env = ops.monitor_env(clients, function, region)
        outcomes = ops.switch(clients, env, args.to, args.reason, args.scope, args.force)
    except ConfigError as exc:
        print(f"standby: error: the deployed monitor's configuration: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeFailure as exc:
        print(f"standby: refused: {exc}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as exc:
        print(f"standby: error: {exc} (is the stack deployed, and are the credentials and "
              "--endpoint-url right?)", file=sys.stderr)
        return 1
    failed = False
    for o in outcomes:
        mark = "switched" if o.switched else "not switched"
        print(f"{args.layer}/{o.scope}: {mark} to {args.to} "
              f"({'verified' if o.verified else 'unverified'}) {o.detail}".rstrip())
        failed |= not o.switched and not o.detail.startswith("already")
    return 1 if failed else 0


def _status_text(name: str, layers: list[Any]) -> str:
    import datetime as dt

    def when(ts: float | None) -> str:
        if ts is None:
            return "-"
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")

    out = [f"topology {name}", ""]
    for layer in layers:
        if not layer.scopes:
            out.append(f"{layer.layer:8} primary (no switch recorded)")
        for scope, st in layer.scopes.items():
            out.append(f"{layer.layer:8} {scope:16} active={st['active']:8} "
                       f"token={st['token']:<4} last switch {when(st['last_switch_at'])}")
        for rec in layer.log:
            tag = " [practice]" if rec["practice"] else ""
            out.append(f"    {when(rec['at'])} {rec['scope']} {rec['from']} -> {rec['to']} "
                       f"by {rec['by']} token {rec['token']}{tag}: {rec['reason']}")
    return "\n".join(out) + "\n"


def entry() -> None:
    sys.exit(main())
