"""Readiness rules that the aws-dev sandbox cannot exercise, each against moto with the
resources built by hand (RDS instances and a cross-region replica, HTTP API stages), and the
pure parts: the quota comparison, RDS replication status, the rollup, the plan view."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from components.dr.readiness import (
    NOT_AUTHORIZED,
    NOT_READY,
    READY,
    UNKNOWN,
    Check,
    fails,
    overall,
)
from components.dr.readiness_aws import Context, stage_parity
from components.dr.readiness_aws_data import quota_check, rds_parity, replica_status
from components.dr.readiness_plan import conformance
from components.dr.readiness_read import (
    PlanDb,
    PlanFunction,
    PlanView,
    Read,
    Reader,
    iam_action,
    plan_view,
)
from components.plan.run import read_stack, run_program
from components.program import main as program
from components.runtime.aws.clients import Clients
from components.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
R1, R2 = "us-east-1", "us-west-2"


def zip_bytes_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return buf.getvalue()


# -- RDS: a primary and a cross-region replica created in moto by hand ----------------------
# (the sandbox has no RDS handler; moto holds instances and cross-region read replicas, but
# reports no StatusInfos and never detaches a promoted replica: docs/TESTING.md)

def _rds(aws: str, replica_class: str = "db.t4g.medium", standalone: bool = False) -> None:
    e, w = (boto3.client("rds", region_name=r) for r in (R1, R2))
    primary = e.create_db_instance(
        DBInstanceIdentifier="sq-primary", DBInstanceClass="db.t4g.medium", Engine="postgres",
        EngineVersion="15.4", AllocatedStorage=20, MasterUsername="u",
        MasterUserPassword="not-a-secret-1")["DBInstance"]
    if standalone:
        w.create_db_instance(
            DBInstanceIdentifier="sq-standby", DBInstanceClass=replica_class,
            Engine="postgres", EngineVersion="15.4", AllocatedStorage=20,
            MasterUsername="u", MasterUserPassword="not-a-secret-1")
    else:
        w.create_db_instance_read_replica(
            DBInstanceIdentifier="sq-standby", DBInstanceClass=replica_class,
            SourceDBInstanceIdentifier=primary["DBInstanceArn"])


def _rds_ctx() -> Context:
    view = PlanView(dbs=[
        PlanDb("sq-primary", R1, "db.t4g.medium", "postgres", "15.4", None),
        PlanDb("sq-standby", R2, "db.t4g.medium", None, None, "sq-primary")])
    return Context(None, view, Reader(Clients()))


def _by(checks: list[Check]) -> dict[str, Check]:
    return {c.rule: c for c in checks}


def test_rds_replica_in_moto_matches_but_its_replication_status_is_unknown(aws: str) -> None:
    _rds(aws)
    ctx = _rds_ctx()
    got = _by(rds_parity(ctx) + conformance(ctx))
    assert got["rds.engine_version"].status == READY
    assert got["rds.instance_class"].status == READY
    assert got["rds.replica_status"].status == UNKNOWN  # moto reports no StatusInfos
    assert got["plan.rds"].status == READY


def test_rds_rules_fail_on_a_different_class_version_or_a_detached_standby(aws: str) -> None:
    _rds(aws, replica_class="db.t4g.small")
    boto3.client("rds", region_name=R2).modify_db_instance(
        DBInstanceIdentifier="sq-standby", EngineVersion="14.9", ApplyImmediately=True)
    ctx = _rds_ctx()
    got = _by(rds_parity(ctx))
    assert got["rds.instance_class"].status == NOT_READY
    assert got["rds.instance_class"].detail == "us-east-1 db.t4g.medium, us-west-2 db.t4g.small"
    assert got["rds.engine_version"].detail == "us-east-1 postgres 15.4, us-west-2 postgres 14.9"
    plan = next(c for c in conformance(ctx) if c.subject == "sq-standby")
    assert plan.status == NOT_READY and "instance class db.t4g.small (plan db.t4g.medium)" \
        in plan.detail


def test_rds_standby_that_is_not_a_replica_is_not_ready(aws: str) -> None:
    _rds(aws, standalone=True)
    ctx = _rds_ctx()
    got = _by(rds_parity(ctx))
    assert got["rds.replica_status"].status == NOT_READY
    assert "not a replica of sq-primary" in got["rds.replica_status"].detail
    plan = next(c for c in conformance(ctx) if c.subject == "sq-standby")
    assert plan.status == NOT_READY and "not a replica" in plan.detail


def test_rds_missing_standby_is_not_ready(aws: str) -> None:
    boto3.client("rds", region_name=R1).create_db_instance(
        DBInstanceIdentifier="sq-primary", DBInstanceClass="db.t4g.medium", Engine="postgres",
        AllocatedStorage=20, MasterUsername="u", MasterUserPassword="not-a-secret-1")
    got = _by(rds_parity(_rds_ctx()))
    assert got["rds.replica_status"].status == NOT_READY
    assert "instance sq-standby not found in us-west-2" in got["rds.replica_status"].detail


# DescribeDBInstances' StatusInfos as the RDS API reference documents them ("read
# replication": replicating | replication degraded | error | stopped | terminated).
@pytest.mark.parametrize(("info", "status"), [
    ({"StatusType": "read replication", "Normal": True, "Status": "replicating"}, READY),
    ({"StatusType": "read replication", "Normal": False, "Status": "error",
      "Message": "replication stopped: storage full"}, NOT_READY),
    ({"StatusType": "read replication", "Normal": False, "Status": "replication degraded"},
     NOT_READY),
])
def test_rds_replication_status_from_status_infos(info: dict[str, Any], status: str) -> None:
    replica = {"ReadReplicaSourceDBInstanceIdentifier":
               "arn:aws:rds:us-east-1:123456789012:db:sq-primary",
               "DBInstanceStatus": "available", "StatusInfos": [info]}
    got = replica_status("s", "sq-primary", replica)
    assert got.status == status and info["Status"] in got.detail


# -- quotas and the rollup -----------------------------------------------------------------

def _quota(value: float) -> Read:
    return Read({"Quota": {"QuotaCode": "L-B99A9384", "Value": value}})


@pytest.mark.parametrize(("primary", "standby", "status", "detail"), [
    (_quota(3000), _quota(1000), NOT_READY, "us-west-2 allows 1000, us-east-1 3000"),
    (_quota(1000), _quota(1000), READY, "us-east-1 1000, us-west-2 1000"),
    (_quota(1000), Read(problem="missing", why="x"), UNKNOWN, "not readable in us-west-2"),
    (_quota(1000), Read(problem=NOT_AUTHORIZED, why="not authorized: servicequotas:"
                        "GetServiceQuota"), NOT_AUTHORIZED, "servicequotas:GetServiceQuota"),
])
def test_quota_parity(primary: Read, standby: Read, status: str, detail: str) -> None:
    got = quota_check("lambda", (R1, R2), primary, standby)
    assert got.status == status and detail in got.detail


def test_overall_is_the_worst_status_and_fail_on_is_at_least_that_bad() -> None:
    def c(status: str) -> Check:
        return Check("lambda.memory", "x", status, "")
    assert overall([]) == UNKNOWN  # nothing checked is never READY
    assert overall([c(READY)]) == READY
    assert overall([c(READY), c(UNKNOWN), c(NOT_AUTHORIZED)]) == NOT_AUTHORIZED
    assert overall([c(NOT_AUTHORIZED), c(NOT_READY), c(UNKNOWN)]) == NOT_READY
    assert fails(NOT_READY, "NOT_READY") and fails(NOT_READY, UNKNOWN)
    assert not fails(NOT_AUTHORIZED, NOT_READY) and not fails(NOT_READY, None)
    with pytest.raises(ValueError, match=r"rule 'lambda\.colour'; allowed: lambda\.runtime"):
        Check("lambda.colour", "x", READY, "")


def test_the_plan_view_reads_overrides_and_pinned_code() -> None:
    view = plan_view(run_program(read_stack("aws-dev", ROOT), program))
    east, west = view.function("logic", R1, "standby"), view.function("logic", R2, "standby")
    assert east and west and (east.memory, west.memory) == (256, 512)
    assert not east.pinned and "LOG_LEVEL" in east.env
    assert {(t.name, t.region) for t in view.tables} >= {("shop-orders", R1)}
    assert next(t for t in view.tables if t.name == "shop-orders").replicas == {R2: True}


# -- HTTP API stages (gateway.kind: http): two regions built in moto by hand ---------------

def _http_world(aws: str, standby_burst: int = 100,
                standby_uri: str = "") -> Context:
    """moto implements no apigatewayv2 UpdateStage (500): the difference is built in."""
    raw = read_stack("aws-dev", ROOT).raw["standby:topology"]
    spec = parse_spec({**raw, "gateway": {"kind": "http"}})
    targets = []
    for region in (R1, R2):
        v2 = boto3.client("apigatewayv2", region_name=region)
        api = v2.create_api(Name=f"shop-{region}", ProtocolType="HTTP")["ApiId"]
        fn = f"arn:aws:lambda:{region}:123456789012:function:shop-logic-{region}-"
        integration = v2.create_integration(
            ApiId=api, IntegrationType="AWS_PROXY",
            IntegrationUri=(region == R2 and standby_uri) or fn + "primary",
            PayloadFormatVersion="2.0")["IntegrationId"]
        v2.create_stage(ApiId=api, StageName="$default", AutoDeploy=True,
                        DefaultRouteSettings={
                            "ThrottlingBurstLimit": standby_burst if region == R2 else 100,
                            "ThrottlingRateLimit": 50.0})
        targets.append({"scope": region, "kind": "apigw_integration", "region": region,
                        "api_id": api, "integration_id": integration,
                        "values": {"primary": fn + "primary", "standby": fn + "standby"}})
    env = {"STANDBY_LAYER": "gateway", "STANDBY_SWITCH": json.dumps(targets)}
    role = boto3.client("iam").create_role(
        RoleName="mon", AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": []}))["Role"]["Arn"]
    boto3.client("lambda", region_name=R1).create_function(
        FunctionName="shop-mon-gateway-ue1", Runtime="python3.12", Role=role,
        Handler="components.runtime.aws.monitor.handler",
        Code={"ZipFile": zip_bytes_of({"index.py": "def handler(e, c): return {}\n"})},
        Environment={"Variables": env})
    monitor = PlanFunction("shop-mon-gateway-ue1", R1, "gateway", None, "python3.12",
                           "components.runtime.aws.monitor.handler", 128, 3, env, [], None,
                           False)
    view = PlanView(functions={monitor.name: monitor}, http_stages=[R1, R2])
    return Context(spec, view, Reader(Clients()))


def test_http_api_stages_alike_and_switched_to_a_logic_function_are_ready(aws: str) -> None:
    ctx = _http_world(aws)
    [same] = stage_parity(ctx)
    assert same.status == READY and "default route settings" in same.detail
    assert {c.subject: c.status for c in conformance(ctx) if c.rule == "plan.apigw_stage"} \
        == {"stage us-east-1": READY, "stage us-west-2": READY}


def test_http_api_stage_settings_differ_and_integration_names_no_logic_function(
    aws: str,
) -> None:
    ctx = _http_world(aws, standby_burst=5,
                      standby_uri="arn:aws:lambda:us-west-2:123456789012:function:x")
    [differs] = stage_parity(ctx)
    assert differs.status == NOT_READY and differs.detail.startswith("default route settings:")
    plan = {c.subject: c for c in conformance(ctx) if c.rule == "plan.apigw_stage"}
    assert plan["stage us-east-1"].status == READY
    assert plan["stage us-west-2"].status == NOT_READY
    assert "integration targets 'arn:aws:lambda:us-west-2:123456789012:function:x'" in \
        plan["stage us-west-2"].detail


def test_iam_actions_named_are_the_real_ones() -> None:
    assert iam_action("s3", "get_bucket_replication") == "s3:GetReplicationConfiguration"
    assert iam_action("rds", "describe_db_instances") == "rds:DescribeDBInstances"
    assert iam_action("service-quotas", "get_service_quota") == "servicequotas:GetServiceQuota"
    assert iam_action("apigateway", "get_stage") == "apigateway:GET"
