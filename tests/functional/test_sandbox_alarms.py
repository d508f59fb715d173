"""CloudWatch alarm evaluation and Route 53 alarm health in the sandbox, over moto's data."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components.runtime.aws.clients import Clients
from components.sandbox.alarms import ALARM, INSUFFICIENT, OK, AlarmEvaluator, evaluate
from components.sandbox.deploy import Deployment, _bootstrap_deployer
from components.sandbox.edge import Route53
from components.sandbox.moto_proc import MotoProcess

REGION = "us-east-1"
DIMS = [{"Name": "Topology", "Value": "shop"}, {"Name": "Region", "Value": REGION}]


@pytest.fixture
def cw() -> Iterator[Deployment]:
    with MotoProcess() as moto:
        d = Deployment(moto.url, "test")
        _bootstrap_deployer(d)
        yield d


def put_alarm(d: Deployment, name: str, metric: str, period: int) -> None:
    # As the DNS layer registers its force alarm (components/aws/dns.py).
    d.client("cloudwatch", REGION).put_metric_alarm(
        AlarmName=name, Namespace="Standby", MetricName=metric, Dimensions=DIMS,
        Period=period, EvaluationPeriods=1, Threshold=1.0, Statistic="Maximum",
        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching")


def publish_every_10s(d: Deployment, metric: str, start: datetime.datetime, minutes: int,
                      high_resolution: bool) -> None:
    extra: dict[str, Any] = {"StorageResolution": 1} if high_resolution else {}
    data = [{"MetricName": metric, "Dimensions": DIMS, "Value": 1.0,
             "Timestamp": start + datetime.timedelta(seconds=10 * k), **extra}
            for k in range(minutes * 6)]
    for i in range(0, len(data), 20):
        d.client("cloudwatch", REGION).put_metric_data(Namespace="Standby",
                                                       MetricData=data[i:i + 20])


def minute_start() -> datetime.datetime:
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)
    return now.replace(second=0, microsecond=0)


def test_force_alarm_with_10s_period_over_standard_resolution_metric_misses_5_periods_in_6(
    cw: Deployment,
) -> None:
    start = minute_start()
    put_alarm(cw, "force-standard", "ForceFailover", 10)
    publish_every_10s(cw, "ForceFailover", start, 3, high_resolution=False)
    ev = AlarmEvaluator(cw.client)
    # Evaluate at every 10 s inside the second minute: the monitor published in every one.
    states = [ev.state(REGION, "force-standard", start + datetime.timedelta(seconds=70 + 10 * k))
              for k in range(6)]
    assert states.count(ALARM) == 1 and states.count(OK) == 5, states


def test_force_alarm_with_10s_period_over_high_resolution_metric_holds(cw: Deployment) -> None:
    start = minute_start()
    put_alarm(cw, "force-high", "ForceHigh", 10)
    publish_every_10s(cw, "ForceHigh", start, 3, high_resolution=True)
    ev = AlarmEvaluator(cw.client)
    states = [ev.state(REGION, "force-high", start + datetime.timedelta(seconds=70 + 10 * k))
              for k in range(6)]
    assert states == [ALARM] * 6


def test_route53_ignores_a_high_resolution_force_alarm_but_follows_a_60s_one(
    cw: Deployment,
) -> None:
    start = minute_start()
    put_alarm(cw, "force-10s", "Force10", 10)
    put_alarm(cw, "force-60s", "Force60", 60)
    publish_every_10s(cw, "Force10", start, 3, high_resolution=True)
    publish_every_10s(cw, "Force60", start, 3, high_resolution=False)
    ev = AlarmEvaluator(cw.client)
    at = start + datetime.timedelta(seconds=130)
    # insufficientDataHealthStatus "Healthy" as the DNS layer registers the force check:
    # the force never takes the region out.
    assert ev.health(REGION, "force-10s", "Healthy", at) is True
    assert "force-10s" in ev.unsupported
    assert ev.health(REGION, "force-60s", "Healthy", at) is False


def alarm(treat: str, m: int = 3, n: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"AlarmName": "a", "Period": 60, "EvaluationPeriods": m,
                           "Threshold": 1.0, "Statistic": "Maximum", "TreatMissingData": treat,
                           "ComparisonOperator": "GreaterThanOrEqualToThreshold"}
    if n is not None:
        out["DatapointsToAlarm"] = n
    return out


NOW = datetime.datetime(2026, 11, 21, 12, 0, 30, tzinfo=datetime.UTC)


def point(minutes_ago: int, value: float) -> dict[str, Any]:
    return {"Timestamp": datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)
            - datetime.timedelta(minutes=minutes_ago), "Maximum": value}


@pytest.mark.parametrize(("treat", "expected"), [
    ("missing", INSUFFICIENT), ("notBreaching", OK), ("breaching", ALARM),
])
def test_no_data_follows_treat_missing_data(treat: str, expected: str) -> None:
    assert evaluate(alarm(treat), [], NOW) == expected


def test_ignore_keeps_the_previous_state_when_no_data() -> None:
    assert evaluate(alarm("ignore"), [], NOW, previous=ALARM) == ALARM
    assert evaluate(alarm("ignore"), [], NOW, previous=OK) == OK


def test_m_out_of_n_and_only_complete_periods_count() -> None:
    two_of_three = [point(3, 1.0), point(2, 0.0), point(1, 1.0)]
    assert evaluate(alarm("missing", 3, 2), two_of_three, NOW) == ALARM
    assert evaluate(alarm("missing", 3, 3), two_of_three, NOW) == OK
    # A datum in the current, unfinished minute is not evaluated yet.
    assert evaluate(alarm("notBreaching", 1), [point(0, 1.0)], NOW) == OK


class _Ok(BaseHTTPRequestHandler):
    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.mark.parametrize(("force_period", "answer"), [(10, "us-east-1"), (60, "us-west-2")])
def test_route53_standin_fails_over_on_the_force_alarm_only_when_route53_can_read_it(
    cw: Deployment, force_period: int, answer: str,
) -> None:
    start = minute_start()
    name = f"force-{force_period}"
    put_alarm(cw, name, f"Force{force_period}", force_period)
    publish_every_10s(cw, f"Force{force_period}", start, 3, high_resolution=force_period < 60)
    cw.client("cloudwatch", REGION).put_metric_alarm(  # healthy only while vetoed
        AlarmName="veto", Namespace="Standby", MetricName="VetoFailover", Dimensions=DIMS,
        Period=60, EvaluationPeriods=1, Threshold=1.0, Statistic="Maximum",
        ComparisonOperator="LessThanThreshold", TreatMissingData="breaching")
    put_alarm(cw, "quiet", "Quiet", 60)  # no data, notBreaching: OK
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Ok) for _ in range(2)]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        urls = {r: f"http://127.0.0.1:{s.server_address[1]}"
                for r, s in zip(("us-east-1", "us-west-2"), servers, strict=True)}
        r53 = Route53(urls, "us-east-1", "us-west-2", Clients(endpoint_url=cw.moto_url),
                      clock=lambda: (start + datetime.timedelta(seconds=130)).timestamp(),
                      alarm_checks={"us-east-1": [(name, "Healthy"), ("veto", "Unhealthy")],
                                    "us-west-2": [("quiet", "Healthy")]},
                      alarms=AlarmEvaluator(cw.client), child_threshold=2)
        r53.check()
        assert r53.answer() == answer, (r53.healthy, r53.last_alarm_health)
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()
