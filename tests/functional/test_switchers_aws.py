"""Every switcher honours the fencing token or is reconciled by its heartbeat, against a moto
server over HTTP (review #9: only pointers checked the token)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from components.runtime.aws.clients import Clients
from components.runtime.aws.state import DynamoStateStore
from components.runtime.aws.switchers import (
    TOKEN_VARIABLE,
    HealthMetricsSwitcher,
    IntegrationSwitcher,
    PointerAllSwitcher,
    PointerSwitcher,
    RecordSwitcher,
    StageVariableSwitcher,
)
from components.runtime.engine import Intent, ScopeState
from components.runtime.errors import StaleToken, SwitchError
from components.runtime.lease import SwitchRecord
from components.sandbox import world as w
from tests.conftest import DownRegionClients

pytestmark = pytest.mark.usefixtures("aws")

FN = "arn:aws:lambda:us-east-1:123456789012:function:shop-logic-use1-{}"


def stage_state(target: dict[str, Any]) -> tuple[str, str | None]:
    stage = w.client("apigateway").get_stage(restApiId=target["rest_api_id"], stageName="live")
    variables = stage.get("variables", {})
    return variables["logicFunction"], variables.get(TOKEN_VARIABLE)


def set_stage(target: dict[str, Any], value: str, token: int | None = None) -> None:
    """What a racing holder (or a hand edit) leaves on the stage."""
    ops = [{"op": "replace", "path": "/variables/logicFunction", "value": value}]
    if token is not None:
        ops.append({"op": "replace", "path": f"/variables/{TOKEN_VARIABLE}", "value": str(token)})
    w.client("apigateway").update_stage(restApiId=target["rest_api_id"], stageName="live",
                                        patchOperations=ops)


def stage_target() -> dict[str, Any]:
    return w.rest_stage(w.R1, "shop-logic-use1-primary", "shop-logic-use1-standby")


def test_stage_variable_refuses_a_stale_token_and_records_its_own() -> None:
    target = stage_target()
    sw = StageVariableSwitcher(Clients())
    sw.apply(target, "standby", 5, "primary down")
    assert stage_state(target) == ("shop-logic-use1-standby", "5")
    with pytest.raises(StaleToken, match="holds token 5"):
        sw.apply(target, "primary", 4, "a holder that lost its lease")
    with pytest.raises(StaleToken):  # the same token may not move it elsewhere either
        sw.apply(target, "primary", 5, "replay")
    assert stage_state(target) == ("shop-logic-use1-standby", "5")  # nothing half-changed
    sw.apply(target, "standby", 5, "retry")  # a retry of its own write is fine
    sw.apply(target, "primary", 6, "failback")
    assert stage_state(target) == ("shop-logic-use1-primary", "6")


def test_stage_variable_heartbeat_reconciles_a_stage_a_racing_switch_left_behind() -> None:
    target = stage_target()
    sw = StageVariableSwitcher(Clients())
    sw.apply(target, "standby", 2, "primary down")
    set_stage(target, "shop-logic-use1-primary", 1)  # a stale holder's write landed last
    sw.heartbeat(target, "standby", 2)
    assert stage_state(target) == ("shop-logic-use1-standby", "2")
    set_stage(target, "shop-logic-use1-primary")  # a hand edit keeps the token
    sw.heartbeat(target, "standby", 2)
    assert stage_state(target) == ("shop-logic-use1-standby", "2")


def test_stage_variable_heartbeat_leaves_a_newer_token_alone() -> None:
    # The committed state this monitor read may predate a switch that just committed.
    target = stage_target()
    sw = StageVariableSwitcher(Clients())
    sw.apply(target, "standby", 7, "newer switch")
    sw.heartbeat(target, "primary", 6)
    assert stage_state(target) == ("shop-logic-use1-standby", "7")


def test_stage_variable_heartbeat_before_any_switch_restores_the_deployed_side() -> None:
    target = stage_target()
    sw = StageVariableSwitcher(Clients())
    sw.heartbeat(target, "primary", 0)  # never switched: nothing to write
    assert stage_state(target) == ("shop-logic-use1-primary", None)
    set_stage(target, "shop-logic-use1-standby")  # someone edits it before any switch
    sw.heartbeat(target, "primary", 0)
    assert stage_state(target)[0] == "shop-logic-use1-primary"


def integration_target() -> tuple[dict[str, Any], Any]:
    v2 = w.client("apigatewayv2")
    api = v2.create_api(Name="shop", ProtocolType="HTTP")["ApiId"]
    integ = v2.create_integration(ApiId=api, IntegrationType="AWS_PROXY",
                                  IntegrationUri=FN.format("primary"),
                                  PayloadFormatVersion="2.0")["IntegrationId"]
    target = {"scope": w.R1, "kind": "apigw_integration", "region": w.R1, "api_id": api,
              "integration_id": integ,
              "values": {"primary": FN.format("primary"), "standby": FN.format("standby")}}
    return target, v2


def test_integration_refuses_a_stale_token() -> None:
    target, v2 = integration_target()
    sw = IntegrationSwitcher(Clients())
    sw.apply(target, "standby", 3, "primary down")
    got = v2.get_integration(ApiId=target["api_id"], IntegrationId=target["integration_id"])
    assert got["IntegrationUri"] == FN.format("standby")
    assert got["Description"] == "standby token 3: primary down"
    with pytest.raises(StaleToken, match="holds token 3"):
        sw.apply(target, "primary", 2, "a holder that lost its lease")
    assert sw.current(target) == "standby"
    sw.apply(target, "primary", 4, "failback")
    assert sw.current(target) == "primary"


def test_integration_heartbeat_reconciles_and_leaves_a_newer_token_alone() -> None:
    target, v2 = integration_target()
    sw = IntegrationSwitcher(Clients())
    sw.apply(target, "standby", 3, "primary down")
    v2.update_integration(ApiId=target["api_id"], IntegrationId=target["integration_id"],
                          IntegrationUri=FN.format("primary"), Description="hand edit")
    sw.heartbeat(target, "standby", 3)
    got = v2.get_integration(ApiId=target["api_id"], IntegrationId=target["integration_id"])
    assert got["IntegrationUri"] == FN.format("standby")
    assert got["Description"].startswith("standby token 3: ")
    sw.apply(target, "primary", 9, "newer switch")
    sw.heartbeat(target, "standby", 3)
    assert sw.current(target) == "primary"


def test_record_heartbeat_reconciles_what_a_stale_apply_left() -> None:
    # Route 53 cannot return the change comment with the record, so a stale apply cannot be
    # refused there; the heartbeat of the next round puts the committed side back.
    zone = w.client("route53").create_hosted_zone(Name="example.com", CallerReference="t")
    zid = zone["HostedZone"]["Id"].split("/")[-1]
    target = {"scope": "main", "kind": "route53_record", "zone_id": zid,
              "name": "api.example.com", "type": "CNAME", "ttl": 30,
              "values": {"primary": "a.execute-api.us-east-1.amazonaws.com",
                         "standby": "b.execute-api.us-west-2.amazonaws.com"},
              "regions": {"primary": w.R1, "standby": w.R2}}
    sw = RecordSwitcher(Clients())
    sw.apply(target, "standby", 5, "primary down")
    sw.apply(target, "primary", 4, "a holder that lost its lease")
    assert sw.current(target) == "primary"
    sw.heartbeat(target, "standby", 5)
    assert sw.current(target) == "standby"


def _latest(metric: str, region: str) -> float | None:
    now = dt.datetime.now(dt.UTC)
    points = w.client("cloudwatch").get_metric_statistics(
        Namespace="Standby", MetricName=metric, Statistics=["Maximum"], Period=60,
        Dimensions=[{"Name": "Topology", "Value": "shop"}, {"Name": "Region", "Value": region}],
        StartTime=now - dt.timedelta(minutes=5), EndTime=now + dt.timedelta(minutes=1),
    )["Datapoints"]
    return max(p["Maximum"] for p in points) if points else None


def test_health_metrics_publish_no_veto_and_heartbeat_the_committed_side() -> None:
    # review #4: the veto metric was always 0 (dead code); it is gone, and a target without
    # veto keys (what the deploy now writes) works.
    target = {"scope": w.R1, "kind": "route53_health_metrics", "region": w.R1,
              "namespace": "Standby", "dimensions": {"Topology": "shop", "Region": w.R1},
              "force_metric": "ForceFailover", "force_alarm": "shop-ForceFailover-us-east-1"}
    sw = HealthMetricsSwitcher(Clients())
    sw.heartbeat(target, "primary", 0)
    assert _latest("ForceFailover", w.R1) == 0.0
    sw.apply(target, "standby", 1, "endpoint down")
    sw.heartbeat(target, "standby", 1)
    assert _latest("ForceFailover", w.R1) == 1.0
    names = {m["MetricName"] for m in w.client("cloudwatch").list_metrics(
        Namespace="Standby")["Metrics"]}
    assert names == {"ForceFailover"}


def test_pointer_heartbeat_reconciles_a_pointer_and_honours_a_newer_token() -> None:
    w.pointer_table(w.R1)
    target = {"scope": w.R1, "kind": "pointer", "region": w.R1,
              "table": "shop-standby-pointers", "key": "wrapper",
              "values": {"primary": "primary", "standby": "standby"}}
    sw = PointerSwitcher(Clients())
    sw.apply(target, "standby", 5, "primary down")
    # Failback committed at token 6, but its pointer write never happened (crash).
    sw.heartbeat(target, "primary", 6)
    assert w.pointer(w.R1, "wrapper") == ("primary", 6)
    sw.apply(target, "standby", 8, "newer switch")
    sw.heartbeat(target, "primary", 6)  # a stale read of the committed state
    assert w.pointer(w.R1, "wrapper") == ("standby", 8)


def test_monitor_round_reconciles_the_stage_to_the_committed_side() -> None:
    # End to end through the real monitor: committed standby at token 2, the stage left on
    # the primary function by a racing holder; one round puts it back.
    w.state_table()
    target = stage_target()
    store = DynamoStateStore(Clients(), "shop-standby-state", w.R2)
    lease = store.acquire("gateway", "ops:test", 100.0, 60.0)
    assert lease is not None
    store.begin(lease, w.R1, "primary", Intent(lease.token, "standby", "primary", lease.holder,
                                               ("apigw_stage_variable",), 0, 100.0, "drill"),
                100.5)
    store.commit(lease, w.R1, "primary", ScopeState(active="standby", last_switch_at=100.0),
                 SwitchRecord("gateway", w.R1, 100.0, "ops:test", "primary", "standby",
                              lease.token, "drill"), 101.0)
    store.release(lease)
    set_stage(target, "shop-logic-use1-primary", lease.token - 1)
    server = w.HealthServer()
    try:
        probes = [{"scope": w.R1, "kind": "http", "url": server.url}]
        monitor = w.monitor(w.env("gateway", w.R1, probes, [target]))
        try:
            [outcome] = monitor.round()
        finally:
            monitor.close()
    finally:
        server.stop()
    assert not outcome.switched
    assert stage_state(target) == ("shop-logic-use1-standby", str(lease.token))


def test_bucket_fault_never_moves_the_data_pointer() -> None:
    # review #5 end to end: two monitors, the data store healthy in both regions, the
    # primary bucket gone. Before, the bucket failed the primary side and quorum moved data.
    w.state_table()
    for r in (w.R1, w.R2):
        w.pointer_table(r)
        w.client("dynamodb", r).create_table(
            TableName="shop-data", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    w.client("s3", w.R2).create_bucket(Bucket="shop-data-standby",
                                       CreateBucketConfiguration={"LocationConstraint": w.R2})
    sides = {w.R1: "primary", w.R2: "standby"}
    probes = [*({"scope": "data", "kind": "dynamodb", "side": s, "region": r,
                 "table": "shop-data"} for r, s in sides.items()),
              *({"scope": "data", "kind": "bucket", "side": s, "region": r,
                 "bucket": f"shop-data-{s}"} for r, s in sides.items())]
    switch = [{"scope": "data", "kind": "pointer_all", "key": "data",
               "tables": [{"region": r, "table": "shop-standby-pointers"} for r in sides],
               "values": {"primary": w.R1, "standby": w.R2}}]
    monitors = [w.monitor(w.env("data", r, probes, switch)) for r in sides]
    try:
        outcomes = [o for _ in range(3) for m in monitors for o in m.round()]
        results = monitors[0].probe()
    finally:
        for m in monitors:
            m.close()
    assert [r.ok for r in results if r.kind == "bucket"] == [False, True]  # the fault is real
    assert not any(o.switched or o.decision.is_switch for o in outcomes)
    assert w.pointer(w.R1, "data") == (w.R1, 0) and w.pointer(w.R2, "data") == (w.R1, 0)


def _pointer_all_target() -> dict[str, Any]:
    return {"scope": "data", "kind": "pointer_all", "key": "data",
            "tables": [{"region": r, "table": "shop-standby-pointers"} for r in (w.R1, w.R2)],
            "values": {"primary": w.R1, "standby": w.R2}}


def test_pointer_all_aborts_when_a_reachable_region_refuses_its_table_write() -> None:
    # review #6 / issue 11: a table that failed was skipped ("caught up by heartbeat") even
    # when its region answered, so that region's wrappers kept writing to the old side.
    w.state_table()
    w.pointer_table(w.R2)  # us-east-1's table is missing: the region answers, and refuses
    with pytest.raises(SwitchError, match="us-east-1"):
        PointerAllSwitcher(Clients()).apply(_pointer_all_target(), "standby", 1, "test")


def test_pointer_all_moves_on_past_a_region_that_does_not_answer() -> None:
    w.pointer_table(w.R2)
    sw = PointerAllSwitcher(DownRegionClients(w.R1))
    sw.apply(_pointer_all_target(), "standby", 1, "test")
    assert w.pointer(w.R2, "data")[0] == w.R2
    assert len(sw.lagging) == 1 and "us-east-1" in sw.lagging[0]
