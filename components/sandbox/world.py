"""Builds a small two-region topology in a moto server, and the monitors' environment for it.

Used by the tests, ``bench/monitor.py`` and the local drill.

The names and shapes follow what the components create (state table with pk/sk, pointer
tables keyed by ``pointer``, a REST stage variable, Route 53 alarms), so the run-time code
is exercised against the same contract it gets in the cloud.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3

from components.runtime.aws.clients import Clients
from components.runtime.aws.monitor import build
from components.runtime.config import load
from components.runtime.monitor_core import Monitor
from components.runtime.observe import Log
from components.sandbox.functions import FunctionHost

R1, R2 = "us-east-1", "us-west-2"
SETTINGS = {"interval_s": 1, "timeout_s": 0.5, "failure_threshold": 2,
            "recovery_threshold": 2, "cooldown_s": 0, "failback": "manual", "quorum": 2,
            "practice": False, "switch_allowance_s": None}


def client(service: str, region: str = R1) -> Any:
    make: Any = boto3.client  # service is a runtime string
    return make(service, region_name=region)


def state_table(name: str = "shop-standby-state", region: str = R2) -> str:
    client("dynamodb", region).create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}])
    return name


def pointer_table(region: str, name: str = "shop-standby-pointers") -> str:
    ddb = client("dynamodb", region)
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pointer", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pointer", "AttributeType": "S"}])
    for key, active in (("wrapper", "primary"), ("data", R1)):
        ddb.put_item(TableName=name, Item={"pointer": {"S": key}, "active": {"S": active},
                                           "token": {"N": "0"}, "reason": {"S": "initial"}})
    return name


def pointer(region: str, key: str, name: str = "shop-standby-pointers") -> tuple[str, int]:
    item = client("dynamodb", region).get_item(TableName=name, Key={"pointer": {"S": key}},
                                               ConsistentRead=True)["Item"]
    return item["active"]["S"], int(item["token"]["N"])


def rest_stage(region: str, primary: str, standby: str) -> dict[str, Any]:
    apigw = client("apigateway", region)
    api = apigw.create_rest_api(name=f"shop-{region}")["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    apigw.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="HTTP",
                          integrationHttpMethod="GET", uri="http://example.com")
    dep = apigw.create_deployment(restApiId=api)["id"]
    apigw.create_stage(restApiId=api, stageName="live", deploymentId=dep,
                       variables={"logicFunction": primary})
    return {"scope": region, "kind": "apigw_stage_variable", "region": region,
            "rest_api_id": api, "stage": "live", "variable": "logicFunction",
            "values": {"primary": primary, "standby": standby}}


def env(layer: str, region: str, probes: list[dict[str, Any]], switch: list[dict[str, Any]],
        **settings: Any) -> dict[str, str]:
    return {
        "STANDBY_TOPOLOGY": "shop", "STANDBY_LAYER": layer, "STANDBY_REGION": region,
        "STANDBY_SETTINGS": json.dumps({**SETTINGS, **settings}),
        "STANDBY_PROBES": json.dumps(probes), "STANDBY_SWITCH": json.dumps(switch),
        "STANDBY_STATE_TABLE": "shop-standby-state", "STANDBY_STATE_REGION": R2,
        "STANDBY_WEBHOOKS": "[]", "STANDBY_LOOP_S": "0", "STANDBY_METRIC_NAMESPACE": "Standby",
    }


def monitor(e: dict[str, str]) -> Monitor:
    return build(load(e), Log(stream=_Sink()), Clients())


class _Sink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, s: str) -> int:
        self.lines.append(s)
        return len(s)


@dataclass
class HealthServer:
    """A real local HTTP endpoint whose health a test controls: ok, 5xx, slow, or stopped."""

    mode: str = "ok"
    delay_s: float = 2.0
    hits: int = 0
    server: ThreadingHTTPServer = field(init=False)

    def __post_init__(self) -> None:
        outer = self

        class Req(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.hits += 1
                if outer.mode == "slow":
                    time.sleep(outer.delay_s)
                status = 503 if outer.mode == "5xx" else 200
                body = b'{"ok": true}' if status == 200 else b"unavailable"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Req)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def host_functions(names: list[str]) -> FunctionHost:
    host = FunctionHost()
    for n in names:
        host.register(n, lambda event, ctx: {"ok": True})
    return host


def dns_health_targets(regions: tuple[str, ...] = (R1, R2)) -> list[dict[str, Any]]:
    """The force/veto alarms the DNS layer creates per region, and the DNS monitor's
    ``route53_health_metrics`` switch target for each."""
    targets = []
    for r in regions:
        dims = {"Topology": "shop", "Region": r}
        for metric in ("ForceFailover", "VetoFailover"):
            client("cloudwatch", r).put_metric_alarm(
                AlarmName=f"shop-{metric}-{r}", Namespace="Standby", MetricName=metric,
                Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
                Statistic="Maximum", Period=10, EvaluationPeriods=1, Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold")
        targets.append({"scope": r, "kind": "route53_health_metrics", "region": r,
                        "namespace": "Standby", "dimensions": dims,
                        "force_metric": "ForceFailover", "veto_metric": "VetoFailover",
                        "force_alarm": f"shop-ForceFailover-{r}",
                        "veto_alarm": f"shop-VetoFailover-{r}"})
    return targets
