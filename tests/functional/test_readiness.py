"""``standby readiness`` against the plan-deployed sandbox: aws-dev's program run under mocks,
every resource created in a moto server with IAM enforced (as test_sandbox_deploy does).

A fresh deploy is READY except for two rules moto cannot make READY: moto keeps no
DynamoDB global-table replicas (docs/TESTING.md: "replicas silently ignored", so
``dynamodb.replica_status`` is NOT_READY, as it would be for a table that is not global) and
has no Lambda quotas in Service Quotas (``quota.lambda_concurrency`` is UNKNOWN). Then one
thing at a time is broken in moto and exactly the rules that should see it go NOT_READY.
The rules aws-dev does not use (RDS, HTTP API stages) are in ``test_readiness_rules.py``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from components.cli import main as cli_main
from components.dr.readiness import (
    NOT_AUTHORIZED,
    NOT_READY,
    READY,
    RULES,
    UNKNOWN,
    Check,
    Report,
    check_stack,
)
from components.dr.readiness_read import (
    READ_ACTIONS,
    plan_view,
)
from components.plan.run import read_stack, run_program
from components.program import main as program
from components.runtime.aws.clients import Clients
from components.sandbox.deploy import Deployment, deploy_run
from components.sandbox.moto_proc import MotoProcess
from components.sandbox.package import zip_bytes
from components.spec import parse_spec
from tests.conftest import DownRegionClients

ROOT = Path(__file__).resolve().parents[2]
R1, R2 = "us-east-1", "us-west-2"
STANDBY_FN = "shop-logic-ue1-standby"
IN_REGION = "logic us-east-1: primary~standby"
ACROSS = "logic standby: us-east-1~us-west-2"
#: What moto cannot hold, so what a fresh sandbox deploy cannot make READY.
MOTO_GAPS = {("dynamodb.replica_status", "shop-orders"): NOT_READY,
             ("quota.lambda_concurrency", "lambda us-east-1~us-west-2"): UNKNOWN}


@dataclass
class Sandbox:
    run: Any
    spec: Any
    d: Deployment
    baseline: dict[tuple[str, str], str]

    def check(self, clients: Any = None) -> Report:
        return check_stack("aws-dev", self.spec, self.run,
                           clients or Clients(endpoint_url=self.d.moto_url))


def statuses(report: Report) -> dict[tuple[str, str], str]:
    out = {(c.rule, c.subject): c.status for c in report.checks}
    assert len(out) == len(report.checks), "a (rule, subject) pair is reported twice"
    return out


def find(report: Report, rule: str, subject: str) -> Check:
    return next(c for c in report.checks if (c.rule, c.subject) == (rule, subject))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    cfg = read_stack("aws-dev", ROOT)
    run = run_program(cfg, program)
    spec = parse_spec(cfg.raw["standby:topology"])
    with MotoProcess() as moto, pytest.MonkeyPatch.context() as mp:
        d = deploy_run(run, moto.url, "aws-dev")
        assert d.ok, d.skipped
        mp.setenv("AWS_ACCESS_KEY_ID", d.access_key[0])
        mp.setenv("AWS_SECRET_ACCESS_KEY", d.access_key[1])
        mp.setenv("AWS_ENDPOINT_URL", moto.url)
        for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
            mp.delenv(key, raising=False)
        box = Sandbox(run, spec, d, {})
        box.baseline = statuses(box.check())
        yield box


def test_fresh_deploy_is_ready_but_for_what_moto_cannot_hold(sandbox: Sandbox) -> None:
    not_ready = {k: v for k, v in sandbox.baseline.items() if v != READY}
    assert not_ready == MOTO_GAPS
    # Every rule that applies to a DynamoDB stack ran (RDS rules need a database: below).
    assert {rule for rule, _ in sandbox.baseline} == {
        r for r in RULES if not r.startswith(("rds.", "plan.rds"))}
    report = sandbox.check()
    assert report.overall == NOT_READY
    memory = find(report, "lambda.memory", "logic primary: us-east-1~us-west-2")
    assert memory.status == READY and "by design" in memory.detail  # the us-west-2 override
    gap = find(report, "dynamodb.replica_status", "shop-orders")
    assert gap.detail == ("DescribeTable in us-east-1 lists no replicas: us-west-2 not "
                          "replicated")


def test_sandbox_deploy_applies_the_registered_pitr(sandbox: Sandbox) -> None:
    # Before: the sandbox created every table with PITR off although the plan registers it
    # on (the data table, its replica, the pointer and state tables), so a fresh sandbox
    # was never READY.
    view = plan_view(sandbox.run)
    wanted = [(t.name, r) for t in view.tables
              for r, on in ((t.region, t.pitr), *t.replicas.items()) if on]
    assert len(wanted) == 5
    for name, region in wanted:
        got = sandbox.d.client("dynamodb", region).describe_continuous_backups(
            TableName=name)["ContinuousBackupsDescription"]
        assert got["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


# -- break one thing at a time -----------------------------------------------------------

def _lambda(sb: Sandbox, name: str = STANDBY_FN) -> Any:
    return sb.d.client("lambda", sb.d.functions[name].region)


def _config(sb: Sandbox, **kwargs: Any) -> Callable[[], None]:
    fn = sb.d.functions[STANDBY_FN]
    before = _lambda(sb).get_function_configuration(FunctionName=STANDBY_FN)
    _lambda(sb).update_function_configuration(FunctionName=STANDBY_FN, **kwargs)
    original = {k: before[k] for k in ("MemorySize", "Runtime", "Timeout")}
    return lambda: _lambda(sb).update_function_configuration(
        FunctionName=STANDBY_FN, Environment={"Variables": fn.env}, **original)


def _env_key_removed(sb: Sandbox) -> Callable[[], None]:
    env = {k: v for k, v in sb.d.functions[STANDBY_FN].env.items() if k != "LOG_LEVEL"}
    return _config(sb, Environment={"Variables": env})


def _code_changed(sb: Sandbox) -> Callable[[], None]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("main.py", "def handler(event, context):\n    return 'other build'\n")
    _lambda(sb).update_function_code(FunctionName=STANDBY_FN, ZipFile=buf.getvalue())
    original = zip_bytes(sb.d.functions[STANDBY_FN].code)
    return lambda: _lambda(sb).update_function_code(FunctionName=STANDBY_FN, ZipFile=original)


def _concurrency_zero(sb: Sandbox) -> Callable[[], None]:
    _lambda(sb).put_function_concurrency(FunctionName=STANDBY_FN,
                                         ReservedConcurrentExecutions=0)
    return lambda: _lambda(sb).delete_function_concurrency(FunctionName=STANDBY_FN)


def _stage(sb: Sandbox, region: str) -> tuple[Any, str]:
    api = sb.d.client("apigateway", region)
    return api, next(a["id"] for a in api.get_rest_apis()["items"]
                     if a["name"] == f"shop-{region}")


def _tracing_on(sb: Sandbox) -> Callable[[], None]:
    api, api_id = _stage(sb, R2)

    def patch(value: str) -> None:
        api.update_stage(restApiId=api_id, stageName="live", patchOperations=[
            {"op": "replace", "path": "/tracingEnabled", "value": value}])
    patch("true")
    return lambda: patch("false")


def _variable_bogus(sb: Sandbox) -> Callable[[], None]:
    api, api_id = _stage(sb, R1)

    def patch(value: str) -> None:
        api.update_stage(restApiId=api_id, stageName="live", patchOperations=[
            {"op": "replace", "path": "/variables/logicFunction", "value": value}])
    patch("shop-logic-ue1-gone")
    return lambda: patch("shop-logic-ue1-primary")


def _pitr(sb: Sandbox, on: bool) -> None:
    sb.d.client("dynamodb", R2).update_continuous_backups(
        TableName="shop-orders", PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": on})


def _pitr_off(sb: Sandbox) -> Callable[[], None]:
    _pitr(sb, False)
    return lambda: _pitr(sb, True)


def _table_deleted(sb: Sandbox) -> Callable[[], None]:
    ddb = sb.d.client("dynamodb", R2)
    desc = ddb.describe_table(TableName="shop-orders")["Table"]
    ddb.delete_table(TableName="shop-orders")

    def restore() -> None:
        ddb.create_table(TableName="shop-orders", KeySchema=desc["KeySchema"],
                         AttributeDefinitions=desc["AttributeDefinitions"],
                         BillingMode="PAY_PER_REQUEST",
                         StreamSpecification=desc["StreamSpecification"])
        _pitr(sb, True)
    return restore


def _bucket(sb: Sandbox, region: str) -> str:
    env = sb.d.functions["shop-wrap-ue1-primary"].env
    return str(json.loads(sb.d.fix(env["STANDBY_BUCKETS"]))[region])


def _versioning_suspended(sb: Sandbox) -> Callable[[], None]:
    s3, bucket = sb.d.client("s3", R2), _bucket(sb, R2)

    def put(status: str) -> None:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
    put("Suspended")
    return lambda: put("Enabled")


def _replication_removed(sb: Sandbox) -> Callable[[], None]:
    s3, bucket = sb.d.client("s3", R2), _bucket(sb, R2)
    config = s3.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]
    s3.delete_bucket_replication(Bucket=bucket)
    return lambda: s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration=config)


def _secret_deleted(sb: Sandbox) -> Callable[[], None]:
    env = sb.d.functions["shop-mon-data-uw2"].env
    arn = json.loads(env["STANDBY_WEBHOOKS"])[0]["secret_arn"]
    sm = sb.d.client("secretsmanager", R2)
    sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    return lambda: sm.restore_secret(SecretId=arn)


def _schedule_disabled(sb: Sandbox) -> Callable[[], None]:
    events = sb.d.client("events", R2)
    name = next(r["Name"] for r in events.list_rules(
        NamePrefix="shop-monitor-data-us-west-2-schedule")["Rules"])
    events.disable_rule(Name=name)
    return lambda: events.enable_rule(Name=name)


BREAKS: dict[str, tuple[Callable[[Sandbox], Callable[[], None]], dict[tuple[str, str], str]]] = {
    "standby memory changed": (lambda sb: _config(sb, MemorySize=1024), {
        ("lambda.memory", IN_REGION): "primary 256 MB, standby 1024 MB",
        ("lambda.memory", ACROSS): "us-east-1 1024 MB, us-west-2 512 MB",
        ("plan.lambda", STANDBY_FN): "memory 1024 (plan 256)"}),
    "standby runtime changed": (lambda sb: _config(sb, Runtime="python3.11"), {
        ("lambda.runtime", IN_REGION): "primary python3.12, standby python3.11",
        ("lambda.runtime", ACROSS): "us-east-1 python3.11, us-west-2 python3.12",
        ("plan.lambda", STANDBY_FN): "runtime python3.11 (plan python3.12)"}),
    "standby timeout changed": (lambda sb: _config(sb, Timeout=30), {
        ("lambda.timeout", IN_REGION): "primary 10 s, standby 30 s",
        ("lambda.timeout", ACROSS): "us-east-1 30 s, us-west-2 10 s",
        ("plan.lambda", STANDBY_FN): "timeout 30 (plan 10)"}),
    "env key removed from the standby": (_env_key_removed, {
        ("lambda.env_keys", IN_REGION): "standby lacks LOG_LEVEL",
        ("lambda.env_keys", ACROSS): "us-east-1 lacks LOG_LEVEL",
        ("plan.lambda", STANDBY_FN): "env lacks LOG_LEVEL"}),
    "standby code changed": (_code_changed, {
        ("lambda.code_hash", IN_REGION): "primary ",
        ("lambda.code_hash", ACROSS): "us-east-1 "}),
    "standby concurrency 0": (_concurrency_zero, {
        ("lambda.concurrency", IN_REGION): "reserved concurrency 0 on standby",
        ("lambda.concurrency", ACROSS): "reserved concurrency 0 on us-east-1",
        ("plan.lambda", STANDBY_FN): "reserved concurrency 0 (plan None)"}),
    "standby stage tracing on": (_tracing_on, {
        ("apigw.stage_settings", "stage us-east-1~us-west-2"):
            "tracingEnabled: us-east-1 False, us-west-2 True"}),
    "stage variable names no logic function": (_variable_bogus, {
        ("plan.apigw_stage", "stage us-east-1"):
            "logicFunction = 'shop-logic-ue1-gone' names neither logic function"}),
    "standby PITR off": (_pitr_off, {
        ("dynamodb.pitr", "shop-orders"): "us-east-1 ENABLED, us-west-2 DISABLED",
        ("plan.dynamodb", "shop-orders us-west-2"): "point-in-time recovery DISABLED"}),
    "standby table deleted": (_table_deleted, {
        ("dynamodb.table_status", "shop-orders"): "table shop-orders not found in us-west-2",
        ("dynamodb.pitr", "shop-orders"): "table shop-orders not found in us-west-2",
        ("plan.dynamodb", "shop-orders us-west-2"): "not found in us-west-2"}),
    "standby versioning suspended": (_versioning_suspended, {
        ("s3.versioning", "buckets us-east-1~us-west-2"): "us-west-2 Suspended",
        ("plan.s3", "bucket us-west-2"): "versioning Suspended (plan Enabled)"}),
    "standby replication removed": (_replication_removed, {
        ("s3.replication", "buckets us-east-1~us-west-2"): "no replication configuration on",
        ("plan.s3", "bucket us-west-2"): "replication off (plan on)"}),
    "standby webhook secret deleted": (_secret_deleted, {
        ("secrets.present", "webhook 0 (slack)"): "in us-west-2 is scheduled for deletion"}),
    "standby data monitor schedule disabled": (_schedule_disabled, {
        ("plan.schedule", "shop-monitor-data-us-west-2-schedule"):
            "is DISABLED: the monitor never runs"}),
}


@pytest.mark.parametrize("name", list(BREAKS))
def test_one_break_makes_exactly_the_right_rules_not_ready(sandbox: Sandbox, name: str) -> None:
    make, expected = BREAKS[name]
    restore = make(sandbox)
    try:
        report = sandbox.check()
    finally:
        restore()
    now = statuses(report)
    changed = {k for k in now if now[k] != sandbox.baseline.get(k)}
    assert changed == set(expected), name
    for key, fragment in expected.items():
        check = find(report, *key)
        assert check.status == NOT_READY and fragment in check.detail, check


def test_a_layer_dropped_from_the_standby_is_not_ready(sandbox: Sandbox) -> None:
    lam = _lambda(sandbox)
    arn = lam.publish_layer_version(LayerName="shop-extra-tools", Content={
        "ZipFile": zip_bytes_of({"python/tools.py": "X = 1\n"})})["LayerVersionArn"]
    pair = ("shop-logic-ue1-primary", STANDBY_FN)
    try:
        for name in pair:
            lam.update_function_configuration(FunctionName=name, Layers=[arn])
        both = find(sandbox.check(), "lambda.layers", IN_REGION)
        assert both.status == READY and both.detail == "[shop-extra-tools] on both"
        lam.update_function_configuration(FunctionName=STANDBY_FN, Layers=[])
        report = sandbox.check()
    finally:
        for name in pair:
            lam.update_function_configuration(FunctionName=name, Layers=[])
    dropped = find(report, "lambda.layers", IN_REGION)
    assert dropped.status == NOT_READY
    assert dropped.detail == "primary [shop-extra-tools], standby none"
    added = find(report, "plan.lambda", "shop-logic-ue1-primary")
    assert added.status == NOT_READY and "layers ['shop-extra-tools'] (plan [])" in added.detail


def zip_bytes_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return buf.getvalue()


def test_every_break_was_restored(sandbox: Sandbox) -> None:
    assert statuses(sandbox.check()) == sandbox.baseline


# -- permissions and outages --------------------------------------------------------------

def _user(sb: Sandbox, name: str, actions: list[str] | None) -> Clients:
    iam = sb.d.client("iam", R1)
    iam.create_user(UserName=name)
    if actions:
        iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]

    class UserClients(Clients):
        def get(self, service: str, region: str) -> Any:
            make: Any = boto3.client
            return make(service, region_name=region, endpoint_url=sb.d.moto_url,
                        aws_access_key_id=key["AccessKeyId"],
                        aws_secret_access_key=key["SecretAccessKey"])
    return UserClients()


def test_a_role_without_dynamodb_reads_gets_not_authorized_not_a_crash(
    sandbox: Sandbox,
) -> None:
    clients = _user(sandbox, "readiness-no-dynamodb", [
        "lambda:*", "apigateway:*", "s3:*", "secretsmanager:Describe*", "events:*",
        "servicequotas:*"])
    report = sandbox.check(clients)
    denied = {(c.rule, c.subject) for c in report.checks if c.status == NOT_AUTHORIZED}
    dynamo = {(c.rule, c.subject) for c in report.checks
              if c.rule.startswith(("dynamodb.", "plan.dynamodb"))}
    assert denied == dynamo and len(dynamo) == 8
    assert "not authorized: dynamodb:DescribeTable on table shop-orders" in find(
        report, "dynamodb.table_status", "shop-orders").detail
    assert "dynamodb:DescribeContinuousBackups" in find(
        report, "dynamodb.pitr", "shop-orders").detail
    # The rest reads as before; with nothing NOT_READY left, the rollup is NOT_AUTHORIZED.
    assert {k: v for k, v in statuses(report).items() if k not in dynamo} == {
        k: v for k, v in sandbox.baseline.items() if k not in dynamo}
    assert report.overall == NOT_AUTHORIZED


def test_a_user_without_any_permission_gets_not_authorized_everywhere(
    sandbox: Sandbox,
) -> None:
    report = sandbox.check(_user(sandbox, "readiness-nothing", None))
    assert report.checks and {c.status for c in report.checks} == {NOT_AUTHORIZED}
    assert "not authorized: lambda:GetFunctionConfiguration" in find(
        report, "lambda.memory", IN_REGION).detail
    # Each detail names a real IAM action, from the list the README gives.
    named = {m for c in report.checks for m in re.findall(r"not authorized: (\S+) on",
                                                              c.detail)}
    assert named and named <= READ_ACTIONS
    assert {"lambda:GetFunctionConcurrency", "servicequotas:GetServiceQuota",
            "events:ListRules", "dynamodb:DescribeContinuousBackups"} <= named


def test_a_lost_standby_region_is_unknown_where_it_is_read(sandbox: Sandbox) -> None:
    report = sandbox.check(DownRegionClients(R2))
    now = statuses(report)
    assert now[("lambda.memory", "logic us-west-2: primary~standby")] == UNKNOWN
    assert now[("dynamodb.pitr", "shop-orders")] == UNKNOWN
    assert "EndpointConnectionError" in find(report, "dynamodb.pitr", "shop-orders").detail
    # us-east-1 alone is still read.
    assert now[("lambda.memory", IN_REGION)] == READY
    assert now[("plan.lambda", "shop-logic-ue1-primary")] == READY
    assert report.overall == NOT_READY  # the replica gap is read in us-east-1


# -- the command line ---------------------------------------------------------------------

def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli_main(list(argv))
    except SystemExit as exc:  # argparse: usage error
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_and_fail_on(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    url = sandbox.d.moto_url
    code, out, err = run(capsys, "readiness", "--stack", "aws-dev", "--endpoint-url", url,
                         "--format", "json", "--fail-on", "NOT_READY")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["schema"] == 1 and doc["stack"] == "aws-dev" and doc["overall"] == NOT_READY
    assert {(r["id"], r["subject"]): r["status"] for r in doc["rules"]} == sandbox.baseline
    assert doc["counts"][READY] == len(sandbox.baseline) - 2
    code, out, _ = run(capsys, "readiness", "--stack", "aws-dev", "--endpoint-url", url)
    assert code == 0  # no --fail-on: the check ran, whatever it found
    assert out.startswith("readiness of stack aws-dev (topology shop, aws)")
    assert "NOT_READY  dynamodb.replica_status" in out
    assert out.rstrip().endswith(f"overall: NOT_READY ({len(sandbox.baseline) - 2} READY, "
                                 "1 UNKNOWN, 1 NOT_READY)")


@pytest.mark.parametrize(("argv", "message"), [
    (["--fail-on", "READY"], "argument --fail-on: 'READY'; allowed: UNKNOWN, NOT_AUTHORIZED, "
                             "NOT_READY"),
    (["--fail-on", "not_ready"], "argument --fail-on: 'not_ready'; allowed:"),
    (["--format", "yaml"], "argument --format: invalid choice: 'yaml'"),
    (["--endpoint-url", "ftp://x"], "argument --endpoint-url: 'ftp://x'; allowed: an http://"),
])
def test_bad_arguments_exit_2_with_what_is_allowed(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str,
) -> None:
    code, out, err = run(capsys, "readiness", "--stack", "aws-dev", *argv)
    assert code == 2 and message in err and out == ""


def test_a_missing_stack_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "readiness", "--stack", "nosuch")
    assert code == 2 and "nosuch" in err


@pytest.mark.parametrize("stack", ["tencent-dev", "tencent-nearby"])
def test_tencent_rules_are_unknown_with_the_reason(
    capsys: pytest.CaptureFixture[str], stack: str,
) -> None:
    code, out, _ = run(capsys, "readiness", "--stack", stack, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["cloud"] == "tencent" and doc["overall"] == UNKNOWN and doc["rules"]
    assert all(r["status"] == UNKNOWN and r["detail"].startswith(
        "not read on Tencent Cloud yet (needs ") for r in doc["rules"])
    ids = {r["id"] for r in doc["rules"]}  # no DynamoDB on Tencent; every other rule is there
    assert ids == {r for r in RULES if not r.startswith(("dynamodb.", "plan.dynamodb"))}
    code, _, _ = run(capsys, "readiness", "--stack", stack, "--fail-on", "UNKNOWN")
    assert code == 1


@pytest.mark.parametrize("stack", ["aws-nearby", "aws-sql"])
def test_an_undeployed_aws_stack_is_not_ready_everywhere_without_a_crash(
    aws: str, capsys: pytest.CaptureFixture[str], stack: str,
) -> None:
    code, out, err = run(capsys, "readiness", "--stack", stack, "--endpoint-url", aws,
                         "--format", "json", "--fail-on", "NOT_READY")
    assert code == 1, err
    doc = json.loads(out)
    lam = [r for r in doc["rules"] if r["id"].startswith("lambda.")]
    assert lam and all(r["status"] == NOT_READY and "not found" in r["detail"] for r in lam)
    # Only the quota, which Service Quotas in moto cannot answer for Lambda, is not a finding.
    assert {r["status"] for r in doc["rules"] if r["status"] != NOT_READY} <= {UNKNOWN}
    assert {r["id"] for r in doc["rules"] if r["status"] == UNKNOWN} <= {
        "quota.lambda_concurrency"}
