"""The drill's world, wired by hand: moto, the real handlers behind the Lambda Invoke API,
a gateway per region, Route 53 answers, a PostgreSQL pair and the monitors of every layer."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.sandbox.drill_report import FaultReport

DRILL_SETTINGS: dict[str, Any] = {"interval_s": 1, "timeout_s": 0.5, "failure_threshold": 2,
                  "recovery_threshold": 2, "cooldown_s": 0, "failback": "manual", "quorum": 2,
                  "practice": False}
DNS_CHECK = {"interval_s": 1.0, "failure_threshold": 6, "ttl_s": 1.0}
POINTER_CACHE_S = 1.0
DRAIN_TIMEOUT_S = 10.0
FAULTS = ("logic", "wrapper", "planned", "database", "region")
ROOT = Path(__file__).resolve().parents[2]
#: The row's key is the server's; ``id`` is the client's request id and is deliberately not
#: unique, so a request applied twice is stored twice and ``drill_report.applied_twice`` sees
#: it (a unique key would refuse the second insert and hide the defect). The example app's
#: INSERT (id, item, region) works unchanged on it.
ORDERS_DDL = ("CREATE TABLE orders (row_id bigserial PRIMARY KEY, id text NOT NULL, item text, "
              "region text, created_at timestamptz NOT NULL DEFAULT now())")


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


class World:
    """The drill's world: moto, functions, gateways, Route 53, PostgreSQL and monitors."""

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
            c.execute(ORDERS_DDL)
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


    def resolve(self) -> str:
        return self.gateways[self.route53.answer()].url

    def _settle(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        self.stack.close()


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
