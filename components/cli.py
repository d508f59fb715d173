"""The ``standby`` command line (also ``python -m components``).

Exit codes: 0 success; 2 bad input (arguments, stack file, spec, budget, monitor
configuration), with ``error: <what>; allowed: <what>``; 1 anything else (a refused or failed
switch, a cloud error, an unexpected error: one line, the traceback only with ``--debug``).

``status`` and ``switch`` talk to the deployed stack (or a local sandbox with
``--endpoint-url``). They resolve names from the stack file, read the deployed monitor's
environment for the switch wiring, and use the monitors' own lease, switchers and log.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from components.errors import BudgetError, SpecError, StackFileError
from components.stackfile import STACK_NAME_HELP, STACK_NAME_RE

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1

_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
#: AWS and Tencent region names: lowercase letters, digits and '-' (us-east-1,
#: ap-guangzhou); whether the topology has the region is checked against the stack.
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,4}")
_SCOPE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MAX_REASON = 500
MAX_URL = 2048


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(value)} characters)"


def _bad(value: str, allowed: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{_shown(value)}; allowed: {allowed}")


def stack_name(value: str) -> str:
    if not STACK_NAME_RE.fullmatch(value):
        raise _bad(value, STACK_NAME_HELP)
    return value


def endpoint_url(value: str) -> str:
    allowed = "an http:// or https:// URL with a host and an optional port 1-65535, like " \
              "http://127.0.0.1:5000"
    if len(value) > MAX_URL or _CONTROL.search(value) or " " in value:
        raise _bad(value, allowed)
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError out of 0..65535
    except ValueError:
        raise _bad(value, allowed) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise _bad(value, allowed)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise _bad(value, allowed + " (no user, query or fragment)")
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}"
                            r"[a-z0-9])?)*\.?", host):
            raise _bad(value, allowed) from None
    return value


def region(value: str) -> str:
    if not _REGION.fullmatch(value) or len(value) > 32:
        raise _bad(value, "a region name like us-east-1 (lowercase letters, digits and '-')")
    return value


def project_dir(value: str) -> Path:
    allowed = "an existing directory that holds Pulumi.yaml"
    if not value or _CONTROL.search(value) or len(value) > 4096:
        raise _bad(value, allowed)
    path = Path(value)
    try:
        ok = (path / "Pulumi.yaml").is_file()
    except OSError:  # a name too long for the file system, or a denied directory
        ok = False
    if not ok:
        raise _bad(value, allowed)
    return path


def limit(value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= 1000:
        raise _bad(value, "an integer in 1..1000")
    return int(value)


def reason(value: str) -> str:
    if not value.strip() or len(value) > MAX_REASON or _CONTROL.search(value):
        raise _bad(value, f"1-{MAX_REASON} printable characters (recorded in the switch log)")
    return value


def scope(value: str) -> str:
    if not _SCOPE.fullmatch(value):
        raise _bad(value, "a scope name: a region like us-east-1 or a group name "
                          "(lowercase letters, digits and '-')")
    return value


def file_arg(value: str) -> Path:
    """A file path; whether it exists is checked when it is used (with its own error)."""
    if not value or _CONTROL.search(value) or len(value) > 4096:
        raise _bad(value, "a file path (printable characters, at most 4096)")
    return Path(value)


def _parser() -> argparse.ArgumentParser:
    from components.plan.render import FORMATS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="print the traceback of an unexpected error")
    parser = argparse.ArgumentParser(
        prog="standby", description="Active-standby topologies with Pulumi: offline tools.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser(
        "plan", parents=[common],
        help="run the Pulumi program under mocks and show resources, switch wiring, budget",
        description="Offline plan: no cloud, no Pulumi CLI, no credentials.",
    )
    plan.add_argument("--stack", required=True, type=stack_name,
                      help="stack name (stacks/Pulumi.<stack>.yaml)")
    plan.add_argument("--format", choices=FORMATS, default="text")
    plan.add_argument(
        "--project-dir", type=project_dir, default=None,
        help="directory with Pulumi.yaml (default: current directory or a parent)",
    )
    for name, help_ in (("status", "the active side of every layer and the last switches"),
                        ("switch", "a planned switchover or failback of one layer")):
        p = sub.add_parser(name, help=help_, description=help_, parents=[common])
        p.add_argument("--stack", required=True, type=stack_name,
                       help="stack name (stacks/Pulumi.<stack>.yaml)")
        p.add_argument("--endpoint-url", default=None, type=endpoint_url,
                       help="AWS endpoint (e.g. a local moto server; "
                            "AWS_ENDPOINT_URL_<SERVICE> still wins for that service), or on "
                            "a Tencent stack the http://host:port of a Tencent API stand-in")
        p.add_argument("--project-dir", type=project_dir, default=None)
        if name == "status":
            p.add_argument("--format", choices=("text", "json"), default="text")
            p.add_argument("--limit", type=limit, default=5,
                           help="switches shown per layer (1..1000)")
        else:
            p.add_argument("--layer", required=True, choices=("dns", "gateway", "logic", "data"))
            p.add_argument("--to", required=True, choices=("standby", "primary"))
            p.add_argument("--reason", required=True, type=reason,
                           help="recorded in the switch log")
            p.add_argument("--scope", action="append", default=None, type=scope,
                           help="only this scope (repeatable; default: every scope)")
            p.add_argument("--region", default=None, type=region,
                           help="region of the monitor whose wiring is used "
                                "(default: the control region, which survives the primary)")
            p.add_argument("--force", action="store_true",
                           help="switch even if the target side fails its probes")
    rb = sub.add_parser(
        "runbook", parents=[common], help="the DR runbook of a stack, or check one for staleness",
        description="Generate the DR runbook from the spec, budget, plan, alert routes and the "
                    "last drill and readiness results; --check FILE exits 1 when it is stale.")
    rb.add_argument("--stack", type=stack_name, default=None,
                    help="stack name (stacks/Pulumi.<stack>.yaml)")
    rb.add_argument("--format", choices=("md", "html"), default="md")
    rb.add_argument("--out", type=file_arg, default=None, help="write here (default: stdout)")
    rb.add_argument("--drill", type=file_arg, default=None,
                    help="last drill result (default: .drill/drill.json if present)")
    rb.add_argument("--readiness", type=file_arg, default=None,
                    help="output of standby readiness --format json")
    rb.add_argument("--check", type=file_arg, default=None, metavar="FILE",
                    help="a runbook to check: exit 1 if the spec or the last drill changed")
    rb.add_argument("--project-dir", type=project_dir, default=None)
    from components.dr.readiness_cli import add_parser as add_readiness

    add_readiness(sub, common)
    from components.migrate.cli import add_parser as add_migrate

    add_migrate(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on success, 2 on bad input, 1 otherwise; never a traceback unless --debug."""
    args = _parser().parse_args(argv)  # argparse exits 2 with a usage message on bad args
    try:
        if args.command == "plan":
            return _plan(args)
        if args.command == "runbook":
            from components.dr.runbook import run_cli

            return run_cli(args)
        if args.command == "readiness":
            from components.dr.readiness_cli import run as readiness

            return readiness(args)
        if args.command == "migrate":
            from components.migrate.cli import run as migrate

            return migrate(args)
        return _ops(args)
    except (SpecError, BudgetError, StackFileError) as exc:
        print(f"standby: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("standby: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the catch-all: one line, the traceback only on request
        if getattr(args, "debug", False):
            traceback.print_exc()
        else:
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            print(f"standby: error: unexpected {type(exc).__name__}: {first} "
                  "(run again with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILED


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    """The stack file and its validated spec; every problem is a StackFileError/SpecError."""
    from components.plan.run import check_secret_keys, find_project_dir, read_stack
    from components.program import CONFIG_KEY
    from components.spec import parse_spec

    directory = (args.project_dir or find_project_dir(Path.cwd())).resolve()
    stack = read_stack(args.stack, directory)
    key = f"{stack.project}:{CONFIG_KEY}"
    if key not in stack.raw:
        raise StackFileError(f"{stack.path}: config.{key} is required but missing; allowed: "
                             "the topology mapping (see stacks/Pulumi.aws-dev.yaml)")
    spec = parse_spec(stack.raw[key], source=f"{stack.path.name} {key}")
    check_secret_keys(stack, spec)
    return stack, spec


def _plan(args: argparse.Namespace) -> int:
    import pulumi

    from components.plan import make_plan
    from components.plan.render import render

    stack, _ = _load(args)
    try:
        plan = make_plan(args.stack, stack.project_dir)
    except pulumi.InputPropertiesError as exc:  # the program's own refusal of an input
        raise StackFileError(str(exc)) from None
    sys.stdout.write(render(plan, args.format))
    return 0


def _ops(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from components import naming
    from components.runtime.aws import ops
    from components.runtime.aws.clients import Clients
    from components.runtime.errors import ConfigError, RuntimeFailure

    _, spec = _load(args)
    if spec.cloud == "tencent":
        return _tencent_ops(args, spec)
    clients = Clients(endpoint_url=args.endpoint_url)
    control = spec.data_standby_region
    try:
        if args.command == "status":
            layers = ops.status(clients, naming.state_table(spec.name), control, args.limit)
            sys.stdout.write(_status_text(spec.name, layers) if args.format == "text"
                             else json.dumps([vars(x) for x in layers], indent=2) + "\n")
            return 0
        where = control if args.region is None else args.region
        if where not in spec.all_regions:
            print(f"standby: error: --region: {where!r}; allowed: "
                  f"{', '.join(spec.all_regions)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        function = naming.monitor_function(spec.name, args.layer, where)
        env = ops.monitor_env(clients, function, where)
        outcomes = ops.switch(clients, env, args.to, args.reason, args.scope, args.force)
    except ConfigError as exc:
        print(f"standby: error: the deployed monitor's configuration: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeFailure as exc:
        print(f"standby: refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (ClientError, BotoCoreError) as exc:
        print(f"standby: error: {exc} (is the stack deployed, and are the credentials and "
              "--endpoint-url right?)", file=sys.stderr)
        return EXIT_FAILED
    return _outcomes(args, outcomes)


def _outcomes(args: argparse.Namespace, outcomes: list[Any]) -> int:
    failed = False
    for o in outcomes:
        mark = "switched" if o.switched else "not switched"
        print(f"{args.layer}/{o.scope}: {mark} to {args.to} "
              f"({'verified' if o.verified else 'unverified'}) {o.detail}".rstrip())
        failed |= not o.switched and not o.detail.startswith("already")
    return EXIT_FAILED if failed else 0


def _tencent_ops(args: argparse.Namespace, spec: Any) -> int:
    """``status`` from the monitors' SQL state store, found through its DSN secret in the
    control region (the operator's machine must reach the store: from the VPC, or a local
    stand-in); ``switch`` with the deployed monitor's environment (SCF GetFunction) and the
    monitors' own switchers and lease. ``--endpoint-url http://host:port`` sends the signed
    API calls there (COS calls: ``STANDBY_TENCENT_COS_ENDPOINT``)."""
    import os

    from components.runtime.config import StateRef
    from components.runtime.errors import ConfigError, RuntimeFailure
    from components.runtime.tencent import ops
    from components.runtime.tencent.client import COS_ENDPOINT_ENV, TencentApi, TencentApiError
    from components.tencent.naming import monitor_name, state_dsn_secret

    endpoint = None
    if args.endpoint_url is not None:
        parts = urlsplit(args.endpoint_url)
        if parts.scheme != "http" or parts.path not in ("", "/") or parts.port is None:
            print(f"standby: error: --endpoint-url: {_shown(args.endpoint_url)}; allowed on "
                  "tencent: http://<host>:<port> (a local stand-in of the Tencent APIs)",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        endpoint = parts.netloc
    env = os.environ
    sid = env.get("TENCENTCLOUD_SECRET_ID") or env.get("TENCENTCLOUD_SECRETID", "")
    key = env.get("TENCENTCLOUD_SECRET_KEY") or env.get("TENCENTCLOUD_SECRETKEY", "")
    token = env.get("TENCENTCLOUD_SESSION_TOKEN") or env.get("TENCENTCLOUD_SESSIONTOKEN")
    if not sid or not key:
        print("standby: error: Tencent credentials: set TENCENTCLOUD_SECRET_ID and "
              "TENCENTCLOUD_SECRET_KEY (and TENCENTCLOUD_SESSION_TOKEN for a temporary key)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    # COS has its own API and address: a stand-in's comes from STANDBY_TENCENT_COS_ENDPOINT
    # (host:port), as in the functions; without it COS calls go to myqcloud.com.
    api = TencentApi(sid, key, token, endpoint=endpoint,
                     cos_endpoint=env.get(COS_ENDPOINT_ENV) or None)
    control = spec.data_standby_region
    if args.command == "switch":
        where = control if args.region is None else args.region
        if where not in spec.all_regions:
            print(f"standby: error: --region: {where!r}; allowed: "
                  f"{', '.join(spec.all_regions)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        try:
            monitor_env = ops.monitor_env(api, monitor_name(spec.name, args.layer, where),
                                          where)
            outcomes = ops.switch(api, monitor_env, args.to, args.reason, args.scope,
                                  args.force)
        except ConfigError as exc:
            print(f"standby: error: the deployed monitor's configuration: {exc}",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        except TencentApiError as exc:
            print(f"standby: error: {exc} (is the stack deployed, and are the credentials "
                  "and --endpoint-url right?)", file=sys.stderr)
            return EXIT_FAILED
        except RuntimeFailure as exc:
            print(f"standby: refused: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return _outcomes(args, outcomes)
    ref = StateRef("mysql", state_dsn_secret(spec.name), control)
    try:
        layers = ops.status(api, ref, args.limit)
    except ConfigError as exc:
        print(f"standby: error: the state store: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeFailure as exc:
        print(f"standby: error: {exc} (is the stack deployed, and are the credentials and "
              "--endpoint-url right?)", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(_status_text(spec.name, layers) if args.format == "text"
                     else json.dumps([vars(x) for x in layers], indent=2) + "\n")
    return 0


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


if __name__ == "__main__":  # python -m components.cli
    entry()
