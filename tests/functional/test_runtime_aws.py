"""Run-time AWS adapters against a moto server over HTTP, with health from real local
HTTP servers (and the sandbox function host) that the tests stop, slow or make answer 5xx."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from components.runtime.aws.clients import Clients
from components.runtime.aws.db_switchers import RdsPromoteSwitcher
from components.runtime.aws.monitor import handler
from components.runtime.aws.state import DynamoStateStore
from components.runtime.aws.switchers import (
    HealthMetricsSwitcher,
    IntegrationSwitcher,
    PointerAllSwitcher,
    PointerSwitcher,
    RecordSwitcher,
    StageVariableSwitcher,
)
from components.runtime.config import load
from components.runtime.engine import Intent, ScopeState, Vote
from components.runtime.errors import (
    ConfigError,
    EventError,
    LeaseLost,
    StaleToken,
    StoreError,
    SwitchError,
)
from components.runtime.lease import Lease, SwitchRecord
from components.sandbox import world as w
from tests.conftest import DownRegionClients

pytestmark = pytest.mark.usefixtures("aws")


def test_state_store_protocol_on_dynamodb() -> None:
    store = DynamoStateStore(Clients(), w.state_table(), w.R2)
    a = store.acquire("data", "us-east-1#inv-a", 100, 60)
    assert a is not None and a.token == 1
    assert store.acquire("data", "us-west-2#inv-c", 110, 60) is None  # held
    intent_a = Intent(1, "standby", "primary", a.holder, ("pointer:x",), 0, 100, "why")
    store.begin(a, "data", "primary", intent_a, 101)
    b = store.acquire("data", "us-west-2#inv-c", 161, 60)  # expired: taken over
    assert b is not None and b.token == 2
    rec = SwitchRecord("data", "data", 161, a.holder, "primary", "standby", 1, "why",
                       evidence={"probes": [{"ok": False}]})
    with pytest.raises(LeaseLost):
        store.commit(a, "data", "primary", ScopeState(active="standby", last_switch_at=161),
                     rec, 162)
    # The new holder takes the unfinished intent over (newer token) and commits it.
    assert store.read_scope("data", "data").intent == intent_a
    store.begin(b, "data", "primary", Intent(2, "standby", "primary", b.holder, ("pointer:x",),
                                             0, 161, "resume"), 161)
    store.progress(b, "data", 1)
    with pytest.raises(StaleToken):  # the old holder's intent is gone
        store.progress(a, "data", 1)
    store.commit(b, "data", "primary", ScopeState(active="standby", last_switch_at=161),
                 SwitchRecord("data", "data", 161, b.holder, "primary", "standby", 2, "why"),
                 162)
    assert store.read_scope("data", "data") == ScopeState("standby", 2, 161.0)
    store.release(b)
    c = store.acquire("data", "us-east-1#inv-d", 170, 60)
    assert c is not None and c.token == 3
    with pytest.raises(StaleToken):  # not primary any more
        store.begin(c, "data", "primary", Intent(3, "standby", "primary", c.holder, (), 0,
                                                 170, "x"), 171)
    [logged] = store.log("data")
    assert (logged.by, logged.token, logged.reason) == (b.holder, 2, "why")
    assert store.put_vote("data", "data", Vote("us-east-1", 170, primary_fail=3, standby_ok=2),
                          gap_s=9)
    assert store.votes("data", "data") == [Vote("us-east-1", 170.0, 3, 0, 0, 2)]
    # A duplicate step (within the gap) and a late one (older) are refused, not counted.
    assert not store.put_vote("data", "data", Vote("us-east-1", 175, primary_fail=4), gap_s=9)
    assert not store.put_vote("data", "data", Vote("us-east-1", 160, primary_fail=9), gap_s=9)
    assert store.put_vote("data", "data", Vote("us-east-1", 180, primary_fail=4), gap_s=9)
    assert store.votes("data", "data") == [Vote("us-east-1", 180.0, 4)]


def test_store_failure_is_a_store_error_not_a_client_error() -> None:
    # A table that does not exist answers ResourceNotFoundException: not a condition.
    store = DynamoStateStore(Clients(), "no-such-table", w.R2)
    with pytest.raises(StoreError, match="acquire the lease failed"):
        store.acquire("data", "h", 0, 60)
    lease = Lease("data", "h", 1, 60)
    with pytest.raises(StoreError, match="commit the switch failed"):
        store.commit(lease, "data", "primary", ScopeState(active="standby"),
                     SwitchRecord("data", "data", 0, "h", "primary", "standby", 1, "x"), 1)
    with pytest.raises(StoreError, match="store the vote failed"):
        store.put_vote("data", "data", Vote("r", 1))


def test_store_reports_its_clock_from_the_date_header() -> None:
    store = DynamoStateStore(Clients(), w.state_table(), w.R2)
    # The moto server runs on this machine: its Date is this clock (to 1 s, plus however
    # slow the shared machine is); a misread zone or format would be hours off.
    assert abs(store.server_time() - time.time()) < 60


class Clock:
    """Time the test moves: rounds an interval apart without sleeping."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, s: float = 1.0) -> None:
        self.t += s


def test_pointer_rejects_a_stale_token_and_is_idempotent() -> None:
    table = w.pointer_table(w.R1)
    sw = PointerSwitcher(Clients())
    target = {"scope": w.R1, "kind": "pointer", "region": w.R1, "table": table,
              "key": "wrapper", "values": {"primary": "primary", "standby": "standby"}}
    sw.apply(target, "standby", 5, "drill")
    sw.apply(target, "standby", 5, "drill")  # same token, same value: a retry is harmless
    assert sw.verify(target, "standby") and w.pointer(w.R1, "wrapper") == ("standby", 5)
    with pytest.raises(StaleToken):
        sw.apply(target, "primary", 3, "late monitor")
    assert w.pointer(w.R1, "wrapper") == ("standby", 5)


def _logic_world(quorum: int = 2) -> tuple[Any, list[dict[str, str]], str]:
    w.state_table()
    table = w.pointer_table(w.R1)
    host = w.host_functions(["shop-wrap-use1-primary", "shop-wrap-use1-standby"])
    probes = [{"scope": w.R1, "kind": "lambda", "side": side,
               "function": f"arn:aws:lambda:us-east-1:123456789012:function:shop-wrap-use1-{side}"}
              for side in ("primary", "standby")]
    switch = [{"scope": w.R1, "kind": "pointer", "region": w.R1, "table": table,
               "key": "wrapper", "values": {"primary": "primary", "standby": "standby"}}]
    envs = [w.env("logic", r, probes, switch, quorum=quorum) for r in (w.R1, w.R2)]
    return host, envs, table


def test_two_racing_monitors_produce_exactly_one_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    host, envs, _ = _logic_world()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", host.url)
    try:
        host.fault("shop-wrap-use1-primary", "5xx")
        monitors = [w.monitor(e) for e in envs]
        clock = Clock()
        for m in monitors:
            m.clock = clock
        outcomes: list[Any] = []
        for _ in range(4):
            clock.tick()
            barrier = threading.Barrier(2)

            def run(m: Any, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                outcomes.extend(m.round())

            threads = [threading.Thread(target=run, args=(m,)) for m in monitors]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        switched = [o for o in outcomes if o.switched]
        assert len(switched) == 1 and switched[0].verified
        active, token = w.pointer(w.R1, "wrapper")
        assert active == "standby" and token >= 1
        store = DynamoStateStore(Clients(), "shop-standby-state", w.R2)
        [record] = store.log("logic")
        assert record.to_side == "standby" and record.token == token
        assert record.evidence["probes"]  # the probe evidence is in the log
        for m in monitors:
            m.close()
    finally:
        host.close()


def test_one_monitor_alone_does_not_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    host, envs, _ = _logic_world()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", host.url)
    try:
        host.fault("shop-wrap-use1-primary", "down")
        m = w.monitor(envs[0])
        m.clock = clock = Clock()
        outcomes = []
        for _ in range(4):
            clock.tick()
            outcomes += m.round()
        assert not any(o.switched for o in outcomes)
        assert any(o.decision.action == "alert" for o in outcomes)
        assert w.pointer(w.R1, "wrapper") == ("primary", 0)
        m.close()
    finally:
        host.close()


@pytest.mark.parametrize("fault", ["5xx", "slow", "down"])
def test_gateway_switches_the_stage_variable_when_the_logic_function_fails(
    monkeypatch: pytest.MonkeyPatch, fault: str,
) -> None:
    w.state_table()
    host = w.host_functions(["shop-logic-use1-primary", "shop-logic-use1-standby"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", host.url)
    try:
        target = w.rest_stage(w.R1, "shop-logic-use1-primary", "shop-logic-use1-standby")
        probes = [{"scope": w.R1, "kind": "lambda", "side": s, "function": f"shop-logic-use1-{s}"}
                  for s in ("primary", "standby")]
        monitors = [w.monitor(w.env("gateway", r, probes, [target])) for r in (w.R1, w.R2)]
        clock = Clock()
        for m in monitors:
            m.clock = clock
        host.fault("shop-logic-use1-primary", fault, delay_s=2.0)
        outcomes = []
        for _ in range(3):
            clock.tick()
            outcomes += [o for m in monitors for o in m.round()]
        assert [o.switched for o in outcomes].count(True) == 1
        stage = w.client("apigateway").get_stage(restApiId=target["rest_api_id"],
                                                 stageName="live")
        assert stage["variables"]["logicFunction"] == "shop-logic-use1-standby"
        for m in monitors:
            m.close()
    finally:
        host.close()


def test_dns_forces_a_region_out_when_its_endpoint_stops() -> None:
    w.state_table()
    servers = {w.R1: w.HealthServer(), w.R2: w.HealthServer()}
    cw = w.client("cloudwatch")
    targets = w.dns_health_targets()
    probes = [{"scope": r, "kind": "http", "url": s.url, "expect_status": 200}
              for r, s in servers.items()]
    monitors = [w.monitor(w.env("dns", r, probes, targets)) for r in (w.R1, w.R2)]
    clock = Clock()
    for m in monitors:
        m.clock = clock
    try:
        servers[w.R1].stop()
        outcomes = []
        for _ in range(3):
            clock.tick()
            outcomes += [o for m in monitors for o in m.round()]
        switched = [o for o in outcomes if o.switched]
        assert [o.scope for o in switched] == [w.R1] and switched[0].verified
        # The force metric for us-east-1 is published (1); us-west-2 stays in service.
        stats = cw.list_metrics(Namespace="Standby", MetricName="ForceFailover")["Metrics"]
        assert {d["Value"] for m in stats for d in m["Dimensions"] if d["Name"] == "Region"} >= {w.R1}  # noqa: E501
        store = DynamoStateStore(Clients(), "shop-standby-state", w.R2)
        assert store.read_scope("dns", w.R1).active == "standby"
        assert store.read_scope("dns", w.R2).active == "primary"
    finally:
        for m in monitors:
            m.close()
        servers[w.R2].stop()


def test_record_switcher_upserts_and_reads_back() -> None:
    zone = w.client("route53").create_hosted_zone(Name="example.com", CallerReference="t")
    zid = zone["HostedZone"]["Id"].split("/")[-1]
    target = {"scope": "main", "kind": "route53_record", "zone_id": zid,
              "name": "api.example.com", "type": "CNAME", "ttl": 30,
              "values": {"primary": "a.execute-api.us-east-1.amazonaws.com",
                         "standby": "b.execute-api.us-west-2.amazonaws.com"},
              "regions": {"primary": w.R1, "standby": w.R2}}
    sw = RecordSwitcher(Clients())
    sw.apply(target, "primary", 1, "initial")
    assert sw.current(target) == "primary"
    sw.apply(target, "standby", 2, "drill")
    sw.apply(target, "standby", 2, "drill")  # UPSERT twice: idempotent
    assert sw.verify(target, "standby")


def test_integration_switcher() -> None:
    v2 = w.client("apigatewayv2")
    api = v2.create_api(Name="shop", ProtocolType="HTTP")["ApiId"]
    fn = "arn:aws:lambda:us-east-1:123456789012:function:shop-logic-use1-{}"
    integ = v2.create_integration(ApiId=api, IntegrationType="AWS_PROXY",
                                  IntegrationUri=fn.format("primary"),
                                  PayloadFormatVersion="2.0")["IntegrationId"]
    target = {"scope": w.R1, "kind": "apigw_integration", "region": w.R1, "api_id": api,
              "integration_id": integ,
              "values": {"primary": fn.format("primary"), "standby": fn.format("standby")}}
    sw = IntegrationSwitcher(Clients())
    assert sw.current(target) == "primary"
    sw.apply(target, "standby", 1, "drill")
    assert sw.verify(target, "standby")


def test_stage_variable_switcher_reports_a_missing_stage() -> None:
    target = {"scope": w.R1, "kind": "apigw_stage_variable", "region": w.R1,
              "rest_api_id": "nope", "stage": "live", "variable": "logicFunction",
              "values": {"primary": "a", "standby": "b"}}
    with pytest.raises(SwitchError, match="stage nope/live"):
        StageVariableSwitcher(Clients()).apply(target, "standby", 1, "x")


def test_rds_promotion_is_one_way_and_idempotent() -> None:
    rds1, rds2 = w.client("rds", w.R1), w.client("rds", w.R2)
    src = rds1.create_db_instance(DBInstanceIdentifier="shop-db", Engine="postgres",
                                  DBInstanceClass="db.t3.micro", AllocatedStorage=20,
                                  MasterUsername="app", MasterUserPassword="x" * 12)
    rds2.create_db_instance_read_replica(
        DBInstanceIdentifier="shop-db-replica",
        SourceDBInstanceIdentifier=src["DBInstance"]["DBInstanceArn"])
    target = {"scope": "data", "kind": "rds_promote", "region": w.R2,
              "instance_id": "shop-db-replica", "max_lag_s": 5}
    sw = RdsPromoteSwitcher(Clients())
    assert sw.current(target) == "primary"
    sw.apply(target, "standby", 1, "primary down")  # PromoteReadReplica accepted
    # moto 5 accepts PromoteReadReplica but keeps ReadReplicaSourceDBInstanceIdentifier, so
    # the read-back (source gone, as on AWS once promotion finishes) cannot pass here; the
    # switch is recorded unverified rather than claimed.
    assert not sw.verify(target, "standby")
    sw.apply(target, "standby", 1, "retry")  # a retry is accepted too
    with pytest.raises(SwitchError, match="cannot be demoted"):
        sw.apply(target, "primary", 2, "failback")


def test_data_pointer_moves_everywhere_and_catches_up_an_unreachable_region() -> None:
    w.pointer_table(w.R2)
    target = {"scope": "data", "kind": "pointer_all", "key": "data",
              "tables": [{"region": w.R1, "table": "shop-standby-pointers"},
                         {"region": w.R2, "table": "shop-standby-pointers"}],
              "values": {"primary": w.R1, "standby": w.R2}}
    down = PointerAllSwitcher(DownRegionClients(w.R1))
    down.apply(target, "standby", 4, "primary region down")  # us-east-1 does not answer
    assert w.pointer(w.R2, "data") == (w.R2, 4) and len(down.lagging) == 1
    assert not down.verify(target, "standby")  # honest: not everywhere yet
    w.pointer_table(w.R1)  # the region comes back with its old pointer
    sw = PointerAllSwitcher(Clients())
    sw.heartbeat(target, "standby", 4)
    assert w.pointer(w.R1, "data") == (w.R2, 4) and sw.verify(target, "standby")


def test_health_metrics_verify_checks_the_alarm_wiring() -> None:
    target = {"scope": w.R1, "kind": "route53_health_metrics", "region": w.R1,
              "namespace": "Standby", "dimensions": {"Topology": "shop", "Region": w.R1},
              "force_metric": "ForceFailover", "veto_metric": "VetoFailover",
              "force_alarm": "missing-alarm", "veto_alarm": "missing-veto"}
    sw = HealthMetricsSwitcher(Clients())
    sw.apply(target, "standby", 1, "x")
    assert not sw.verify(target, "standby")  # no such alarm: the wiring is broken


# -- handler: events and configuration ----------------------------------------------------


def test_handler_runs_rounds_and_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    host, envs, _ = _logic_world(quorum=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", host.url)
    try:
        host.fault("shop-wrap-use1-primary", "error")
        out = handler({"source": "manual", "layer": "logic", "rounds": 3}, None, env=envs[0])
        assert out["rounds"] == 3 and len(out["switches"]) == 1
        assert w.pointer(w.R1, "wrapper")[0] == "standby"
    finally:
        host.close()


@pytest.mark.parametrize(("interval", "threshold"), [(30, 3), (60, 2)])
def test_streak_survives_fresh_handler_invocations(
    monkeypatch: pytest.MonkeyPatch, interval: int, threshold: int,
) -> None:
    # Before: every invocation built a new Monitor whose streak started at 1, so with one
    # round per invocation these settings never switched. Duplicated deliveries of one
    # schedule must not count twice either.
    host, _, _ = _logic_world()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", host.url)
    try:
        host.fault("shop-wrap-use1-primary", "error")
        probes = [{"scope": w.R1, "kind": "lambda", "side": side,
                   "function": f"arn:aws:lambda:us-east-1:123456789012:function:"
                               f"shop-wrap-use1-{side}"} for side in ("primary", "standby")]
        switch = [{"scope": w.R1, "kind": "pointer", "region": w.R1,
                   "table": "shop-standby-pointers", "key": "wrapper",
                   "values": {"primary": "primary", "standby": "standby"}}]
        env = w.env("logic", w.R1, probes, switch, quorum=1, interval_s=interval,
                    failure_threshold=threshold)
        clock = Clock()
        event = {"source": "manual", "layer": "logic", "rounds": 1}
        for _ in range(threshold - 1):
            for dup in (0.0, 2.0):  # each schedule delivered twice
                clock.t += dup
                assert handler(event, None, env=env, clock=clock)["switches"] == []
            clock.tick(interval - 2.0)
        assert w.pointer(w.R1, "wrapper") == ("primary", 0)
        out = handler(event, None, env=env, clock=clock)
        assert [s["to"] for s in out["switches"]] == ["standby"]
        assert w.pointer(w.R1, "wrapper")[0] == "standby"
    finally:
        host.close()


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("not a dict", "event: expected a JSON object, got str"),
        ({"source": "schedule", "force": True}, "unknown key(s) force"),
        ({"source": "cron"}, "event.source: 'cron'; allowed: schedule, manual"),
        ({"source": "manual", "layer": "data"}, "but this is the logic monitor"),
        ({"source": "manual", "rounds": 0}, "event.rounds: 0 is not an integer in 1..100"),
    ],
)
def test_bad_events_switch_nothing(monkeypatch: pytest.MonkeyPatch, event: Any,
                                   message: str) -> None:
    host, envs, _ = _logic_world(quorum=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", host.url)
    try:
        host.fault("shop-wrap-use1-primary", "error")
        with pytest.raises(EventError) as exc:
            handler(event, None, env=envs[0])
        assert message in str(exc.value)
        assert w.pointer(w.R1, "wrapper") == ("primary", 0)
        assert host.calls == {}  # refused before any probe
    finally:
        host.close()


def test_bad_configuration_names_every_problem_and_switches_nothing() -> None:
    _, envs, _ = _logic_world()
    e = dict(envs[0])
    e["STANDBY_LAYER"] = "cache"
    e["STANDBY_SETTINGS"] = json.dumps({**w.SETTINGS, "quorum": 9, "failback": "sometimes"})
    e["STANDBY_SWITCH"] = json.dumps([{"scope": "x", "kind": "pointer", "region": w.R1}])
    e["STANDBY_PROBES"] = "{not json"
    with pytest.raises(ConfigError) as exc:
        handler({"source": "schedule"}, None, env=e)
    problems = exc.value.problems
    assert "STANDBY_LAYER: 'cache'; allowed: dns, gateway, logic, data" in problems
    assert "STANDBY_SETTINGS.quorum: 9 is not in 1..5" in problems
    assert "STANDBY_SETTINGS.failback: 'sometimes'; allowed: auto, manual" in problems
    assert "STANDBY_SWITCH[0] (pointer): missing table, key, values" in problems
    assert any(p.startswith("STANDBY_PROBES: not valid JSON") for p in problems)
    assert w.pointer(w.R1, "wrapper") == ("primary", 0)


def test_practice_mode_alerts_and_logs_but_switches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: E501
    host, envs, _ = _logic_world(quorum=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", host.url)
    try:
        host.fault("shop-wrap-use1-primary", "5xx")
        e = dict(envs[0])
        e["STANDBY_SETTINGS"] = json.dumps({**w.SETTINGS, "quorum": 1, "practice": True,
                                            "cooldown_s": 300})  # one practice per cooldown
        m = w.monitor(e)
        m.clock = clock = Clock()
        outcomes = []
        for _ in range(3):
            clock.tick()
            outcomes += m.round()
        assert any(o.decision.practice for o in outcomes) and not any(o.switched for o in outcomes)
        assert w.pointer(w.R1, "wrapper") == ("primary", 0)
        [rec] = DynamoStateStore(Clients(), "shop-standby-state", w.R2).log("logic")
        assert rec.practice and rec.to_side == "standby"
        m.close()
    finally:
        host.close()


def test_config_loads_what_the_components_register() -> None:
    # The env a mock run of the example stack gives each monitor is accepted as-is.
    from tests.conftest import run_stack

    run = run_stack("aws-dev")
    envs = [dict(r.inputs["environment"]["variables"]) for r in run.resources
            if r.type == "aws:lambda/function:Function"
            and "STANDBY_LAYER" in r.inputs["environment"]["variables"]]
    assert len(envs) == 8
    for e in envs:
        cfg = load({k: str(v) for k, v in e.items()})
        assert cfg.scopes and cfg.probes


def test_slow_endpoint_counts_as_a_failure_within_the_timeout() -> None:
    from components.runtime.probes import http_probe

    srv = w.HealthServer(mode="slow", delay_s=2.0)
    try:
        t0 = time.monotonic()
        res = http_probe({"scope": "r", "kind": "http", "url": srv.url}, 0.3)
        assert not res.ok and "timed out" in res.detail.lower()
        assert time.monotonic() - t0 < 1.5
        srv.mode = "5xx"
        res = http_probe({"scope": "r", "kind": "http", "url": srv.url}, 1.0)
        assert not res.ok and res.detail == "status 503, expected 200"
    finally:
        srv.stop()


def test_bucket_probe_heads_writes_and_reads_back() -> None:
    from components.runtime.aws.probes import bucket_probe

    w.client("s3").create_bucket(Bucket="shop-data-primary")
    probe = bucket_probe(Clients(), w.R2)
    target = {"scope": "data", "kind": "bucket", "side": "primary", "region": w.R1,
              "bucket": "shop-data-primary", "probe_key": "_standby-probe/"}
    ok = probe(target, 2.0)
    assert ok.ok and ok.detail == "head+put+get ok"
    body = w.client("s3").get_object(Bucket="shop-data-primary",
                                     Key="_standby-probe/us-west-2")["Body"].read()
    assert body  # the probe object is where the monitor's IAM policy allows it
    missing = probe({**target, "bucket": "no-such-bucket"}, 2.0)
    assert not missing.ok and ("404" in missing.detail or "Not Found" in missing.detail)


def test_replica_lag_beyond_the_budget_makes_the_standby_unfit() -> None:
    from components.runtime.probes import ProbeResult
    from components.runtime.verdict import assess

    targets = [{"scope": "data", "kind": "rds_promote", "max_lag_s": 5}]

    def results(lag: float | None) -> list[ProbeResult]:
        return [ProbeResult("data", "sql", False, 2000, "timeout", "primary"),
                ProbeResult("data", "sql", True, 5, "SELECT 1 ok", "standby",
                            {"replica": True, "lag_s": lag})]

    assert assess("data", "data", targets, results(1.0)) == (False, True)
    assert assess("data", "data", targets, results(30.0)) == (False, False)
    assert assess("data", "data", targets, results(None)) == (False, False)  # unknown lag
