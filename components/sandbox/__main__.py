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
import contextlib
import dataclasses
import logging
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from components.errors import StackFileError
from components.sandbox.deploy import Deployment, deploy_stack
from components.sandbox.moto_proc import MotoProcess
from components.sandbox.outage import MODES, RegionOutageProxy
from components.sandbox.replication import GlobalTableReplicator, ReplicationError
from components.sandbox.replication_s3 import BucketReplicator, S3ReplicationError


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
        "sub-actions never: moto checks dynamodb:TransactWriteItems, which IAM does not "
        "have, so it is granted wherever dynamodb:ConditionCheckItem is, and the entries' "
        "own actions (PutItem, UpdateItem) are not checked; "
        "apigateway:PATCH is granted as moto's apigateway:Update* (any API, any stage). "
        "The plan's own documents stay as registered.",
        "Identity: the sandbox assumes each function's role on the Lambda service's behalf "
        "(the trust policy gains the sandbox deployer next to the service).",
        f"Lambda: each invocation is a fresh `python -I -S` process on this machine's Python "
        f"{sys.version_info.major}.{sys.version_info.minor} (the plan asks for "
        f"{', '.join(runtimes)}), with boto3 {RUNTIME_BOTO3} (this machine's version, not "
        "the runtime's pinned one), forked from a process that has imported only boto3 and, "
        "for functions with layers, those exact layers' top-level packages (no function "
        "code, clients, connections or credentials), so those imports are not paid per "
        "invocation (a cold start on Lambda pays them; the sandbox has no cold starts); no "
        "concurrency limits or VPC networking; Invoke is served locally and does not check "
        "lambda:InvokeFunction.",
        "API Gateway: moto holds REST APIs, stages and stage variables; it does not serve "
        "requests through a stage (the drill's stand-in, edge.py, does).",
        "Route 53: zones, records and health checks are stored; moto reports every health "
        "check healthy and evaluates nothing: health comes from the sandbox's stand-in.",
        "CloudWatch: alarms and metrics are stored, never evaluated by moto; EventBridge "
        "rules are stored, and the sandbox scheduler fires them.",
        "DynamoDB global tables: one table per replica region; with --minutes or --serve the "
        "sandbox's replicator (replication.py) copies every write between them from their "
        "streams: asynchronous (--replication-delay, real seconds, not compressed), per-item "
        "order kept, last writer wins by the write's stream time (ties: greater region name), "
        "deletes replicate, no echo. Not modelled: TTL expiry, GSIs, capacity or throttling, "
        "the CloudWatch ReplicationLatency metric (the CLI prints its own figures).",
        "S3 replication: moto stores the configuration and copies nothing; the sandbox's "
        "bucket replicator (replication_s3.py) copies new versions and, when the rule says so, "
        "delete markers along the plan's rules after --replication-delay; replicas are not "
        "replicated back. Not modelled: tag filters, the RTC 15-minute SLA, replica "
        "modification sync, replication status headers, KMS objects.",
        "Regional outage (--outage REGION[:SERVICE]): functions reach moto through a proxy "
        "(outage.py) that drops requests signed for that region with a TCP reset (boto3: "
        "ConnectionClosedError), or answers 503 ServiceUnavailable (--outage-mode "
        "unavailable); it cannot produce EndpointConnectionError (DNS or TCP refused), since "
        "one endpoint serves every region. Lambda invocations served by the sandbox's "
        "function host are not cut; the deployer's and the sandbox's own calls are not cut.",
        "Secrets: the plan holds no secret values; each secret holds a placeholder, except "
        "a value built from a RandomPassword, which the sandbox generates (honouring its "
        "length and character classes) and stores for real.",
        f"Time compression: {compression}.",
        *_sql_differences(d),
    ]


def _sql_differences(d: Deployment) -> list[str]:
    from components.sandbox.drivers import local_python

    out = []
    if d.endpoints:
        out.append(
            "RDS: each instance is a real local PostgreSQL server (a read replica streams "
            "from its source's server) and an instance in moto created with that server's "
            "port. moto's endpoint (<id>.aaaaaaaaaa.<region>.rds.amazonaws.com) resolves "
            "nowhere, so the deploy rewrites every input naming the plan's endpoint (host:port "
            "strings, host/port objects, also inside JSON env values such as STANDBY_PROBES "
            "and STANDBY_DB_ENDPOINTS) to 127.0.0.1:<port> ("
            + ", ".join(f"{h.split('.')[0]} -> {a}:{p}" for h, (a, p) in d.endpoints.items())
            + "). PromoteReadReplica reports `modifying` until the sandbox's control plane "
            "has promoted and rebooted the local replica, then `available` with no source. "
            "No Multi-AZ standby, storage limits, parameter groups, or security groups on "
            "connections (the rules are stored in moto EC2, not enforced).")
    if any(f.layers for f in d.functions.values()):
        out.append(
            "Drivers layer: the plan's layer is built for Lambda's Python (manylinux wheels); "
            f"the runner uses the same builder's layer for this machine's Python "
            f"{local_python()} from the same requirements. moto holds the plan's layer.")
    return out


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

    stack = contextlib.ExitStack()
    try:
        proxy = stack.enter_context(RegionOutageProxy(d.moto_url)) if args.outage else None
        # With an outage, every AWS call a function makes crosses the proxy.
        seen_by_functions = dataclasses.replace(d, moto_url=proxy.url) if proxy else d
        host = FunctionHost(fallback=seen_by_functions.moto_url)
        stack.callback(host.close)
        rep = s3rep = None
        if not args.no_replication:
            run_s = (24 * 3600.0 if args.serve
                     else max(60.0, args.minutes * args.seconds_per_minute + 60.0))
            try:
                rep = stack.enter_context(GlobalTableReplicator(
                    d, delay_s=args.replication_delay, max_run_s=run_s))
                s3rep = stack.enter_context(BucketReplicator(
                    d, delay_s=args.replication_delay, max_run_s=run_s))
            except (ReplicationError, S3ReplicationError) as exc:
                say(f"error: {exc} (or run with --no-replication)")
                return 1
        runner = LambdaRunner(seen_by_functions, cache, endpoints={"lambda": host.url},
                              compression=60.0 / args.seconds_per_minute)
        stack.callback(runner.close)
        for fn in d.functions.values():
            host.register(fn.name, _hosted(runner, fn.name))
        if proxy is not None:
            stack.enter_context(_outage(args, proxy, [rep, s3rep], say))
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
            _say_stand_ins(say, rep, s3rep, proxy)
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
        stack.close()
    return 0


def _say_stand_ins(say: Callable[[str], None], rep: Any, s3rep: Any, proxy: Any) -> None:
    if s3rep is not None:
        say("")
        say("bucket replication (per rule):")
        for direction, x in s3rep.stats().items():
            say(f"  {direction:<46} delivered {x['delivered']:g}  backlog {x['backlog']:g}  "
                f"lag {x['lag_s']:.1f} s  max latency {x['max_latency_s']:.2f} s")
    if rep is not None:
        say("")
        say("global-table replication (per direction):")
        for direction, x in rep.stats().items():
            say(f"  {direction:<22} delivered {x['delivered']:g}  backlog {x['backlog']:g}  "
                f"lag {x['lag_s']:.1f} s  latency last {x['last_latency_s']:.2f} s, "
                f"max {x['max_latency_s']:.2f} s")
        c = rep.counters
        say(f"  records read {c.read}, writes applied {c.applied}, echoes not sent on "
            f"{c.echoes}, superseded {c.superseded}, written back {c.write_backs}, "
            f"errors {c.errors}" + (f" (last: {c.last_error[:120]})" if c.errors else ""))
    if proxy is not None:
        refused = ", ".join(f"{r}/{s} {n}" for (r, s), n in sorted(proxy.refused.items()))
        say(f"outage proxy: requests refused: {refused or 'none'}")


@contextlib.contextmanager
def _outage(args: argparse.Namespace, proxy: Any, replicators: list[Any],
            say: Callable[[str], None]) -> Iterator[None]:
    """Fault ``--outage`` at simulated minute ``--outage-at`` for ``--outage-minutes``: the
    proxy refuses the functions' calls and the replicators of the service (DynamoDB, S3; all
    for a whole region) cut the region."""
    region, _, name = str(args.outage).partition(":")
    service = name or None
    cut = [r for r, svc in zip(replicators, ("dynamodb", "s3"), strict=True)
           if r is not None and service in (None, svc) and region in r.regions]

    def begin() -> None:
        proxy.fault(region, service, mode=args.outage_mode)
        for r in cut:
            r.cut(region)
        say(f"[outage] {region}{':' + service if service else ''} down ({args.outage_mode})")

    def end() -> None:
        proxy.heal(region, service)
        for r in cut:
            r.heal(region)
        say(f"[outage] {region}{':' + service if service else ''} healed")

    spm = args.seconds_per_minute
    timers = [threading.Timer(args.outage_at * spm, begin),
              threading.Timer((args.outage_at + args.outage_minutes) * spm, end)]
    for t in timers:
        t.daemon = True
        t.start()
    try:
        yield
    finally:
        for t in timers:
            t.cancel()


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
    p.add_argument("--no-replication", action="store_true",
                   help="do not replicate global tables between their replica regions")
    p.add_argument("--replication-delay", type=float, default=0.5,
                   help="seconds before a change reaches the other replicas (default 0.5)")
    p.add_argument("--outage", default="", metavar="REGION[:SERVICE]",
                   help="make REGION (or one service in it, by SigV4 signing name) "
                        "unreachable for the functions during the run")
    p.add_argument("--outage-at", type=float, default=1.0,
                   help="simulated minute the outage starts (default 1)")
    p.add_argument("--outage-minutes", type=float, default=2.0,
                   help="simulated minutes it lasts (default 2)")
    p.add_argument("--outage-mode", choices=MODES, default="reset",
                   help="reset: connection dropped (default); unavailable: HTTP 503")
    args = p.parse_args(argv)
    if (args.minutes < 0 or not 0 < args.seconds_per_minute <= 60
            or not 0 <= args.duplicates <= 1):
        p.error("--minutes must be >= 0, --seconds-per-minute in (0, 60], "
                "--duplicates in 0..1")
    if not 0 <= args.replication_delay <= 60 or args.outage_at < 0 or args.outage_minutes <= 0:
        p.error("--replication-delay must be in 0..60 s, --outage-at >= 0, "
                "--outage-minutes > 0")
    if args.outage:
        region, _, service = args.outage.partition(":")
        try:
            RegionOutageProxy.check(region, service or None)
        except ValueError as exc:
            p.error(f"--outage: {exc}")
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
        try:
            return _report_and_run(d, args, project, say)
        finally:
            d.close()
    return 0


def _report_and_run(d: Deployment, args: argparse.Namespace, project: Path,
                    say: Callable[[str], None]) -> int:
    say(f"sandbox for stack {args.stack}: moto at {d.moto_url} (IAM enforced)")
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
