"""``standby status --stack tencent-dev --endpoint-url <stub>``: the monitors' SQL state store
(a real MariaDB) found through the DSN secret, read with the operator's signed credential."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from components.cli import main
from components.runtime.engine import Intent, ScopeState
from components.runtime.lease import SwitchRecord
from components.runtime.sql_state import SqlStateStore, mysql_connect
from components.sandbox.mariadb import ADMIN, MariaPair
from components.sandbox.tencent_stub import TencentStub
from tests.conftest import ROOT

S, UIN = "ap-shanghai", "100000000001"
OPS_POLICY = {"version": "2.0", "statement": [
    {"effect": "allow", "action": ["ssm:GetSecretValue"],
     "resource": [f"qcs::ssm:{S}:uin/{UIN}:secret/creatorUin/{UIN}/shop-standby-state-dsn"]}]}


@pytest.fixture(scope="module")
def maria() -> Iterator[MariaPair]:
    with MariaPair() as pair:
        store = SqlStateStore(mysql_connect("127.0.0.1", pair.servers["primary"].port, ADMIN,
                                            pair.admin_password, pair.database))
        store.create_tables()
        # One committed switch of the gateway layer, as a monitor records it.
        now = store.server_time()
        lease = store.acquire("gateway", "ap-guangzhou#req-1", now, 30)
        assert lease is not None
        intent = Intent(lease.token, "standby", "primary", lease.holder, ("route",))
        store.begin(lease, "ap-guangzhou", "primary", intent, now)
        store.commit(lease, "ap-guangzhou", "primary",
                     ScopeState(active="standby", token=lease.token, last_switch_at=now),
                     SwitchRecord("gateway", "ap-guangzhou", now, lease.holder, "primary",
                                  "standby", lease.token, "logic 5xx in 2 of 2 regions",
                                  verified=True), now)
        yield pair


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch, maria: MariaPair) -> Iterator[TencentStub]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDops")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "ops-key")
    with TencentStub() as s:
        s.add_key("AKIDops", "ops-key", OPS_POLICY)
        s.services.add_secret(S, "shop-standby-state-dsn", json.dumps({
            "engine": "mysql", "host": "127.0.0.1", "port": maria.servers["primary"].port,
            "user": ADMIN, "password": maria.admin_password, "database": maria.database}))
        s.start()
        yield s


def status(stub: TencentStub, *extra: str) -> list[str]:
    return ["status", "--stack", "tencent-dev", "--endpoint-url", f"http://{stub.endpoint}",
            "--project-dir", str(ROOT), *extra]


def test_status_reads_the_tencent_state_store(stub: TencentStub,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(status(stub)) == 0
    out = capsys.readouterr().out
    assert out.startswith("topology shop\n")
    assert "gateway  ap-guangzhou     active=standby  token=1" in out
    assert "ap-guangzhou primary -> standby by ap-guangzhou#req-1 token 1: logic 5xx" in out
    assert "data     primary (no switch recorded)" in out
    assert stub.calls == [("AKIDops", "ssm", "GetSecretValue")] and not stub.refused
    assert main(status(stub, "--format", "json")) == 0
    layers = {x["layer"]: x for x in json.loads(capsys.readouterr().out)}
    assert layers["gateway"]["scopes"]["ap-guangzhou"]["active"] == "standby"
    assert layers["gateway"]["log"][0]["verified"] is True


def test_status_refusals_exit_2_naming_what_is_wrong(
        stub: TencentStub, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    https = status(stub)
    https[4] = f"https://{stub.endpoint}"
    assert main(https) == 2
    assert "allowed on tencent: http://<host>:<port>" in capsys.readouterr().err
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "wrong")
    assert main(status(stub)) == 2
    assert "AuthFailure.SignatureFailure" in capsys.readouterr().err
    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY")
    assert main(status(stub)) == 2
    assert "set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY" in capsys.readouterr().err
