"""Stand-ins for the two cloud data planes moto does not run: API Gateway dispatch and
Route 53 failover answers. Each follows the documented behaviour the topology relies on.

``Gateway`` (one per region): a REST API stage with a Lambda proxy integration whose URI
names ``${stageVariables.logicFunction}``. For every request it reads the stage's variables
from the control plane (moto), so an ``UpdateStage`` applies to the next request with no
redeploy, as on AWS; it invokes the named function with a proxy event and maps the answer:
the function's ``statusCode``/``headers``/``body``; an invoke failure or a function error is
``502`` (API Gateway's answer to a failed Lambda integration).

``Route53`` (one per failover record pair): the PRIMARY record is answered while its
calculated health check is healthy, else the SECONDARY if that one is healthy, else the
PRIMARY (Route 53 answers the primary when both are unhealthy). A region's calculated check
is healthy when at least 2 of its 3 children are: the HTTP endpoint check (healthy until
``failure_threshold`` consecutive failures, every ``interval_s``), the force alarm (healthy
unless the monitor published ``ForceFailover`` >= 1 in the last period) and the veto alarm
(healthy only while the monitor publishes ``VetoFailover`` >= 1) — the same tree the DNS
component creates. Callers cache answers for ``ttl_s``.

With ``alarm_checks`` (the plan-deployed sandbox), the force and veto children are the
registered CloudWatch alarms, evaluated as CloudWatch evaluates them and read as Route 53
reads them (``alarms.py``: period against the metric's storage resolution,
``TreatMissingData``, M of N, ``InsufficientDataHealthStatus``, standard-resolution alarms
only) instead of the raw metrics.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from components.runtime.aws.clients import Clients
from components.sandbox.alarms import AlarmEvaluator


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Gateway:
    def __init__(self, region: str, rest_api_id: str, stage: str, variable: str,
                 clients: Clients) -> None:
        self.region, self.rest_api_id, self.stage, self.variable = (region, rest_api_id, stage,
                                                                    variable)
        self.clients = clients
        self.server: _Quiet | None = None
        self.port = 0

    def start(self) -> Gateway:
        gw = self

        class Req(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                gw._serve(self, b"")

            def do_POST(self) -> None:
                gw._serve(self, self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        self.server = _Quiet(("127.0.0.1", self.port), Req)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """The region's gateway goes away: connections are refused (``start`` brings it back
        on the same port)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def _serve(self, req: BaseHTTPRequestHandler, body: bytes) -> None:
        status, headers, out = 502, {"Content-Type": "application/json"}, b""
        try:
            stage = self.clients.get("apigateway", self.region).get_stage(
                restApiId=self.rest_api_id, stageName=self.stage)
            fn = stage.get("variables", {}).get(self.variable)
            path = req.path.split("?")[0]
            # The stage is the first segment of an execute-api URL; API Gateway strips it
            # from the proxy event's path.
            if path.startswith(f"/{self.stage}/"):
                path = path[len(self.stage) + 1:]
            event = {"resource": "/{proxy+}", "path": path,
                     "httpMethod": req.command, "headers": dict(req.headers.items()),
                     "body": body.decode(errors="replace") or None, "isBase64Encoded": False,
                     "requestContext": {"stage": self.stage}}
            res = self.clients.get("lambda", self.region).invoke(
                FunctionName=fn, Payload=json.dumps(event).encode())
            payload = res["Payload"].read()
            if res.get("FunctionError"):
                out = b'{"message": "Internal server error"}'
            else:
                answer = json.loads(payload or b"{}")
                status = int(answer.get("statusCode", 200))
                headers.update({str(k): str(v) for k, v in (answer.get("headers") or {}).items()})
                out = str(answer.get("body") or "").encode()
            headers["X-Standby-Logic"] = str(fn)
        except Exception as exc:
            out = json.dumps({"message": f"Internal server error ({type(exc).__name__})"}).encode()
        headers["X-Standby-Region"] = self.region
        with contextlib.suppress(OSError):
            req.send_response(status)
            for k, v in headers.items():
                req.send_header(k, v)
            req.send_header("Content-Length", str(len(out)))
            req.end_headers()
            req.wfile.write(out)


class Route53:
    """Failover answers for one PRIMARY/SECONDARY pair (see the module doc)."""

    def __init__(self, endpoints: dict[str, str], primary: str, secondary: str,
                 clients: Clients, health_path: str = "/health", interval_s: float = 1.0,
                 failure_threshold: int = 3, ttl_s: float = 1.0, namespace: str = "Standby",
                 topology: str = "shop", clock: Callable[[], float] = time.time,
                 alarm_checks: dict[str, list[tuple[str, str]]] | None = None,
                 alarms: AlarmEvaluator | None = None, child_threshold: int = 2) -> None:
        """``alarm_checks``: region -> [(alarm name, InsufficientDataHealthStatus)] of the
        region's CloudWatch-alarm health checks, evaluated by ``alarms``."""
        self.endpoints, self.primary, self.secondary = endpoints, primary, secondary
        self.clients, self.health_path = clients, health_path
        self.interval_s, self.failure_threshold, self.ttl_s = (interval_s, failure_threshold,
                                                               ttl_s)
        self.namespace, self.topology, self.clock = namespace, topology, clock
        self.alarm_checks, self.alarms = alarm_checks, alarms
        self.child_threshold = child_threshold
        self.last_alarm_health: dict[str, bool] = {}
        if (alarm_checks is None) != (alarms is None):
            raise ValueError("Route53: alarm_checks and alarms go together")
        self.fails = {r: 0 for r in endpoints}
        self.oks = {r: 1 for r in endpoints}
        self.healthy = {r: True for r in endpoints}
        self.history: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="route53")

    def start(self) -> Route53:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def answer(self) -> str:
        if self.healthy[self.primary]:
            return self.primary
        return self.secondary if self.healthy[self.secondary] else self.primary

    def _endpoint_ok(self, region: str) -> bool:
        try:
            with urllib.request.urlopen(self.endpoints[region] + self.health_path,
                                        timeout=min(2.0, self.interval_s)) as resp:
                return bool(200 <= resp.status < 400)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _metric(self, region: str, name: str) -> float | None:
        now = datetime.datetime.now(datetime.UTC)
        out = self.clients.get("cloudwatch", region).get_metric_statistics(
            Namespace=self.namespace, MetricName=name,
            Dimensions=[{"Name": "Topology", "Value": self.topology},
                        {"Name": "Region", "Value": region}],
            StartTime=now - datetime.timedelta(seconds=10), EndTime=now + datetime.timedelta(
                seconds=1), Period=10, Statistics=["Maximum"])
        points = out.get("Datapoints", [])
        return max(p["Maximum"] for p in points) if points else None

    def check(self) -> None:
        """One round of every health check."""
        for region in self.endpoints:
            if self._endpoint_ok(region):
                self.fails[region], self.oks[region] = 0, self.oks[region] + 1
            else:
                self.fails[region], self.oks[region] = self.fails[region] + 1, 0
            endpoint = self.fails[region] < self.failure_threshold
            if self.alarm_checks is not None and self.alarms is not None:
                children = [endpoint, *self._alarm_children(region)]
                self.healthy[region] = sum(children) >= self.child_threshold
                continue
            try:
                force = self._metric(region, "ForceFailover")
            except Exception:
                force = None  # the metric's region is unreachable: no data, not forced
            # The calculated check is 2 of 2: the endpoint answers and the region is not
            # forced out (the veto child was removed with the veto metric).
            self.healthy[region] = endpoint and not (force is not None and force >= 1)
        answer = self.answer()
        if not self.history or self.history[-1][1] != answer:
            self.history.append((self.clock(), answer))

    def _alarm_children(self, region: str) -> list[bool]:
        assert self.alarm_checks is not None and self.alarms is not None
        now = datetime.datetime.fromtimestamp(self.clock(), datetime.UTC)
        out = []
        for name, insufficient in self.alarm_checks.get(region, []):
            try:
                ok = self.alarms.health(region, name, insufficient, now,
                                        self.last_alarm_health.get(name, True))
            except Exception:
                # The alarm's region cannot be read: Route 53 has no data for the check.
                ok = {"Healthy": True, "Unhealthy": False}.get(
                    insufficient, self.last_alarm_health.get(name, True))
            self.last_alarm_health[name] = ok
            out.append(ok)
        return out

    def _loop(self) -> None:
        # Route 53 checkers run on a fixed request interval whatever one check costs, so a
        # slow round (moto under load) is caught up, not allowed to stretch the interval.
        next_at = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.check()
            next_at += self.interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))
