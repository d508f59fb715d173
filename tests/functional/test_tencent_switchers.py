"""Each Tencent switcher and probe against the contract stub (every call signed with the
real SDK and checked for shape and CAM), the pointer against the SQL store on a real
MariaDB: apply, read back, idempotent, stale token refused or reconciled by the heartbeat,
and fail closed where a fence is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from components.runtime.errors import ConfigError, StaleToken, SwitchError
from components.runtime.registry import REGISTRY
from components.runtime.sql_state import SqlStateStore, mysql_connect
from components.runtime.tencent.client import TencentApi, TencentApiError
from components.runtime.tencent.db_switchers import CdbDrSwitcher
from components.runtime.tencent.probes import cos_bucket_probe, scf_invoke_probe
from components.runtime.tencent.state import state_ref, state_store
from components.runtime.tencent.switchers import (
    DnspodRecordStatusSwitcher,
    PointerSwitcher,
    ScfCustomDomainSwitcher,
    tencent_switchers,
)
from components.sandbox.mariadb import ADMIN, MariaPair
from components.sandbox.tencent_stub import TencentStub

P, S = "ap-guangzhou", "ap-shanghai"
UIN = "100000000001"

# What a least-privilege monitor role gets: the actions its switchers and probes call, on
# the resources of this stack only.
MONITOR_POLICY = {"version": "2.0", "statement": [
    {"effect": "allow", "resource": [f"qcs::dnspod::uin/{UIN}:domain/shop.example"],
     "action": ["name/dnspod:ModifyRecordStatus", "name/dnspod:DescribeRecordList"]},
    {"effect": "allow", "resource": [f"qcs::scf:*:uin/{UIN}:customdomain/api.shop.example",
                                     f"qcs::scf:*:uin/{UIN}:namespace/default/function/shop-*"],
     "action": ["name/scf:GetCustomDomain", "name/scf:UpdateCustomDomain",
                "name/scf:InvokeFunction"]},
    {"effect": "allow", "resource": ["qcs::cos:*:uid/1250000000:shop-data-*/_standby-probe/*"],
     "action": ["name/cos:PutObject", "name/cos:GetObject"]},
    {"effect": "allow", "resource": ["qcs::cos:*:uid/1250000000:shop-data-*/"],
     "action": ["name/cos:HeadBucket"]},
    # As the Tencent deploy writes it: the action without the ``name/`` prefix.
    {"effect": "allow", "action": ["ssm:GetSecretValue"],
     "resource": [f"qcs::ssm:{S}:uin/{UIN}:secret/creatorUin/{UIN}/shop-standby-state-dsn"]},
    {"effect": "allow", "resource": [f"qcs::cdb:*:uin/{UIN}:instanceId/*"],
     "action": ["name/cdb:DescribeDBInstances", "name/cdb:ModifyDBInstanceReadOnlyStatus",
                "name/cdb:SwitchDrInstanceToMaster", "name/cdb:DescribeAsyncRequestInfo"]},
]}
NO_FENCE_POLICY = {"version": "2.0", "statement": [
    {"effect": "allow", "action": "*", "resource": "*"},
    {"effect": "deny", "action": "name/cdb:ModifyDBInstanceReadOnlyStatus", "resource": "*"}]}


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[TencentStub]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with TencentStub() as s:
        s.add_key("AKIDmonitor", "monitor-key", MONITOR_POLICY, token="sts-token")
        s.add_key("AKIDnofence", "nofence-key", NO_FENCE_POLICY)
        svc = s.services
        svc.add_record("shop.example", "api", "默认", "10.0.0.1", "ENABLE")  # 1000 primary
        svc.add_record("shop.example", "api", "默认", "10.0.1.1", "DISABLE")  # 1001 standby
        svc.add_record("shop.example", "api", "电信", "10.0.0.1", "ENABLE")  # another line
        svc.add_function(P, "shop-logic-a", lambda e: {"ok": True})
        svc.add_function(P, "shop-logic-b", lambda e: {"ok": True})
        svc.add_function(P, "shop-health", lambda e: {"ok": True})
        svc.add_domain(P, "api.shop.example", [
            {"Namespace": "default", "FunctionName": "shop-logic-a", "Qualifier": "$LATEST",
             "PathMatch": "/api/*"},
            {"Namespace": "default", "FunctionName": "shop-health", "Qualifier": "$LATEST",
             "PathMatch": "/health"}])
        s.cos.add_bucket(P, "shop-data-p-1250000000")
        s.cos.add_bucket(P, "other-app-1250000000")
        svc.add_instance("cdb-p", P)
        svc.add_instance("cdb-dr", S, master="cdb-p")
        s.start()
        yield s


def api(s: TencentStub, sid: str = "AKIDmonitor", key: str = "monitor-key",
        token: str | None = "sts-token") -> TencentApi:
    return TencentApi(sid, key, token, endpoint=s.endpoint, cos_endpoint=s.cos.endpoint)


DNS_T = {"scope": "dns", "kind": "dnspod_record_status", "domain": "shop.example",
         "sub_domain": "api", "record_line": "默认", "record_ids": {"primary": 1000,
                                                                   "standby": 1001}}
ROUTE_T = {"scope": "gateway", "kind": "scf_custom_domain", "region": P,
           "domain": "api.shop.example", "namespace": "default", "path": "/api/*",
           "values": {"primary": "shop-logic-a", "standby": "shop-logic-b"}}
CDB_T = {"scope": "data", "kind": "cdb_dr_switch", "region": S,
         "instance_ids": {"primary": "cdb-p", "standby": "cdb-dr"}, "max_lag_s": 5,
         "primary_region": P, "switch_timeout_s": 30}


def test_adapter_registers_every_kind_the_tencent_deploy_emits() -> None:
    import components.runtime.tencent  # noqa: F401  (registers on import)

    assert REGISTRY.probe("scf_invoke").role == "backend"
    for name in ("dnspod_record_status", "scf_custom_domain", "tencent_pointer",
                 "tencent_pointer_all", "cdb_dr_switch"):
        assert REGISTRY.switch(name).name == name
    assert REGISTRY.switch("cdb_dr_switch").lag_guard


def test_credentials_come_from_the_scf_variable_names(stub: TencentStub) -> None:
    env = {"TENCENTCLOUD_SECRETID": "AKIDmonitor", "TENCENTCLOUD_SECRETKEY": "monitor-key",
           "TENCENTCLOUD_SESSIONTOKEN": "sts-token",
           "STANDBY_TENCENT_ENDPOINT": stub.endpoint}
    out = TencentApi.from_env(env).call("dnspod", "2021-03-23", "", "DescribeRecordList",
                                        {"Domain": "shop.example", "ErrorOnEmpty": "no"})
    assert out["RecordCountInfo"]["TotalCount"] == 3
    without_token = {k: v for k, v in env.items() if k != "TENCENTCLOUD_SESSIONTOKEN"}
    with pytest.raises(TencentApiError, match=r"AuthFailure\.TokenFailure"):
        TencentApi.from_env(without_token).call("dnspod", "2021-03-23", "",
                                                "DescribeRecordList", {"Domain": "x"})
    with pytest.raises(ValueError, match="TENCENTCLOUD_SECRETKEY"):
        TencentApi.from_env({"TENCENTCLOUD_SECRETID": "AKIDmonitor"})


def test_dnspod_switch_enables_the_new_side_and_disables_the_old(stub: TencentStub) -> None:
    sw = DnspodRecordStatusSwitcher(api(stub))
    assert sw.current(DNS_T) == "primary"
    sw.apply(DNS_T, "standby", 1, "primary down")
    recs = stub.services.records
    assert (recs[1000].status, recs[1001].status, recs[1002].status) == (
        "DISABLE", "ENABLE", "ENABLE")  # the other line is left alone
    assert sw.verify(DNS_T, "standby") and not sw.verify(DNS_T, "primary")
    sw.apply(DNS_T, "standby", 1, "retry")  # idempotent
    assert sw.current(DNS_T) == "standby"
    # A stale holder's late write flips it back; the heartbeat restores the committed side.
    sw.apply(DNS_T, "primary", 0, "stale")
    sw.heartbeat(DNS_T, "standby", 1)
    assert sw.current(DNS_T) == "standby"
    assert not stub.refused


def test_dnspod_both_enabled_is_no_side(stub: TencentStub) -> None:
    stub.services.records[1001].status = "ENABLE"
    assert DnspodRecordStatusSwitcher(api(stub)).current(DNS_T) is None


def test_custom_domain_repoints_one_route_and_keeps_the_others(stub: TencentStub) -> None:
    sw = ScfCustomDomainSwitcher(api(stub))
    assert sw.current(ROUTE_T) == "primary"
    sw.apply(ROUTE_T, "standby", 3, "logic 5xx")
    routes = {r["PathMatch"]: r for r in stub.services.domains[(P, "api.shop.example")].endpoints}
    assert routes["/api/*"]["FunctionName"] == "shop-logic-b"
    assert routes["/health"]["FunctionName"] == "shop-health"
    assert routes["/api/*"]["Qualifier"] == "$LATEST"
    assert sw.verify(ROUTE_T, "standby")
    updates = stub.calls.count(("AKIDmonitor", "scf", "UpdateCustomDomain"))
    sw.apply(ROUTE_T, "standby", 3, "retry")  # idempotent: nothing to send
    assert stub.calls.count(("AKIDmonitor", "scf", "UpdateCustomDomain")) == updates == 1
    sw.apply(ROUTE_T, "primary", 2, "stale holder")
    sw.heartbeat(ROUTE_T, "standby", 3)
    assert sw.current(ROUTE_T) == "standby"


def test_custom_domain_errors_name_the_route_and_the_function(stub: TencentStub) -> None:
    sw = ScfCustomDomainSwitcher(api(stub))
    with pytest.raises(SwitchError, match=r"no route /nope.*routes: \['/api/\*', '/health'\]"):
        sw.apply({**ROUTE_T, "path": "/nope"}, "standby", 1, "x")
    # A domain is regional: a function of another region is refused by the API.
    with pytest.raises(SwitchError, match=r"ResourceNotFound\.Function"):
        sw.apply({**ROUTE_T, "values": {"primary": "shop-logic-a", "standby": "shop-x"}},
                 "standby", 1, "x")
    assert sw.current(ROUTE_T) == "primary"


def test_cdb_dr_switch_fences_then_promotes_and_is_one_way(stub: TencentStub) -> None:
    stub.services.async_polls = 2
    sw = CdbDrSwitcher(api(stub), poll_s=0.01)
    assert sw.current(CDB_T) == "primary"
    sw.apply(CDB_T, "standby", 4, "primary region down")
    inst = stub.services.instances
    assert inst["cdb-p"].read_only == 1  # fenced first
    assert inst["cdb-dr"].type == 1 and inst["cdb-dr"].master is None
    assert sw.verify(CDB_T, "standby")
    assert sw.last["fenced"] is True and sw.last["ignore_sync_delay"] == 0
    order = [a for _, svc, a in stub.calls if svc == "cdb"]
    assert order.index("ModifyDBInstanceReadOnlyStatus") < order.index(
        "SwitchDrInstanceToMaster")
    assert order.count("DescribeAsyncRequestInfo") == 3  # RUNNING, RUNNING, SUCCESS
    sw.apply(CDB_T, "standby", 4, "retry")  # idempotent: already a master
    assert sw.last == {"token": 4, "already_master": True}
    with pytest.raises(SwitchError, match="fail back by creating a DR instance"):
        sw.apply(CDB_T, "primary", 5, "failback")


def test_cdb_fence_refused_promotes_nothing(stub: TencentStub) -> None:
    sw = CdbDrSwitcher(api(stub, "AKIDnofence", "nofence-key", None), poll_s=0.01)
    with pytest.raises(SwitchError, match=r"fence of cdb-p refused.*nothing was promoted"):
        sw.apply(CDB_T, "standby", 1, "x")
    assert stub.services.instances["cdb-dr"].type == 2
    assert stub.refused == {"AuthFailure.UnauthorizedOperation": 1}


def test_cdb_unreachable_primary_region_promotes_and_heartbeat_fences_it_later(
        stub: TencentStub) -> None:
    stub.down_regions.add(P)
    sw = CdbDrSwitcher(api(stub), poll_s=0.01)
    sw.apply({**CDB_T, "disaster_ignore_sync_delay": 1024}, "standby", 2, "region lost")
    assert sw.last["fenced"] is False and sw.last["ignore_sync_delay"] == 1024
    assert stub.services.instances["cdb-dr"].type == 1
    assert stub.services.instances["cdb-p"].read_only == 0  # could not be reached
    sw.heartbeat(CDB_T, "standby", 2)  # still down: tried again next round, no error
    stub.down_regions.clear()  # the region comes back, its old primary writable
    sw.heartbeat(CDB_T, "standby", 2)
    assert stub.services.instances["cdb-p"].read_only == 1


def test_cdb_heartbeat_without_primary_region_says_what_is_missing(stub: TencentStub) -> None:
    target = {k: v for k, v in CDB_T.items() if k != "primary_region"}
    sw = CdbDrSwitcher(api(stub), poll_s=0.01)
    sw.apply(target, "standby", 1, "x")  # before: the DR instance's MasterInfo names it
    assert stub.services.instances["cdb-p"].read_only == 1
    with pytest.raises(SwitchError, match="add primary_region to the cdb_dr_switch target"):
        sw.heartbeat(target, "standby", 1)


def test_cdb_lag_beyond_the_wait_times_out_without_promoting(stub: TencentStub) -> None:
    stub.services.instances["cdb-dr"].lag_bytes = 4096
    sw = CdbDrSwitcher(api(stub), poll_s=0.01)
    with pytest.raises(SwitchError, match=r"still RUNNING after 0\.3 s"):
        sw.apply({**CDB_T, "switch_timeout_s": 0.3}, "standby", 1, "x")
    assert stub.services.instances["cdb-dr"].type == 2


def test_scf_invoke_probe(stub: TencentStub) -> None:
    svc = stub.services
    svc.add_function(P, "shop-sick", lambda e: {"ok": False, "detail": "db down"})

    def boom(event: Any) -> Any:
        raise RuntimeError("handler crashed")

    svc.add_function(P, "shop-crash", boom)
    seen: list[Any] = []

    def echo(event: Any) -> Any:
        seen.append(event)
        return {"ok": True}

    svc.add_function(P, "shop-echo", echo)
    probe = scf_invoke_probe(api(stub))
    t = {"scope": "logic", "kind": "scf_invoke", "side": "primary", "region": P,
         "namespace": "default"}
    assert probe({**t, "function": "shop-echo"}, 2.0).ok
    assert seen == [{"standby_probe": True}]
    sick = probe({**t, "function": "shop-sick"}, 2.0)
    assert not sick.ok and "db down" in sick.detail
    crash = probe({**t, "function": "shop-crash"}, 2.0)
    assert not crash.ok and "handler crashed" in crash.detail
    missing = probe({**t, "function": "shop-gone"}, 2.0)
    assert not missing.ok and "ResourceNotFound.Function" in missing.detail
    denied = probe({**t, "function": "other-app"}, 2.0)  # outside the role's resources
    assert not denied.ok and "UnauthorizedOperation" in denied.detail


def test_cos_bucket_probe_heads_writes_and_reads_back(stub: TencentStub) -> None:
    probe = cos_bucket_probe(api(stub), "ap-guangzhou#monitor")
    t = {"scope": "data", "kind": "cos_bucket", "side": "primary", "region": P}
    ok = probe({**t, "bucket": "shop-data-p-1250000000"}, 2.0)
    assert ok.ok, ok.detail
    objects = stub.cos.buckets[(P, "shop-data-p-1250000000")]
    assert list(objects) == ["_standby-probe/ap-guangzhou#monitor"]
    assert [a for _, svc, a in stub.calls if svc == "cos"] == ["HeadBucket", "PutObject",
                                                               "GetObject"]
    # A HEAD answer has no body, so the SDK reports only the status; the stub's counters
    # say which check refused it.
    gone = probe({**t, "bucket": "shop-data-gone-1250000000"}, 2.0)
    assert not gone.ok and "NoSuchResource" in gone.detail
    assert stub.refused == {"cos:NoSuchBucket": 1}
    denied = probe({**t, "bucket": "other-app-1250000000"}, 2.0)  # not the role's bucket
    assert not denied.ok and stub.refused["cos:AccessDenied"] == 1
    assert stub.cos.buckets[(P, "other-app-1250000000")] == {}
    bad_key = cos_bucket_probe(api(stub, key="wrong"), "v")({**t, "bucket":
                                                             "shop-data-p-1250000000"}, 2.0)
    assert not bad_key.ok and stub.refused["cos:SignatureDoesNotMatch"] == 1
    assert list(objects) == ["_standby-probe/ap-guangzhou#monitor"]  # nothing else written


# -- the pointer, in the SQL state store on a real MariaDB -------------------------------------


@pytest.fixture(scope="module")
def maria() -> Iterator[MariaPair]:
    with MariaPair() as pair:
        yield pair


def test_pointer_rejects_a_stale_token_and_is_idempotent(maria: MariaPair) -> None:
    store = SqlStateStore(mysql_connect("127.0.0.1", maria.servers["primary"].port, ADMIN,
                                        maria.admin_password, maria.database), prefix="ptr_")
    sw = PointerSwitcher(store)
    t = {"scope": "data", "kind": "tencent_pointer_all", "key": "data",
         "values": {"primary": P, "standby": S}}
    assert sw.current(t) is None
    sw.heartbeat(t, "standby", 0)  # token 0: before the first switch nothing is written
    assert store.read_pointer("data") == (None, 0)
    sw.apply(t, "standby", 2, "primary down")
    sw.apply(t, "standby", 2, "retry")  # the same token may repeat its own write
    assert sw.verify(t, "standby") and store.read_pointer("data") == (S, 2)
    with pytest.raises(StaleToken):
        sw.apply(t, "primary", 1, "stale holder")
    with pytest.raises(StaleToken):
        sw.apply(t, "primary", 2, "same token, other side")
    sw.heartbeat(t, "primary", 1)  # an older committed view never overwrites a newer token
    assert store.read_pointer("data") == (S, 2)
    sw.apply(t, "primary", 3, "failback")
    assert sw.current(t) == "primary"


def test_switcher_table_covers_every_registered_tencent_switch_kind() -> None:
    from components.runtime.tencent.kinds import SWITCHES

    store = SqlStateStore(lambda: None)
    table = tencent_switchers(TencentApi("id", "key"), store)
    assert set(table) == {k.name for k in SWITCHES}


def test_state_store_comes_from_the_dsn_secret_the_deploy_writes(
        stub: TencentStub, maria: MariaPair) -> None:
    dsn = {"engine": "mysql", "host": "127.0.0.1", "port": maria.servers["primary"].port,
           "user": ADMIN, "password": maria.admin_password, "database": maria.database}
    stub.services.add_secret(S, "shop-standby-state-dsn", json.dumps(dsn))
    env = {"STANDBY_STATE_STORE": "mysql", "STANDBY_STATE_DSN_SECRET": "shop-standby-state-dsn",
           "STANDBY_STATE_REGION": S}
    store = state_store(api(stub), state_ref(env))
    lease = store.acquire("logic", "ap-guangzhou#inv-1", 100, 30)
    assert lease is not None and lease.token == 1
    # The role may read only its own secret in the control region: CAM refuses the rest.
    with pytest.raises(ConfigError, match=r"AuthFailure\.UnauthorizedOperation"):
        state_store(api(stub), state_ref({**env, "STANDBY_STATE_REGION": P}))
    with pytest.raises(ConfigError, match=r"ResourceNotFound\.VersionNotExist"):
        state_store(api(stub), state_ref({**env, "STANDBY_STATE_DSN_VERSION": "v2"}))
    stub.services.add_secret(S, "shop-standby-state-dsn", json.dumps({"host": "h"}), "v3")
    with pytest.raises(ConfigError, match="missing port, user, password, database"):
        state_store(api(stub), state_ref({**env, "STANDBY_STATE_DSN_VERSION": "v3"}))
    with pytest.raises(ConfigError) as exc:
        state_ref({"STANDBY_STATE_STORE": "dynamodb"})
    assert exc.value.problems == [
        "STANDBY_STATE_STORE: 'dynamodb'; allowed on Tencent: mysql",
        "STANDBY_STATE_DSN_SECRET: missing", "STANDBY_STATE_REGION: missing"]


# -- the core engine over the Tencent pieces ---------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, s: str) -> int:
        self.lines.append(s)
        return len(s)


def test_two_tencent_vantages_switch_the_route_and_pointer_exactly_once(
        stub: TencentStub, maria: MariaPair) -> None:
    """The unchanged core (config.load, Monitor) runs on the Tencent adapter: both vantages
    see the primary logic function fail, exactly one switch commits in the SQL store, the
    custom-domain route and the wrapper pointer both move, and the log has the evidence."""
    import components.runtime.tencent  # noqa: F401  (registers the kinds)
    from components.runtime.config import load
    from components.runtime.monitor_core import Monitor
    from components.runtime.notify import Notifier
    from components.runtime.observe import Log
    from components.runtime.tencent.probes import tencent_probes

    health = {"shop-logic-a": True}

    def logic_a(event: Any) -> Any:
        if not health["shop-logic-a"]:
            raise RuntimeError("500 from the logic")
        return {"ok": True}

    stub.services.add_function(P, "shop-logic-a", logic_a)
    store = SqlStateStore(mysql_connect("127.0.0.1", maria.servers["primary"].port, ADMIN,
                                        maria.admin_password, maria.database), prefix="e2e_")
    probes = [{"scope": "gateway-gz", "kind": "scf_invoke", "side": side, "region": P,
               "namespace": "default", "function": fn}
              for side, fn in (("primary", "shop-logic-a"), ("standby", "shop-logic-b"))]
    switch = [ROUTE_T | {"scope": "gateway-gz"},
              {"scope": "gateway-gz", "kind": "tencent_pointer", "key": f"wrapper@{P}",
               "values": {"primary": "primary", "standby": "standby"}}]
    settings = {"interval_s": 1, "timeout_s": 2, "failure_threshold": 2,
                "recovery_threshold": 2, "cooldown_s": 0, "failback": "manual", "quorum": 2}
    monitors = []
    for region in (P, S):
        cfg = load({"STANDBY_TOPOLOGY": "shop", "STANDBY_LAYER": "gateway",
                    "STANDBY_REGION": region, "STANDBY_SETTINGS": json.dumps(settings),
                    "STANDBY_PROBES": json.dumps(probes), "STANDBY_SWITCH": json.dumps(switch),
                    "STANDBY_STATE_STORE": "mysql",
                    "STANDBY_STATE_DSN_SECRET": "shop-standby-state-dsn",
                    "STANDBY_STATE_REGION": S,
                    "STANDBY_WEBHOOKS": "[]", "STANDBY_LOOP_S": "0"})
        a = api(stub)
        log = Log(stream=_Sink())
        monitors.append(Monitor(config=cfg, store=store, switchers=tencent_switchers(a, store),
                                probes=tencent_probes(a, region), notifier=Notifier({}, log),
                                log=log))
    now = [1_000_000.0]
    for m in monitors:
        m.clock = lambda: now[0]
    try:
        for m in monitors:  # healthy rounds: nothing moves
            m.round()
        health["shop-logic-a"] = False
        outcomes = []
        for _ in range(4):
            now[0] += 1.0
            for m in monitors:
                outcomes += m.round()
    finally:
        for m in monitors:
            m.close()
            m.notifier.close()
    switched = [o for o in outcomes if o.switched]
    assert len(switched) == 1 and switched[0].verified, [o.detail for o in outcomes]
    route = {r["PathMatch"]: r["FunctionName"]
             for r in stub.services.domains[(P, "api.shop.example")].endpoints}
    assert route["/api/*"] == "shop-logic-b"
    state = store.read_scope("gateway", "gateway-gz")
    assert state.active == "standby" and state.intent is None
    assert store.read_pointer(f"wrapper@{P}") == ("standby", state.token)
    [record] = store.log("gateway")
    assert record.token == state.token and record.evidence["probes"]
    assert not stub.refused  # every call passed signature, shape and CAM


# -- the SCF monitor handler ------------------------------------------------------------------


def _handler_env(stub: TencentStub, maria: MariaPair, region: str) -> dict[str, str]:
    dsn = {"engine": "mysql", "host": "127.0.0.1", "port": maria.servers["primary"].port,
           "user": ADMIN, "password": maria.admin_password, "database": maria.database}
    stub.services.add_secret(S, "shop-standby-state-dsn", json.dumps(dsn))
    probes = [{"scope": "gateway-gz", "kind": "scf_invoke", "side": side, "region": P,
               "namespace": "default", "function": fn}
              for side, fn in (("primary", "shop-logic-a"), ("standby", "shop-logic-b"))]
    return {
        "TENCENTCLOUD_SECRETID": "AKIDmonitor", "TENCENTCLOUD_SECRETKEY": "monitor-key",
        "TENCENTCLOUD_SESSIONTOKEN": "sts-token", "STANDBY_TENCENT_ENDPOINT": stub.endpoint,
        "STANDBY_TOPOLOGY": "shop", "STANDBY_LAYER": "gateway", "STANDBY_REGION": region,
        "STANDBY_SETTINGS": json.dumps({"interval_s": 1, "timeout_s": 2, "quorum": 2,
                                        "failure_threshold": 2, "recovery_threshold": 2,
                                        "cooldown_s": 0, "failback": "manual",
                                        "practice": False}),
        "STANDBY_PROBES": json.dumps(probes),
        "STANDBY_SWITCH": json.dumps([ROUTE_T | {"scope": "gateway-gz"}]),
        "STANDBY_STATE_STORE": "mysql", "STANDBY_STATE_DSN_SECRET": "shop-standby-state-dsn",
        "STANDBY_STATE_REGION": S, "STANDBY_WEBHOOKS": "[]", "STANDBY_LOOP_S": "0"}


TIMER = {"Type": "Timer", "TriggerName": "monitor", "Time": "2026-11-21T19:00:00Z",
         "Message": ""}


def test_streak_survives_fresh_handler_per_timer_invocation(
        stub: TencentStub, maria: MariaPair) -> None:
    """Every SCF timer invocation is a fresh handler (a fresh monitor): the streaks live in
    the SQL store, so two regions' invocations, one round each, still reach the switch."""
    from components.runtime.tencent.monitor import handler

    def logic_a(event: Any) -> Any:
        raise RuntimeError("500 from the logic")

    stub.services.add_function(P, "shop-logic-a", logic_a)
    # A fresh store prefix per test is not possible through the env; the module's database
    # is shared, so this scope name is used by this test only.
    envs = [_handler_env(stub, maria, r) for r in (P, S)]
    now = [2_000_000.0]
    summaries = []
    for i in range(3):
        now[0] += 1.0
        for e in envs:
            summaries.append(handler(TIMER, {"request_id": f"req-{i}-{e['STANDBY_REGION']}",
                                             "time_limit_in_ms": 30000}, env=e,
                                     clock=lambda: now[0]))
    switches = [s for summary in summaries for s in summary["switches"]]
    assert switches == [{"scope": "gateway-gz", "to": "standby", "verified": True,
                         "detail": switches[0]["detail"]}]
    assert all(s["rounds"] == 1 for s in summaries)
    route = {r["PathMatch"]: r["FunctionName"]
             for r in stub.services.domains[(P, "api.shop.example")].endpoints}
    assert route["/api/*"] == "shop-logic-b"


@pytest.mark.parametrize("event", [
    {"Type": "Timer", "TriggerName": "m", "Extra": 1},
    {"source": "schedule", "layer": "gateway"},
    {"source": "manual", "layer": "data"},
    {"source": "manual", "rounds": 0},
    ["Timer"],
])
def test_bad_events_switch_nothing(stub: TencentStub, maria: MariaPair, event: Any) -> None:
    from components.runtime.errors import EventError
    from components.runtime.tencent.monitor import handler

    calls = len(stub.calls)
    with pytest.raises(EventError):
        handler(event, {}, env=_handler_env(stub, maria, P))
    assert len(stub.calls) == calls  # nothing probed, nothing switched


def test_bad_tencent_environment_names_every_problem() -> None:
    import components.runtime.tencent  # noqa: F401  (registers the mysql store)
    from components.runtime.config import load

    with pytest.raises(ConfigError) as exc:
        load({"STANDBY_TOPOLOGY": "shop", "STANDBY_LAYER": "gateway", "STANDBY_REGION": P,
              "STANDBY_SETTINGS": "{}", "STANDBY_PROBES": "[]", "STANDBY_SWITCH": "[]",
              "STANDBY_STATE_STORE": "mysql", "STANDBY_STATE_REGION": S,
              "STANDBY_WEBHOOKS": json.dumps([{"kind": "teams"},
                                              {"kind": "wecom", "secret_name": "x"}])})
    text = "\n".join(exc.value.problems)
    assert "STANDBY_WEBHOOKS[0].kind: 'teams'; allowed: wecom, dingtalk, slack" in text
    assert "STANDBY_WEBHOOKS[1]: secret_name needs the secret's region" in text
    assert ("STANDBY_STATE_DSN_SECRET: missing (the mysql state store's reference)"
            in exc.value.problems)
