"""The SQL switch and probe on a real PostgreSQL primary and streaming replica
(``components.sandbox.pg``): regressions for the fence that did not hold, the lag guard that
read 0 on broken replication, the drain position read before terminated sessions were gone,
and the crash between fence and promote that nobody noticed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pymysql
import pytest
from botocore.config import Config

from components.runtime import sql_failover
from components.runtime.aws.clients import Clients
from components.runtime.aws.db_switchers import RdsPromoteSwitcher
from components.runtime.errors import SwitchError
from components.runtime.probes import sql_probe
from components.runtime.sql_switch import SqlPromoteSwitcher
from components.sandbox import world
from components.sandbox.pg import ADMIN, APP, PgPair


@pytest.fixture
def pg() -> Iterator[PgPair]:
    with PgPair() as pair:
        with pair.connect("primary", APP) as c:
            c.execute("CREATE TABLE orders (id text PRIMARY KEY, item text)")
        yield pair


def target(pg: PgPair, **extra: Any) -> dict[str, Any]:
    return {"scope": "data", "kind": "sql_promote", "engine": "postgres",
            "database": pg.database, "max_lag_s": 5, "drain_timeout_s": 10,
            "sides": {"primary": pg.endpoint("primary"), "standby": pg.endpoint("standby")},
            **extra}


def switcher(pg: PgPair, alerts: list[tuple[str, str]] | None = None) -> SqlPromoteSwitcher:
    return SqlPromoteSwitcher(lambda t: (ADMIN, pg.admin_password),
                              None if alerts is None else lambda a, b: alerts.append((a, b)))


def probe(pg: PgPair, name: str) -> dict[str, Any]:
    r = sql_probe({"scope": "data", "kind": "sql", "engine": "postgres", "side": name}, 2.0,
                  lambda t, timeout: pg.connect(name, ADMIN))
    assert r.ok, r.detail
    return r.data


def insert(pg: PgPair, i: str) -> None:
    with pg.connect("primary", APP) as c:
        c.execute("INSERT INTO orders VALUES (%s, 'x')", (i,))


def ids(pg: PgPair, name: str) -> set[str]:
    with pg.connect(name, APP) as c:
        return {r[0] for r in c.execute("SELECT id FROM orders").fetchall()}


def wait_for(cond: Any, what: str) -> None:
    for _ in range(1500):  # bounded: 30 s of 20 ms naps, for a loaded machine
        try:
            if cond():
                return
        except psycopg.errors.UndefinedTable:
            pass  # the replica has not replayed the CREATE TABLE yet
        threading.Event().wait(0.02)
    raise AssertionError(f"never: {what}")


def test_probe_not_promotable_when_walreceiver_down(pg: PgPair) -> None:
    """The old lag query answered 0 when receive == replay, also when the WAL receiver was
    gone: a replica whose replication broke looked perfectly fresh."""
    with pg.connect("standby") as c:  # point the replica at a dead port: the receiver stops
        c.execute("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1'")
        c.execute("SELECT pg_reload_conf()")
    wait_for(lambda: probe(pg, "standby")["receiver_status"] is None, "receiver gone")
    for i in range(5):
        insert(pg, f"lost{i}")  # the primary keeps writing; the replica never gets it
    data = probe(pg, "standby")
    assert data["lag_s"] is None  # unknown, not 0
    assert data["replica"] is True and data["replicating"] is False


def test_probe_streaming_replica_and_fenced_primary(pg: PgPair) -> None:
    insert(pg, "a")
    wait_for(lambda: "a" in ids(pg, "standby"), "replicated")
    stby = probe(pg, "standby")
    assert stby["replicating"] is True and stby["lag_s"] == 0.0
    assert stby["applied_all_received"] is True and stby["received_age_s"] is not None
    assert probe(pg, "primary")["writable"] is True
    with pg.connect("primary") as c:
        sql_failover.fence(c, "postgres")
    # A fenced primary still answers SELECT 1; the probe says it is not writable.
    assert probe(pg, "primary")["writable"] is False


def test_probe_after_primary_killed_says_everything_received_was_applied(pg: PgPair) -> None:
    insert(pg, "b")
    wait_for(lambda: "b" in ids(pg, "standby"), "replicated")
    pg.kill("primary")
    wait_for(lambda: not probe(pg, "standby")["replicating"], "replication down")
    data = probe(pg, "standby")
    assert data["applied_all_received"] is True and data["lag_s"] is None
    assert data["last_applied_age_s"] is not None and data["received_age_s"] is None
    sw = switcher(pg)
    sw.apply(target(pg), "standby", token=3, reason="primary down")
    assert sw.last["fenced"] is False and "unreachable" in sw.last
    assert "b" in ids(pg, "standby") and probe(pg, "standby")["writable"] is True


def test_fence_failure_other_than_unreachable_aborts(pg: PgPair) -> None:
    """Before: an authentication error, "too many connections" or any other failure to fence
    counted as "unreachable", and the replica was promoted next to a writable primary."""
    hba = pg.servers["primary"].datadir / "pg_hba.conf"
    hba.write_text(f"host {pg.database} {ADMIN} 127.0.0.1/32 reject\n" + hba.read_text())
    with pg.connect("primary") as c:
        c.execute("SELECT pg_reload_conf()")
    sw = switcher(pg)
    with pytest.raises(SwitchError, match="it is reachable"):
        sw.apply(target(pg), "standby", token=1, reason="planned")
    assert probe(pg, "standby")["replica"] is True  # nothing promoted
    assert probe(pg, "primary")["writable"] is True
    insert(pg, "still-primary")


def test_terminate_waits_for_backends_before_the_drain_position(pg: PgPair) -> None:
    """pg_terminate_backend(pid) only signals: the backend could still commit after the
    drain position was read. A backend with many temp tables takes a while to exit."""
    victim = pg.connect("primary", APP)
    victim.execute("SELECT pg_backend_pid()")
    pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
    victim.execute("DO $$ BEGIN FOR i IN 1..1500 LOOP EXECUTE format("
                   "'CREATE TEMP TABLE t%s (x int)', i); END LOOP; END $$")
    with pg.connect("primary") as c:
        sql_failover.fence(c, "postgres")
        left = c.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                         (pid,)).fetchone()[0]
    assert left == 0


def test_planned_switchover_with_concurrent_writers_loses_nothing(pg: PgPair) -> None:
    acked: list[str] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        for k in range(5000):
            if stop.is_set():
                return
            try:
                insert(pg, f"w{n}-{k}")
                acked.append(f"w{n}-{k}")
            except psycopg.Error:
                threading.Event().wait(0.01)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    threading.Event().wait(0.3)
    alerts: list[tuple[str, str]] = []
    sw = switcher(pg, alerts)
    try:
        sw.apply(target(pg), "standby", token=1, reason="planned")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert sw.last["fenced"] is True and sw.last["promoted"] is True and acked
    assert set(acked) <= ids(pg, "standby")
    assert sw.current(target(pg)) == "standby"
    # Applied but never committed (the monitor died): the heartbeat of the committed side
    # says so, once, and fences nothing.
    for _ in range(2):
        sw.heartbeat(target(pg), "primary", token=0)
    assert [a[0] for a in alerts] == ["data: standby is the writable side but primary is the "
                                      "committed one"]
    assert probe(pg, "standby")["writable"] is True


def test_drain_honours_timeout_and_unfences(pg: PgPair) -> None:
    with pg.connect("standby") as c:
        c.execute("SELECT pg_wal_replay_pause()")
    insert(pg, "paused")
    sw = switcher(pg)
    with pytest.raises(SwitchError, match="within drain_timeout_s=1 s"):
        sw.apply(target(pg, drain_timeout_s=1), "standby", token=1, reason="planned")
    assert probe(pg, "primary")["writable"] is True
    assert probe(pg, "standby")["replica"] is True


def test_unfenced_during_drain_is_not_promoted(pg: PgPair, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    """An operator (or a racing heartbeat) unfencing the old primary mid-drain: the fence is
    re-checked from a fresh session before promoting."""
    real = sql_failover.wait_caught_up

    def drain_then_unfence(c: Any, engine: str, pos: str, timeout_s: float) -> bool:
        ok = real(c, engine, pos, timeout_s)
        with pg.connect("primary") as other:
            sql_failover.unfence(other, "postgres")
        return ok

    monkeypatch.setattr(sql_failover, "wait_caught_up", drain_then_unfence)
    with pytest.raises(SwitchError, match="unfenced during the drain"):
        switcher(pg).apply(target(pg), "standby", token=1, reason="planned")
    assert probe(pg, "standby")["replica"] is True


def test_crash_between_fence_and_promote_alerts_then_rolls_back(pg: PgPair) -> None:
    """Both sides read-only and nobody told: the heartbeat now raises a critical alert once
    the fence outlived its grace, and a switch back to the fenced side rolls it back."""
    with pg.connect("primary") as c:  # what a switch did before it died
        sql_failover.fence(c, "postgres", token=4)
    alerts: list[tuple[str, str]] = []
    sw = switcher(pg, alerts)
    sw.heartbeat(target(pg, fence_grace_s=3600), "primary", token=3)
    assert alerts == []  # a switch may be draining right now
    sw.heartbeat(target(pg, fence_grace_s=0), "primary", token=3)
    assert len(alerts) == 1 and "NO writable database" in alerts[0][0]
    sw.apply(target(pg), "primary", token=5, reason="roll back")
    assert sw.last.get("rolled_back") is True
    assert probe(pg, "primary")["writable"] is True and probe(pg, "standby")["replica"] is True
    insert(pg, "after-rollback")


def test_crash_between_fence_and_promote_can_be_finished(pg: PgPair) -> None:
    insert(pg, "before")
    with pg.connect("primary") as c:
        sql_failover.fence(c, "postgres", token=4)
    sw = switcher(pg)
    with pytest.raises(SwitchError, match="NO writable database"):  # no alert channel: raised
        sw.heartbeat(target(pg, fence_grace_s=0), "primary", token=3)
    sw.apply(target(pg), "standby", token=5, reason="finish")
    assert sw.last["fenced_by_us"] is False and sw.last["promoted"] is True
    assert "before" in ids(pg, "standby") and sw.current(target(pg)) == "standby"


# -- rds_promote on the moto server: the old primary is fenced before the promotion ------

R1, R2 = world.R1, world.R2


class _DeadRegion(Clients):
    """The RDS API of one region refuses connections (a real refused TCP connect)."""

    def __init__(self, dead: str) -> None:
        super().__init__()
        self.dead = dead

    def get(self, service: str, region: str) -> Any:
        if region != self.dead:
            return super().get(service, region)
        return boto3.client(service, region_name=region,
                            endpoint_url=f"http://127.0.0.1:{_closed_port()}",
                            config=Config(connect_timeout=1, retries={"max_attempts": 1}))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rds_pair(group: str | None) -> dict[str, Any]:
    rds1, rds2 = world.client("rds", R1), world.client("rds", R2)
    extra: dict[str, Any] = {}
    if group:
        for r in (rds1, rds2):  # moto looks the source's group up in the replica's region too
            r.create_db_parameter_group(DBParameterGroupName=group, Description="shop",
                                        DBParameterGroupFamily="postgres15")
        extra["DBParameterGroupName"] = group
    src = rds1.create_db_instance(DBInstanceIdentifier="shop-db", Engine="postgres",
                                  DBInstanceClass="db.t3.micro", AllocatedStorage=20,
                                  MasterUsername="app", MasterUserPassword="x" * 12, **extra)
    rds2.create_db_instance_read_replica(
        DBInstanceIdentifier="shop-db-replica",
        SourceDBInstanceIdentifier=src["DBInstance"]["DBInstanceArn"])
    return {"scope": "data", "kind": "rds_promote", "region": R2, "max_lag_s": 5,
            "instance_id": "shop-db-replica", "fence": "parameter_group"}


def read_only_parameter(group: str) -> str | None:
    params = world.client("rds", R1).describe_db_parameters(
        DBParameterGroupName=group)["Parameters"]
    return next((p["ParameterValue"] for p in params
                 if p["ParameterName"] == "default_transaction_read_only"), None)


@pytest.mark.usefixtures("aws")
def test_rds_promote_fences_old_primary_parameter_group_first() -> None:
    """Before: rds_promote never fenced; the old primary stayed writable."""
    t = rds_pair("shop-db-params")
    sw = RdsPromoteSwitcher(Clients())
    sw.apply(t, "standby", 3, "primary down")
    assert read_only_parameter("shop-db-params") == "1"
    assert sw.last["fenced"] is True and sw.last["promoted"] is True


@pytest.mark.usefixtures("aws")
def test_rds_fence_failure_in_a_reachable_region_aborts_the_promotion() -> None:
    t = rds_pair(None)  # default.postgres15 cannot be modified
    sw = RdsPromoteSwitcher(Clients())
    with pytest.raises(SwitchError, match="default parameter group"):
        sw.apply(t, "standby", 3, "primary down")
    assert "promoted" not in sw.last


@pytest.mark.usefixtures("aws")
def test_rds_unreachable_primary_region_is_promoted_past_unfenced() -> None:
    t = rds_pair("shop-db-params")
    sw = RdsPromoteSwitcher(_DeadRegion(R1))
    sw.apply(t, "standby", 3, "region down")
    assert sw.last["fenced"] is False and "unreachable" in sw.last and sw.last["promoted"]
    assert read_only_parameter("shop-db-params") is None


@pytest.mark.usefixtures("aws")
def test_rds_fence_mode_is_checked() -> None:
    t = {**rds_pair("g"), "fence": "security_group"}
    with pytest.raises(SwitchError, match="allowed: pointer_order, parameter_group"):
        RdsPromoteSwitcher(Clients()).apply(t, "standby", 3, "x")


# -- MySQL 8.4 spellings (no MySQL 8.4 server on Debian: a cursor that answers as its manual) --


class _MySQL84Cursor:
    """Answers as MySQL 8.4 does (Reference Manual 8.4, "Changes in MySQL 8.4": SHOW SLAVE
    STATUS, SHOW MASTER STATUS, STOP/RESET SLAVE and MASTER_POS_WAIT() were removed; a removed
    statement is a syntax error 1064, a removed function error 1305)."""

    COLUMNS = ("Replica_IO_Running", "Replica_SQL_Running", "Seconds_Behind_Source",
               "Source_Log_File", "Read_Source_Log_Pos", "Relay_Source_Log_File",
               "Exec_Source_Log_Pos")

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.description: Any = None
        self._row: Any = None

    def execute(self, sql: str, args: Any = None) -> None:
        if "SLAVE" in sql or "MASTER STATUS" in sql:
            raise pymysql.err.ProgrammingError(1064, f"syntax error near {sql!r}")
        if "MASTER_POS_WAIT" in sql:
            raise pymysql.err.OperationalError(1305, "FUNCTION MASTER_POS_WAIT does not exist")
        self.ran.append(sql)
        self.description, self._row = None, None
        if sql == "SHOW REPLICA STATUS":
            self.description = [(c,) for c in self.COLUMNS]
            self._row = ("Yes", "Yes", 0, "binlog.000003", 900, "binlog.000003", 900)
        elif sql == "SHOW BINARY LOG STATUS":
            self._row = ("binlog.000003", 900, "", "", "")
        elif sql.startswith("SELECT SOURCE_POS_WAIT"):
            self._row = (0,)
        elif sql in ("SELECT 1", "SELECT @@global.read_only"):
            self._row = (1,)

    def fetchone(self) -> Any:
        return self._row


class _Conn:
    def __init__(self) -> None:
        self.cur = _MySQL84Cursor()

    def cursor(self) -> _MySQL84Cursor:
        return self.cur


def test_mysql_84_spellings_are_used_when_the_old_ones_are_gone() -> None:
    c = _Conn()
    r = sql_failover.role(c, "mysql")
    assert r == {"replica": True, "read_only": True, "position": "binlog.000003:900"}
    assert sql_failover.position(c, "mysql") == "binlog.000003:900"
    assert sql_failover.wait_caught_up(c, "mysql", "binlog.000003:900", 1.0)
    sql_failover.promote(c, "mysql", 5.0)
    assert {"STOP REPLICA", "RESET REPLICA ALL", "SHOW BINARY LOG STATUS"} <= set(c.cur.ran)
    data = probe_mysql(c)
    assert data["replicating"] is True and data["lag_s"] == 0.0
    assert data["applied_all_received"] is True


def probe_mysql(c: _Conn) -> dict[str, Any]:
    r = sql_probe({"scope": "data", "kind": "sql", "engine": "mysql"}, 1.0,
                  lambda t, timeout: _Closing(c))
    assert r.ok, r.detail
    return r.data


class _Closing(_Conn):
    def __init__(self, c: _Conn) -> None:
        self.cur = c.cur

    def close(self) -> None:
        return None
