"""SQL engines on AWS as deployed: credentials, network paths and the drivers layer.

Each test names the deploy defect it guards against (review #3, issue 10 "Why" point 4).
The Pulumi program runs under the recording mocks; the drivers layer is built for real with
pip from PyPI wheels (cached per session under the project's ``.standby-cache``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pulumi
import pytest

import components.plan.run as plan_run
from components.aws import data as data_mod
from components.aws import layers
from components.plan.mocks import PlanRun, RecordingMocks, Registration, _hex
from tests.conftest import ROOT, minimal_raw, run_raw, run_stack

PORT = 5432
SUBNETS = {
    "us-east-1": {"subnet-e1a": "10.1.1.0/24", "subnet-e1b": "10.1.2.0/24"},
    "us-west-2": {"subnet-w2a": "10.2.1.0/24", "subnet-w2b": "10.2.2.0/24"},
}


class SubnetMocks(RecordingMocks):
    """Answers ``aws.ec2.getSubnet`` with the subnet's ``cidrBlock``, as the data source does
    (Pulumi AWS registry, "aws.ec2.getSubnet": outputs ``cidrBlock``)."""

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:  # noqa: E501
        cidrs = {sid: cidr for region in SUBNETS.values() for sid, cidr in region.items()}
        sid = str(args.args.get("id", ""))
        if args.token == "aws:ec2/getSubnet:getSubnet" and sid in cidrs:
            self.calls.append((args.token, dict(args.args)))
            return {"id": sid, "cidrBlock": cidrs[sid]}, []
        return super().call(args)


def sql_raw(engine: str = "postgres") -> dict[str, Any]:
    raw = minimal_raw()
    raw["database"] = {
        "engine": engine,
        "network": {
            r: {"vpc_id": f"vpc-{r}", "subnet_ids": list(subnets)}
            for r, subnets in SUBNETS.items()
        },
    }
    raw["targets"] = {"rto_s": 900, "rpo_s": 10}
    return raw


@pytest.fixture(scope="module")
def sql_run() -> PlanRun:
    """One run of the program for the read-only checks below (a SQL run takes seconds)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plan_run, "RecordingMocks", SubnetMocks)
        return run_raw(sql_raw())


def _by_type(run: PlanRun, typ: str) -> list[Registration]:
    return [r for r in run.resources if r.type == typ]


def _functions(run: PlanRun) -> dict[str, Registration]:
    return {f.inputs["name"]: f for f in _by_type(run, "aws:lambda/function:Function")}


def _env(fn: Registration) -> dict[str, str]:
    return dict(fn.inputs["environment"]["variables"])


def _policy(run: PlanRun, fn: Registration) -> dict[str, Any]:
    [pol] = [r for r in _by_type(run, "aws:iam/rolePolicy:RolePolicy")
             if r.name == f"{fn.name}-policy"]
    doc: dict[str, Any] = json.loads(pol.inputs["policy"])
    return doc


def _allowed(doc: dict[str, Any], action: str) -> set[str]:
    return {res for st in doc["Statement"] if action in st["Action"] for res in st["Resource"]}


def _sg_ids(run: PlanRun) -> dict[str, str]:
    """Security group resource name -> the id other resources receive from ``sg.id`` (the
    mock's resource id, not the ``id`` property it also reports)."""
    return {r.name: f"{r.name}-{_hex(r.name)}"
            for r in _by_type(run, "aws:ec2/securityGroup:SecurityGroup")}


def _rules(run: PlanRun, kind: str, sg_id: str) -> list[dict[str, Any]]:
    typ = f"aws:vpc/securityGroup{kind}Rule:SecurityGroup{kind}Rule"
    return [r.inputs for r in _by_type(run, typ) if r.inputs["securityGroupId"] == sg_id]


def _port_rule(rule: dict[str, Any], port: int) -> bool:
    return bool(rule["ipProtocol"] == "tcp" and rule["fromPort"] == port
                and rule["toPort"] == port)


def _covers(cidrs: list[str], ips: list[str]) -> bool:
    nets = [ipaddress.ip_network(c) for c in cidrs]
    return all(any(ipaddress.ip_address(ip) in n for n in nets) for ip in ips)


# -- credentials --------------------------------------------------------------------------------


def test_replica_source_has_no_rds_managed_password(sql_run: PlanRun) -> None:
    """RDS refuses a read replica of a source whose master password RDS manages in Secrets
    Manager; `pulumi up` failed on the replica."""
    instances = {r.name: r for r in _by_type(sql_run, "aws:rds/instance:Instance")}
    primary, replica = instances["shop-data-db-primary"], instances["shop-data-db-replica"]
    assert replica.inputs["replicateSourceDb"] == primary.outputs["arn"]
    assert "manageMasterUserPassword" not in primary.inputs
    assert "manageMasterUserPassword" not in replica.inputs
    assert primary.inputs["password"] == "[secret]"  # from the generated password, kept secret
    [pw] = _by_type(sql_run, "random:index/randomPassword:RandomPassword")
    assert pw.inputs["length"] >= 32 and pw.inputs["special"] is False
    # A replica inherits the source's credentials; giving it its own would be refused too.
    assert "password" not in replica.inputs and "username" not in replica.inputs


def test_credentials_secret_is_replicated_to_every_region(sql_run: PlanRun) -> None:
    """The RDS-managed secret existed only in the primary region: in a primary-region outage
    neither the standby's wrappers nor its monitor could read the database password."""
    [secret] = _by_type(sql_run, "aws:secretsmanager/secret:Secret")
    assert secret.region == "us-east-1"
    assert secret.inputs["replicas"] == [{"region": "us-west-2"}]
    [value] = [v for v in _by_type(sql_run, "aws:secretsmanager/secretVersion:SecretVersion")
               if v.inputs["secretId"] == secret.outputs["id"]]
    assert value.inputs["secretString"] == "[secret]"
    arn = secret.outputs["arn"]
    for name, fn in _functions(sql_run).items():
        if "-wrap-" not in name:
            continue
        local = _env(fn)["STANDBY_DB_SECRET_ARN"]
        assert local.split(":")[3] == fn.region, name  # the runtime reads the ARN's region
        assert local.split(":")[4:] == arn.split(":")[4:]
        assert _allowed(_policy(sql_run, fn), "secretsmanager:GetSecretValue") == {local}


def test_standby_region_reads_credentials_from_its_replica(aws: str) -> None:
    """Against moto's Secrets Manager, which replicates to replica regions: the document the
    program stores, read by the run-time credential reader through the standby region's ARN
    (so from the standby region's endpoint). Without the replica that read fails, which is
    what a standby wrapper met when the credentials lived in the primary region only."""
    from components.runtime.aws.clients import Clients, db_credentials

    primary = boto3.client("secretsmanager", region_name="us-east-1")
    doc = data_mod.credentials_document("postgres", PORT, "app", "s3cr3t-generated")
    made = primary.create_secret(Name="shop/db/app-test", SecretString=json.dumps(doc),
                                 AddReplicaRegions=[{"Region": "us-west-2"}])
    standby_arn = data_mod.arn_in_region(made["ARN"], "us-west-2")
    assert standby_arn.split(":")[3] == "us-west-2"
    clients = Clients(endpoint_url=aws)
    assert db_credentials(clients, standby_arn, "us-east-1") == (data_mod.DB_USER,
                                                                 "s3cr3t-generated")
    lonely = primary.create_secret(Name="shop/db/app-primary-only",
                                   SecretString=json.dumps(doc))
    with pytest.raises(LookupError, match="ResourceNotFoundException"):
        db_credentials(clients, data_mod.arn_in_region(lonely["ARN"], "us-west-2"),
                       "us-east-1")


def test_data_monitor_reads_the_secret_in_its_own_region(sql_run: PlanRun) -> None:
    """The data monitor's SQL probes read credentials from the primary region only."""
    monitors = [f for f in _functions(sql_run).values()
                if _env(f).get("STANDBY_LAYER") == "data"]
    assert {m.region for m in monitors} == {"us-east-1", "us-west-2"}
    for mon in monitors:
        probes = [p for p in json.loads(_env(mon)["STANDBY_PROBES"]) if p["kind"] == "sql"]
        assert len(probes) == 2
        regions = {p["secret_arn"].split(":")[3] for p in probes}
        assert regions == {mon.region}
        assert _allowed(_policy(sql_run, mon), "secretsmanager:GetSecretValue") == {
            probes[0]["secret_arn"]}


# -- network paths ------------------------------------------------------------------------------


def test_wrapper_security_group_reaches_db_port(sql_run: PlanRun) -> None:
    """Wrappers shared the database group, whose only egress was 443: no wrapper could open a
    connection to the database port."""
    sgs = _sg_ids(sql_run)
    for region in SUBNETS:
        db_sg = sgs[f"shop-data-db-sg-{region}"]
        for role in ("wrapper", "monitor"):
            fn_sg = sgs[f"shop-data-{role}-sg-{region}"]
            egress = _rules(sql_run, "Egress", fn_sg)
            assert any(_port_rule(r, PORT) and r.get("referencedSecurityGroupId") == db_sg
                       for r in egress), (role, region)
            assert any(_port_rule(r, 443) for r in egress), "AWS APIs need 443"
            ingress = _rules(sql_run, "Ingress", db_sg)
            assert any(_port_rule(r, PORT) and r.get("referencedSecurityGroupId") == fn_sg
                       for r in ingress), (role, region)
        # The database itself opens nothing outwards and admits nothing but the port.
        assert _rules(sql_run, "Egress", db_sg) == []
        assert all(_port_rule(r, PORT) for r in _rules(sql_run, "Ingress", db_sg))


def test_other_regions_functions_reach_the_db_by_subnet_cidr(sql_run: PlanRun) -> None:
    """A wrapper or monitor in the standby region talks to the primary's database (the data
    pointer decides where), and security groups cannot be referenced across regions."""
    sgs = _sg_ids(sql_run)
    for db_region, other in (("us-east-1", "us-west-2"), ("us-west-2", "us-east-1")):
        ingress = [r for r in _rules(sql_run, "Ingress", sgs[f"shop-data-db-sg-{db_region}"])
                   if "cidrIpv4" in r]
        assert sorted(r["cidrIpv4"] for r in ingress) == sorted(SUBNETS[other].values())
        assert _covers([r["cidrIpv4"] for r in ingress], ["10.2.1.7" if other == "us-west-2"
                                                           else "10.1.2.9"])
        for role in ("wrapper", "monitor"):
            egress = [r for r in _rules(sql_run, "Egress", sgs[f"shop-data-{role}-sg-{other}"])
                      if _port_rule(r, PORT) and "cidrIpv4" in r]
            assert sorted(r["cidrIpv4"] for r in egress) == sorted(SUBNETS[db_region].values())


def test_data_monitor_runs_in_the_vpc_with_the_drivers_layer(sql_run: PlanRun) -> None:
    """The data monitor ran outside the VPC of a private database and had no driver: both
    sides' SQL probes failed, so it alerted forever and never switched."""
    sgs = _sg_ids(sql_run)
    layer_arns = {lv.region: lv.outputs["arn"]
                  for lv in _by_type(sql_run, "aws:lambda/layerVersion:LayerVersion")}
    assert set(layer_arns) == {"us-east-1", "us-west-2"}
    for fn in _functions(sql_run).values():
        if _env(fn).get("STANDBY_LAYER") != "data":
            continue
        vpc = fn.inputs["vpcConfig"]
        assert vpc["subnetIds"] == list(SUBNETS[str(fn.region)])
        assert vpc["securityGroupIds"] == [sgs[f"shop-data-monitor-sg-{fn.region}"]]
        assert fn.inputs["layers"] == [layer_arns[fn.region]]
        # In a VPC Lambda manages ENIs with the function's role.
        assert "ec2:CreateNetworkInterface" in {
            a for st in _policy(sql_run, fn)["Statement"] for a in st["Action"]}


def test_wrappers_get_vpc_and_drivers_and_logic_functions_do_not(sql_run: PlanRun) -> None:
    """No driver (psycopg/PyMySQL) was in any Lambda package: every SQL request failed with
    ModuleNotFoundError. Only the functions that open database connections get the layer."""
    sgs = _sg_ids(sql_run)
    layer_arns = {lv.region: lv.outputs["arn"]
                  for lv in _by_type(sql_run, "aws:lambda/layerVersion:LayerVersion")}
    seen = {"wrapper": 0, "logic": 0, "other monitors": 0}
    for name, fn in _functions(sql_run).items():
        layer = _env(fn).get("STANDBY_LAYER")
        if "-wrap-" in name:
            seen["wrapper"] += 1
            assert fn.inputs["layers"] == [layer_arns[fn.region]]
            assert fn.inputs["vpcConfig"]["securityGroupIds"] == [
                sgs[f"shop-data-wrapper-sg-{fn.region}"]]
        elif name.startswith("shop-logic-"):
            seen["logic"] += 1
            assert "layers" not in fn.inputs and "vpcConfig" not in fn.inputs, name
        elif layer != "data":
            seen["other monitors"] += 1
            assert "layers" not in fn.inputs and "vpcConfig" not in fn.inputs, name
    assert seen == {"wrapper": 4, "logic": 4, "other monitors": 6}


def test_dynamodb_stack_builds_no_drivers_layer_and_no_vpc() -> None:
    run = run_raw(minimal_raw())
    assert _by_type(run, "aws:lambda/layerVersion:LayerVersion") == []
    assert _by_type(run, "aws:ec2/securityGroup:SecurityGroup") == []
    assert all("layers" not in f.inputs for f in _functions(run).values())


def test_mysql_paths_use_the_mysql_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_run, "RecordingMocks", SubnetMocks)
    run = run_raw(sql_raw("mysql"))
    sgs = _sg_ids(run)
    ingress = _rules(run, "Ingress", sgs["shop-data-db-sg-us-east-1"])
    assert ingress and all(_port_rule(r, 3306) for r in ingress)


def test_aws_sql_stack_plans_postgres_on_rds() -> None:
    run = run_stack("aws-sql")
    instances = _by_type(run, "aws:rds/instance:Instance")
    assert {i.region for i in instances} == {"us-east-1", "us-west-2"}
    assert all(i.outputs["port"] == PORT for i in instances)
    wrappers = [f for n, f in _functions(run).items() if "-wrap-" in n]
    assert len(wrappers) == 4 and all(w.inputs["layers"] for w in wrappers)


# -- packaging ----------------------------------------------------------------------------------


def test_deploy_package_does_not_depend_on_database_drivers() -> None:
    """The deploy-side package pulled psycopg and PyMySQL onto the machine running
    `pulumi up`, where they are useless, while the functions that need them had none."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = " ".join(meta["dependencies"]).lower()
    assert "psycopg" not in deps and "pymysql" not in deps
    dev = " ".join(meta["optional-dependencies"]["dev"]).lower()
    assert "psycopg" in dev and "pymysql" in dev  # the tests run the drivers for real
    program = (ROOT / "requirements.txt").read_text().lower()
    assert "psycopg" not in program and "pymysql" not in program
    layer = layers.REQUIREMENTS.read_text().lower()
    assert "psycopg" in layer and "pymysql" in layer


# -- the drivers layer, built for real ----------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> layers.LayerBuild:
    """One real pip build for x86_64 into a fresh cache (downloads from PyPI)."""
    return layers.build_drivers_layer(tmp_path_factory.mktemp("cache"), "x86_64")


def test_layer_is_built_from_lambda_platform_wheels(built: layers.LayerBuild) -> None:
    assert built.from_cache is False
    with zipfile.ZipFile(built.path) as zf:
        names = zf.namelist()
        infos = zf.infolist()
    assert any(n.startswith("python/psycopg/") for n in names)
    assert any(n.startswith("python/pymysql/") for n in names)
    # psycopg[binary]: the compiled libpq build for Linux x86_64, not this machine's build.
    assert any(n.startswith("python/psycopg_binary/") and "x86_64-linux-gnu" in n
               and n.endswith(".so") for n in names)
    [wheel] = [n for n in names if n.startswith("python/psycopg_binary-")
               and n.endswith(".dist-info/WHEEL")]
    with zipfile.ZipFile(built.path) as zf:
        tags = [line for line in zf.read(wheel).decode().splitlines()
                if line.startswith("Tag: ")]
    assert tags and all(t.startswith("Tag: cp312-cp312-manylinux") and t.endswith("x86_64")
                        for t in tags), tags
    assert names == sorted(names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert {i.date_time for i in infos} == {layers.ZIP_EPOCH}


def test_second_build_hits_the_cache_without_pip(built: layers.LayerBuild) -> None:
    calls: list[list[str]] = []

    def runner(cmd: list[str]) -> None:
        calls.append(cmd)
        raise AssertionError("pip must not run on a cache hit")

    again = layers.build_drivers_layer(built.path.parent, "x86_64", runner=runner)
    assert calls == []
    assert again.from_cache is True and again.path == built.path
    assert again.sha256_b64 == built.sha256_b64


def test_zip_bytes_do_not_depend_on_file_times_or_byte_code(tmp_path: Path) -> None:
    src = tmp_path / "site"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "bin").mkdir()
    (src / "pkg" / "__init__.py").write_text("x = 1\n")
    (src / "pkg" / "_native.so").write_bytes(b"\x7fELF" + bytes(64))
    (src / "pkg" / "_native.so").chmod(0o755)
    (src / "pkg" / "__pycache__" / "__init__.cpython-312.pyc").write_bytes(b"stale")
    (src / "bin" / "tool").write_text("#!/home/someone/.venv/bin/python\n")
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    layers.write_deterministic_zip(src, first)
    for path in src.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    layers.write_deterministic_zip(src, second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        modes = {i.filename: i.external_attr >> 16 & 0o777 for i in zf.infolist()}
    assert modes == {"python/pkg/__init__.py": 0o644, "python/pkg/_native.so": 0o755}


def test_cache_key_changes_with_requirements_and_architecture() -> None:
    base = layers.cache_key(b"psycopg[binary]\n", "x86_64", "3.12")
    assert base == layers.cache_key(b"psycopg[binary]\n", "x86_64", "3.12")
    assert base != layers.cache_key(b"psycopg[binary]\nsqlglot\n", "x86_64", "3.12")
    assert base != layers.cache_key(b"psycopg[binary]\n", "arm64", "3.12")
    assert base != layers.cache_key(b"psycopg[binary]\n", "x86_64", "3.13")


def test_unknown_architecture_is_refused_naming_the_allowed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'ppc64le' has no drivers layer; allowed: x86_64, arm64"):
        layers.build_drivers_layer(tmp_path, "ppc64le")


def test_failed_pip_names_the_platform_and_leaves_no_cache_entry(tmp_path: Path) -> None:
    def runner(cmd: list[str]) -> None:
        raise layers.LayerBuildError("pip exited 1:\nERROR: No matching distribution")

    with pytest.raises(layers.LayerBuildError,
                       match=r"(?s)manylinux2014_aarch64, Python 3\.12.*No matching distribution"):
        layers.build_drivers_layer(tmp_path, "arm64", runner=runner)
    assert list(tmp_path.glob("*.zip")) == []


def _python312() -> str | None:
    for candidate in (shutil.which("python3.12"),
                      str(Path.home() / ".pyenv/versions/3.12.1/bin/python3.12")):
        if candidate and Path(candidate).is_file():
            done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30, check=False)
            if done.returncode == 0 and done.stdout.strip() == "(3, 12)":
                return candidate
    return None


def test_layer_drivers_load_in_an_isolated_python312(built: layers.LayerBuild,
                                                     tmp_path: Path) -> None:
    """What Lambda does: an interpreter that sees only its own standard library plus the
    layer's python/ folder imports psycopg (with its compiled libpq) and PyMySQL."""
    python = _python312()
    if python is None:
        pytest.skip("no CPython 3.12 interpreter on this machine to load cp312 wheels")
    with zipfile.ZipFile(built.path) as zf:
        zf.extractall(tmp_path)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import psycopg, pymysql; "
            "print(psycopg.pq.__impl__, psycopg.pq.version() > 0)")
    done = subprocess.run([python, "-I", "-c", code, str(tmp_path / "python")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["binary", "True"]
