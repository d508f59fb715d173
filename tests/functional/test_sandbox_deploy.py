"""The sandbox deploys the aws-dev plan into a moto server (a subprocess, IAM enforced) and
runs functions from their registered archives in fresh interpreters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pulumi
import pytest
from botocore.exceptions import ClientError

from components.plan.run import read_stack, run_program
from components.program import main
from components.runtime import config as config_mod
from components.runtime.aws import kinds as aws_kinds
from components.sandbox.deploy import (
    NO_API,
    Deployment,
    Function,
    deploy_run,
    policy_for_moto,
    trust_for_sandbox,
)
from components.sandbox.drill_deployed import stage_targets, stage_value
from components.sandbox.lambda_runner import LambdaRunner, compressed_env
from components.sandbox.moto_proc import MotoProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Deployment,
                                                                      LambdaRunner]]:
    run = run_program(read_stack("aws-dev", ROOT), main)
    with MotoProcess() as moto:
        deployment = deploy_run(run, moto.url, "aws-dev")
        with LambdaRunner(deployment, tmp_path_factory.mktemp("lambda"),
                          runtime_root=ROOT / ".standby-cache") as runner:
            yield run, deployment, runner


def role_client(runner: LambdaRunner, fn: Function, service: str, region: str) -> Any:
    creds = runner.credentials.get(fn.role_arn)
    make: Any = boto3.client
    return make(service, region_name=region, endpoint_url=runner.deployment.moto_url,
                aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=creds["AWS_SESSION_TOKEN"])


def test_every_plan_resource_is_created_or_reported(world: Any) -> None:
    run, d, _ = world
    custom = [r for r in run.resources if r.custom and not r.type.startswith("pulumi:")]
    created = {(c.type, c.name) for c in d.created}
    skipped = {(s.type, s.name): s.reason for s in d.skipped}
    for r in custom:
        assert (r.type, r.name) in created or (r.type, r.name) in skipped, r.name
    assert all(t in NO_API for t, _ in skipped), skipped
    assert d.ok
    # A resource created only on the retry pass would fail a first `pulumi up`: the base
    # path mapping once named its stage by a plain string and raced it.
    assert not [x for x in d.warnings if "created only on a retry" in x], d.warnings
    names = {r.inputs["name"] for r in custom if r.type == "aws:lambda/function:Function"}
    assert set(d.functions) == names
    for fn in d.functions.values():  # (moto 5.2 refuses a signed ListFunctions: 403)
        got = d.client("lambda", fn.region).get_function_configuration(FunctionName=fn.name)
        assert got["FunctionArn"] == fn.arn and got["Role"] == fn.role_arn
    wrapper = d.client("lambda", "us-east-1").get_function_configuration(
        FunctionName="shop-wrap-ue1-primary")
    assert wrapper["Handler"] == "components.runtime.aws.wrapper.handler"
    assert wrapper["Environment"]["Variables"]["STANDBY_SIDE"] == "primary"
    assert wrapper["Role"].endswith(":role/shop-wrapper-us-east-1-primary-role-4e3acec")


def test_plan_ids_are_rewritten_to_the_ids_moto_gave(world: Any) -> None:
    _, d, _ = world
    apis = {a["name"]: a["id"] for a in d.client("apigateway", "us-east-1")
            .get_rest_apis()["items"]}
    env = d.functions["shop-mon-gateway-ue1"].env
    targets = {t["scope"]: t for t in json.loads(env["STANDBY_SWITCH"])}
    assert targets["us-east-1"]["rest_api_id"] == apis["shop-us-east-1"]
    stage = d.client("apigateway", "us-east-1").get_stage(
        restApiId=apis["shop-us-east-1"], stageName="live")
    assert stage["variables"] == {"logicFunction": "shop-logic-ue1-primary"}
    r53 = d.client("route53", "us-east-1")
    zone = r53.list_hosted_zones()["HostedZones"][0]["Id"]
    checks = {h["Id"] for h in r53.list_health_checks()["HealthChecks"]}
    records = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    failover = [r for r in records if r.get("Failover")]
    assert {r["Failover"] for r in failover} == {"PRIMARY", "SECONDARY"}
    assert all(r["HealthCheckId"] in checks for r in failover)
    dns_env = d.functions["shop-mon-dns-ue1"].env
    dns_targets = json.loads(dns_env["STANDBY_SWITCH"])
    # The DNS switch forces through a CloudWatch alarm that each region's health check reads.
    alarms = {a["AlarmName"] for region in ("us-east-1", "us-west-2")
              for a in d.client("cloudwatch", region).describe_alarms()["MetricAlarms"]}
    assert dns_targets and all(t["force_alarm"] in alarms for t in dns_targets), dns_targets
    hook = json.loads(env["STANDBY_WEBHOOKS"])[0]["secret_arn"]
    sm = d.client("secretsmanager", "us-east-1")
    assert sm.describe_secret(SecretId=hook)["ARN"] == hook


def test_monitor_role_is_refused_an_action_outside_its_policy(world: Any) -> None:
    _, d, runner = world
    fn = d.functions["shop-mon-data-ue1"]
    ddb = role_client(runner, fn, "dynamodb", "us-west-2")
    with pytest.raises(ClientError) as denied:
        ddb.delete_item(TableName="shop-standby-state",
                        Key={"pk": {"S": "lease#data"}, "sk": {"S": "lease"}})
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "AccessDenied" in str(denied.value) and "dynamodb:DeleteItem" in str(denied.value)
    # ... while an action in its policy, with the same credentials, is allowed.
    ddb.query(TableName="shop-standby-state", KeyConditionExpression="pk = :p",
              ExpressionAttributeValues={":p": {"S": "lease#data"}})


def test_monitor_roles_may_call_what_their_policies_allow_under_moto_action_names(
    world: Any,
) -> None:
    # moto checks monitoring:PutMetricData and apigateway:UpdateStage, where the plan grants
    # cloudwatch:PutMetricData and apigateway:PATCH (before the fix: 403 for both).
    _, d, runner = world
    dns = d.functions["shop-mon-dns-ue1"]
    role_client(runner, dns, "cloudwatch", "us-east-1").put_metric_data(
        Namespace="Standby", MetricData=[{"MetricName": "ForceFailover", "Value": 0.0,
                                          "Dimensions": [{"Name": "Topology", "Value": "shop"},
                                                         {"Name": "Region",
                                                          "Value": "us-east-1"}]}])
    gw = d.functions["shop-mon-gateway-ue1"]
    target = json.loads(gw.env["STANDBY_SWITCH"])[0]
    role_client(runner, gw, "apigateway", "us-east-1").update_stage(
        restApiId=target["rest_api_id"], stageName=target["stage"], patchOperations=[
            {"op": "replace", "path": "/variables/logicFunction",
             "value": target["values"]["primary"]}])
    with pytest.raises(ClientError) as denied:  # not in the DNS monitor's policy
        role_client(runner, dns, "apigateway", "us-east-1").update_stage(
            restApiId=target["rest_api_id"], stageName=target["stage"], patchOperations=[
                {"op": "replace", "path": "/variables/logicFunction", "value": "x"}])
    assert "AccessDenied" in str(denied.value)


def test_monitors_run_from_their_archive_and_their_state_lands_in_the_state_table(
    world: Any,
) -> None:
    _, d, runner = world
    for name in ("shop-mon-logic-ue1", "shop-mon-data-ue1"):
        inv = runner.invoke(name, {"source": "manual", "rounds": 1})
        assert inv.ok, (inv.payload, inv.logs[-2000:])
        assert inv.payload["rounds"] == 1
        assert '"msg": "monitor done"' in inv.logs
    items = d.client("dynamodb", "us-west-2").scan(TableName="shop-standby-state")["Items"]
    votes = {(i["pk"]["S"], i["sk"]["S"]) for i in items if i["pk"]["S"].startswith("vote#")}
    assert ("vote#logic#us-east-1", "us-east-1") in votes
    assert ("vote#data#data", "us-east-1") in votes


def _function(world: Any, tmp_path: Path, source: str, timeout_s: float = 10) -> Function:
    _, d, _ = world
    base = d.functions["shop-logic-ue1-primary"]
    fn = Function(name="probe-fn", region="us-east-1", arn=base.arn + "-probe",
                  role_arn=base.role_arn, handler="app.handler", runtime="python3.12",
                  timeout_s=timeout_s, memory_mb=128, env={"GREETING": "hi"},
                  code=pulumi.AssetArchive({"app.py": pulumi.StringAsset(source)}), layers=[])
    d.functions["probe-fn"] = fn
    return fn


def test_each_invocation_is_a_fresh_interpreter(world: Any, tmp_path: Path) -> None:
    _function(world, tmp_path, (
        "import os, sys\nCOUNT = 0\n"
        "def handler(event, context):\n"
        "    global COUNT\n    COUNT += 1\n"
        "    return {'count': COUNT, 'pid': os.getpid(), 'greeting': os.environ['GREETING'],"
        " 'fn': os.environ['AWS_LAMBDA_FUNCTION_NAME'], 'event': event,"
        " 'remaining': context.get_remaining_time_in_millis(),"
        " 'request': context.aws_request_id, 'isolated': sys.flags.isolated}\n"))
    runner: LambdaRunner = world[2]
    first, second = (runner.invoke("probe-fn", {"n": n}) for n in (1, 2))
    assert first.ok and second.ok, (first.payload, second.payload)
    assert first.payload["count"] == second.payload["count"] == 1  # no state carried over
    assert first.payload["pid"] != second.payload["pid"]
    assert first.payload["request"] != second.payload["request"]
    assert second.payload["event"] == {"n": 2} and first.payload["greeting"] == "hi"
    assert first.payload["fn"] == "probe-fn" and first.payload["isolated"] == 1
    assert 0 < first.payload["remaining"] <= 10_000


def test_a_module_missing_from_the_package_fails_with_import_error(
    world: Any, tmp_path: Path,
) -> None:
    # psycopg and pulumi are installed where the sandbox runs; the function must not see them.
    for module in ("psycopg", "pulumi"):
        _function(world, tmp_path, f"import {module}\ndef handler(event, context):\n"
                                   "    return 1\n")
        inv = world[2].invoke("probe-fn", {})
        assert inv.error == "Runtime.ImportModuleError", inv.payload
        assert f"No module named '{module}'" in inv.payload["errorMessage"]
    _function(world, tmp_path, "import boto3\ndef handler(event, context):\n"
                               "    return boto3.__version__\n")
    assert world[2].invoke("probe-fn", {}).ok  # the runtime's own SDK is there


def test_a_handler_error_and_a_timeout_come_back_as_lambda_reports_them(
    world: Any, tmp_path: Path,
) -> None:
    _function(world, tmp_path, "def handler(event, context):\n"
                               "    raise KeyError('order')\n")
    inv = world[2].invoke("probe-fn", {})
    assert inv.error == "KeyError" and "order" in inv.payload["errorMessage"]
    _function(world, tmp_path, "import time\ndef handler(event, context):\n"
                               "    time.sleep(30)\n", timeout_s=1)
    inv = world[2].invoke("probe-fn", {})
    assert inv.error == "Sandbox.Timeout"
    assert "timed out after 1.00 seconds" in inv.payload["errorMessage"]


def test_policy_for_moto_keeps_actions_and_never_turns_a_condition_into_a_deny() -> None:
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:GetItem", "s3:GetObject"],
         "Resource": ["arn:aws:dynamodb:us-east-1:1:table/t", "arn:aws:s3:::b/*"],
         "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["data"]}}},
        {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "arn:x",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]}
    assert policy_for_moto({"Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
        "cloudwatch:PutMetricData", "apigateway:PATCH", "lambda:InvokeFunction"]}]})[
        "Statement"][0]["Action"] == [
        "cloudwatch:PutMetricData", "monitoring:PutMetricData", "apigateway:PATCH",
        "apigateway:Update*", "lambda:InvokeFunction", "lambda:Invoke"]
    out = policy_for_moto(doc)["Statement"]
    assert out == [
        {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": ["arn:aws:dynamodb:us-east-1:1:table/t", "arn:aws:s3:::b/*"]},
    ]


def test_trust_policy_lets_the_deployer_assume_on_behalf_of_the_service() -> None:
    doc: dict[str, Any] = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
         "Action": "sts:AssumeRole"}]}
    out = trust_for_sandbox(doc, "arn:aws:iam::1:user/d")
    assert out["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com",
                                                "AWS": "arn:aws:iam::1:user/d"}
    assert doc["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_compressed_env_scales_only_a_monitors_time_settings(world: Any) -> None:
    _, d, _ = world
    monitor = d.functions["shop-mon-gateway-ue1"].env
    logic = d.functions["shop-logic-ue1-primary"].env
    assert compressed_env(monitor, 1.0) == monitor
    assert compressed_env(logic, 6.0) == logic  # not a monitor: nothing to compress
    fast = compressed_env(monitor, 6.0)
    registered = json.loads(monitor["STANDBY_SETTINGS"])
    settings = json.loads(fast["STANDBY_SETTINGS"])
    assert float(fast["STANDBY_LOOP_S"]) == pytest.approx(float(monitor["STANDBY_LOOP_S"]) / 6,
                                                         abs=0.001)
    assert settings["interval_s"] == pytest.approx(registered["interval_s"] / 6)
    assert settings["cooldown_s"] == pytest.approx(registered["cooldown_s"] / 6)
    assert settings["timeout_s"] == registered["timeout_s"]  # network time is real
    assert settings["failure_threshold"] == registered["failure_threshold"]
    assert {k: v for k, v in fast.items() if k not in ("STANDBY_LOOP_S", "STANDBY_SETTINGS")} \
        == {k: v for k, v in monitor.items() if k not in ("STANDBY_LOOP_S", "STANDBY_SETTINGS")}
    with pytest.raises(ValueError, match=r"compression: 0.5; allowed: >= 1"):
        compressed_env(monitor, 0.5)


def test_scheduled_monitor_loop_is_compressed_with_the_schedule(
    world: Any, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    # Defect: at 1 min = 10 s each scheduled monitor invocation still looped for the
    # registered 50 s (measured 41 s alone), so ~5 ran at once per monitor and, under the
    # load that made, every one timed out at 60 s. The compressed loop is the registered
    # loop over the compression, and the runtime's own config loader accepts it.
    _, d, _ = world
    fn = d.functions["shop-mon-gateway-ue1"]
    runner = LambdaRunner(d, tmp_path, runtime_root=ROOT / ".standby-cache", compression=6.0)
    request.addfinalizer(runner.close)
    env = runner.environment(fn, str(tmp_path))
    cfg = config_mod.load(env)  # the AWS adapter's kinds are registered on import
    assert "apigw_stage_variable" in {k.name for k in aws_kinds.SWITCHES}
    assert cfg.loop_s == pytest.approx(float(fn.env["STANDBY_LOOP_S"]) / 6, abs=0.001)
    # The same number of rounds fits a compressed minute as a real one.
    assert int(cfg.loop_s // cfg.settings.interval_s) == int(
        float(fn.env["STANDBY_LOOP_S"]) // json.loads(fn.env["STANDBY_SETTINGS"])["interval_s"])
    inv = runner.invoke(fn.name, {"source": "schedule", "layer": "gateway"})
    assert inv.ok, (inv.payload, inv.logs[-2000:])
    assert 1 <= inv.payload["rounds"] <= int(cfg.loop_s // cfg.settings.interval_s)
    with pytest.raises(ValueError, match=r"compression: 0.9; allowed: >= 1"):
        LambdaRunner(d, tmp_path, runtime_root=ROOT / ".standby-cache", compression=0.9)


def test_deployed_drill_finds_the_gateway_switch_it_waits_for(world: Any) -> None:
    _, d, _ = world
    targets = stage_targets(d, "us-east-1")
    assert targets, "no gateway monitor switches a stage variable for us-east-1"
    t = targets[0]
    assert t["values"] == {"primary": "shop-logic-ue1-primary",
                           "standby": "shop-logic-ue1-standby"}
    assert stage_value(d, t) == "shop-logic-ue1-primary"
    assert stage_targets(d, "eu-north-1") == []


def test_function_host_forwards_signed_lambda_calls_to_moto_intact(world: Any) -> None:
    # The function host forwarded other Lambda calls without the signed Host header, so
    # moto with IAM on refused them (403 SignatureDoesNotMatch) and `standby switch` of the
    # gateway or logic layer could not read its monitor's configuration through the sandbox.
    from components.sandbox.functions import FunctionHost

    _, d, _ = world
    host = FunctionHost(fallback=d.moto_url)
    try:
        make: Any = boto3.client
        lam = make("lambda", region_name="us-east-1", endpoint_url=host.url,
                   aws_access_key_id=d.access_key[0], aws_secret_access_key=d.access_key[1])
        conf = lam.get_function_configuration(FunctionName="shop-mon-logic-ue1")
        assert conf["FunctionName"] == "shop-mon-logic-ue1"
        assert conf["Environment"]["Variables"]["STANDBY_LAYER"] == "logic"
    finally:
        host.close()
