"""``python -m components.sandbox --stack NAME``: deploy a stack's plan into a local moto.

Runs the stack's real Pulumi program under mocks, starts a moto server (a subprocess, IAM
enforced) and creates in it every resource of the plan that moto can hold, with the plan's
names, inputs and wiring (``deploy.py``). Prints what was deployed, what was not and why,
and how this sandbox still differs from AWS. Exit 0 when every resource was created (or
needs no API call), 1 when one failed, 2 on a bad stack file or option.

``--minutes N`` then runs the monitors as their schedules say (``schedule.py``), each
invocation a fresh interpreter with the function's archive and role (``lambda_runner.py``);
``--serve`` keeps the sandbox up until Ctrl-C for ``standby status`` / ``standby switch``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.errors import StackFileError
from components.sandbox.deploy import Deployment, deploy_stack
from components.sandbox.moto_proc import MotoProcess


def short_type(t: str) -> str:
    """``aws:lambda/function:Function`` -> ``lambda:Function``."""
    pkg_mod, _, kind = t.rpartition(":")
    return f"{pkg_mod.split(':', 1)[-1].split('/')[0]}:{kind}"


def table(d: Deployment) -> list[str]:
    rows = [(short_type(c.type), c.region, c.name, c.cloud_id) for c in d.created]
    widths = [max(len(r[i]) for r in [("TYPE", "REGION", "NAME", "ID"), *rows])
              for i in range(3)]
    out = [f"{'TYPE':<{widths[0]}}  {'REGION':<{widths[1]}}  {'NAME':<{widths[2]}}  ID"]
    out += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {i}" for a, b, c, i in rows]
    return out


def differences(d: Deployment, seconds_per_minute: float) -> list[str]:
    from components.sandbox.lambda_runner import RUNTIME_BOTO3

    runtimes = sorted({f.runtime for f in d.functions.values()}) or ["-"]
    compression = (f"1 min = {seconds_per_minute:g} s ({60 / seconds_per_minute:g}x faster "
                   "schedules; the monitors' STANDBY_LOOP_S, interval_s and cooldown_s are "
                   f"divided by {60 / seconds_per_minute:g} too, so each invocation runs the "
                   "rounds of a real minute; probe and function timeouts, cold starts and "
                   "network calls run in real time)"
                   if seconds_per_minute != 60 else "none (1 min = 60 s)")
    return [
        "IAM: moto checks each call's top-level action against the caller's role policy; "
        "resources only for S3, conditions not at all (dropped when the policy is put), and "
        "sub-actions never (TransactWriteItems passes without dynamodb:ConditionCheckItem); "
        "apigateway:PATCH is granted as moto's apigateway:Update* (any API, any stage). "
        "The plan's own documents stay as registered.",
        "Identity: the sandbox assumes each function's role on the Lambda service's behalf "
        "(the trust policy gains the sandbox deployer next to the service).",
        f"Lambda: each invocation is a fresh `python -I -S` process on this machine's Python "
        f"{sys.version_info.major}.{sys.version_info.minor} (the plan asks for "
        f"{', '.join(runtimes)}), with boto3 {RUNTIME_BOTO3} (this machine's version, not "
        "the runtime's pinned one), forked from a process that has imported only boto3 (no "
        "function code, clients or credentials), so boto3's import time is not paid per "
        "invocation (a cold start on Lambda pays it; the sandbox has no cold starts); no "
        "concurrency limits or VPC networking; Invoke is served locally and does not check "
        "lambda:InvokeFunction.",
        "API Gateway: moto holds REST APIs, stages and stage variables; it does not serve "
        "requests through a stage (the drill's stand-in, edge.py, does).",
        "Route 53: zones, records and health checks are stored; moto reports every health "
        "check healthy and evaluates nothing: health comes from the sandbox's stand-in.",
        "CloudWatch: alarms and metrics are stored, never evaluated by moto; EventBridge "
        "rules are stored, and the sandbox scheduler fires them.",
        "DynamoDB global tables: one independent table per replica region, no replication. "
        "S3 replication: configuration stored, nothing copied.",
        "Secrets: the plan holds no secret values; each secret holds a placeholder.",
        f"Time compression: {compression}.",
    ]


def _say_block(say: Callable[[str], None], title: str, lines: list[str]) -> None:
    say("")
    say(title)
    for line in lines:
        say(f"  - {line}")


def run_schedules(d: Deployment, args: argparse.Namespace, cache: Path,
                  say: Callable[[str], None]) -> int:
    from components.sandbox.functions import FunctionHost
    from components.sandbox.lambda_runner import LambdaRunner
    from components.sandbox.schedule import Scheduler

    host = FunctionHost(fallback=d.moto_url)
    runner: LambdaRunner | None = None
    try:
        runner = LambdaRunner(d, cache, endpoints={"lambda": host.url},
                              compression=60.0 / args.seconds_per_minute)
        for fn in d.functions.values():
            host.register(fn.name, _hosted(runner, fn.name))
        if args.minutes:
            sched = Scheduler(d.schedules, lambda name, event: runner.invoke(name, event),
                              seconds_per_minute=args.seconds_per_minute,
                              duplicate_fraction=args.duplicates, seed=args.seed, say=say)
            done = sched.run(args.minutes)
            ok = Counter(x.schedule.function for x in done
                         if x.error is None and getattr(x.result, "ok", False))
            total = Counter(x.schedule.function for x in done)
            say("")
            say("invocations (ok/total, slowest):")
            for name in sorted(total):
                slowest = max((getattr(x.result, "duration_s", 0.0) for x in done
                               if x.schedule.function == name), default=0.0)
                say(f"  {name:<28} {ok[name]}/{total[name]}  {slowest:.1f} s")
                for x in done:
                    if x.schedule.function == name and not getattr(x.result, "ok", False):
                        err = x.error or x.result.payload.get("errorMessage", "")
                        say(f"    {str(err)[:160]}")
                        break
        if args.serve:
            say("")
            say("In another shell:")
            say(f"  export AWS_ACCESS_KEY_ID={d.access_key[0]} "
                f"AWS_SECRET_ACCESS_KEY={d.access_key[1]}")
            say(f"  export AWS_ENDPOINT_URL_LAMBDA={host.url}")
            say(f"  standby status --stack {d.stack} --endpoint-url {d.moto_url}")
            sys.stdout.flush()
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        host.close()
        if runner is not None:
            runner.close()
    return 0


class FunctionFailed(Exception):
    """The function's own error, passed on to the Invoke API as an unhandled error."""


def _hosted(runner: Any, name: str) -> Callable[[Any, Any], Any]:
    def handler(event: Any, context: Any) -> Any:
        inv = runner.invoke(name, event)
        if not inv.ok:
            raise FunctionFailed(f"{inv.error}: {inv.payload.get('errorMessage', '')}")
        return inv.payload
    return handler


def main(argv: list[str] | None = None, say: Callable[[str], None] = print) -> int:
    from components.plan.run import find_project_dir

    p = argparse.ArgumentParser(prog="python -m components.sandbox",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--stack", required=True)
    p.add_argument("--project-dir", type=Path, default=None)
    p.add_argument("--port", type=int, default=0, help="moto server port (default: a free one)")
    p.add_argument("--minutes", type=int, default=0,
                   help="run the monitors' schedules for N simulated minutes (default 0)")
    p.add_argument("--seconds-per-minute", type=float, default=60.0,
                   help="time compression: real seconds per simulated minute (default 60)")
    p.add_argument("--duplicates", type=float, default=0.0,
                   help="fraction of scheduled deliveries delivered twice (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--serve", action="store_true", help="keep the sandbox up until Ctrl-C")
    args = p.parse_args(argv)
    if (args.minutes < 0 or not 0 < args.seconds_per_minute <= 60
            or not 0 <= args.duplicates <= 1):
        p.error("--minutes must be >= 0, --seconds-per-minute in (0, 60], "
                "--duplicates in 0..1")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        project = (args.project_dir or find_project_dir(Path.cwd())).resolve()
    except StackFileError as exc:
        say(f"error: {exc}")
        return 2
    with MotoProcess(port=args.port) as moto:
        try:
            d = deploy_stack(args.stack, project, moto.url)
        except StackFileError as exc:
            say(f"error: {exc}")
            return 2
        say(f"sandbox for stack {args.stack}: moto at {moto.url} (IAM enforced)")
        say(f"deployed {len(d.created)} resources:")
        for line in table(d):
            say(f"  {line}")
        if d.skipped:
            _say_block(say, "not created:", [f"{short_type(s.type)} {s.region} {s.name}: "
                                             f"{s.reason}" for s in d.skipped])
        if d.warnings:
            _say_block(say, "warnings:", d.warnings)
        _say_block(say, "How this sandbox differs from AWS:",
                   differences(d, args.seconds_per_minute))
        if not d.ok:
            say("")
            say("deploy FAILED: see `not created` above")
            return 1
        if args.minutes or args.serve:
            return run_schedules(d, args, project / ".standby-cache", say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
