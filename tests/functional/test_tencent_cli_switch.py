"""``standby switch --stack tencent-dev --endpoint-url <stub>``: the deployed gateway
monitor's environment read with SCF GetFunction, its probes and switcher run through the
contract stub (every call signed, shape-checked and CAM-checked with the operator's policy),
the lease, intent and log in the SQL state store on a real MariaDB."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from components.cli import main
from components.runtime.errors import ClockSkew
from components.runtime.sql_state import SqlStateStore, mysql_connect
from components.runtime.tencent import ops
from components.runtime.tencent.client import TencentApi
from components.sandbox.mariadb import ADMIN, MariaPair
from components.sandbox.tencent_stub import TencentStub
from components.tencent.naming import monitor_name
from tests.conftest import ROOT

P, S, UIN = "ap-guangzhou", "ap-shanghai", "100000000001"
ROLE = f"qcs::cam::uin/{UIN}:uin/{UIN}"
DOMAIN = "api.shop.example"
LOGIC = {"primary": "shop-logic-p-aguangzhou", "standby": "shop-logic-s-aguangzhou"}
MONITOR = monitor_name("shop", "gateway", S)  # the control region's, the CLI's default
APPID = "1250000000"
BUCKETS = {P: f"shop-data-aguangzhou-{APPID}", S: f"shop-data-ashanghai-{APPID}"}


def _fn(region: str, name: str) -> str:
    return f"qcs::scf:{region}:uin/{UIN}:namespace/default/function/{name}"


# The operator's least-privilege policy for a gateway switch, in the CAM action names the
# deploy grants (scf:InvokeFunction authorises the Invoke API, doc 583/18014).
OPS_POLICY = {"version": "2.0", "statement": [
    {"effect": "allow", "action": ["ssm:GetSecretValue"],
     "resource": [f"qcs::ssm:{S}:uin/{UIN}:secret/creatorUin/{UIN}/shop-standby-state-dsn"]},
    {"effect": "allow", "action": ["scf:GetFunction"], "resource": [_fn(S, MONITOR)]},
    {"effect": "allow", "action": ["scf:InvokeFunction"],
     "resource": [_fn(P, fn) for fn in LOGIC.values()]},
    {"effect": "allow", "action": ["scf:GetCustomDomain", "scf:UpdateCustomDomain"],
     "resource": [f"qcs::scf:{P}:uin/{UIN}:customdomain/{DOMAIN}"]},
    {"effect": "allow", "action": ["scf:GetFunction"],
     "resource": [_fn(S, monitor_name("shop", "data", S))]},
    {"effect": "allow", "action": ["cos:HeadBucket", "cos:GetBucketReplication",
                                   "cos:PutBucketReplication"],
     "resource": [f"qcs::cos:{r}:uid/{APPID}:{b}/" for r, b in BUCKETS.items()]},
    {"effect": "allow", "action": ["cos:PutObject", "cos:GetObject"],
     "resource": [f"qcs::cos:{r}:uid/{APPID}:{b}/_standby-probe/*"
                  for r, b in BUCKETS.items()]}]}


@pytest.fixture(scope="module")
def maria() -> Iterator[MariaPair]:
    with MariaPair() as pair:
        yield pair


def _monitor_env(region: str) -> dict[str, str]:
    """What the Tencent deploy writes into the gateway monitor (topology._wire_gateway),
    without the public-URL http probe, which would leave this machine."""
    probes = [{"scope": P, "kind": "scf_invoke", "side": side, "region": P,
               "namespace": "default", "function": fn} for side, fn in LOGIC.items()]
    switch = [{"scope": P, "kind": "scf_custom_domain", "region": P, "domain": DOMAIN,
               "namespace": "default", "path": "/", "values": LOGIC}]
    return {
        "STANDBY_TOPOLOGY": "shop", "STANDBY_LAYER": "gateway", "STANDBY_REGION": region,
        "STANDBY_SETTINGS": json.dumps({"interval_s": 60, "timeout_s": 2, "quorum": 2,
                                        "failure_threshold": 2, "recovery_threshold": 2,
                                        "cooldown_s": 300, "failback": "manual",
                                        "practice": False}),
        "STANDBY_PROBES": json.dumps(probes), "STANDBY_SWITCH": json.dumps(switch),
        "STANDBY_STATE_STORE": "mysql", "STANDBY_STATE_DSN_SECRET": "shop-standby-state-dsn",
        "STANDBY_STATE_REGION": S, "STANDBY_WEBHOOKS": "[]", "STANDBY_LOOP_S": "50"}


def _data_monitor_env() -> dict[str, str]:
    """The data monitor of a stack with COS and no CDB (topology._wire_data): bucket probes,
    the data pointer, then the replication reversal."""
    sides = {P: "primary", S: "standby"}
    env = _monitor_env(S)
    env.update(STANDBY_LAYER="data", STANDBY_PROBES=json.dumps([
        {"scope": "data", "kind": "cos_bucket", "side": sides[r], "region": r, "bucket": b,
         "probe_key": "_standby-probe/"} for r, b in BUCKETS.items()]),
        STANDBY_SWITCH=json.dumps([
            {"scope": "data", "kind": "tencent_pointer_all", "key": "data",
             "values": {"primary": P, "standby": S}},
            {"scope": "data", "kind": "cos_replication", "role": ROLE,
             "buckets": {sides[r]: {"region": r, "bucket": b} for r, b in BUCKETS.items()}}]))
    return env


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch,
         maria: MariaPair) -> Iterator[tuple[TencentStub, SqlStateStore]]:
    # A database of its own per test: the scopes and the lease start from nothing.
    db = f"state_{secrets.token_hex(4)}"
    port = maria.servers["primary"].port
    conn = pymysql.connect(host="127.0.0.1", port=port, user=ADMIN,
                           password=maria.admin_password, autocommit=True)
    conn.cursor().execute(f"CREATE DATABASE `{db}`")
    conn.close()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDops")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "ops-key")
    with TencentStub() as s:
        s.add_key("AKIDops", "ops-key", OPS_POLICY)
        svc = s.services
        svc.add_secret(S, "shop-standby-state-dsn", json.dumps({
            "engine": "mysql", "host": "127.0.0.1", "port": port, "user": ADMIN,
            "password": maria.admin_password, "database": db}))
        svc.add_function(S, MONITOR, lambda e: {"ok": True}, env=_monitor_env(S))
        for fn in LOGIC.values():
            svc.add_function(P, fn, lambda e: {"ok": True})
        svc.add_function(S, monitor_name("shop", "data", S), lambda e: {"ok": True},
                         env=_data_monitor_env())
        for r, b in BUCKETS.items():
            s.cos.add_bucket(r, b)
        svc.add_domain(P, DOMAIN, [{"Namespace": "default", "FunctionName": LOGIC["primary"],
                                    "Qualifier": "$LATEST", "PathMatch": "/"}])
        s.start()
        monkeypatch.setenv("STANDBY_TENCENT_COS_ENDPOINT", s.cos.endpoint)
        yield s, SqlStateStore(mysql_connect("127.0.0.1", port, ADMIN, maria.admin_password,
                                             db))


def switch(s: TencentStub, to: str, *extra: str) -> list[str]:
    return ["switch", "--stack", "tencent-dev", "--endpoint-url", f"http://{s.endpoint}",
            "--project-dir", str(ROOT), "--layer", "gateway", "--to", to, "--reason",
            "planned switchover drill", *extra]


def route(s: TencentStub) -> str:
    return str(s.services.domains[(P, DOMAIN)].endpoints[0]["FunctionName"])


def test_tencent_switch_and_failback_under_the_lease_with_the_ops_holder(
        stub: tuple[TencentStub, SqlStateStore], capsys: pytest.CaptureFixture[str]) -> None:
    s, store = stub
    assert main(switch(s, "standby")) == 0
    assert capsys.readouterr().out == f"gateway/{P}: switched to standby (verified) token 1\n"
    assert route(s) == LOGIC["standby"]
    state = store.read_scope("gateway", P)
    assert (state.active, state.token, state.intent) == ("standby", 1, None)
    [rec] = store.log("gateway")
    assert (rec.from_side, rec.to_side, rec.reason) == ("primary", "standby",
                                                        "planned switchover drill")
    assert rec.by.startswith("ops:") and rec.verified
    # The lease was released: a monitor can take it at once.
    lease = store.acquire("gateway", "monitor", store.server_time(), 30)
    assert lease is not None
    store.release(lease)
    # Again to standby: nothing to do, exit 0; then the failback.
    assert main(switch(s, "standby")) == 0
    assert "not switched to standby" in capsys.readouterr().out
    assert main(switch(s, "primary")) == 0
    assert route(s) == LOGIC["primary"]
    assert store.read_scope("gateway", P).active == "primary"
    assert ("AKIDops", "scf", "GetFunction") in s.calls and not s.refused


def test_tencent_switch_refuses_a_side_failing_its_probes_unless_forced(
        stub: tuple[TencentStub, SqlStateStore], capsys: pytest.CaptureFixture[str]) -> None:
    s, store = stub

    def broken(event: Any) -> Any:
        raise RuntimeError("500 from the standby logic")

    s.services.add_function(P, LOGIC["standby"], broken)
    assert main(switch(s, "standby")) == 1
    err = capsys.readouterr().err
    assert f"refused: gateway/{P}: the standby side fails its probes" in err
    assert "--force" in err
    assert route(s) == LOGIC["primary"] and store.log("gateway") == []
    assert main(switch(s, "standby", "--force")) == 0
    assert route(s) == LOGIC["standby"]


def test_tencent_switch_refuses_a_skewed_clock_before_switching(
        stub: tuple[TencentStub, SqlStateStore]) -> None:
    s, store = stub
    api = TencentApi("AKIDops", "ops-key", endpoint=s.endpoint)
    env = ops.monitor_env(api, MONITOR, S)
    assert env["STANDBY_LAYER"] == "gateway"
    with pytest.raises(ClockSkew, match=r"\+(119|12[0-3]) s off the state store's \(MySQL"):
        ops.switch(api, env, "standby", "drill", clock=lambda: time.time() + 120)
    assert route(s) == LOGIC["primary"] and store.read_scope("gateway", P).token == 0


def test_tencent_switch_bad_input_and_missing_monitor(
        stub: tuple[TencentStub, SqlStateStore], capsys: pytest.CaptureFixture[str]) -> None:
    s, _ = stub
    assert main(switch(s, "standby", "--region", "eu-frankfurt")) == 2
    assert "--region: 'eu-frankfurt'; allowed: ap-guangzhou, ap-shanghai" in \
        capsys.readouterr().err
    assert main(switch(s, "standby", "--scope", "ap-beijing")) == 1
    assert f"--scope: unknown ap-beijing; this layer has {P}" in capsys.readouterr().err
    # The primary region's monitor is not in this stub and not in the operator's policy.
    assert main(switch(s, "standby", "--region", P)) == 1
    assert "AuthFailure.UnauthorizedOperation" in capsys.readouterr().err
    assert route(s) == LOGIC["primary"]


def test_tencent_data_switch_moves_the_pointer_and_reverses_cos_replication(
        stub: tuple[TencentStub, SqlStateStore], capsys: pytest.CaptureFixture[str]) -> None:
    s, store = stub
    # As deployed: the primary's bucket is the source, the standby's rule back is Disabled.
    from components.runtime.tencent.cos_switch import CosReplicationSwitcher

    sw = CosReplicationSwitcher(TencentApi("AKIDops", "ops-key", endpoint=s.endpoint,
                                           cos_endpoint=s.cos.endpoint))
    target = json.loads(_data_monitor_env()["STANDBY_SWITCH"])[1]
    sw._put(target, "primary", "Enabled")
    sw._put(target, "standby", "Disabled")
    argv = switch(s, "standby")
    argv[argv.index("gateway")] = "data"
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == "data/data: switched to standby (verified) token 1\n"
    assert store.read_pointer("data") == (S, 1)
    rules = {b: s.cos.replication[(r, b)]["Rules"][0]["Status"] for r, b in BUCKETS.items()}
    assert rules == {BUCKETS[P]: "Disabled", BUCKETS[S]: "Enabled"}
    assert not s.refused
