"""The Tencent wrapper handler end to end: SCF events in, the core wrapper out, on a real
MariaDB primary/replica pair standing in for CDB and its DR instance, COS and SSM and CDB
look-ups through the contract stub (signed with the real SDKs, shape- and CAM-checked with
the policy the deploy grants the wrapper), the data pointer in the SQL state store."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.runtime.errors import ConfigError
from components.runtime.sql_state import SqlStateStore, mysql_connect
from components.runtime.tencent.wrapper import load, make_handler
from components.sandbox.mariadb import ADMIN, APP, MariaPair
from components.sandbox.tencent_stub import TencentStub

P, S = "ap-guangzhou", "ap-shanghai"
UIN, APPID = "100000000001", "1250000000"
BUCKETS = {P: f"shop-data-gz-{APPID}", S: f"shop-data-sh-{APPID}"}
# What components/tencent/functions.py grants the wrapper role (WrapperLayer).
WRAPPER_POLICY = {"version": "2.0", "statement": [
    {"effect": "allow", "action": ["ssm:GetSecretValue"],
     "resource": [f"qcs::ssm:{S}:uin/{UIN}:secret/creatorUin/{UIN}/shop-standby-state-dsn",
                  f"qcs::ssm:{P}:uin/{UIN}:secret/creatorUin/{UIN}/shop-db-dsn"]},
    {"effect": "allow", "action": ["cdb:DescribeDBInstances"],
     "resource": [f"qcs::cdb:{S}:uin/{UIN}:instanceId/cdb-dr"]},
    {"effect": "allow", "action": ["cos:GetObject", "cos:PutObject", "cos:DeleteObject",
                                   "cos:HeadObject"],
     "resource": [f"qcs::cos:{r}:uid/{APPID}:{b}/*" for r, b in BUCKETS.items()]},
    {"effect": "allow", "action": ["cos:GetBucket"],
     "resource": [f"qcs::cos:{r}:uid/{APPID}:{b}/" for r, b in BUCKETS.items()]},
]}
TOKENS = itertools.count(1)


@pytest.fixture(scope="module")
def maria() -> Iterator[MariaPair]:
    with MariaPair() as pair:
        with pair.connect("primary") as c:
            c.cursor().execute("CREATE TABLE orders (id VARCHAR(64) PRIMARY KEY, item TEXT)")
        yield pair


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch, maria: MariaPair) -> Iterator[TencentStub]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with TencentStub() as s:
        s.add_key("AKIDwrapper", "wrapper-key", WRAPPER_POLICY, token="sts-token")
        svc = s.services
        svc.add_instance("cdb-p", P, vip="127.0.0.1", vport=maria.servers["primary"].port)
        svc.add_instance("cdb-dr", S, master="cdb-p", vip="127.0.0.1",
                         vport=maria.servers["standby"].port)
        svc.add_secret(S, "shop-standby-state-dsn", json.dumps({
            "engine": "mysql", "host": "127.0.0.1", "port": maria.servers["primary"].port,
            "user": ADMIN, "password": maria.admin_password, "database": maria.database}))
        # As components/tencent/data.py writes it: the primary's address, the DR by id.
        svc.add_secret(P, "shop-db-dsn", json.dumps({
            "engine": "mysql", "host": "127.0.0.1", "port": maria.servers["primary"].port,
            "user": APP, "password": maria.app_password, "database": maria.database,
            "primary_region": P, "standby_instance_id": "cdb-dr", "standby_port": 3306,
            "standby_region": S}))
        for r, b in BUCKETS.items():
            s.cos.add_bucket(r, b)
        s.start()
        yield s


def env(stub: TencentStub, **extra: str) -> dict[str, str]:
    return {"TENCENTCLOUD_SECRETID": "AKIDwrapper", "TENCENTCLOUD_SECRETKEY": "wrapper-key",
            "TENCENTCLOUD_SESSIONTOKEN": "sts-token", "STANDBY_TENCENT_ENDPOINT": stub.endpoint,
            "STANDBY_TENCENT_COS_ENDPOINT": stub.cos.endpoint, "STANDBY_TOPOLOGY": "shop",
            "STANDBY_SIDE": "primary", "STANDBY_REGION": P, "STANDBY_POINTER_CACHE_S": "0",
            "STANDBY_DB_ENGINE": "mysql", "STANDBY_DATA_REGIONS": json.dumps([P, S]),
            "STANDBY_STATE_STORE": "mysql", "STANDBY_STATE_DSN_SECRET": "shop-standby-state-dsn",
            "STANDBY_STATE_REGION": S, "STANDBY_DB_SECRET": "shop-db-dsn",
            "STANDBY_BUCKETS": json.dumps(BUCKETS), **extra}


def point_data_at(maria: MariaPair, region: str) -> int:
    store = SqlStateStore(mysql_connect("127.0.0.1", maria.servers["primary"].port, ADMIN,
                                        maria.admin_password, maria.database))
    token = next(TOKENS)
    store.write_pointer("data", region, token, "test", time.time())
    return token


def http(request: Any, method: str = "POST", **extra: Any) -> dict[str, Any]:
    body = request if isinstance(request, str) else json.dumps(request)
    return {"httpMethod": method, "path": "/", "headers": {"content-type": "application/json"},
            "queryString": {}, "body": body, "isBase64Encoded": False, **extra}


def answer(out: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert out["headers"]["Content-Type"] == "application/json" and not out["isBase64Encoded"]
    doc: dict[str, Any] = json.loads(out["body"])
    return int(out["statusCode"]), doc


CTX = {"request_id": "req-1", "time_limit_in_ms": 10000}


def test_function_url_event_writes_and_reads_the_primary(
        stub: TencentStub, maria: MariaPair) -> None:
    token = point_data_at(maria, P)
    h = make_handler(env(stub))
    insert = {"op": "sql", "sql": "INSERT INTO orders (id, item) VALUES (:id, :item)",
              "params": {"id": "o-1", "item": "tea"}, "idempotency_key": "order-o-1"}
    status, doc = answer(h(http(insert), CTX))
    assert status == 200 and doc["ok"], doc
    assert doc["served"] == {"region": P, "side": "primary", "data_region": P, "token": token}
    # A retry of the same request is answered from the idempotency record, not run twice.
    status, doc = answer(h(http(insert), CTX))
    assert status == 200 and doc["ok"] and doc["result"].get("replayed") is True, doc
    # The logic function's direct Invoke gets the wrapper's answer itself.
    out = h({"op": "sql", "sql": "SELECT item FROM orders WHERE id = :id",
             "params": {"id": "o-1"}}, CTX)
    assert out["ok"] and out["result"]["rows"] == [["tea"]], out
    assert h({"standby_probe": True}, CTX)["ok"] is True
    assert not stub.refused  # every call passed signature, shape and CAM


def test_pointer_moved_to_the_dr_region_serves_from_the_dr_instance(
        stub: TencentStub, maria: MariaPair) -> None:
    """The DR instance's address comes from DescribeDBInstances; until it is promoted it is a
    read-only replica, so a write there is refused (NotPrimary, retryable) and never lands."""
    point_data_at(maria, P)
    h = make_handler(env(stub))
    assert answer(h(http({"op": "sql", "sql": "INSERT INTO orders (id, item) VALUES "
                          "(:id, :item)", "params": {"id": "o-2", "item": "rice"}}), CTX))[0] \
        == 200
    token = point_data_at(maria, S)
    deadline = time.monotonic() + 10
    while True:  # the replica applies the insert asynchronously (bounded wait)
        status, doc = answer(h(http({"op": "sql", "sql": "SELECT item FROM orders WHERE "
                                     "id = :id", "params": {"id": "o-2"}}), CTX))
        if doc.get("result", {}).get("rows") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200 and doc["result"]["rows"] == [["rice"]], doc
    assert doc["served"]["data_region"] == S and doc["served"]["token"] == token
    status, doc = answer(h(http({"op": "sql", "sql": "INSERT INTO orders (id, item) VALUES "
                                 "(:id, :item)", "params": {"id": "o-3", "item": "x"}}), CTX))
    assert status == 503 and doc["error"]["code"] == "NotPrimary", doc
    assert doc["error"]["retryable"] is True
    with maria.connect("primary") as c:
        cur = c.cursor()
        cur.execute("SELECT COUNT(*) FROM orders WHERE id = 'o-3'")
        assert cur.fetchone()[0] == 0
    assert ("AKIDwrapper", "cdb", "DescribeDBInstances") in stub.calls and not stub.refused


def test_unresolvable_dr_instance_answers_unavailable(
        stub: TencentStub, maria: MariaPair) -> None:
    stub.services.instances.pop("cdb-dr")
    point_data_at(maria, S)
    h = make_handler(env(stub))
    status, doc = answer(h(http({"op": "sql", "sql": "SELECT 1 AS one"}), CTX))
    assert status == 503 and doc["error"]["code"] == "Unavailable", doc
    assert "cdb-dr" in doc["error"]["message"] and doc["error"]["retryable"]
    point_data_at(maria, P)


@pytest.mark.parametrize(("event", "status", "code", "text"), [
    (http({}, method="GET"), 405, "MethodNotAllowed", "httpMethod 'GET'; allowed: POST"),
    (http(""), 400, "BadRequest", "body: empty"),
    (http("{not json"), 400, "BadRequest", "body: not valid JSON at line 1 column 2"),
    (http("%%%", isBase64Encoded=True), 400, "BadRequest", "not valid base64"),
    (http({"op": "sql", "sql": "SELECT 1"}, headers={"Content-Type": "text/plain"}), 415,
     "UnsupportedMediaType", "content-type 'text/plain'; allowed: application/json"),
    (http({"op": "sql.run"}), 400, "UnknownOperation", "sql.run"),
    (http({"op": "sql", "sql": "DROP TABLE orders"}), 400, "ForbiddenStatement", ""),
    (http({"op": "kv.get", "key": {"pk": "a", "sk": "b"}}), 400, "BadRequest",
     "this topology's database is mysql; use op sql"),
    (http("x" * (256 * 1024 + 1)), 413, "PayloadTooLarge", "at most 262144"),
])
def test_bad_http_events_are_clear_4xx(stub: TencentStub, maria: MariaPair,
                                       event: dict[str, Any], status: int, code: str,
                                       text: str) -> None:
    point_data_at(maria, P)
    h = make_handler(env(stub))
    got_status, doc = answer(h(event, CTX))
    assert (got_status, doc["ok"], doc["error"]["code"]) == (status, False, code), doc
    assert text in doc["error"]["message"]
    assert doc["error"]["retryable"] is False
    with maria.connect("primary") as c:  # a refused request changed nothing
        cur = c.cursor()
        cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = "
                    "'orders'")
        assert cur.fetchone()[0] == 1


def test_base64_body_is_decoded(stub: TencentStub, maria: MariaPair) -> None:
    point_data_at(maria, P)
    h = make_handler(env(stub))
    body = base64.b64encode(json.dumps({"op": "sql", "sql": "SELECT 1 AS one"}).encode())
    status, doc = answer(h(http(body.decode(), isBase64Encoded=True), CTX))
    assert status == 200 and doc["result"]["rows"] == [[1]], doc


def test_cos_objects_put_get_list_in_the_active_region(
        stub: TencentStub, maria: MariaPair) -> None:
    point_data_at(maria, P)
    h = make_handler(env(stub))
    put = {"op": "object.put", "key": "receipts/o-1.txt", "body": "paid",
           "content_type": "text/plain", "idempotency_key": "receipt-o-1"}
    first, again = h(put, CTX), h(put, CTX)
    assert first["ok"] and first["result"]["replayed"] is False, first
    assert again["ok"] and again["result"]["replayed"] is True, again
    # The same idempotency key for a different body is a conflict, never a silent overwrite.
    clash = h({**put, "body": "refunded"}, CTX)
    assert clash["error"]["code"] == "Conflict", clash
    got = h({"op": "object.get", "key": "receipts/o-1.txt"}, CTX)
    assert base64.b64decode(got["result"]["body_b64"]) == b"paid"
    assert got["result"]["content_type"] == "text/plain"
    stub.cos.buckets[(P, BUCKETS[P])]["_standby-probe/ap-guangzhou"] = b"1"
    listed = h({"op": "object.list", "prefix": ""}, CTX)
    assert listed["result"] == {"objects": [{"key": "receipts/o-1.txt", "size": 4}],
                                "truncated": False}
    missing = h({"op": "object.get", "key": "receipts/none"}, CTX)
    assert missing["error"]["code"] == "NotFound"
    assert stub.cos.buckets[(S, BUCKETS[S])] == {}  # only the active region's bucket
    # The first put's HEAD and the missing get: nothing refused for signature or CAM.
    assert stub.refused == {"cos:NoSuchKey": 2}


def test_wrapper_environment_errors_name_every_problem(stub: TencentStub) -> None:
    e = env(stub, STANDBY_DB_ENGINE="postgres", STANDBY_STATE_STORE="dynamodb")
    del e["STANDBY_DB_SECRET"]
    with pytest.raises(ConfigError) as exc:
        load(e)
    assert exc.value.problems == [
        "STANDBY_DB_ENGINE: 'postgres'; allowed on Tencent: mysql (CDB)",
        "STANDBY_DB_SECRET: missing (the SSM secret with the database DSN)",
        "STANDBY_STATE_STORE: 'dynamodb'; allowed on Tencent: mysql"]
    with pytest.raises(ConfigError, match=r"STANDBY_DATA_REGIONS: \['ap-guangzhou'\] lacks "
                                          r"ap-shanghai"):
        make_handler(env(stub, STANDBY_DATA_REGIONS=json.dumps([P])))
    # Another secret than the deploy's: CAM refuses it before SSM looks it up.
    with pytest.raises(ConfigError, match=r"STANDBY_DB_SECRET 'nope' in ap-guangzhou: .*"
                                          r"AuthFailure\.UnauthorizedOperation"):
        make_handler(env(stub, STANDBY_DB_SECRET="nope"))


# -- the archive the deploy ships ---------------------------------------------------------------


def test_every_tencent_function_handler_resolves_in_its_archive(tmp_path: Path) -> None:
    """Regression: the wrapper SCF function's handler named a module that did not exist
    (components.runtime.tencent.wrapper). Each function's handler is imported from its own
    zip, in a fresh interpreter whose path starts with the zip, as SCF would."""
    from components.plan import make_plan
    from tests.conftest import ROOT

    plan = make_plan("tencent-dev", ROOT)
    fns = [r for regs in plan.groups.values() for r in regs
           if r.type == "tencentcloud:Scf/function:Function"]
    assert len(fns) >= 12
    pairs = sorted({(str(f.inputs["zipFile"]), str(f.inputs["handler"])) for f in fns})
    assert any(h == "components.runtime.tencent.wrapper.handler" for _, h in pairs)
    check = ("import importlib, sys\n"
             "zf, h = sys.argv[1:3]\n"
             "sys.path.insert(0, zf)\n"
             "mod, _, fn = h.rpartition('.')\n"
             "m = importlib.import_module(mod)\n"
             "assert m.__file__.startswith(zf), (h, m.__file__)\n"
             "assert callable(getattr(m, fn)), h\n")
    for zf, h in pairs:
        out = subprocess.run([sys.executable, "-c", check, zf, h], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert out.returncode == 0, (zf, h, out.stderr[-2000:])


def test_the_wrapper_policy_the_deploy_writes_suffices(
        monkeypatch: pytest.MonkeyPatch, maria: MariaPair) -> None:
    """CAM sufficiency from the plan: the tencent-dev wrapper's own policy document and
    environment, the plan's DR instance id and bucket names; every call the wrapper makes
    for SQL on both sides and for COS passes the stub's CAM check."""
    from components.plan import make_plan
    from tests.conftest import ROOT

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    plan = make_plan("tencent-dev", ROOT)
    regs = [r for group in plan.groups.values() for r in group]
    [fn] = [r for r in regs if r.type == "tencentcloud:Scf/function:Function"
            and r.inputs["name"].startswith("shop-wrap-p-") and r.region == P]
    [policy] = [r for r in regs if r.type == "tencentcloud:Cam/policy:Policy"
                and r.name == f"{fn.name}-policy"]
    [dr] = [r for r in regs if r.type == "tencentcloud:Mysql/drInstance:DrInstance"]
    deployed = {k: str(v) for k, v in fn.inputs["environment"].items()}
    buckets = json.loads(deployed["STANDBY_BUCKETS"])
    with TencentStub() as s:
        s.add_key("AKIDplan", "plan-key", json.loads(policy.inputs["document"]))
        s.services.add_instance(str(dr.outputs["id"]), S, master="cdb-p", vip="127.0.0.1",
                                vport=maria.servers["standby"].port)
        s.services.add_instance("cdb-p", P)
        s.services.add_secret(S, deployed["STANDBY_STATE_DSN_SECRET"], json.dumps({
            "engine": "mysql", "host": "127.0.0.1", "port": maria.servers["primary"].port,
            "user": ADMIN, "password": maria.admin_password, "database": maria.database}))
        s.services.add_secret(P, deployed["STANDBY_DB_SECRET"], json.dumps({
            "engine": "mysql", "host": "127.0.0.1", "port": maria.servers["primary"].port,
            "user": APP, "password": maria.app_password, "database": maria.database,
            "primary_region": P, "standby_instance_id": str(dr.outputs["id"]),
            "standby_port": 3306, "standby_region": S}))
        for r, b in buckets.items():
            s.cos.add_bucket(r, b)
        s.start()
        h = make_handler({**deployed, "STANDBY_POINTER_CACHE_S": "0",
                          "TENCENTCLOUD_SECRETID": "AKIDplan",
                          "TENCENTCLOUD_SECRETKEY": "plan-key",
                          "STANDBY_TENCENT_ENDPOINT": s.endpoint,
                          "STANDBY_TENCENT_COS_ENDPOINT": s.cos.endpoint})
        point_data_at(maria, P)
        put = h({"op": "object.put", "key": "k", "body": "v", "content_type": "text/plain"},
                CTX)
        assert put["ok"], put
        assert h({"op": "object.list", "prefix": ""}, CTX)["ok"]
        assert h({"op": "object.get", "key": "k"}, CTX)["ok"]
        point_data_at(maria, S)
        read = h({"op": "sql", "sql": "SELECT 1 AS one"}, CTX)
        assert read["ok"] and read["served"]["data_region"] == S, read
        point_data_at(maria, P)
        assert {(svc, a) for _, svc, a in s.calls} >= {
            ("ssm", "GetSecretValue"), ("cdb", "DescribeDBInstances"), ("cos", "PutObject"),
            ("cos", "GetObject"), ("cos", "GetBucket"), ("cos", "HeadObject")}
        assert set(s.refused) <= {"cos:NoSuchKey"}, s.refused
