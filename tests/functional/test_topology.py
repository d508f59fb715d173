"""The AWS topology under mocks: wiring, least privilege, and failing before any resource."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.aws.iam_rules import WILDCARD_EXCEPTIONS
from components.plan.mocks import PlanRun, Registration
from components.spec import parse_spec
from tests.conftest import EXAMPLE_STACKS, example_raw, minimal_raw, run_raw, run_stack


def _functions(run: PlanRun) -> list[Registration]:
    return [r for r in run.resources if r.type == "aws:lambda/function:Function"]


def _env(reg: Registration) -> dict[str, str]:
    return dict(reg.inputs["environment"]["variables"])


def _by_type(run: PlanRun, typ: str) -> list[Registration]:
    return [r for r in run.resources if r.type == typ]


def _peers(stack: str) -> dict[str, set[str]]:
    """Region -> the regions of every group it belongs to (its monitors' vantage scope)."""
    spec = parse_spec(example_raw(stack))
    out: dict[str, set[str]] = {}
    for g in spec.region_groups:
        for r in (g.primary, g.standby):
            out.setdefault(r, set()).update({g.primary, g.standby})
    return out


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_monitor_env_names_exactly_what_it_switches(stack: str) -> None:
    run = run_stack(stack)
    peers = _peers(stack)
    stages = {s.inputs["restApi"]: s for s in _by_type(run, "aws:apigateway/stage:Stage")}
    stage_region = {k: s.region for k, s in stages.items()}
    pointer_tables = {r.region: r.inputs["name"] for r in _by_type(run, "aws:dynamodb/table:Table")
                      if r.inputs["name"].endswith("-standby-pointers")}
    alarms = {a.inputs["name"]: a for a in _by_type(run, "aws:cloudwatch/metricAlarm:MetricAlarm")}
    monitors = [f for f in _functions(run) if "STANDBY_LAYER" in _env(f)]
    assert {m.region for m in monitors} == set(peers)
    assert len(monitors) == 4 * len(peers)
    for fn in monitors:
        env = _env(fn)
        switch = json.loads(env["STANDBY_SWITCH"])
        probes = json.loads(env["STANDBY_PROBES"])
        layer, mine = env["STANDBY_LAYER"], peers[fn.region or ""]
        assert env["STANDBY_REGION"] == fn.region
        kinds = {t["kind"] for t in switch}
        if layer == "gateway":
            assert kinds == {"apigw_stage_variable"}
            assert {stage_region[t["rest_api_id"]] for t in switch} == mine
            for t in switch:
                stage = stages[t["rest_api_id"]]
                assert stage.inputs["stageName"] == t["stage"]
                assert stage.inputs["variables"]["logicFunction"] == t["values"]["primary"]
            assert {p["scope"] for p in probes} == mine
        elif layer == "logic":
            assert kinds == {"pointer"}
            assert {(t["region"], t["table"]) for t in switch} == {
                (r, pointer_tables[r]) for r in mine}
            assert all(t["key"] == "wrapper" for t in switch)
            assert {p["kind"] for p in probes} == {"lambda"}
        elif layer == "data":
            # The data pointer moves in every region at once, whatever the monitor's group.
            assert kinds == {"pointer_all"}
            assert {(t["region"], t["table"]) for t in switch[0]["tables"]} == set(
                pointer_tables.items())
        else:
            assert kinds == {"route53_health_metrics"}
            assert {t["region"] for t in switch} == mine
            for t in switch:
                force = alarms[t["force_alarm"]]
                assert force.inputs["dimensions"] == t["dimensions"]
                assert force.inputs["metricName"] == t["force_metric"]
                assert not {"veto_metric", "veto_alarm", "health_check_id"} & set(t)


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_resource_graph_per_layer_and_region(stack: str) -> None:
    run = run_stack(stack)
    by_urn = {r.urn: r for r in run.resources}

    def layer_of(reg: Registration) -> str | None:
        node: Registration | None = reg
        while node is not None:
            if node.type.startswith("standby:aws:"):
                return node.type.split(":")[-1]  # a monitor's resources count as its own
            node = by_urn.get(node.parent)
        return None

    regions = set(_peers(stack))
    graph: dict[tuple[str | None, str | None], dict[str, int]] = {}
    for r in run.resources:
        if r.custom and not r.type.startswith("pulumi:providers:"):
            cell = graph.setdefault((layer_of(r), r.region), {})
            cell[r.type] = cell.get(r.type, 0) + 1
    spec = parse_spec(example_raw(stack))
    fn, role, pol = ("aws:lambda/function:Function", "aws:iam/role:Role",
                     "aws:iam/rolePolicy:RolePolicy")
    for region in regions:
        # Primary + standby function, each with its own role, inline policy and log group.
        for layer in ("LogicLayer", "WrapperLayer"):
            cell = graph[(layer, region)]
            assert cell[fn] == cell[role] == cell[pol] == 2, (layer, region, cell)
            assert cell["aws:cloudwatch/logGroup:LogGroup"] == 2
        gw = graph[("GatewayLayer", region)]
        assert gw["aws:apigateway/stage:Stage"] == gw["aws:apigateway/restApi:RestApi"] == 1
        assert gw["aws:lambda/permission:Permission"] == 2  # may invoke primary and standby
        assert gw["aws:apigateway/domainName:DomainName"] == 1
        assert graph[("PointerStore", region)] == {"aws:dynamodb/table:Table": 1,
                                                   "aws:dynamodb/tableItem:TableItem": 2}
        assert graph[("ControlPlane", region)]["aws:sns/topic:Topic"] == 1
        assert graph[("ControlPlane", region)]["aws:kms/key:Key"] == 1
        mon = graph[("LayerMonitor", region)]
        for typ in (fn, role, pol, "aws:cloudwatch/eventRule:EventRule",
                    "aws:cloudwatch/eventTarget:EventTarget", "aws:lambda/permission:Permission",
                    "aws:cloudwatch/metricAlarm:MetricAlarm"):
            assert mon[typ] == 4, (region, typ)  # one per layer: dns, gateway, logic, data
        assert graph[("DnsLayer", region)]["aws:cloudwatch/metricAlarm:MetricAlarm"] == 1
    # The state table lives in the data standby region only.
    control = {r: graph[("ControlPlane", r)] for r in regions}
    assert [r for r, c in control.items() if "aws:dynamodb/table:Table" in c] == [
        spec.data_standby_region]
    # Data: a bucket per data region, versioned, replicating to the other.
    for region in (spec.data_primary_region, spec.data_standby_region):
        data = graph[("DataLayer", region)]
        for typ in ("aws:s3/bucket:Bucket", "aws:s3/bucketVersioning:BucketVersioning",
                    "aws:s3/bucketReplicationConfig:BucketReplicationConfig"):
            assert data[typ] == 1, (region, typ)
    # Global DNS resources live with the DNS provider: endpoint, force and calculated health
    # check per region, and a failover pair per group.
    dns = {k: v for (layer, _), cell in graph.items() if layer == "DnsLayer"
           for k, v in cell.items()}
    assert dns["aws:route53/healthCheck:HealthCheck"] == 3 * len(regions)
    failover = [r for r in _by_type(run, "aws:route53/record:Record")
                if r.inputs.get("failoverRoutingPolicies")]
    assert len(failover) == 2 * len(spec.region_groups)
    # Monitors: one per layer per region, each under the component of the layer it switches.
    mons = [r for r in run.resources if r.type == "standby:aws:LayerMonitor"]
    assert len(mons) == 4 * len(regions)
    owners = {"dns": "DnsLayer", "gateway": "GatewayLayer", "logic": "LogicLayer",
              "data": "DataLayer"}
    for m in mons:
        layer = m.name.split("-monitor-")[1].split("-")[0]
        assert by_urn[m.parent].type == f"standby:aws:{owners[layer]}"
        children = [r for r in run.resources if r.parent == m.urn]
        assert {c.type for c in children} >= {
            "aws:lambda/function:Function", "aws:cloudwatch/eventRule:EventRule",
            "aws:cloudwatch/eventTarget:EventTarget", "aws:cloudwatch/metricAlarm:MetricAlarm"}
        assert len({c.region for c in children}) == 1


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
    assert "manageMasterUserPassword" not in primary.inputs  # see test_aws_sql.py
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


# -- regression tests for the deploy defects (review #2, #4, "Deploy time") -------------------


def _policy_of(run: PlanRun, fn: Registration) -> list[dict[str, Any]]:
    pol = next(p for p in _by_type(run, "aws:iam/rolePolicy:RolePolicy")
               if p.name == f"{fn.name}-policy")
    return list(json.loads(pol.inputs["policy"])["Statement"])


def test_monitor_role_may_condition_check_the_lease_on_commit() -> None:
    # The commit is a TransactWriteItems with a ConditionCheck on the lease item; without
    # dynamodb:ConditionCheckItem every automatic switch was applied and never committed.
    run = run_stack("aws-dev")
    tables = {t.inputs["name"]: t.outputs["arn"] for t in _by_type(run, "aws:dynamodb/table:Table")}
    for fn in _functions(run):
        env = _env(fn)
        if "STANDBY_LAYER" not in env:
            continue
        state = tables[env["STANDBY_STATE_TABLE"]]
        allowed = {a for st in _policy_of(run, fn) if state in st["Resource"]
                   for a in st["Action"]}
        assert {"dynamodb:ConditionCheckItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                "dynamodb:GetItem", "dynamodb:Query"} <= allowed, (fn.name, allowed)


def test_alert_topics_use_a_customer_key_cloudwatch_may_use() -> None:
    # alias/aws/sns cannot be used by CloudWatch alarms: the errors and lag alarms were lost.
    run = run_stack("aws-dev")
    keys = {k.outputs["arn"]: k for k in _by_type(run, "aws:kms/key:Key")}
    topics = _by_type(run, "aws:sns/topic:Topic")
    assert topics
    for topic in topics:
        key_id = topic.inputs["kmsMasterKeyId"]
        assert key_id != "alias/aws/sns" and key_id in keys, key_id
        key = keys[key_id]
        assert key.region == topic.region and key.inputs["enableKeyRotation"] is True
        policy = json.loads(key.inputs["policy"])
        cw = [st for st in policy["Statement"]
              if st.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
        assert cw and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cw[0]["Action"])
    # Monitors publish to their region's topic: SNS encrypts with the key on their behalf.
    for fn in _functions(run):
        env = _env(fn)
        if "STANDBY_LAYER" not in env:
            continue
        topic = next(t for t in topics if t.outputs["arn"] == env["STANDBY_ALERT_TOPIC"])
        kms = [st for st in _policy_of(run, fn) if topic.inputs["kmsMasterKeyId"] in st["Resource"]]
        assert kms and {"kms:GenerateDataKey", "kms:Decrypt"} <= set(kms[0]["Action"])
        assert kms[0]["Condition"] == {
            "StringEquals": {"kms:ViaService": f"sns.{fn.region}.amazonaws.com"}}


def test_force_alarm_is_standard_resolution_and_holds_through_missing_data() -> None:
    # A 10 s period over a standard-resolution metric got data 1 period in 6, and Route 53
    # supports standard-resolution alarms only.
    run = run_stack("aws-dev")
    alarms = [a for a in _by_type(run, "aws:cloudwatch/metricAlarm:MetricAlarm")
              if a.inputs.get("metricName") == "ForceFailover"]
    assert len(alarms) == 2
    for a in alarms:
        assert a.inputs["period"] == 60
        assert a.inputs["statistic"] == "Maximum"
        assert a.inputs["evaluationPeriods"] == 3 and a.inputs["datapointsToAlarm"] == 1
        assert a.inputs["treatMissingData"] == "missing"
    checks = {c.name: c for c in _by_type(run, "aws:route53/healthCheck:HealthCheck")}
    force_checks = [c for c in checks.values() if c.inputs["type"] == "CLOUDWATCH_METRIC"]
    assert len(force_checks) == 2
    assert all(c.inputs["insufficientDataHealthStatus"] == "LastKnownStatus"
               for c in force_checks)


def test_veto_is_removed() -> None:
    # The veto metric was always 0: dead code behind a live health check.
    run = run_stack("aws-dev")
    assert not [a for a in _by_type(run, "aws:cloudwatch/metricAlarm:MetricAlarm")
                if "Veto" in str(a.inputs.get("metricName"))]
    calculated = [c for c in _by_type(run, "aws:route53/healthCheck:HealthCheck")
                  if c.inputs["type"] == "CALCULATED"]
    assert calculated and all(len(c.inputs["childHealthchecks"]) == 2
                              and c.inputs["childHealthThreshold"] == 2 for c in calculated)


def test_unused_monitor_grants_are_gone() -> None:
    run = run_stack("aws-dev")
    for fn in _functions(run):
        env = _env(fn)
        if "STANDBY_LAYER" not in env:
            continue
        actions = {a for st in _policy_of(run, fn) for a in st["Action"]}
        assert not actions & {"route53:GetHealthCheckStatus", "route53:GetChange"}, fn.name
        if env["STANDBY_LAYER"] == "data":
            data_tables = [st for st in _policy_of(run, fn)
                           if any("-orders" in r for r in st["Resource"])]
            assert data_tables and all(st["Action"] == ["dynamodb:DescribeTable"]
                                       for st in data_tables)
        if env["STANDBY_LAYER"] != "dns":
            assert "cloudwatch:PutMetricData" not in actions, fn.name


# A partial ARN (no -XXXXXX suffix) is refused by the spec (test_spec.py), so only the full
# ARN reaches the policy.
@pytest.mark.parametrize(("given", "resource"), [
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:shop/slack-Ab12Cd",
     "arn:aws:secretsmanager:us-east-1:123456789012:secret:shop/slack-Ab12Cd"),
])
def test_webhook_secret_store_becomes_an_arn_resource(given: str, resource: str) -> None:
    # `secret_store: NAME` went verbatim into Resource (MalformedPolicyDocument); a partial ARN
    # matches no secret without the -?????? suffix.
    raw = minimal_raw()
    raw["alerting"] = {"webhooks": [{"kind": "slack", "url": {"secret_store": given}}]}
    run = run_raw(raw)
    monitors = [f for f in _functions(run) if "STANDBY_LAYER" in _env(f)]
    assert monitors
    for fn in monitors:
        grants = [st for st in _policy_of(run, fn)
                  if "secretsmanager:GetSecretValue" in st["Action"]]
        assert [st["Resource"] for st in grants] == [[resource]]


def test_secret_store_name_is_refused_naming_what_is_allowed() -> None:
    raw = minimal_raw()
    raw["alerting"] = {"webhooks": [{"kind": "slack", "url": {"secret_store": "shop/slack"}}]}
    with pytest.raises(Exception, match=r"secret_store: 'shop/slack' is not"):
        run_raw(raw)



def test_archives_are_deterministic_and_hold_no_bytecode(tmp_path: Any) -> None:
    # FileArchive(components/runtime) shipped __pycache__: every test run changed the hash,
    # so every `pulumi up` redeployed every function.
    import io
    import os
    import zipfile

    from components.archives import logic_zip, runtime_zip

    code = tmp_path / "app"
    (code / "pkg").mkdir(parents=True)
    (code / "main.py").write_text("def handler(e, c):\n    return {}\n", encoding="utf-8")
    (code / "pkg" / "util.py").write_text("X = 1\n", encoding="utf-8")
    first = logic_zip(code)
    # What a test run or a checkout leaves behind must not change the bytes.
    (code / "__pycache__").mkdir()
    (code / "__pycache__" / "main.cpython-312.pyc").write_bytes(b"\x00bytecode")
    (code / "pkg" / "__pycache__").mkdir()
    (code / "pkg" / "__pycache__" / "util.cpython-312.pyc").write_bytes(b"\x00bytecode")
    (code / ".env").write_text("SECRET=1\n", encoding="utf-8")
    for f in (code / "main.py", code / "pkg" / "util.py"):
        os.utime(f, (1_700_000_000, 1_700_000_000))
    second = logic_zip(code)
    assert first == second
    names = zipfile.ZipFile(io.BytesIO(second)).namelist()
    assert "main.py" in names and "pkg/util.py" in names
    assert "components/runtime/aws/monitor.py" in names
    assert names == sorted(names)
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n or "/." in n
                or n.startswith(".")]
    # A real change does change the bytes.
    (code / "pkg" / "util.py").write_text("X = 2\n", encoding="utf-8")
    assert logic_zip(code) != second
    runtime = runtime_zip()
    assert runtime == runtime_zip()
    infos = zipfile.ZipFile(io.BytesIO(runtime)).infolist()
    assert infos and all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    assert all(i.external_attr >> 16 == 0o100644 for i in infos)
    assert not [i.filename for i in infos if i.filename.endswith(".pyc")]


def test_functions_ship_the_deterministic_zip() -> None:
    import hashlib
    from pathlib import Path

    from components.archives import runtime_zip

    run = run_stack("aws-dev")
    wanted = hashlib.sha256(runtime_zip()).hexdigest()
    wrappers = [f for f in _functions(run) if "-wrap-" in f.inputs["name"]]
    assert wrappers
    for fn in wrappers:
        path = Path(fn.inputs["code"].path)
        assert path.name == f"{wanted}.zip"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == wanted
