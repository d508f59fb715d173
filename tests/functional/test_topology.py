"""The AWS topology under mocks: wiring, least privilege, and failing before any resource."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.aws.iam_rules import WILDCARD_EXCEPTIONS
from components.plan.mocks import PlanRun, Registration
from tests.conftest import EXAMPLE_STACKS, minimal_raw, run_raw, run_stack


def _functions(run: PlanRun) -> list[Registration]:
    return [r for r in run.resources if r.type == "aws:lambda/function:Function"]


def _env(reg: Registration) -> dict[str, str]:
    return dict(reg.inputs["environment"]["variables"])


def _by_type(run: PlanRun, typ: str) -> list[Registration]:
    return [r for r in run.resources if r.type == typ]


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_monitor_env_names_exactly_what_it_switches(stack: str) -> None:
    run = run_stack(stack)
    stages = {s.inputs["restApi"]: s for s in _by_type(run, "aws:apigateway/stage:Stage")}
    pointer_tables = {r.region for r in _by_type(run, "aws:dynamodb/table:Table")
                      if r.inputs["name"].endswith("-standby-pointers")}
    monitors = [f for f in _functions(run) if "STANDBY_LAYER" in _env(f)]
    regions = {m.region for m in monitors}
    assert len(monitors) == 4 * len(regions)
    for fn in monitors:
        env = _env(fn)
        switch = json.loads(env["STANDBY_SWITCH"])
        layer = env["STANDBY_LAYER"]
        kinds = {t["kind"] for t in switch}
        if layer == "gateway":
            assert kinds == {"apigw_stage_variable"}
            assert {t["rest_api_id"] for t in switch} == set(stages)
            for t in switch:
                stage = stages[t["rest_api_id"]]
                assert stage.inputs["variables"]["logicFunction"] == t["values"]["primary"]
        elif layer == "logic":
            assert kinds == {"pointer"} and {t["region"] for t in switch} == pointer_tables
            assert all(t["key"] == "wrapper" for t in switch)
        elif layer == "data":
            assert kinds == {"pointer_all"}
            assert {t["region"] for t in switch[0]["tables"]} == pointer_tables
        else:
            assert kinds == {"route53_health_metrics"}
            alarms = {a.inputs["name"] for a in _by_type(run, "aws:cloudwatch/metricAlarm:MetricAlarm")}  # noqa: E501
            assert {t["force_alarm"] for t in switch} <= alarms
            assert {t["veto_alarm"] for t in switch} <= alarms


def _statements(run: PlanRun) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for pol in _by_type(run, "aws:iam/rolePolicy:RolePolicy"):
        for st in json.loads(pol.inputs["policy"])["Statement"]:
            out.append((pol.name, st))
    return out


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_policy_is_scoped(stack: str) -> None:
    run = run_stack(stack)
    statements = _statements(run)
    assert statements
    for name, st in statements:
        assert st["Effect"] == "Allow"
        for action in st["Action"]:
            assert "*" not in action, (name, action)
        if "*" in st["Resource"]:
            assert set(st["Action"]) <= set(WILDCARD_EXCEPTIONS), (name, st)
        for res in st["Resource"]:
            assert res == "*" or res.startswith("arn:aws:"), (name, res)


def test_monitor_may_change_only_its_own_layer() -> None:
    run = run_stack("aws-dev")
    mutating = {
        "dns": {"cloudwatch:PutMetricData"},
        "gateway": {"apigateway:PATCH"},
        "logic": {"dynamodb:UpdateItem"},
        "data": {"dynamodb:UpdateItem"},
    }
    never = {"apigateway:PATCH", "rds:PromoteReadReplica", "route53:ChangeResourceRecordSets"}
    for fn in _functions(run):
        env = _env(fn)
        if "STANDBY_LAYER" not in env:
            continue
        layer = env["STANDBY_LAYER"]
        pol = next(p for p in _by_type(run, "aws:iam/rolePolicy:RolePolicy")
                   if p.name == f"{fn.name}-policy")
        actions = {a for st in json.loads(pol.inputs["policy"])["Statement"] for a in st["Action"]}
        assert mutating[layer] <= actions
        assert not (never - mutating[layer]) & actions, (layer, actions)


def test_switched_pointers_are_not_undone_by_pulumi_up() -> None:
    # After creation the monitors own these values; `pulumi up` must keep the active side.
    run = run_stack("aws-dev")
    stages = _by_type(run, "aws:apigateway/stage:Stage")
    assert stages and all("variables" in s.ignore_changes for s in stages)
    items = _by_type(run, "aws:dynamodb/tableItem:TableItem")
    assert items and all("item" in i.ignore_changes for i in items)


def test_standby_equal_to_primary_fails_before_any_resource() -> None:
    raw = minimal_raw()
    raw["regions"][1]["name"] = "us-east-1"
    with pytest.raises(Exception, match=r"regions\[1\].name: 'us-east-1': standby region must differ"):  # noqa: E501
        run_raw(raw)


def test_impossible_rpo_fails_before_any_resource(fresh_mocks: Any) -> None:
    raw = minimal_raw()
    raw["targets"]["rpo_s"] = 0.1
    with pytest.raises(Exception, match=r"RPO 1 s \(DynamoDB global table \(async\)\) exceeds"):
        run_raw(raw)
    assert not [r for r in fresh_mocks.resources if r.type.startswith("aws:")]


def test_plaintext_secret_config_is_refused() -> None:
    raw = minimal_raw()
    raw["alerting"] = {"webhooks": [{"kind": "dingtalk", "url": {"config": "dingHook"}}]}
    with pytest.raises(Exception, match="holds a plaintext value; secrets must be set with --secret"):  # noqa: E501
        run_raw(raw, plain={"dingHook": "https://oapi.dingtalk.com/robot/send?access_token=x"})
    run = run_raw(raw, secrets={"dingHook": "https://oapi.dingtalk.com/robot/send?access_token=x"})
    assert _by_type(run, "aws:secretsmanager/secret:Secret")


def test_sql_engine_builds_replica_in_vpc_and_lag_alarm() -> None:
    raw = minimal_raw()
    net = {"vpc_id": "vpc-1", "subnet_ids": ["subnet-a", "subnet-b"]}
    raw["database"] = {"engine": "postgres", "max_lag_s": 5,
                       "network": {"us-east-1": net, "us-west-2": net}}
    raw["targets"] = {"rto_s": 900, "rpo_s": 10}
    run = run_raw(raw)
    [primary, replica] = sorted(_by_type(run, "aws:rds/instance:Instance"), key=lambda r: r.name)
    assert primary.inputs["manageMasterUserPassword"] is True
    assert "password" not in primary.inputs
    assert replica.inputs["replicateSourceDb"] == primary.outputs["arn"]
    assert replica.region == "us-west-2" and replica.inputs["storageEncrypted"] is True
    data_mon = next(f for f in _functions(run)
                    if _env(f).get("STANDBY_LAYER") == "data" and f.region == "us-east-1")
    kinds = [t["kind"] for t in json.loads(_env(data_mon)["STANDBY_SWITCH"])]
    assert kinds == ["rds_promote", "pointer_all"]
    wrappers = [f for f in _functions(run) if "-wrap-" in f.inputs["name"]]
    assert wrappers and all(w.inputs["vpcConfig"]["subnetIds"] == net["subnet_ids"] for w in wrappers)  # noqa: E501
    alarms = {a.inputs["name"] for a in _by_type(run, "aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert "shop-replica-lag" in alarms


def test_pinned_standby_ignores_code_changes() -> None:
    raw = minimal_raw()
    raw["logic"]["standby_version"] = "pinned"
    run = run_raw(raw)
    logic = [f for f in _functions(run) if f.inputs["name"].startswith("shop-logic-")]
    assert len(logic) == 4
    for fn in logic:
        pinned = fn.inputs["name"].endswith("-standby")
        assert ("code" in fn.ignore_changes) is pinned, fn.name
