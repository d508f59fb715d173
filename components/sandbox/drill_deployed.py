"""``make demo [STACK=NAME]``: the failover drill on the plan-deployed sandbox.

The stack's plan is deployed into a moto server with IAM enforced and run as deployed
(``drill_deployed_world``): functions from their archives in fresh interpreters with their
own roles, monitors fired only by their registered schedules (overlapping, some delivered
twice), API Gateway and Route 53 stand-ins reading the deployed configuration. A load
generator writes orders through the public name the whole time.

Faults, one at a time, each healed before the next: the us-east-1 primary logic function
fails; its wrapper goes down; a planned data switchover to us-west-2 and a planned failback;
on SQL stacks, the primary database is killed; the whole us-east-1 compute goes down. For
each: the RTO the clients saw (injection to the first success served by the standby) beside
the stack's own budget (``components.budget``), the failed requests, and the acknowledged
writes missing afterwards. Exit 1 when a fault did not recover or missed its budget, a
planned switchover lost an acknowledged write, or a write was applied twice; 2 on a bad
stack or option.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.errors import StackFileError
from components.runtime.engine import Side
from components.sandbox.chart import write_html
from components.sandbox.drill_deployed_world import DeployedWorld, DrillSetupError, stack_spec
from components.sandbox.drill_load import LoadGen
from components.sandbox.drill_report import FaultReport, Sample, print_summary, verdict

FAULTS = ("logic", "wrapper", "planned", "database", "region")
#: Real seconds per simulated minute. At 1 min = 30 s the deployed monitors' probes and the
#: load start about 20 fresh interpreters a second (each invocation forks, creates clients and
#: calls moto); at 10 s, three times that, more than a 2-core machine runs within the probes'
#: 2 s timeout.
DEFAULT_SPM = 30.0
#: Simulated minutes the monitors run before the first fault, and the longest a fault may take.
WARMUP_MIN = 1.5
FAULT_MAX_MIN = 5.0
SWITCH_BACK_ATTEMPTS = 8
#: Real seconds allowed for Route 53 to answer the primary again after a switch back.
DNS_RETURN_MAX_S = 240.0
#: Each of the load's two writers starts a request at most this often (real seconds).
LOAD_PACE_S = 0.5
TITLES = {
    "logic": "the logic function fails every invocation (us-east-1 primary)",
    "wrapper": "the wrapper goes down (us-east-1 primary)",
    "planned": "planned data switchover to us-west-2 (standby switch)",
    "failback": "planned failback to us-east-1 (standby switch)",
    "database": "the primary database is killed (us-east-1)",
    "region": "the whole us-east-1 compute goes down (gateway, functions, schedules)",
}


class DeployedDrill:
    def __init__(self, world: DeployedWorld) -> None:
        self.w = world
        self.say = world.say
        self.reports: list[FaultReport] = []
        self.c = world.compression
        self.remaining = 0

    # -- helpers --------------------------------------------------------------------------

    def sim(self, real_s: float) -> float:
        return real_s * self.c

    def _ts(self, t: float) -> str:
        return f"t={self.sim(t - self.t0):7.1f} s"

    def _report(self, key: str, layer: str, planned: bool) -> FaultReport:
        self._dns_on_primary()
        lb = self.w.budgets[layer]
        r = FaultReport(key, TITLES[key], layer, planned, time.time(), lb.rto_s,
                        f"stack {self.w.stack}: detection {lb.detection.text()} + switch "
                        f"{lb.switch.text()} + propagation {lb.propagation.text()}")
        self.reports.append(r)
        self.say(f"  {self._ts(r.injected)}  injected")
        return r

    def _await(self, r: FaultReport, on_standby: Callable[[Sample], bool],
               switched: Callable[[], bool] | None = None) -> None:
        """Wait for the first success served by the standby (and, when given, for the
        switch itself), at most ``FAULT_MAX_MIN`` simulated minutes."""
        deadline = time.time() + FAULT_MAX_MIN * 60 / self.c
        while time.time() < deadline:
            with self.load._lock:
                hit = next((s for s in self.load.samples
                            if s.t >= r.injected and s.ok and on_standby(s)), None)
            if hit is not None:
                r.first_standby = hit.t
                break
            time.sleep(0.1)
        if r.first_standby is None:
            r.notes.append(f"no success on the standby within {FAULT_MAX_MIN:g} simulated min")
            self.say(f"  no success on the standby within {FAULT_MAX_MIN:g} simulated min")
        else:
            self.say(f"  {self._ts(r.first_standby)}  first success served by the standby")

    def _close(self, r: FaultReport) -> None:
        with self.load._lock:
            window = [s for s in self.load.samples
                      if r.injected <= s.t <= (r.first_standby or time.time())]
        r.failed_requests = sum(not s.ok for s in window)
        rto = r.rto_s
        text = "no recovery" if rto is None else f"{self.sim(rto):.1f} s ({rto:.2f} s real)"
        self.say(f"  RTO {text}   budget {r.budget_s:g} s ({r.budget_source})"
                 f"   failed requests {r.failed_requests}")

    def _timeline(self, r: FaultReport, layer: str) -> None:
        """The monitors' decisions after the injection, from their logs."""
        with self.w.lock:
            events = sorted(e for e in self.w.events if e[0] >= r.injected
                            and e[1].startswith(layer + "@"))
        for t, who, scope, what in events[:6]:
            self.say(f"  {self._ts(t)}  {who} {scope}: {what}")
        sw = next((e for e in events if e[3].startswith("switched")), None)
        if sw is not None:
            r.switched, r.switched_how = sw[0], f"by {sw[1]}: scope {sw[2]} {sw[3]}"

    def _settle(self, sim_s: float) -> None:
        time.sleep(sim_s / self.c)

    def _switch_back(self, layer: str, scope: str) -> None:
        """The operator's switch back once the fault is healed; refused while the primary
        still fails its probes, so it is retried a few times, as an operator would."""
        from components.runtime.errors import SwitchError

        for attempt in range(1, SWITCH_BACK_ATTEMPTS + 1):
            try:
                detail = self.w.switch(layer, "primary", "drill: fault healed, planned failback",
                                       [scope])
            except SwitchError as exc:
                self.say(f"  switch back refused (attempt {attempt}): {exc}")
                self._settle(20)
                continue
            self.say(f"  healed; planned switch back to primary: {detail}")
            return
        raise DrillSetupError(f"{layer}/{scope}: the switch back to primary was refused "
                              f"{SWITCH_BACK_ATTEMPTS} times; the next fault needs it")

    def _restore(self) -> None:
        """Switch back every region-scoped layer the fault moved (a DNS force often follows a
        gateway or wrapper fault: the region's deep health check fails too), then wait until
        Route 53 answers the primary region again (its force alarm's period is not
        compressed: up to two real minutes)."""
        from components.runtime.aws.ops import status

        w = self.w
        env = w.monitor_env("gateway", w.secondary)
        for ls in status(w.clients, env["STANDBY_STATE_TABLE"], env["STANDBY_STATE_REGION"]):
            if ls.layer == "data":
                continue  # the data layer moves only in the planned steps
            for scope, st in ls.scopes.items():
                if st["active"] == "standby":
                    self._switch_back(ls.layer, scope)
        self._dns_on_primary()
        self._settle(10)

    def _dns_on_primary(self) -> None:
        """Every fault starts with Route 53 answering the primary region."""
        w = self.w
        deadline = time.time() + DNS_RETURN_MAX_S
        while time.time() < deadline and w.route53.answer() != w.primary:
            time.sleep(0.5)
        if w.route53.answer() != w.primary:
            raise DrillSetupError(f"Route 53 still answers {w.route53.answer()} after "
                                  f"{DNS_RETURN_MAX_S:g} s; a fault needs the primary region "
                                  "answering")
        self._settle(self.w.dns_ttl_s + 2)  # clients' cached answers expire

    def _missing(self, region: str, before: float | None) -> int:
        acked = set(self.load.acked(before))
        return len(acked - self.w.data.present(region)) if acked else 0

    # -- faults ---------------------------------------------------------------------------

    def _function_fault(self, key: str, tier: str, layer: str, mode: str,
                        recovered: Callable[[Sample], bool], note: str = "") -> None:
        """The primary region's primary ``tier`` function faulted (``mode``) until a success
        ``recovered`` says was not served by it; then healed (and every layer restored when
        another fault follows)."""
        w = self.w
        fn = w.fn(tier, w.primary, "primary")
        r = self._report(key, layer, planned=False)
        w.host.fault(fn, mode)
        self._await(r, recovered)
        self._timeline(r, layer)
        self._close(r)
        if note:
            r.notes.append(note)
        w.host.fault(fn, "none")
        if self.remaining:  # the next fault needs every layer back on the primary
            self._settle(30)
            self._restore()

    def fault_logic(self) -> None:
        # Recovered: a success not served by the failing function (the standby function
        # behind the switched stage, or the other region once Route 53 moved the name).
        primary = self.w.primary
        self._function_fault("logic", "logic", "gateway", "error",
                             lambda s: s.region != primary or s.logic_side == "standby")

    def fault_wrapper(self) -> None:
        primary = self.w.primary
        self._function_fault(
            "wrapper", "wrap", "logic", "down",
            lambda s: s.region != primary or s.wrapper_side == "standby",
            "the data client falls back to the standby wrapper on a failed invoke; the "
            "logic-layer monitor then moves the pointer")

    def planned(self) -> None:
        w = self.w
        steps: tuple[tuple[str, Side, str, str], ...] = (
            ("planned", "standby", w.secondary, w.primary),
            ("failback", "primary", w.primary, w.secondary))
        if w.data.engine != "dynamodb":
            steps = steps[:1]  # rds_promote is one way (default_faults)
        for key, to, region, old in steps:
            if key == "failback":
                self.say(f"  then: {TITLES['failback']}")
            r = self._report(key, "data", planned=True)
            detail = w.switch("data", to, f"drill: {TITLES[key]}")
            r.switched = time.time()
            r.switched_how = f"standby switch --layer data --to {to}: {detail}"
            self.say(f"  {self._ts(r.switched)}  switched   {r.switched_how}")
            self._await(r, lambda s, region=region: s.data_region == region)  # type: ignore[misc]
            self._close(r)
            w.data.settle()
            r.lost_writes = self._missing(region, before=r.switched)
            self.say(f"  acknowledged writes missing on {region}: {r.lost_writes}")
            w.data.rebuild(old, source=region)
            self._settle(30)
        if w.data.engine != "dynamodb":
            self.say(f"  no failback: the RDS promotion is one way; {w.primary} was rebuilt as "
                     "a replica (re-protect), and switching back is a planned switchover of a "
                     "re-deployed stack")

    def fault_database(self) -> None:
        w = self.w
        r = self._report("database", "data", planned=False)
        w.data.kill(w.primary)
        self._await(r, lambda s: s.data_region == w.secondary)
        self._timeline(r, "data")
        self._close(r)
        r.lost_writes = self._missing(w.secondary, before=r.injected)
        self.say(f"  acknowledged writes missing on the new primary: {r.lost_writes} "
                 "(asynchronous replication: a crash may lose what was not yet shipped)")
        w.data.rebuild(w.primary, source=w.secondary)
        self._settle(30)

    def fault_region(self) -> None:
        w = self.w
        r = self._report("region", "dns", planned=False)
        w.region_down(w.primary)
        r.notes.append(f"the {w.primary} data store keeps running (only its compute is down): "
                       "with two regions and quorum 2 the data layer cannot fail over without "
                       "a third vantage point")
        self._await(r, lambda s: s.region == w.secondary)
        hist = [h for h in w.route53.history if h[0] >= r.injected]
        if hist:
            r.switched, r.switched_how = hist[0][0], f"Route 53 answers {hist[0][1]}"
            self.say(f"  {self._ts(hist[0][0])}  switched   {r.switched_how}")
        self._close(r)

    # -- run ------------------------------------------------------------------------------

    def run(self, faults: tuple[str, ...]) -> dict[str, Any]:
        w = self.w
        total_min = int(WARMUP_MIN + FAULT_MAX_MIN * (len(faults) + 2) + 10)
        w.start_schedules(total_min)
        self.t0 = time.time()
        self.load = LoadGen(w.resolve, w.dns_ttl_s / self.c, pace_s=LOAD_PACE_S)
        self.load.start()
        try:
            self._settle(WARMUP_MIN * 60)
            steps = {"logic": self.fault_logic, "wrapper": self.fault_wrapper,
                     "planned": self.planned, "database": self.fault_database,
                     "region": self.fault_region}
            for i, key in enumerate(faults, 1):
                self.remaining = len(faults) - i
                self.say(f"\nfault {i}/{len(faults)}: {TITLES[key]}")
                steps[key]()
            self._settle(10)
        finally:
            self.load.stop()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        w = self.w
        w.data.settle()
        final = w.data_region()
        acked = self.load.acked()
        present = w.data.present(final)
        lost = sorted(set(acked) - present)
        faults = []
        for r in self.reports:
            doc = r.as_dict()
            rto = r.rto_s
            doc["rto_real_s"] = rto
            doc["rto_s"] = None if rto is None else self.sim(rto)
            doc["ratio"] = None if rto is None else self.sim(rto) / r.budget_s
            faults.append(doc)
        return {
            "samples": list(self.load.samples), "reports": list(self.reports),
            "stack": w.stack, "compression": self.c, "started_at": self.t0,
            "duration_s": time.time() - self.t0, "requests": len(self.load.samples),
            "acknowledged_writes": len(acked), "lost_acknowledged_writes": len(lost),
            "lost_examples": lost[:10], "applied_twice": w.data.applied_twice(final),
            "lost_planned": sum(r.lost_writes or 0 for r in self.reports if r.planned),
            "faults": faults, "alerts": [],
            "failed_answers": [{"count": n, "answer": a} for a, n in collections.Counter(
                s.detail or "" for s in self.load.samples if not s.ok).most_common(8)],
            "scheduled_invocations": len(w.ran),
            "failed_invocations": sum(1 for x in w.ran if not x.invocation.ok),
            "events": [{"t": e[0] - self.t0, "monitor": e[1], "scope": e[2], "what": e[3]}
                       for e in sorted(w.events)],
            "unexpected_switches": self.unexpected_switches(),
            "route53_answers": [{"t": t - self.t0, "answer": a} for t, a in w.route53.history],
        }

    def unexpected_switches(self) -> list[str]:
        """Switches no fault asked for: a monitor that failed over a healthy primary.

        Every fault is injected in the primary region's primary side, so a monitor switch
        before the first fault, or of the secondary region's scope at any time, moved a
        healthy primary (the data layer's scope is the whole store, and its planned moves
        are the operator's, not a monitor's)."""
        w = self.w
        first = min((r.injected for r in self.reports), default=float("inf"))
        with w.lock:
            events = sorted(w.events)
        return [f"{who} switched {scope} at t={self.sim(t - self.t0):.1f} s ({what})"
                for t, who, scope, what in events if what.startswith("switched")
                and (t < first or scope == w.secondary)]


def drill_differences(world: DeployedWorld, seconds_per_minute: float) -> list[str]:
    """The sandbox's differences (``python -m components.sandbox``) and the drill's own."""
    from components.sandbox.__main__ import differences

    return [*differences(world.d, seconds_per_minute),
            "Drill time: schedules, the monitors' loop, interval and cooldown, the data "
            "path's pointer cache, Route 53's check interval and the DNS TTL are divided by "
            f"the compression ({world.compression:g}x); code, network, probe timeouts and "
            "interpreter starts are not, yet every real second counts as "
            f"{world.compression:g} simulated ones: a reported RTO is an upper bound. "
            "CloudWatch alarm periods are not compressed (the force-alarm path is slower "
            "than on AWS; Route 53's endpoint checks are what moves the region fault).",
            "Region fault: the region's gateway, functions and schedules go down; its data "
            "store keeps running (moto serves every region from one process)."]


def default_faults(engine: str) -> tuple[str, ...]:
    """Every fault the stack's data engine can take in one run.

    A DynamoDB table cannot be killed alone (its regional outage is the region fault's). An
    RDS promotion is one way (``rds_promote``: a promoted replica cannot become a replica
    again; failback is a re-protect, a new replica, then a switch), so one run promotes once:
    by the unplanned database fault by default, or by ``--faults planned``."""
    if engine == "dynamodb":
        return tuple(f for f in FAULTS if f != "database")
    return tuple(f for f in FAULTS if f != "planned")


def fault_conflict(engine: str, faults: tuple[str, ...]) -> str | None:
    """Why ``faults`` cannot run in one drill on ``engine``, or None."""
    if "database" in faults and engine == "dynamodb":
        return ("database needs a SQL stack (a DynamoDB table cannot be killed alone); "
                "allowed here: " + ", ".join(default_faults("dynamodb")))
    if engine != "dynamodb" and "planned" in faults and "database" in faults:
        return ("planned and database both promote the RDS replica, which is one way "
                "(rds_promote: failback is a new replica, then a switch); choose one")
    return None


def main(argv: list[str] | None = None, say: Callable[[str], None] = print) -> int:
    from components.plan.run import find_project_dir

    p = argparse.ArgumentParser(prog="python -m components.sandbox.drill_deployed",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--stack", default="aws-dev")
    p.add_argument("--seconds-per-minute", type=float, default=DEFAULT_SPM,
                   help="time compression: real seconds per simulated minute (default "
                        f"{DEFAULT_SPM:g}: faster starts more interpreters per second than two "
                        "cores run)")
    p.add_argument("--faults", default="",
                   help=f"comma-separated, in order; allowed: {', '.join(FAULTS)} "
                        "(default: every fault the stack's engine can take)")
    p.add_argument("--out", type=Path, default=Path(".drill"))
    args = p.parse_args(argv)
    if not 0 < args.seconds_per_minute <= 60:
        p.error(f"--seconds-per-minute: {args.seconds_per_minute}; allowed: (0, 60]")
    asked = tuple(f.strip() for f in args.faults.split(",") if f.strip())
    bad = [f for f in asked if f not in FAULTS]
    if bad:
        p.error(f"--faults: {', '.join(bad)}; allowed: {', '.join(FAULTS)}")
    started = time.monotonic()
    try:
        project = find_project_dir(Path.cwd())
        engine = str(stack_spec(args.stack, project).database.engine)
    except StackFileError as exc:
        say(f"error: {exc}")
        return 2
    conflict = fault_conflict(engine, asked)
    if conflict:
        p.error(f"--faults: {conflict}")
    faults = asked or default_faults(engine)
    if engine != "dynamodb":
        from components.sandbox.pg import PgUnavailable, ensure_postgres

        try:
            ensure_postgres(say)
        except PgUnavailable as exc:
            say(f"error: stack {args.stack} runs {engine} on local servers: {exc}")
            return 2
    world = DeployedWorld(args.stack, project, args.seconds_per_minute, args.out, say)
    try:
        try:
            world.setup()
        except (StackFileError, DrillSetupError) as exc:
            say(f"error: {exc}")
            return 2
        say(f"stack {args.stack} deployed into moto (IAM enforced) in "
            f"{time.monotonic() - started:.1f} s: {len(world.d.created)} resources, "
            f"{len(world.d.functions)} functions, {len(world.d.schedules)} schedules; "
            f"data: {world.data.engine}")
        say(f"time compression 1 min = {args.seconds_per_minute:g} s ({world.compression:g}x); "
            "times below are simulated seconds (real x compression), budgets the stack's own")
        say("how this drill differs from AWS:")
        for line in drill_differences(world, args.seconds_per_minute):
            say(f"  - {line}")
        try:
            summary = DeployedDrill(world).run(faults)
        except DrillSetupError as exc:
            say(f"DRILL FAILED: {exc}")
            return 1
    finally:
        world.close()
    args.out.mkdir(parents=True, exist_ok=True)
    samples, reports = summary.pop("samples"), summary.pop("reports")
    # Every request, compact: [real seconds since start, HTTP status, serving region, data
    # region, answer of a failed one]; what a missed RTO is diagnosed from.
    summary["requests_log"] = [[round(x.t - summary["started_at"], 2), x.status, x.region,
                                x.data_region, None if x.ok else (x.detail or "")[:80]]
                               for x in samples]
    (args.out / "drill.json").write_text(json.dumps(summary, indent=2))
    write_html(args.out / "drill.html", samples, reports, summary["started_at"])
    print_summary(summary, say)
    say(f"scheduled monitor invocations: {summary['scheduled_invocations']} "
        f"({summary['failed_invocations']} failed)")
    say(f"chart: {args.out / 'drill.html'}   data: {args.out / 'drill.json'}")
    failures = verdict(summary)
    for line in failures:
        say(f"DRILL FAILED: {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
