"""``make demo``: a complete local failover drill, no cloud account needed.

Two regions (us-east-1 primary, us-west-2 standby) on one machine:

* moto server: API Gateway stages, DynamoDB (pointers, the monitors' state and lease),
  CloudWatch metrics and alarms, SNS, Secrets Manager (the database credentials);
* the package's real handlers hosted in-process behind the Lambda Invoke API: the example
  logic function (``examples/app``) and the wrapper, primary and standby, in each region;
* a gateway per region and Route 53 failover answers (``components.sandbox.edge``);
* a real PostgreSQL primary with a streaming replica (``components.sandbox.pg``);
* the real monitors of every layer in both regions, one probe round per second;
* a load generator writing unique orders through the public name the whole time.

Faults, one at a time, each healed before the next: the logic function returns 5xx; the
wrapper goes down; a planned database switchover and failback (drain first); the primary
database is killed; the whole primary region goes down. For each: the timeline (injected,
detected, switched, first success on the standby), the RTO beside the budget, the failed
requests; at the end, the acknowledged writes that are missing from the final primary.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DRILL_SETTINGS: dict[str, Any] = {"interval_s": 1, "timeout_s": 0.5, "failure_threshold": 2,
                  "recovery_threshold": 2, "cooldown_s": 0, "failback": "manual", "quorum": 2,
                  "practice": False}
DNS_CHECK = {"interval_s": 1.0, "failure_threshold": 6, "ttl_s": 1.0}
POINTER_CACHE_S = 1.0
DRAIN_TIMEOUT_S = 10.0
FAULTS = ("logic", "wrapper", "planned", "database", "region")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Sample:
    t: float
    ok: bool
    status: int
    order: str
    region: str | None = None
    logic_side: str | None = None
    wrapper_side: str | None = None
    data_region: str | None = None


@dataclass
class FaultReport:
    key: str
    title: str
    layer: str
    planned: bool
    injected: float
    budget_s: float
    budget_source: str
    detected: float | None = None
    detected_how: str = ""
    switched: float | None = None
    switched_how: str = ""
    first_standby: float | None = None
    failed_requests: int = 0
    lost_writes: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rto_s(self) -> float | None:
        return None if self.first_standby is None else self.first_standby - self.injected

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rto_s"] = self.rto_s
        out["ratio"] = None if self.rto_s is None else self.rto_s / self.budget_s
        return out


def budgets() -> dict[str, tuple[float, str]]:
    """The drill's RTO budget per layer, with the same model as ``components.budget``
    (detection + switch + propagation) over the drill's (compressed) settings."""
    s = DRILL_SETTINGS
    detect = s["failure_threshold"] * s["interval_s"] + s["timeout_s"] + s["interval_s"]
    d_src = (f"{s['failure_threshold']} x {s['interval_s']} s + {s['timeout_s']} s timeout "
             f"+ {s['interval_s']} s for quorum {s['quorum']}")
    dns_detect = DNS_CHECK["interval_s"] * DNS_CHECK["failure_threshold"]
    return {
        "gateway": (detect + 5.0, f"detection {detect:g} s ({d_src}) + switch 5 s + "
                                  "propagation 0 s"),
        "logic": (detect + 2.0 + POINTER_CACHE_S,
                  f"detection {detect:g} s + switch 2 s + pointer cache {POINTER_CACHE_S:g} s"),
        "data": (detect + DRAIN_TIMEOUT_S + POINTER_CACHE_S,
                 f"detection {detect:g} s + switch {DRAIN_TIMEOUT_S:g} s (drain timeout) + "
                 f"pointer cache {POINTER_CACHE_S:g} s"),
        "dns": (dns_detect + DNS_CHECK["ttl_s"],
                f"health checks {DNS_CHECK['failure_threshold']:g} x "
                f"{DNS_CHECK['interval_s']:g} s + TTL {DNS_CHECK['ttl_s']:g} s"),
    }


class LoadGen:
    """Writers posting unique orders through the public name (answers cached for the TTL)."""

    def __init__(self, resolve: Callable[[], str], ttl_s: float, threads: int = 2,
                 timeout_s: float = 3.0) -> None:
        self.resolve, self.ttl_s, self.timeout_s = resolve, ttl_s, timeout_s
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True,
                                          name=f"load-{i}") for i in range(threads)]

    def start(self) -> LoadGen:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout_s + 2)

    def acked(self, before: float | None = None) -> list[str]:
        with self._lock:
            return [s.order for s in self.samples if s.ok and (before is None or s.t <= before)]

    def _run(self, i: int) -> None:
        url, until = "", 0.0
        while not self._stop.is_set():
            now = time.time()
            if now >= until:
                url, until = self.resolve(), now + self.ttl_s
            order = f"o-{uuid.uuid4().hex[:16]}"
            req = urllib.request.Request(url + "/orders", method="POST",
                                         data=json.dumps({"id": order, "item": "drill"}).encode(),
                                         headers={"Content-Type": "application/json"})
            sample = Sample(0.0, False, 0, order)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    sample.status, body = resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                sample.status, body = exc.code, exc.read()
            except (urllib.error.URLError, OSError):
                body = b""
            sample.t = time.time()
            sample.ok = sample.status == 201
            with contextlib.suppress(ValueError, AttributeError):
                doc = json.loads(body or b"{}")
                sample.region = (doc.get("logic") or {}).get("region")
                sample.logic_side = (doc.get("logic") or {}).get("side")
                sample.wrapper_side = (doc.get("data") or {}).get("wrapper_side")
                sample.data_region = (doc.get("data") or {}).get("data_region")
            with self._lock:
                self.samples.append(sample)
            if not sample.ok:
                self._stop.wait(0.05)  # a failing endpoint is not hammered


class MonitorLoop:
    """One deployed monitor: a round every interval, until stopped (its region went down)."""

    def __init__(self, monitor: Any, name: str, events: list[tuple[float, str, str, str]],
                 lock: threading.Lock) -> None:
        self.monitor, self.name, self.events, self.lock = monitor, name, events, lock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def start(self) -> MonitorLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        m = self.monitor
        threshold = m.config.settings.failure_threshold
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                outcomes = m.round()
            except Exception as exc:
                with self.lock:
                    self.events.append((time.time(), self.name, "", f"round failed: {exc}"))
                outcomes = []
            now = time.time()
            with self.lock:
                for o in outcomes:
                    vote = m.votes.get(o.scope)
                    if vote is not None and vote.primary_fail == threshold:
                        self.events.append((now, self.name, o.scope, "detected"))
                    if o.switched:
                        self.events.append((now, self.name, o.scope,
                                            f"switched to {o.decision.to} ({o.detail})"))
            self._stop.wait(max(0.0, m.config.settings.interval_s - (time.monotonic() - t0)))


class Drill:
    R1, R2 = "us-east-1", "us-west-2"
    TOPOLOGY = "shop"

    def __init__(self, out_dir: Path, say: Callable[[str], None] = print) -> None:
        self.out_dir = out_dir
        self.say = say
        self.stack = contextlib.ExitStack()
        self.events: list[tuple[float, str, str, str]] = []
        self.alerts: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.monitors: dict[tuple[str, str], MonitorLoop] = {}
        self.reports: list[FaultReport] = []
        self.t0 = time.time()

    # -- setup --------------------------------------------------------------------------------

    def setup(self) -> None:
        from moto.server import ThreadedMotoServer

        from components.sandbox.functions import FunctionHost
        from components.sandbox.pg import PgPair, free_port

        self.out_dir.mkdir(parents=True, exist_ok=True)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        port = free_port()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        moto.start()
        self.stack.callback(moto.stop)
        self.moto_url = f"http://127.0.0.1:{port}"
        # moto keeps its state per process: start from an empty account every time.
        urllib.request.urlopen(urllib.request.Request(f"{self.moto_url}/moto-api/reset",
                                                      method="POST"), timeout=10).read()
        self.host = FunctionHost(fallback=self.moto_url)
        self.stack.callback(self.host.close)
        saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA",
                                                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                "AWS_DEFAULT_REGION")}
        os.environ.update({"AWS_ENDPOINT_URL": self.moto_url,
                           "AWS_ENDPOINT_URL_LAMBDA": self.host.url,
                           "AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox",
                           "AWS_DEFAULT_REGION": self.R1})
        self.stack.callback(_restore_env, saved)
        self.pg = PgPair()
        self.stack.callback(self.pg.close)
        self.pg.start()
        with self.pg.connect("primary", "app") as c:
            c.execute("CREATE TABLE orders (id text PRIMARY KEY, item text, region text, "
                      "created_at timestamptz NOT NULL DEFAULT now())")
        self._cloud()
        self._functions()
        self._edge()
        self._monitors()

    def _cloud(self) -> None:
        from components.runtime.aws.clients import Clients
        from components.sandbox import world

        self.clients = Clients()
        world.state_table()
        for r in (self.R1, self.R2):
            world.pointer_table(r)
        sm = world.client("secretsmanager", self.R1)
        self.admin_secret = sm.create_secret(Name="shop-db-admin", SecretString=json.dumps(
            {"username": "postgres", "password": self.pg.admin_password}))["ARN"]
        self.app_secret = sm.create_secret(Name="shop-db-app", SecretString=json.dumps(
            {"username": "app", "password": self.pg.app_password}))["ARN"]
        self.topic = world.client("sns", self.R2).create_topic(Name="shop-alerts")["TopicArn"]

    def fn(self, tier: str, region: str, side: str) -> str:
        from components.naming import fn_name, region_short

        return fn_name(self.TOPOLOGY, tier, region_short(region), side)

    def _functions(self) -> None:
        from components.runtime.aws.data_client import from_env
        from components.runtime.aws.wrapper import make_handler
        from components.runtime.observe import Log

        spec = importlib.util.spec_from_file_location("drill_app", ROOT / "examples/app/main.py")
        assert spec is not None and spec.loader is not None
        app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        self.wrappers: list[Any] = []
        log = open(self.out_dir / "functions.log", "w")  # noqa: SIM115 - closed by the stack
        self.stack.callback(log.close)
        for r in (self.R1, self.R2):
            for side in ("primary", "standby"):
                env = {"STANDBY_TOPOLOGY": self.TOPOLOGY, "STANDBY_SIDE": side,
                       "STANDBY_REGION": r, "STANDBY_POINTER_TABLE": "shop-standby-pointers",
                       "STANDBY_POINTER_CACHE_S": str(POINTER_CACHE_S),
                       "STANDBY_DB_ENGINE": "postgres",
                       "STANDBY_DATA_REGIONS": json.dumps([self.R1, self.R2]),
                       "STANDBY_DB_ENDPOINTS": json.dumps(
                           {self.R1: self.pg.endpoint("primary"),
                            self.R2: self.pg.endpoint("standby")}),
                       "STANDBY_DB_NAME": self.pg.database,
                       "STANDBY_DB_SECRET_ARN": self.app_secret}
                handle = make_handler(env, log=Log(stream=log, component="wrapper", region=r,
                                                   side=side))
                self.wrappers.append(handle)
                self.host.register(self.fn("wrap", r, side), handle)
                logic_env = {"STANDBY_REGION": r, "STANDBY_SIDE": side,
                             "STANDBY_POINTER_TABLE": "shop-standby-pointers",
                             "STANDBY_POINTER_CACHE_S": str(POINTER_CACHE_S),
                             "STANDBY_WRAPPER_PRIMARY": self.fn("wrap", r, "primary"),
                             "STANDBY_WRAPPER_STANDBY": self.fn("wrap", r, "standby")}
                client = from_env(logic_env)
                self.host.register(self.fn("logic", r, side),
                                   _bind(app.route, client, logic_env))
        self.stack.callback(lambda: [h.wrapper.close() for h in self.wrappers])

    def _edge(self) -> None:
        from components.sandbox import world
        from components.sandbox.edge import Gateway, Route53

        self.stages: dict[str, dict[str, Any]] = {}
        self.gateways: dict[str, Gateway] = {}
        for r in (self.R1, self.R2):
            stage = world.rest_stage(r, self.fn("logic", r, "primary"),
                                     self.fn("logic", r, "standby"))
            self.stages[r] = stage
            gw = Gateway(r, stage["rest_api_id"], stage["stage"], stage["variable"],
                         self.clients).start()
            self.gateways[r] = gw
            self.stack.callback(gw.stop)
        self.dns_targets = world.dns_health_targets((self.R1, self.R2))
        self.route53 = Route53({r: g.url for r, g in self.gateways.items()}, self.R1, self.R2,
                               self.clients, interval_s=DNS_CHECK["interval_s"],
                               failure_threshold=int(DNS_CHECK["failure_threshold"]),
                               ttl_s=DNS_CHECK["ttl_s"]).start()
        self.stack.callback(self.route53.stop)

    def _monitors(self) -> None:
        from components.runtime.aws.alerts import aws_channels
        from components.runtime.aws.probes import aws_probes
        from components.runtime.aws.state import DynamoStateStore
        from components.runtime.aws.switchers import aws_switchers
        from components.runtime.config import load
        from components.runtime.monitor_core import Monitor
        from components.runtime.notify import Alert, Notifier
        from components.runtime.observe import Log
        from components.sandbox import world

        drill = self

        class Recording(Notifier):
            def send(self, alert: Alert) -> None:
                with drill.lock:
                    drill.alerts.append((time.time(), alert.title))
                super().send(alert)

        regions = (self.R1, self.R2)
        lambda_probes = {
            "gateway": [{"scope": r, "kind": "lambda", "side": s,
                         "function": self.fn("logic", r, s)}
                        for r in regions for s in ("primary", "standby")],
            "logic": [{"scope": r, "kind": "lambda", "side": s, "function": self.fn("wrap", r, s)}
                      for r in regions for s in ("primary", "standby")],
        }
        sql = {"engine": "postgres", "database": self.pg.database, "secret_arn": self.admin_secret}
        layers = {
            "gateway": (lambda_probes["gateway"], list(self.stages.values()), {}),
            "logic": (lambda_probes["logic"],
                      [{"scope": r, "kind": "pointer", "region": r,
                        "table": "shop-standby-pointers", "key": "wrapper",
                        "values": {"primary": "primary", "standby": "standby"}}
                       for r in regions], {}),
            "data": ([{"scope": "data", "kind": "sql", "side": side, "region": r,
                       **self.pg.endpoint(name), **sql}
                      for side, r, name in (("primary", self.R1, "primary"),
                                            ("standby", self.R2, "standby"))],
                     [{"scope": "data", "kind": "sql_promote", **sql, "max_lag_s": 5,
                       "drain_timeout_s": DRAIN_TIMEOUT_S,
                       "sides": {"primary": self.pg.endpoint("primary"),
                                 "standby": self.pg.endpoint("standby")}},
                      {"scope": "data", "kind": "pointer_all", "key": "data",
                       "tables": [{"region": r, "table": "shop-standby-pointers"}
                                  for r in regions],
                       "values": {"primary": self.R1, "standby": self.R2}}], {}),
            "dns": ([{"scope": r, "kind": "http", "url": g.url + "/health"}
                     for r, g in self.gateways.items()], self.dns_targets,
                    {"failure_threshold": 6}),
        }
        log = open(self.out_dir / "monitors.log", "w")  # noqa: SIM115 - closed by the stack
        self.stack.callback(log.close)
        for layer, (probes, switch, extra) in layers.items():
            for r in regions:
                env = world.env(layer, r, probes, switch, **{**DRILL_SETTINGS, **extra})
                env["STANDBY_ALERT_TOPIC"] = self.topic
                cfg = load(env)
                mlog = Log(stream=log, component="monitor", layer=layer, region=r)
                notifier = Recording(aws_channels(self.clients, cfg.alert_topic, cfg.webhooks),
                                     mlog)
                m = Monitor(cfg, DynamoStateStore(self.clients, cfg.state_table,
                                                  cfg.state_region),
                            aws_switchers(self.clients), aws_probes(self.clients, r), notifier,
                            mlog)
                loop = MonitorLoop(m, f"{layer}@{r}", self.events, self.lock)
                self.monitors[(layer, r)] = loop
                self.stack.callback(_close_monitor, loop)

    # -- running ------------------------------------------------------------------------------

    def resolve(self) -> str:
        return self.gateways[self.route53.answer()].url

    def run(self, faults: tuple[str, ...] = FAULTS) -> dict[str, Any]:
        for loop in self.monitors.values():
            loop.start()
        self.load = LoadGen(self.resolve, DNS_CHECK["ttl_s"]).start()
        self.stack.callback(self.load.stop)
        self.t0 = time.time()
        self._settle(2.0)
        steps = {"logic": self._fault_logic, "wrapper": self._fault_wrapper,
                 "planned": self._planned, "database": self._fault_database,
                 "region": self._fault_region}
        for i, key in enumerate(faults, 1):
            self.say(f"\nfault {i}/{len(faults)}: {_TITLES[key]}")
            steps[key]()
        self._settle(1.0)
        self.load.stop()
        return self._summary()

    def _settle(self, seconds: float) -> None:
        time.sleep(seconds)

    def _report(self, key: str, layer: str, planned: bool) -> FaultReport:
        budget, source = budgets()[layer]
        r = FaultReport(key, _TITLES[key], layer, planned, time.time(), budget, source)
        self.reports.append(r)
        self.say(f"  {self._ts(r.injected)}  injected")
        return r

    def _ts(self, t: float) -> str:
        return f"t={t - self.t0:6.2f}s"

    def _await(self, r: FaultReport, layer: str, on_standby: Callable[[Sample], bool],
               timeout_s: float = 30.0, detect: bool = True) -> None:
        """Wait for the first success on the standby; then read the monitors' timeline."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            with self.load._lock:
                hit = next((s for s in self.load.samples
                            if s.t >= r.injected and s.ok and on_standby(s)), None)
            if hit is not None and (not detect or self._switch_event(r, layer) is not None):
                r.first_standby = hit.t
                break
            time.sleep(0.1)
        with self.lock:
            if detect:
                d = next((e for e in self.events if e[0] >= r.injected and e[3] == "detected"
                          and e[1].startswith(layer + "@")), None)
                if d is not None:
                    r.detected, r.detected_how = d[0], f"{d[1]} saw {d[2]} fail twice in a row"
        sw = self._switch_event(r, layer)
        if sw is not None:
            r.switched = sw[0]
            r.switched_how = (f"switch call returned: {sw[3]}" if sw[1] == "data@drill"
                              else f"by {sw[1]}: scope {sw[2]} {sw[3]}")
        if r.detected is not None:
            self.say(f"  {self._ts(r.detected)}  detected   {r.detected_how}")
        if r.switched is not None:
            self.say(f"  {self._ts(r.switched)}  switched   {r.switched_how}")
        if r.first_standby is not None:
            self.say(f"  {self._ts(r.first_standby)}  first success on the standby")
        else:
            r.notes.append(f"no success on the standby within {timeout_s:g} s")
            self.say(f"  no success on the standby within {timeout_s:g} s")

    def _switch_event(self, r: FaultReport, layer: str) -> tuple[float, str, str, str] | None:
        with self.lock:
            return next((e for e in self.events if e[0] >= r.injected
                         and e[3].startswith("switched") and e[1].startswith(layer + "@")), None)

    def _close(self, r: FaultReport) -> None:
        with self.load._lock:
            window = [s for s in self.load.samples
                      if r.injected <= s.t <= (r.first_standby or time.time())]
        r.failed_requests = sum(not s.ok for s in window)
        rto = r.rto_s
        text = "no recovery" if rto is None else f"{rto:.2f} s"
        self.say(f"  RTO {text}   budget {r.budget_s:g} s ({r.budget_source})"
                 + ("" if rto is None else f"   ratio {rto / r.budget_s:.2f}")
                 + f"   failed requests {r.failed_requests}")

    def _switch_back(self, layer: str, scope: str, monitor_region: str) -> None:
        m = self.monitors[(layer, monitor_region)].monitor
        o = m.switch(scope, "primary", "drill: fault healed, planned failback", {}, by="drill")
        self.say(f"  healed; planned switch back to primary: {o.detail or 'ok'}")

    def _fault_logic(self) -> None:
        fn = self.fn("logic", self.R1, "primary")
        r = self._report("logic", "gateway", planned=False)
        self.host.fault(fn, "5xx")
        self._await(r, "gateway", lambda s: s.region == self.R1 and s.logic_side == "standby")
        self._close(r)
        self.host.fault(fn, "none")
        self._settle(1.5)
        self._switch_back("gateway", self.R1, self.R2)
        self._settle(1.5)

    def _fault_wrapper(self) -> None:
        fn = self.fn("wrap", self.R1, "primary")
        r = self._report("wrapper", "logic", planned=False)
        self.host.fault(fn, "down")
        self._await(r, "logic", lambda s: s.region == self.R1 and s.wrapper_side == "standby")
        self._close(r)
        r.notes.append("the data client falls back to the standby wrapper on the first failed "
                       "invoke; the monitor then moves the pointer so callers stop trying it")
        self.host.fault(fn, "none")
        self._settle(1.5)
        self._switch_back("logic", self.R1, self.R2)
        self._settle(1.5)

    def _planned(self) -> None:
        m = self.monitors[("data", self.R2)].monitor
        r = self._report("planned", "data", planned=True)
        o = m.switch("data", "standby", "drill: planned switchover", {}, by="drill")
        with self.lock:
            self.events.append((time.time(), "data@drill", "data",
                                f"switched to standby ({o.detail})"))
        self._await(r, "data", lambda s: s.data_region == self.R2, detect=False)
        self._close(r)
        r.lost_writes = self._missing("standby", before=r.switched)
        self.say(f"  acknowledged writes missing on the new primary: {r.lost_writes}")
        self.pg.add_replica("primary", source="standby")
        self.say("  rebuilt us-east-1 as a replica of us-west-2 (pg_basebackup)")
        self._settle(1.0)
        self.say(f"  then: {_TITLES['failback']}")
        back = self._report("failback", "data", planned=True)
        o = m.switch("data", "primary", "drill: planned failback", {}, by="drill")
        with self.lock:
            self.events.append((time.time(), "data@drill", "data",
                                f"switched to primary ({o.detail})"))
        self._await(back, "data", lambda s: s.data_region == self.R1, detect=False)
        self._close(back)
        back.lost_writes = self._missing("primary", before=back.switched)
        self.say(f"  acknowledged writes missing on the new primary: {back.lost_writes}")
        self.pg.add_replica("standby", source="primary")
        self.say("  rebuilt us-west-2 as a replica of us-east-1")
        self._settle(1.5)

    def _fault_database(self) -> None:
        r = self._report("database", "data", planned=False)
        self.pg.kill("primary")
        self._await(r, "data", lambda s: s.data_region == self.R2)
        self._close(r)
        r.lost_writes = self._missing("standby", before=r.injected)
        self.say(f"  acknowledged writes missing on the new primary: {r.lost_writes} "
                 "(asynchronous replication: a crash may lose what was not yet streamed)")
        self.pg.add_replica("primary", source="standby")
        self.say("  rebuilt the killed us-east-1 server as a replica of us-west-2")
        self._settle(1.5)

    def _fault_region(self) -> None:
        r = self._report("region", "dns", planned=False)
        for layer in ("gateway", "logic", "data", "dns"):
            self.monitors[(layer, self.R1)].stop()
        for tier in ("logic", "wrap"):
            for side in ("primary", "standby"):
                self.host.fault(self.fn(tier, self.R1, side), "down")
        self.gateways[self.R1].stop()
        if self._data_region() == self.R2:
            self.pg.kill("primary")  # the us-east-1 server (a replica by now) dies with it
        else:
            r.notes.append("the database primary is in us-east-1 and is left running: with two "
                           "regions and quorum 2 the data layer cannot fail over without a "
                           "third vantage point (run the database fault first)")
        deadline = time.time() + 30
        while time.time() < deadline and self.route53.answer() != self.R2:
            time.sleep(0.05)
        if self.route53.answer() == self.R2:
            r.detected = r.switched = time.time()
            r.detected_how = (f"Route 53 endpoint check failed {DNS_CHECK['failure_threshold']:g}"
                              " times in a row")
            r.switched_how = "Route 53 answers the SECONDARY record (us-west-2)"
        self._await(r, "dns", lambda s: s.region == self.R2, detect=False)
        self._close(r)
        r.notes.append("the us-east-1 monitors are down with their region; the us-west-2 DNS "
                       "monitor alone cannot reach quorum 2, so Route 53's own checks move the "
                       "traffic (by design: a cut-off monitor never fails over alone)")

    def _data_region(self) -> str:
        from components.sandbox import world

        return world.pointer(self.R2, "data")[0]

    def _missing(self, server: str, before: float | None) -> int:
        acked = set(self.load.acked(before))
        if not acked:
            return 0
        with self.pg.connect(server, "app") as c:
            present = {row[0] for row in c.execute("SELECT id FROM orders").fetchall()}
        return len(acked - present)

    # -- results ------------------------------------------------------------------------------

    def _summary(self) -> dict[str, Any]:
        from components.sandbox.chart import write_html

        acked = self.load.acked()
        final = "standby" if self._data_region() == self.R2 else "primary"
        with self.pg.connect(final, "app") as c:
            present = {row[0] for row in c.execute("SELECT id FROM orders").fetchall()}
            dupes = c.execute("SELECT count(*) - count(DISTINCT id) FROM orders").fetchone()[0]
        lost = sorted(set(acked) - present)
        summary = {
            "started_at": self.t0, "duration_s": time.time() - self.t0,
            "requests": len(self.load.samples), "acknowledged_writes": len(acked),
            "lost_acknowledged_writes": len(lost), "lost_examples": lost[:10],
            "duplicate_rows": int(dupes),
            "lost_planned": sum(r.lost_writes or 0 for r in self.reports if r.planned),
            "faults": [r.as_dict() for r in self.reports],
            "alerts": [{"t": t - self.t0, "title": title} for t, title in self.alerts],
            "events": [{"t": e[0] - self.t0, "monitor": e[1], "scope": e[2], "what": e[3]}
                       for e in self.events],
        }
        (self.out_dir / "drill.json").write_text(json.dumps(summary, indent=2))
        write_html(self.out_dir / "drill.html", self.load.samples, self.reports, self.t0)
        return summary

    def close(self) -> None:
        self.stack.close()


_TITLES = {
    "logic": "the logic function returns 5xx (us-east-1 primary)",
    "wrapper": "the wrapper goes down (us-east-1 primary)",
    "planned": "planned database switchover to us-west-2 (drain, then switch)",
    "failback": "planned failback to us-east-1 (drain, then switch)",
    "database": "the primary database is killed (SIGKILL, us-east-1)",
    "region": "the whole primary region goes down (us-east-1)",
}


def _bind(route: Callable[..., Any], client: Any, env: dict[str, str]) -> Callable[[Any, Any], Any]:
    return lambda event, ctx: route(event or {}, client, env)


def _close_monitor(loop: MonitorLoop) -> None:
    loop.stop()
    loop.monitor.close()
    loop.monitor.notifier.close()


def _restore_env(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def print_summary(summary: dict[str, Any], say: Callable[[str], None] = print) -> None:
    say("\nsummary")
    rows = [("fault", "layer", "RTO", "budget", "ratio", "failed req", "lost writes")]
    for f in summary["faults"]:
        rto = "-" if f["rto_s"] is None else f"{f['rto_s']:.2f} s"
        ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}"
        lost = "-" if f["lost_writes"] is None else str(f["lost_writes"])
        rows.append((f["key"] + (" (planned)" if f["planned"] else ""), f["layer"], rto,
                     f"{f['budget_s']:g} s", ratio, str(f["failed_requests"]), lost))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        say("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    say(f"\nrequests {summary['requests']}, acknowledged writes "
        f"{summary['acknowledged_writes']}, lost acknowledged writes "
        f"{summary['lost_acknowledged_writes']} (planned switchovers: "
        f"{summary['lost_planned']}), duplicate rows {summary['duplicate_rows']}")
    say(f"alerts sent: {len(summary['alerts'])}; drill took {summary['duration_s']:.1f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m components.sandbox.drill",
                                description="Local failover drill (make demo).")
    p.add_argument("--out", type=Path, default=Path(".drill"),
                   help="folder for drill.json, drill.html and the logs (default .drill)")
    p.add_argument("--faults", default=",".join(FAULTS),
                   help=f"comma-separated, in order; allowed: {', '.join(FAULTS)}")
    args = p.parse_args(argv)
    faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
    bad = [f for f in faults if f not in FAULTS]
    if bad or not faults:
        p.error(f"--faults: {', '.join(bad) or 'empty'}; allowed: {', '.join(FAULTS)}")
    started = time.monotonic()
    print("local failover drill: us-east-1 (primary) and us-west-2 (standby); PostgreSQL "
          "primary + streaming replica; moto for the AWS control plane")
    drill = Drill(args.out)
    try:
        from components.sandbox.pg import ensure_postgres

        ensure_postgres(print)
        drill.setup()
        print(f"sandbox up in {time.monotonic() - started:.1f} s: 2 gateways, 8 functions, "
              f"8 monitors (4 layers x 2 regions), load generator writing through the "
              "public name")
        summary = drill.run(faults)
    finally:
        drill.close()
    print_summary(summary)
    print(f"chart: {args.out / 'drill.html'}   data: {args.out / 'drill.json'}")
    missing = [f["key"] for f in summary["faults"] if f["rto_s"] is None]
    if missing or summary["lost_planned"] or summary["duplicate_rows"]:
        print(f"DRILL FAILED: no recovery for {missing}, lost on planned switchovers "
              f"{summary['lost_planned']}, duplicates {summary['duplicate_rows']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
