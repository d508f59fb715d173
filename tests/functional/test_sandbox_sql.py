"""The aws-sql stack in the plan-deployed sandbox: moto server (IAM enforced) plus real local
PostgreSQL servers behind the RDS instances, functions run from their archives in fresh
interpreters with the drivers only from their layer."""

from __future__ import annotations

import json
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pulumi
import pytest

from components.plan.run import read_stack, run_program
from components.program import main as program
from components.runtime.aws import ops
from components.runtime.aws.clients import Clients
from components.sandbox.__main__ import main
from components.sandbox.deploy import NO_API, Deployment, Function, deploy_run, policy_for_moto
from components.sandbox.deploy_model import RevealingMocks, plan_id
from components.sandbox.deploy_rds import (
    RdsWorld,
    generate_password,
    rds_world,
    relocate_endpoints,
)
from components.sandbox.lambda_runner import LambdaRunner
from components.sandbox.moto_proc import MotoProcess
from components.sandbox.pg import PgUnavailable, ensure_postgres

ROOT = Path(__file__).resolve().parents[2]
R1, R2 = "us-east-1", "us-west-2"
WRAPPER = "sqlshop-wrap-ue1-primary"
DATA_MONITOR = "sqlshop-mon-data-ue1"
PRIMARY_ID, REPLICA_ID = "sqlshop-orders-primary", "sqlshop-orders-standby"
WAIT_S = 60.0


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Deployment,
                                                                        LambdaRunner, RdsWorld]]:
    try:
        ensure_postgres(say=lambda _m: None)
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    run = run_program(read_stack("aws-sql", ROOT), program, RevealingMocks())
    with MotoProcess() as moto:
        d = deploy_run(run, moto.url, "aws-sql")
        try:
            world = rds_world(d)
            with world.connect(R1) as c:
                c.execute("CREATE TABLE orders (id text PRIMARY KEY, item text)")
            runner = LambdaRunner(d, tmp_path_factory.mktemp("lambda"),
                                  runtime_root=ROOT / ".standby-cache")
            yield run, d, runner, world
        finally:
            d.close()


def wait_for(check: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


def insert(i: str) -> dict[str, Any]:
    return {"op": "sql", "sql": "INSERT INTO orders (id, item) VALUES (:id, :item)",
            "params": {"id": i, "item": "x"}, "idempotency_key": f"order-{i}"}


def ids(world: RdsWorld, region: str) -> set[str]:
    with world.connect(region) as c:
        return {r[0] for r in c.execute("SELECT id FROM orders").fetchall()}


def describe(d: Deployment, region: str, ident: str) -> dict[str, Any]:
    got = d.client("rds", region).describe_db_instances(DBInstanceIdentifier=ident)
    return dict(got["DBInstances"][0])


# -- deploy ---------------------------------------------------------------------------------

def test_cli_deploys_aws_sql_with_nothing_failed() -> None:
    lines: list[str] = []
    assert main(["--stack", "aws-sql", "--project-dir", str(ROOT)], say=lines.append) == 0
    text = "\n".join(lines)
    assert "deploy FAILED" not in text and "failed:" not in text
    assert "no handler" not in text
    rows = {line.split()[2] for line in lines if line.startswith("  rds:Instance")}
    assert rows == {"sqlshop-data-db-primary", "sqlshop-data-db-replica"}
    section = "\n".join(lines[lines.index("How this sandbox differs from AWS:"):])
    assert "RDS: each instance is a real local PostgreSQL server" in section
    assert "127.0.0.1:" in section and "Drivers layer:" in section


def test_every_aws_sql_resource_is_created_or_needs_no_api(sandbox: Any) -> None:
    run, d, _, _ = sandbox
    created = {(c.type, c.name) for c in d.created}
    for r in run.resources:
        if r.custom and not r.type.startswith("pulumi:"):
            assert (r.type, r.name) in created or r.type in NO_API, (r.type, r.name)
    assert d.ok and not d.warnings, d.warnings


def test_generated_password_is_in_the_replicated_secret_and_opens_the_database(
    sandbox: Any,
) -> None:
    # Before: the secret held a placeholder and RDS instances were not created at all; the
    # plan's password ("[secret]") must become one generated value used everywhere.
    run, d, _, world = sandbox
    plan_pw = next(r for r in run.resources if r.type.endswith("RandomPassword"))
    plan_value = str(plan_pw.outputs["result"])
    arn = d.functions[WRAPPER].env["STANDBY_DB_SECRET_ARN"]
    west = d.functions["sqlshop-wrap-uw2-primary"].env["STANDBY_DB_SECRET_ARN"]
    assert ":us-west-2:" in west and west != arn

    docs = [json.loads(d.client("secretsmanager", r).get_secret_value(SecretId=a)["SecretString"])
            for r, a in ((R1, arn), (R2, west))]
    assert docs[0] == docs[1]
    password = docs[0]["password"]
    assert password != plan_value and len(password) == 40
    assert set(password) <= set(string.ascii_letters + string.digits)  # special: false
    host, port = world.endpoint(R1)
    with psycopg.connect(host=host, port=port, user=docs[0]["username"], password=password,
                         dbname=docs[0]["dbname"], connect_timeout=3) as c:
        assert c.execute("SELECT current_user").fetchone() == ("standby_admin",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host=host, port=port, user="standby_admin", password=plan_value,
                        dbname="orders", connect_timeout=3).close()


def test_generate_password_honours_length_and_classes_and_refuses_bad_input() -> None:
    pw = generate_password({"length": 24.0, "special": False, "upper": False,
                            "minNumeric": 5.0})
    assert len(pw) == 24 and sum(ch.isdigit() for ch in pw) >= 5
    assert set(pw) <= set(string.ascii_lowercase + string.digits)
    only = generate_password({"length": 12, "upper": False, "lower": False, "numeric": False,
                              "overrideSpecial": "#"})
    assert only == "#" * 12
    with pytest.raises(ValueError, match="allowed: length >= 1"):
        generate_password({"length": 4, "minUpper": 3, "minLower": 3})


def test_stack_network_exists_in_moto_with_the_rules_the_program_registered(
    sandbox: Any,
) -> None:
    run, d, _, _ = sandbox
    ec2 = d.client("ec2", R1)
    vpc = d.ids["vpc-0a1b2c3d4e5f60001"]
    subnets = ec2.describe_subnets(SubnetIds=[d.ids["subnet-0a1b2c3d4e5f60011"],
                                              d.ids["subnet-0a1b2c3d4e5f60012"]])["Subnets"]
    assert {s["VpcId"] for s in subnets} == {vpc}
    # The cross-region rules carry the CIDR blocks the program read from get_subnet.
    west_cidrs = {s["CidrBlock"] for s in d.client("ec2", R2).describe_subnets(SubnetIds=[
        d.ids["subnet-0a1b2c3d4e5f60021"], d.ids["subnet-0a1b2c3d4e5f60022"]])["Subnets"]}
    db_sg = next(r for r in run.resources if r.name == "sqlshop-data-db-sg-us-east-1")
    wrapper_sg = next(r for r in run.resources if r.name == "sqlshop-data-wrapper-sg-us-east-1")
    db_id, wrapper_id = d.ids[plan_id(db_sg)], d.ids[plan_id(wrapper_sg)]
    groups = {g["GroupId"]: g for g in ec2.describe_security_groups(
        GroupIds=[db_id, wrapper_id])["SecurityGroups"]}
    db, wrapper = groups[db_id], groups[wrapper_id]
    assert db["VpcId"] == vpc
    ingress = {(p.get("FromPort"), pair["GroupId"]) for p in db["IpPermissions"]
               for pair in p.get("UserIdGroupPairs", [])}
    assert (5432, wrapper["GroupId"]) in ingress
    cidr_in = {r["CidrIp"] for p in db["IpPermissions"] for r in p.get("IpRanges", [])}
    assert cidr_in == west_cidrs
    # No allow-all egress: the wrapper group holds 443 and the database port only.
    egress_ports = {p.get("FromPort") for p in wrapper["IpPermissionsEgress"]}
    assert egress_ports == {443, 5432}


def test_relocate_endpoints_points_plan_hosts_at_the_local_server() -> None:
    host = "db.abc.us-east-1.rds.amazonaws.com"
    eps = {host: ("127.0.0.1", 40001)}
    env = {"STANDBY_DB_ENDPOINTS": '{"us-east-1": "' + host + ':5432"}',
           "STANDBY_PROBES": '[{"kind": "sql", "host": "' + host + '", "port": 5432}]',
           "OTHER": "unrelated"}
    out = relocate_endpoints(env, eps)
    assert out["STANDBY_DB_ENDPOINTS"] == '{"us-east-1": "127.0.0.1:40001"}'
    assert out["STANDBY_PROBES"] == '[{"kind": "sql", "host": "127.0.0.1", "port": 40001}]'
    assert out["OTHER"] == "unrelated"


def test_cross_region_replica_gets_the_subnet_group_of_its_own_region(sandbox: Any) -> None:
    # Before: moto looked a cross-region replica's subnet group up in the source's region,
    # so CreateDBInstanceReadReplica failed with DBSubnetGroupNotFoundFault.
    _, d, _, _ = sandbox
    replica = describe(d, R2, REPLICA_ID)
    assert replica["DBSubnetGroup"]["DBSubnetGroupName"].startswith(
        "sqlshop-data-db-subnets-us-west-2")
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == describe(
        d, R1, PRIMARY_ID)["DBInstanceArn"]
    assert replica["Endpoint"]["Port"] == rds_world(d).endpoint(R2)[1]


def test_moto_grants_transact_write_items_where_the_plan_grants_condition_check_item() -> None:
    # Before: moto checks `dynamodb:TransactWriteItems`, an action IAM does not have, so
    # every role's switch intent (a transaction) was refused with 403 in the sandbox.
    doc = policy_for_moto({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["dynamodb:ConditionCheckItem", "dynamodb:PutItem"],
        "Resource": "arn:aws:dynamodb:us-west-2:123456789012:table/t"}]})
    actions = {a for st in doc["Statement"] for a in st["Action"]}
    assert "dynamodb:TransactWriteItems" in actions
    only_put = policy_for_moto({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"}]})
    assert "dynamodb:TransactWriteItems" not in {a for st in only_put["Statement"]
                                                 for a in st["Action"]}


# -- functions --------------------------------------------------------------------------------

def test_wrapper_writes_a_row_that_streams_to_the_replica(sandbox: Any) -> None:
    _, d, runner, world = sandbox
    env = d.functions[WRAPPER].env
    assert "127.0.0.1:" in env["STANDBY_DB_ENDPOINTS"] and "rds.amazonaws" not in str(env)
    inv = runner.invoke(WRAPPER, insert("w1"))
    assert inv.ok, (inv.payload, inv.logs[-2000:])
    assert inv.payload["ok"] and inv.payload["served"]["data_region"] == R1, inv.payload
    assert "w1" in ids(world, R1)
    wait_for(lambda: "w1" in ids(world, R2), "row w1 on the us-west-2 replica")


def test_data_monitor_scheduled_invocation_probes_both_sides_healthy(sandbox: Any) -> None:
    _, d, runner, _ = sandbox
    schedule = next(s for s in d.schedules if s.function == DATA_MONITOR)
    inv = runner.invoke(DATA_MONITOR, {**schedule.input, "rounds": 1})
    assert inv.ok, (inv.payload, inv.logs[-2000:])
    assert '"reason": "healthy"' in inv.logs, inv.logs[-2000:]
    vote = d.client("dynamodb", R2).get_item(
        TableName="sqlshop-standby-state",
        Key={"pk": {"S": "vote#data#data"}, "sk": {"S": R1}})["Item"]
    assert vote["primary_ok"]["N"] == "1" and vote["standby_ok"]["N"] == "1", vote


def test_a_function_without_the_drivers_layer_fails_with_import_module_error(
    sandbox: Any,
) -> None:
    _, d, runner, _ = sandbox
    base = d.functions[WRAPPER]
    code = pulumi.AssetArchive({"uses_driver.py": pulumi.StringAsset(
        "import psycopg\n\ndef handler(event, context):\n    return psycopg.__version__\n")})
    for name, layers in (("driver-no-layer", []), ("driver-with-layer", base.layers)):
        d.functions[name] = Function(
            name=name, region=R1, arn=f"{base.arn}-{name}", role_arn=base.role_arn,
            handler="uses_driver.handler", runtime="python3.12", timeout_s=20, memory_mb=128,
            env={}, code=code, layers=list(layers))
    missing = runner.invoke("driver-no-layer", {})
    assert missing.error == "Runtime.ImportModuleError", missing.payload
    assert "psycopg" in missing.payload["errorMessage"]
    present = runner.invoke("driver-with-layer", {})
    assert present.ok and present.payload.startswith("3."), (present.payload, present.logs)


# -- control plane ----------------------------------------------------------------------------

def test_promote_read_replica_is_modifying_until_the_local_replica_is_promoted(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: moto answered PromoteReadReplica `available` at once and kept the source id, so
    # the rds_promote switcher never saw the promotion, and no server was ever promoted.
    _, d, runner, world = sandbox
    fn = d.functions[DATA_MONITOR]
    for key, value in runner.credentials.get(fn.role_arn).items():
        monkeypatch.setenv(key, value)  # the switch runs as the data monitor's role
    outcomes = ops.switch(Clients(endpoint_url=d.moto_url), dict(fn.env), "standby",
                          "sandbox test: planned promotion")
    assert [o.switched for o in outcomes] == [True], [o.detail for o in outcomes]
    wait_for(lambda: not describe(d, R2, REPLICA_ID).get("ReadReplicaSourceDBInstanceIdentifier"),
             "the promotion to complete in moto")
    got = describe(d, R2, REPLICA_ID)
    assert got["DBInstanceStatus"] == "available"
    assert not describe(d, R1, PRIMARY_ID).get("ReadReplicaDBInstanceIdentifiers")
    with world.connect(R2, admin=True) as c:
        assert c.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    assert any(e.startswith(f"promoted {REPLICA_ID}") for e in world.events), world.events
    # Writes through the deployed wrapper go to us-west-2 now, none to us-east-1 ...
    inv = runner.invoke(WRAPPER, insert("after"))
    assert inv.ok and inv.payload["ok"], (inv.payload, inv.logs[-2000:])
    assert inv.payload["served"]["data_region"] == R2
    assert "after" in ids(world, R2) and "after" not in ids(world, R1)
    # ... and the promoted server no longer replicates from the old primary.
    with world.connect(R1) as c:
        c.execute("INSERT INTO orders (id, item) VALUES ('stray', 'x')")
    time.sleep(1.0)
    assert "stray" not in ids(world, R2)

    # The drill's faults: the old primary crashes, then comes back as a new replica.
    world.kill(R1)
    host, port = world.endpoint(R1)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host=host, port=port, user="x", connect_timeout=2).close()
    world.rebuild(R1, source=R2)
    rebuilt = describe(d, R1, PRIMARY_ID)
    assert rebuilt["ReadReplicaSourceDBInstanceIdentifier"] == got["DBInstanceArn"]
    assert rebuilt["DBSubnetGroup"]["DBSubnetGroupName"].startswith(
        "sqlshop-data-db-subnets-us-east-1")
    with world.connect(R2) as c:
        c.execute("INSERT INTO orders (id, item) VALUES ('back', 'x')")
    wait_for(lambda: "back" in ids(world, R1), "row on the rebuilt us-east-1 replica")
    assert "stray" not in ids(world, R1) and world.endpoint(R1) == (host, port)
    assert not world.errors, world.errors
