"""The deployed drill's world: a stack's plan in moto, run as deployed.

Nothing here is wired by hand. The stack's real program runs under mocks and its plan is
created in a moto server with IAM enforced (``deploy.py``). Every function runs from its
registered archive in a fresh interpreter with its own role (``lambda_runner.py``); the
monitors run only when their registered schedules fire (``schedule.py``), with overlap and
duplicated deliveries. What moto does not run has a stand-in that reads the deployed
configuration:

* API Gateway: one ``edge.Gateway`` per region serves the deployed REST API's stage, reading
  the stage variable the gateway monitor switches (its registered ``STANDBY_SWITCH``).
* Route 53: ``edge.Route53`` answers the deployed failover pair, evaluating the deployed
  health checks (endpoint checks at their registered interval and threshold, the force alarm
  as CloudWatch and Route 53 evaluate it).
* The data plane: DynamoDB global-table replication, or RDS instances backed by local
  PostgreSQL servers (``DataPlane``).

Time is compressed: 1 simulated minute = ``seconds_per_minute`` real seconds. Schedules,
the monitors' loop/interval/cooldown, the data path's pointer cache, Route 53's check
interval and the DNS TTL are divided by the compression; code, network and cold-start time
are not. Times are reported in simulated seconds (real x compression), which counts the
uncompressed parts several times over: a reported RTO is an upper bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from components.errors import StackFileError
from components.runtime.engine import Side
from components.sandbox.deploy import Deployment, deploy_stack

#: The public URL of a deployed REST API (execute-api host) in a function's environment.
_EXECUTE_API = re.compile(r"https://[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")


class DrillSetupError(RuntimeError):
    """The world could not be built (a failed deploy, a missing piece of the plan)."""


class DataPlane(Protocol):
    """What the drill needs from the data store behind the wrappers."""

    engine: str

    def start(self) -> None: ...

    def present(self, region: str) -> set[str]:
        """Order ids stored on ``region``'s side."""
        ...

    def applied_twice(self, region: str) -> list[dict[str, Any]]:
        """Request ids stored more than once (always [] on a store keyed by the id)."""
        ...

    def settle(self, timeout_s: float = 10.0) -> bool:
        """Wait until replication has shipped what it holds (True), at most ``timeout_s``."""
        ...

    def kill(self, region: str) -> None: ...

    def rebuild(self, region: str, source: str) -> None: ...

    def differences(self) -> list[str]: ...

    def close(self) -> None: ...


@dataclass
class Ran:
    """One scheduled invocation, as it ended."""

    ended: float
    function: str
    region: str
    invocation: Any


@dataclass
class DeployedWorld:
    stack: str
    project: Path
    seconds_per_minute: float
    out_dir: Path
    say: Callable[[str], None] = print
    duplicates: float = 0.05
    seed: int = 0
    ran: list[Ran] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    events: list[tuple[float, str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < self.seconds_per_minute <= 60:
            raise ValueError(f"seconds_per_minute: {self.seconds_per_minute}; allowed: (0, 60]")
        self.compression = 60.0 / self.seconds_per_minute
        self.lock = threading.Lock()
        self.exit = contextlib.ExitStack()
        self._sched_thread: threading.Thread | None = None

    # -- build ----------------------------------------------------------------------------

    def setup(self) -> None:
        from components.runtime.aws.clients import Clients
        from components.sandbox.__main__ import _hosted
        from components.sandbox.functions import FunctionHost
        from components.sandbox.lambda_runner import LambdaRunner
        from components.sandbox.moto_proc import MotoProcess

        self.out_dir.mkdir(parents=True, exist_ok=True)
        moto = MotoProcess(log_path=self.out_dir / "moto.log").start()
        self.exit.callback(moto.stop)
        self.d: Deployment = deploy_stack(self.stack, self.project, moto.url)
        self.exit.callback(self.d.close)
        if not self.d.ok:
            failed = [f"{s.type} {s.name}: {s.reason}" for s in self.d.skipped
                      if s.reason.startswith("failed")]
            raise DrillSetupError("deploy failed: " + "; ".join(failed))
        self.spec = stack_spec(self.stack, self.project)
        from components.budget import compute_budget

        self.budgets: dict[str, Any] = {lb.layer: lb for lb in compute_budget(self.spec).layers}
        self.regions = list(self.spec.all_regions)
        self.primary, self.secondary = self.regions[0], self.regions[1]
        self.host = FunctionHost(fallback=moto.url)
        self.exit.callback(self.host.close)
        saved = {k: os.environ.get(k) for k in _ENV_KEYS}
        self.exit.callback(_restore_env, saved)
        os.environ.update({"AWS_ENDPOINT_URL": moto.url, "AWS_ENDPOINT_URL_LAMBDA": self.host.url,
                           "AWS_ACCESS_KEY_ID": self.d.access_key[0],
                           "AWS_SECRET_ACCESS_KEY": self.d.access_key[1],
                           "AWS_DEFAULT_REGION": self.primary})
        os.environ.pop("AWS_SESSION_TOKEN", None)
        self.clients = Clients(endpoint_url=moto.url)
        self._gateways()
        self.runner = LambdaRunner(self.d, self.project / ".standby-cache",
                                   endpoints={"lambda": self.host.url},
                                   compression=self.compression)
        self.exit.callback(self.runner.close)
        for fn in self.d.functions.values():
            self.host.register(fn.name, _hosted(self.runner, fn.name))
        self.data = self._data_plane()
        self.data.start()
        self.exit.callback(self.data.close)
        self._route53()

    def _gateways(self) -> None:
        """A gateway stand-in per region on the deployed stage; the functions' environment
        gets the stand-in's URL where it names the API's public execute-api URL."""
        from components.sandbox.edge import Gateway

        self.stages = stage_switches(self.d)
        self.gateways: dict[str, Gateway] = {}
        missing = [r for r in self.regions if r not in self.stages]
        if missing:
            raise DrillSetupError(f"stack {self.stack}: no gateway monitor switches a stage "
                                  f"variable for {', '.join(missing)}; the deployed drill "
                                  "needs `gateway.kind: rest`")
        for r in self.regions:
            t = self.stages[r]
            gw = Gateway(r, t["rest_api_id"], t["stage"], t["variable"], self.clients).start()
            self.exit.callback(gw.stop)
            self.gateways[r] = gw

        def local(m: re.Match[str]) -> str:
            gw = self.gateways.get(m.group(1))
            return gw.url if gw is not None else m.group(0)

        for fn in self.d.functions.values():
            fn.env = {k: _EXECUTE_API.sub(local, v) for k, v in fn.env.items()}
            if "STANDBY_POINTER_CACHE_S" in fn.env:  # the data path's own time setting
                fn.env["STANDBY_POINTER_CACHE_S"] = repr(
                    float(fn.env["STANDBY_POINTER_CACHE_S"]) / self.compression)

    def _data_plane(self) -> DataPlane:
        wrapper = next((f for f in self.d.functions.values() if "STANDBY_DB_ENGINE" in f.env
                        and "STANDBY_DATA_REGIONS" in f.env), None)
        if wrapper is None:
            raise DrillSetupError(f"stack {self.stack}: no wrapper function in the plan")
        engine = wrapper.env["STANDBY_DB_ENGINE"]
        if engine == "dynamodb":
            from components.sandbox.drill_data import DynamoPlane

            return DynamoPlane(self.d, wrapper.env["STANDBY_DB_TABLE"], self.regions,
                               delay_s=1.0 / self.compression)
        from components.sandbox.drill_data import sql_plane

        plane: DataPlane = sql_plane(self, engine)
        return plane

    def _route53(self) -> None:
        """The deployed failover pair's health checks, evaluated as Route 53 does."""
        from components.sandbox.alarms import AlarmEvaluator
        from components.sandbox.edge import Route53

        checks = _health_checks(self.d)
        if not checks:
            raise DrillSetupError(f"stack {self.stack}: no Route 53 health checks in the plan "
                                  "(the deployed drill needs `dns.mode: health_check`)")
        endpoint = next(iter(checks.values()))["endpoint"]
        stage = self.stages[self.primary]["stage"]
        self.dns_interval_s = float(endpoint.get("request_interval", 30))
        self.dns_threshold = int(endpoint.get("failure_threshold", 3))
        self.dns_ttl_s = float(self.spec.dns.ttl_s)
        self.route53 = Route53(
            {r: g.url for r, g in self.gateways.items()}, self.primary, self.secondary,
            self.clients, health_path=str(endpoint.get("resource_path") or f"/{stage}/health"),
            interval_s=self.dns_interval_s / self.compression,
            failure_threshold=self.dns_threshold, ttl_s=self.dns_ttl_s / self.compression,
            topology=self.spec.name,
            alarm_checks={r: [(c["alarm"], c["insufficient"])] for r, c in checks.items()},
            alarms=AlarmEvaluator(self.d.client), child_threshold=2).start()
        self.exit.callback(self.route53.stop)

    # -- run ------------------------------------------------------------------------------

    def start_schedules(self, minutes: int) -> None:
        from components.sandbox.schedule import Scheduler

        def invoke(name: str, event: Any) -> Any:
            fn = self.d.functions[name]
            if fn.region in self.down:
                return None  # EventBridge in a region that is down delivers nothing
            inv = self.runner.invoke(name, event)
            with self.lock:
                self.ran.append(Ran(time.time(), name, fn.region, inv))
            self._read_events(name, inv)
            return inv

        self.scheduler = Scheduler(self.d.schedules, invoke,
                                   seconds_per_minute=self.seconds_per_minute,
                                   duplicate_fraction=self.duplicates, seed=self.seed,
                                   say=self.say)
        self._sched_thread = threading.Thread(target=self.scheduler.run, args=(minutes,),
                                              daemon=True, name="schedules")
        self._sched_thread.start()
        self.exit.callback(self._stop_schedules)

    def _stop_schedules(self) -> None:
        self.scheduler.stop()
        if self._sched_thread is not None:
            self._sched_thread.join(timeout=120)

    def _read_events(self, name: str, inv: Any) -> None:
        """The monitor's decisions, from its log lines (as CloudWatch Logs would hold them)."""
        layer = self.d.functions[name].env.get("STANDBY_LAYER")
        if layer is None:
            return
        region = self.d.functions[name].region
        for line in inv.logs.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if not isinstance(doc, dict) or doc.get("msg") != "decision":
                continue
            what = ""
            if doc.get("switched"):
                what = f"switched ({doc.get('detail') or doc.get('reason')})"
            elif doc.get("action") not in (None, "none"):
                what = f"{doc.get('action')}: {doc.get('reason')}"
            if what:
                with self.lock:
                    self.events.append((float(doc.get("ts") or time.time()),
                                        f"{layer}@{region}", str(doc.get("scope")), what))

    def fn(self, tier: str, region: str, side: str) -> str:
        from components.naming import fn_name, region_short

        return fn_name(self.spec.name, tier, region_short(region), side)

    def resolve(self) -> str:
        """What a client gets for the public name: the answered region's stage URL."""
        region = self.route53.answer()
        return f"{self.gateways[region].url}/{self.stages[region]['stage']}"

    def monitor_env(self, layer: str, region: str) -> dict[str, str]:
        for fn in self.d.functions.values():
            if fn.env.get("STANDBY_LAYER") == layer and fn.region == region:
                return dict(fn.env)
        raise DrillSetupError(f"no {layer} monitor in {region}")

    def switch(self, layer: str, to: Side, reason: str, scopes: list[str] | None = None,
               region: str | None = None) -> str:
        """A planned switch the way an operator makes it (``standby switch``: the ops path,
        with the deployer's credentials), using the deployed monitor's wiring."""
        from components.runtime.aws.ops import switch
        from components.runtime.observe import Log

        env = self.monitor_env(layer, region or self.secondary)
        with open(self.out_dir / "ops.log", "a") as log:
            outcomes = switch(self.clients, env, to, reason, scopes, force=False,
                              log=Log(stream=log, component="ops"))
        return "; ".join(f"{o.scope}: {o.detail or o.decision.reason}" for o in outcomes)

    def data_region(self) -> str:
        """Where the data pointer sends writes (read from the standby region's table)."""
        env = self.monitor_env("data", self.secondary)
        target = next(t for t in json.loads(env["STANDBY_SWITCH"]) if t["kind"] == "pointer_all")
        table = next(t for t in target["tables"] if t["region"] == self.secondary)
        item = self.d.client("dynamodb", self.secondary).get_item(
            TableName=table["table"], Key={"pointer": {"S": target["key"]}}, ConsistentRead=True)
        value = (item.get("Item") or {}).get("active", {}).get("S")
        return str(value or target["values"]["primary"])

    def region_down(self, region: str) -> None:
        """The region's compute goes away: its gateway refuses connections, its functions
        do not answer, its schedules deliver nothing."""
        self.down.add(region)
        for fn in self.d.functions.values():
            if fn.region == region:
                self.host.fault(fn.name, "down")
        self.gateways[region].stop()

    def close(self) -> None:
        self.exit.close()


_ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA", "AWS_ACCESS_KEY_ID",
             "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")


def _restore_env(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def stage_switches(d: Deployment) -> dict[str, dict[str, Any]]:
    """Region -> the stage-variable switch target its gateway monitors were deployed with
    (``STANDBY_SWITCH``): the REST API, stage and variable the gateway stand-in serves."""
    out: dict[str, dict[str, Any]] = {}
    for fn in d.functions.values():
        if fn.env.get("STANDBY_LAYER") != "gateway":
            continue
        for t in json.loads(fn.env.get("STANDBY_SWITCH") or "[]"):
            if t.get("kind") == "apigw_stage_variable":
                out.setdefault(str(t["scope"]), t)
    return out


def stage_value(d: Deployment, target: dict[str, Any]) -> Any:
    """The stage variable's value in moto now."""
    stage = d.client("apigateway", target["region"]).get_stage(
        restApiId=target["rest_api_id"], stageName=target["stage"])
    return (stage.get("variables") or {}).get(target["variable"])


def stack_spec(stack: str, project: Path) -> Any:
    from components.plan.run import read_stack
    from components.program import CONFIG_KEY
    from components.spec import parse_spec

    cfg = read_stack(stack, project)
    key = f"{cfg.project}:{CONFIG_KEY}"
    if key not in cfg.raw:
        raise StackFileError(f"{cfg.path}: no `{key}`")
    return parse_spec(cfg.raw[key], source=str(cfg.path))


def _health_checks(d: Deployment) -> dict[str, dict[str, Any]]:
    """Region -> its endpoint check's inputs and its force alarm (name, Route 53's
    InsufficientDataHealthStatus), from the plan's registrations."""
    checks = [r for r in d.registrations if r.type == "aws:route53/healthCheck:HealthCheck"]
    out: dict[str, dict[str, Any]] = {}
    for r in checks:
        inputs = r.inputs
        if inputs.get("type") == "CLOUDWATCH_METRIC":
            region = str(inputs.get("cloudwatchAlarmRegion"))
            out.setdefault(region, {})
            out[region]["alarm"] = str(inputs.get("cloudwatchAlarmName"))
            out[region]["insufficient"] = str(inputs.get("insufficientDataHealthStatus")
                                              or "LastKnownStatus")
    for r in checks:
        inputs = r.inputs
        if inputs.get("type") in ("HTTPS", "HTTP"):
            m = re.search(r"\.execute-api\.([a-z0-9-]+)\.", str(inputs.get("fqdn") or ""))
            if m and m.group(1) in out:
                out[m.group(1)]["endpoint"] = {
                    "request_interval": inputs.get("requestInterval"),
                    "failure_threshold": inputs.get("failureThreshold"),
                    "resource_path": inputs.get("resourcePath")}
    return {r: c for r, c in out.items() if "endpoint" in c and "alarm" in c}
