"""The Tencent half under mocks: the mock graph of tencent-dev and tencent-nearby holds what
issue 12's "Done when" list asks for, read back from the registered resources."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from components.plan import Plan, make_plan
from components.plan.mocks import Registration
from components.plan.render import FORMATS, render
from components.tencent._common import CamPolicyBuilder, timer_cron
from tests.conftest import ROOT

TENCENT_STACKS = ("tencent-dev", "tencent-nearby")
FUNCTION = "tencentcloud:Scf/function:Function"
POLICY = "tencentcloud:Cam/policy:Policy"


@cache
def _plan(stack: str) -> Plan:
    return make_plan(stack, ROOT)


def _all(plan: Plan, typ: str) -> list[Registration]:
    return [r for regs in plan.groups.values() for r in regs if r.type == typ]


def _monitors(plan: Plan) -> list[Registration]:
    return [f for f in _all(plan, FUNCTION)
            if "STANDBY_LAYER" in (f.inputs.get("environment") or {})]


def _policy_doc(plan: Plan, fn: Registration) -> dict[str, Any]:
    [policy] = [p for p in _all(plan, POLICY) if p.name == f"{fn.name}-policy"]
    doc: dict[str, Any] = json.loads(policy.inputs["document"])
    return doc


def test_dev_has_a_dnspod_record_pair_per_line() -> None:
    plan = _plan("tencent-dev")
    records = _all(plan, "tencentcloud:Dnspod/record:Record")
    by_line: dict[str, dict[str, str]] = {}
    for r in records:
        assert (r.inputs["domain"], r.inputs["subDomain"], r.inputs["recordType"]) == (
            "example.com", "api", "CNAME")
        assert r.inputs["ttl"] == 60
        by_line.setdefault(r.inputs["recordLine"], {})[r.inputs["status"]] = r.inputs["value"]
    assert by_line == {line: {"ENABLE": "1250000000.ap-guangzhou.tencentscf.com.",
                              "DISABLE": "1250000000.ap-shanghai.tencentscf.com."}
                       for line in ("默认", "电信", "联通")}
    # The monitor owns the status after the first deploy: an update must not undo a switch.
    assert all(r.ignore_changes == ["status"] for r in records)


def test_dev_has_at_least_12_named_scf_functions_in_two_regions() -> None:
    plan = _plan("tencent-dev")
    fns = _all(plan, FUNCTION)
    names = [f.inputs.get("name") for f in fns]
    assert len(fns) >= 12 and all(names) and len(set(names)) == len(names)
    assert {f.region for f in fns} == {"ap-guangzhou", "ap-shanghai"}
    assert all(f.inputs["role"] == f"{f.inputs['name']}-role" for f in fns)
    assert all(str(f.inputs["zipFile"]).endswith(".zip") for f in fns)


def test_dev_has_an_http_entry_per_region_and_no_api_gateway() -> None:
    plan = _plan("tencent-dev")
    types = {r.type for regs in plan.groups.values() for r in regs}
    assert not [t for t in types if "apigateway" in t.lower()]
    domains = _all(plan, "tencentcloud:Scf/customDomain:CustomDomain")
    assert sorted(d.region or "" for d in domains) == ["ap-guangzhou", "ap-shanghai"]
    for d in domains:
        [route] = d.inputs["endpointsConfigs"]
        assert route["functionName"] == f"shop-logic-p-a{str(d.region).split('-')[1]}"
        assert route["pathMatch"] == "/*"
    logic = [f for f in _all(plan, FUNCTION) if f.inputs["name"].startswith("shop-logic-")]
    assert len(logic) == 4
    for f in logic:
        [url] = f.inputs["triggers"]
        assert url["type"] == "http"
        assert json.loads(url["triggerDesc"])["AuthType"] == "NONE"


def test_monitors_run_on_7_field_timer_triggers() -> None:
    plan = _plan("tencent-dev")
    monitors = _monitors(plan)
    assert sorted((m.inputs["environment"]["STANDBY_LAYER"], m.region) for m in monitors) == \
        sorted((layer, r) for layer in ("dns", "gateway", "logic", "data")
               for r in ("ap-guangzhou", "ap-shanghai"))
    for m in monitors:
        [timer] = m.inputs["triggers"]
        assert timer["type"] == "timer"
        assert timer["triggerDesc"] == "*/10 * * * * * *"
        assert len(timer["triggerDesc"].split()) == 7
        assert m.inputs["environment"]["STANDBY_LOOP_S"] == "0"


@pytest.mark.parametrize("interval", [1, 7, 10, 13, 59, 60, 90, 120, 299, 300])
def test_timer_cron_fires_at_least_every_interval(interval: int) -> None:
    """Simulate two hours of the 7-field cron; the budget assumes gaps <= interval_s."""
    cron = timer_cron(interval)
    sec, minute = cron.split()[:2]
    fires = []
    for t in range(7200):
        s_ok = sec == "*" or (sec.startswith("*/") and t % 60 % int(sec[2:]) == 0) or \
            (sec.isdigit() and t % 60 == int(sec))
        m = t // 60 % 60
        m_ok = minute == "*" or (minute.startswith("*/") and m % int(minute[2:]) == 0)
        if s_ok and m_ok:
            fires.append(t)
    gaps = [b - a for a, b in itertools.pairwise(fires)]
    assert fires and max(gaps) <= interval
    with pytest.raises(ValueError, match=r"not in 1\.\.300"):
        timer_cron(301)


def test_cos_buckets_replicate_from_the_primary_with_the_reverse_rule_disabled() -> None:
    """Both ways Enabled was the old deploy; the data monitor's cos_replication now makes
    the active side the only source, so the standby's rule starts Disabled."""
    plan = _plan("tencent-dev")
    buckets = {str(b.region): b.inputs for b in _all(plan, "tencentcloud:Cos/bucket:Bucket")}
    assert sorted(buckets) == ["ap-guangzhou", "ap-shanghai"]
    gz, sh = buckets["ap-guangzhou"], buckets["ap-shanghai"]
    assert gz["bucket"] == "shop-data-aguangzhou-1250000000"
    for this, other, other_region in ((gz, sh, "ap-shanghai"), (sh, gz, "ap-guangzhou")):
        assert this["versioningEnable"] is True
        assert this["replicaRole"] == "qcs::cam::uin/100000000001:uin/100000000001"
        [rule] = this["replicaRules"]
        assert rule["status"] == ("Enabled" if this is gz else "Disabled")
        assert rule["destinationBucket"] == f"qcs::cos:{other_region}::{other['bucket']}"
    [monitor] = [m for m in _monitors(plan) if m.inputs["environment"]["STANDBY_LAYER"] == "data"
                 and m.region == "ap-shanghai"]
    [rev] = [t for t in json.loads(monitor.inputs["environment"]["STANDBY_SWITCH"])
             if t["kind"] == "cos_replication"]
    assert rev["buckets"] == {"primary": {"region": "ap-guangzhou", "bucket": gz["bucket"]},
                              "standby": {"region": "ap-shanghai", "bucket": sh["bucket"]}}
    assert rev["role"] == gz["replicaRole"]


def test_cdb_primary_with_a_cross_region_dr_instance() -> None:
    plan = _plan("tencent-dev")
    instances = [i for i in _all(plan, "tencentcloud:Mysql/instance:Instance")
                 if i.inputs["instanceName"] == "shop-orders-primary"]
    [primary] = instances
    [dr] = _all(plan, "tencentcloud:Mysql/drInstance:DrInstance")
    assert primary.region == "ap-guangzhou" and dr.region == "ap-shanghai"
    assert dr.inputs["masterInstanceId"] == primary.outputs["id"]
    assert dr.inputs["masterRegion"] == "ap-guangzhou"
    assert not [r for regs in plan.groups.values() for r in regs
                if r.type == "tencentcloud:Mysql/drInstanceToMater:DrInstanceToMater"]
    [data_mon] = [m for m in _monitors(plan)
                  if m.inputs["environment"]["STANDBY_LAYER"] == "data"
                  and m.region == "ap-guangzhou"]
    switches = json.loads(data_mon.inputs["environment"]["STANDBY_SWITCH"])
    [dr_switch] = [s for s in switches if s["kind"] == "cdb_dr_switch"]
    assert dr_switch == {"scope": "data", "kind": "cdb_dr_switch", "region": "ap-shanghai",
                         "primary_region": "ap-guangzhou",
                         "instance_ids": {"primary": primary.outputs["id"],
                                          "standby": dr.outputs["id"]},
                         "max_lag_s": 5.0}


def test_cdb_dr_switch_target_carries_primary_region() -> None:
    """The switcher fences (and the heartbeat re-fences) the old primary in its own region;
    after the promotion the DR instance no longer names it, so the target must. The monitor
    may set the primary read-only exactly there."""
    plan = _plan("tencent-dev")
    for m in _monitors(plan):
        env = m.inputs["environment"]
        doc = _policy_doc(plan, m)
        for sw in json.loads(env["STANDBY_SWITCH"]):
            if sw["kind"] != "cdb_dr_switch":
                continue
            assert sw["primary_region"] == plan.spec.data_primary_region != sw["region"]
            fence = [r for st in doc["statement"]
                     if "cdb:ModifyDBInstanceReadOnlyStatus" in st["action"]
                     for r in st["resource"]]
            assert fence == [f"qcs::cdb:{sw['primary_region']}:uin/100000000001:instanceId/"
                             f"{sw['instance_ids']['primary']}"]


@pytest.mark.parametrize("stack", TENCENT_STACKS)
def test_tencent_monitor_env_loads_without_aws_state_table(stack: str) -> None:
    """The core's config.load reads every Tencent monitor's environment as deployed: the
    store is the mysql kind found through its DSN secret (no STANDBY_STATE_TABLE) and the
    webhooks are SSM secrets by name and region (no secret_arn)."""
    import components.runtime.tencent  # noqa: F401  (registers the kinds, as the handler does)
    from components.runtime.config import SecretRef, StateRef, load

    plan = _plan(stack)
    control = plan.spec.data_standby_region
    monitors = _monitors(plan)
    assert len(monitors) == 4 * len(plan.spec.all_regions)
    for m in monitors:
        env = {k: str(v) for k, v in m.inputs["environment"].items()}
        assert "STANDBY_STATE_TABLE" not in env
        cfg = load(env)
        assert cfg.state == StateRef("mysql", f"{plan.spec.name}-standby-state-dsn", control)
        assert cfg.emails == plan.spec.alerting.emails
        assert [h.secret for h in cfg.webhooks] == [
            SecretRef(f"{plan.spec.name}-webhook-{i}", str(m.region))
            for i, _ in enumerate(plan.spec.alerting.webhooks)]


@pytest.mark.parametrize("stack", TENCENT_STACKS)
def test_cam_policies_have_no_wildcard_action(stack: str) -> None:
    plan = _plan(stack)
    policies = _all(plan, POLICY)
    assert len(policies) == len(_all(plan, FUNCTION))
    for p in policies:
        doc = json.loads(p.inputs["document"])
        assert doc["version"] == "2.0"
        for st in doc["statement"]:
            assert st["effect"] == "allow"
            assert all("*" not in a for a in st["action"]), (p.name, st)
            if "*" in st["resource"]:
                assert set(st["action"]) <= {"ses:SendEmail", "sms:SendSms"}, (p.name, st)
            assert all(r == "*" or r.startswith("qcs::") for r in st["resource"])


def test_cam_builder_refuses_a_wildcard_action() -> None:
    with pytest.raises(ValueError, match="no wildcard"):
        CamPolicyBuilder().allow(["scf:*"], ["qcs::scf:ap-guangzhou:uin/1:namespace/x"])
    with pytest.raises(ValueError, match="resource '\\*' is only allowed"):
        CamPolicyBuilder().allow(["scf:InvokeFunction"], ["*"])


@pytest.mark.parametrize("stack", TENCENT_STACKS)
def test_each_monitor_may_call_its_switch_action_on_its_targets(stack: str) -> None:
    plan = _plan(stack)
    for m in _monitors(plan):
        env = m.inputs["environment"]
        doc = _policy_doc(plan, m)

        def allowed(action: str, doc: dict[str, Any] = doc) -> list[str]:
            return [r for st in doc["statement"] if action in st["action"]
                    for r in st["resource"]]

        for sw in json.loads(env["STANDBY_SWITCH"]):
            if sw["kind"] == "dnspod_record_status":
                assert f"qcs::dnspod::uin/100000000001:domain/{sw['domain']}" in \
                    allowed("dnspod:ModifyRecordStatus")
            elif sw["kind"] == "scf_custom_domain":
                assert f"qcs::scf:{sw['region']}:uin/100000000001:customdomain/" \
                    f"{sw['domain']}" in allowed("scf:UpdateCustomDomain")
            elif sw["kind"] == "cdb_dr_switch":
                assert f"qcs::cdb:{sw['region']}:uin/100000000001:instanceId/" \
                    f"{sw['instance_ids']['standby']}" in allowed("cdb:SwitchDrInstanceToMaster")
            elif sw["kind"] == "cos_replication":
                for bucket in sw["buckets"].values():
                    res = f"qcs::cos:{bucket['region']}:uid/1250000000:{bucket['bucket']}/"
                    assert res in allowed("cos:PutBucketReplication")
                    assert res in allowed("cos:GetBucketReplication")
            else:
                assert sw["kind"] in ("tencent_pointer", "tencent_pointer_all")
                assert [r for r in allowed("ssm:GetSecretValue")
                        if r.endswith(f"/{env['STANDBY_STATE_DSN_SECRET']}")]


@pytest.mark.parametrize("stack", TENCENT_STACKS)
def test_monitor_env_names_the_mysql_state_store(stack: str) -> None:
    plan = _plan(stack)
    [store] = [i for i in _all(plan, "tencentcloud:Mysql/instance:Instance")
               if i.inputs["instanceName"].endswith("-standby-state")]
    control = plan.spec.data_standby_region
    assert store.region == control
    secrets = {(s.inputs["secretName"], s.region)
               for s in _all(plan, "tencentcloud:Ssm/secret:Secret")}
    for m in _monitors(plan):
        env = m.inputs["environment"]
        assert env["STANDBY_STATE_STORE"] == "mysql"
        assert env["STANDBY_STATE_REGION"] == control
        assert (env["STANDBY_STATE_DSN_SECRET"], control) in secrets
        # Monitors reach the private store through their region's VPC (joined by CCN).
        assert m.inputs["vpcId"] == plan.spec.database.network[str(m.region)].vpc_id
        assert m.inputs["enablePublicNet"] is True
    attached = {a.inputs["instanceRegion"]
                for a in _all(plan, "tencentcloud:Ccn/attachmentV2:AttachmentV2")}
    assert attached == set(plan.spec.all_regions)


def test_nearby_routes_each_line_to_its_group() -> None:
    plan = _plan("tencent-nearby")
    enabled = {r.inputs["recordLine"]: r.inputs["value"]
               for r in _all(plan, "tencentcloud:Dnspod/record:Record")
               if r.inputs["status"] == "ENABLE"}
    assert enabled == {
        "联通": "1250000000.ap-beijing.tencentscf.com.",
        "教育网": "1250000000.ap-beijing.tencentscf.com.",
        **{line: "1250000000.ap-guangzhou.tencentscf.com."
           for line in ("默认", "电信", "移动", "境外")},
    }
    assert {f.region for f in _all(plan, FUNCTION)} == {"ap-beijing", "ap-guangzhou",
                                                        "ap-shanghai"}
    # The Beijing DNS monitor votes only for its own group's lines.
    [bj] = [m for m in _monitors(plan) if m.region == "ap-beijing"
            and m.inputs["environment"]["STANDBY_LAYER"] == "dns"]
    lines = {s["record_line"] for s in json.loads(bj.inputs["environment"]["STANDBY_SWITCH"])}
    assert lines == {"联通", "教育网"}


@pytest.mark.parametrize("stack", TENCENT_STACKS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_both_regions(stack: str, fmt: str) -> None:
    plan = _plan(stack)
    out = render(plan, fmt)
    for region in plan.spec.all_regions:
        assert region in out
    if fmt == "json":
        doc = json.loads(out)
        assert doc["cloud"] == "tencent" and doc["budget"]["ok"] is True
        assert {w["layer"] for w in doc["wiring"]} == {"dns", "gateway", "logic", "data"}
        assert all(w["switches"] and w["actions"] for w in doc["wiring"])
    elif fmt == "mermaid":
        assert out.startswith("flowchart LR\n")
    elif fmt == "markdown":
        assert "SwitchDrInstanceToMaster" in out and "ModifyRecordStatus" in out


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "components", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_refuses_postgres_cross_region_with_path_and_reason(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    text = (ROOT / "stacks" / "Pulumi.tencent-dev.yaml").read_text(encoding="utf-8")
    assert "engine: mysql" in text
    text = text.replace("engine: mysql", "engine: postgres")
    (tmp_path / "stacks" / "Pulumi.pg.yaml").write_text(text, encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", "pg", "--project-dir",
         str(tmp_path)], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "database.engine: 'postgres' with a standby in another region" in res.stderr
    assert "no API that promotes a PostgreSQL replica in another region" in res.stderr
    assert res.stdout == ""


def test_cli_plans_tencent_dev_as_json() -> None:
    res = _cli("plan", "--stack", "tencent-dev", "--format", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["stack"] == "tencent-dev" and doc["exports"]["public_url"] == "http://api.example.com"


@pytest.mark.parametrize("stack", TENCENT_STACKS)
def test_one_tencentcloud_provider_per_region_and_no_aws_resource(stack: str) -> None:
    plan = _plan(stack)
    providers = [r for regs in plan.groups.values() for r in regs
                 if r.type.startswith("pulumi:providers:")]
    assert sorted((p.type, p.inputs["region"]) for p in providers) == sorted(
        ("pulumi:providers:tencentcloud", r) for r in plan.spec.all_regions)
    assert not [r.type for regs in plan.groups.values() for r in regs
                if r.type.startswith("aws:")]
