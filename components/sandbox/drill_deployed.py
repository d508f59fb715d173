"""``make demo STACK=NAME``: the logic-layer fault on the plan-deployed sandbox.

The stack's plan is deployed into a moto server with IAM enforced (``deploy.py``); every
function runs from its registered archive in a fresh interpreter with its own role
(``lambda_runner.py``); the monitors are invoked only by their registered schedules
(``schedule.py``), time compressed (the output says by how much). Then the us-east-1 primary
logic function starts failing (every invocation ends in an unhandled error), and the drill
waits for the gateway monitors to move the stage variable to the standby function.

The RTO is measured from the injection to the switch of the stage variable (propagation is
0 s for a stage variable: the next request uses it), in simulated seconds (real seconds x
compression), and compared with the stack's own budget (``components.budget``). Exit 1 when
there was no switch or the RTO exceeds the budget, 2 on a bad stack or option.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.errors import StackFileError
from components.sandbox.deploy import Deployment, deploy_stack
from components.sandbox.drill_report import verdict
from components.sandbox.moto_proc import MotoProcess

#: Simulated minutes the monitors run before the fault, and at most after it.
WARMUP_MIN = 1
MAX_AFTER_MIN = 8


def stage_targets(d: Deployment, region: str) -> list[dict[str, Any]]:
    """The gateway monitor's stage-variable switch targets for ``region`` (from its
    registered ``STANDBY_SWITCH``)."""
    out: list[dict[str, Any]] = []
    for fn in d.functions.values():
        if fn.env.get("STANDBY_LAYER") != "gateway":
            continue
        for t in json.loads(fn.env.get("STANDBY_SWITCH") or "[]"):
            if t.get("kind") == "apigw_stage_variable" and t.get("scope") == region:
                out.append(t)
    return out


def stage_value(d: Deployment, target: dict[str, Any]) -> Any:
    stage = d.client("apigateway", target["region"]).get_stage(
        restApiId=target["rest_api_id"], stageName=target["stage"])
    return (stage.get("variables") or {}).get(target["variable"])


def stack_budget(stack: str, project: Path) -> Any:
    """The stack's gateway-layer budget, from the same spec the program deploys."""
    from components.budget import compute_budget
    from components.plan.run import read_stack
    from components.program import CONFIG_KEY
    from components.spec import parse_spec

    cfg = read_stack(stack, project)
    spec = parse_spec(cfg.raw[f"{cfg.project}:{CONFIG_KEY}"], source=str(cfg.path))
    return next(lb for lb in compute_budget(spec).layers if lb.layer == "gateway")


def gateway_decisions(done: list[tuple[float, Any]], scope: str, t0: float) -> list[str]:
    """One line per gateway-monitor invocation that ended after ``t0``: its outcome and its
    decisions on ``scope``."""
    out: list[str] = []
    for ended, inv in done:
        if "-mon-gateway-" not in inv.function or ended < t0:
            continue
        reasons = []
        for line in inv.logs.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if not isinstance(doc, dict):
                continue
            if doc.get("msg") == "decision" and doc.get("scope") == scope:
                reasons.append(f"{doc.get('action')}/{doc.get('reason')}")
            elif doc.get("level") == "ERROR":
                reasons.append(f"{doc.get('msg')}: {str(doc.get('error'))[:120]}")
        out.append(f"{inv.function} ended +{ended - t0:.1f} s real: {inv.error or 'ok'} "
                   f"in {inv.duration_s:.1f} s; {', '.join(reasons) or '-'}")
    return out


def run_logic_fault(d: Deployment, project: Path, seconds_per_minute: float,
                    say: Callable[[str], None]) -> dict[str, Any]:
    from components.sandbox.__main__ import _hosted
    from components.sandbox.functions import FunctionHost
    from components.sandbox.lambda_runner import LambdaRunner
    from components.sandbox.schedule import Scheduler

    region = "us-east-1"
    targets = stage_targets(d, region)
    if not targets:
        raise StackFileError(f"stack {d.stack}: no gateway monitor switches a stage variable "
                             f"for {region}; the deployed logic fault needs one")
    target = targets[0]
    primary, standby = target["values"]["primary"], target["values"]["standby"]
    budget = stack_budget(d.stack, project)
    compression = 60.0 / seconds_per_minute
    host = FunctionHost(fallback=d.moto_url)
    done: list[tuple[float, Any]] = []
    sched: Scheduler | None = None
    thread: threading.Thread | None = None
    runner: LambdaRunner | None = None
    try:
        runner = LambdaRunner(d, project / ".standby-cache", endpoints={"lambda": host.url},
                              compression=compression)
        for fn in d.functions.values():
            host.register(fn.name, _hosted(runner, fn.name))
        def invoke(name: str, event: Any) -> Any:
            inv = runner.invoke(name, event)
            done.append((time.monotonic(), inv))
            return inv

        sched = Scheduler(d.schedules, invoke,
                          seconds_per_minute=seconds_per_minute, say=say)
        thread = threading.Thread(target=sched.run, args=(WARMUP_MIN + MAX_AFTER_MIN,),
                                  daemon=True, name="schedules")
        thread.start()
        time.sleep(WARMUP_MIN * seconds_per_minute)
        before = stage_value(d, target)
        say(f"stage variable {target['variable']} in {region}: {before} (before the fault)")
        injected = time.monotonic()
        host.fault(primary, "error")
        say(f"t=0  injected: {primary} fails every invocation (unhandled error)")
        switched: float | None = None
        deadline = injected + MAX_AFTER_MIN * seconds_per_minute
        while time.monotonic() < deadline:
            if stage_value(d, target) == standby:
                switched = time.monotonic()
                break
            time.sleep(0.2)
        host.fault(primary, "none")
    finally:
        if sched is not None:
            sched.stop()
        if thread is not None:
            thread.join(timeout=90)
        host.close()
        if runner is not None:
            runner.close()
    rto = None if switched is None else (switched - injected) * compression
    for line in gateway_decisions(list(done), region, injected):
        say(f"  {line}")
    if rto is not None:
        say(f"t={rto:.1f} s (simulated)  switched: {target['variable']} = {standby}")
    else:
        say(f"no switch within {MAX_AFTER_MIN} simulated minutes")
    fault = {"key": "logic", "layer": "gateway", "planned": False, "rto_s": rto,
             "budget_s": budget.rto_s, "lost_writes": None,
             "budget_source": f"stack {d.stack}: detection {budget.detection.text()} + switch "
                              f"{budget.switch.text()} + propagation "
                              f"{budget.propagation.text()}",
             "real_s": None if switched is None else switched - injected,
             "compression": compression}
    return {"stack": d.stack, "faults": [fault], "applied_twice": []}


def main(argv: list[str] | None = None, say: Callable[[str], None] = print) -> int:
    from components.plan.run import find_project_dir

    p = argparse.ArgumentParser(prog="python -m components.sandbox.drill_deployed",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--stack", required=True)
    p.add_argument("--seconds-per-minute", type=float, default=10.0,
                   help="time compression: real seconds per simulated minute (default 10)")
    args = p.parse_args(argv)
    if not 0 < args.seconds_per_minute <= 60:
        p.error(f"--seconds-per-minute: {args.seconds_per_minute}; allowed: (0, 60]")
    try:
        project = find_project_dir(Path.cwd())
        with MotoProcess() as moto:
            d = deploy_stack(args.stack, project, moto.url)
            if not d.ok:
                say("deploy FAILED: run `python -m components.sandbox --stack "
                    f"{args.stack}` for the resources that were not created")
                return 1
            say(f"stack {args.stack} deployed into moto at {moto.url} (IAM enforced); "
                f"time compression 1 min = {args.seconds_per_minute:g} s "
                f"({60 / args.seconds_per_minute:g}x): the monitors' schedules, loops and "
                "intervals run that much faster, the code and network calls do not")
            summary = run_logic_fault(d, project, args.seconds_per_minute, say)
    except StackFileError as exc:
        say(f"error: {exc}")
        return 2
    f = summary["faults"][0]
    rto = "no recovery" if f["rto_s"] is None else f"{f['rto_s']:.1f} s"
    say(f"logic fault: RTO {rto} against budget {f['budget_s']:g} s ({f['budget_source']})")
    failures = verdict(summary)
    for line in failures:
        say(f"DRILL FAILED: {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
