"""The SQL switch and probe on a real MariaDB 10.11 primary and GTID replica
(``components.sandbox.mariadb``): fence, drain with its timeout honoured, promote, failover
after the primary is killed, a planned switchover that loses nothing, and the heartbeat
fencing an old primary that comes back writable. Never skipped: ``.ci/run`` installs MariaDB."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from components.runtime import sql_failover
from components.runtime.errors import SwitchError
from components.runtime.probes import sql_probe
from components.runtime.sql_switch import SqlPromoteSwitcher
from components.sandbox.mariadb import ADMIN, APP, MariaPair


@pytest.fixture
def maria() -> Iterator[MariaPair]:
    with MariaPair() as pair:
        with pair.connect("primary", APP) as c:
            c.cursor().execute("CREATE TABLE orders (id varchar(64) PRIMARY KEY, item text)")
        yield pair


def target(m: MariaPair, **extra: Any) -> dict[str, Any]:
    return {"scope": "data", "kind": "sql_promote", "engine": "mysql", "database": m.database,
            "sides": {"primary": m.endpoint("primary"), "standby": m.endpoint("standby")},
            "max_lag_s": 5, "drain_timeout_s": 10, **extra}


def switcher(m: MariaPair) -> SqlPromoteSwitcher:
    return SqlPromoteSwitcher(lambda t: (ADMIN, m.admin_password))


def probe(m: MariaPair, name: str) -> dict[str, Any]:
    def connect(t: Any, timeout: float) -> Any:
        return m.connect(name, ADMIN)

    r = sql_probe({"scope": "data", "kind": "sql", "engine": "mysql", "side": name}, 2.0, connect)
    assert r.ok, r.detail
    return r.data


def ids(m: MariaPair, name: str) -> set[str]:
    with m.connect(name, ADMIN) as c:
        cur = c.cursor()
        cur.execute("SELECT id FROM orders")
        return {r[0] for r in cur.fetchall()}


def insert(m: MariaPair, name: str, i: str) -> None:
    with m.connect(name, APP) as c:
        c.cursor().execute("INSERT INTO orders VALUES (%s, 'x')", (i,))


def wait_applied(m: MariaPair, i: str) -> None:
    for _ in range(1500):  # bounded: 30 s of 20 ms naps, for a loaded machine
        try:
            if i in ids(m, "standby"):
                return
        except pymysql.err.ProgrammingError:
            pass  # the replica has not applied the CREATE TABLE yet
        threading.Event().wait(0.02)
    raise AssertionError(f"{i} never reached the replica")


def test_probe_tells_writable_primary_from_streaming_replica(maria: MariaPair) -> None:
    insert(maria, "primary", "p1")
    wait_applied(maria, "p1")
    prim, stby = probe(maria, "primary"), probe(maria, "standby")
    assert prim["writable"] is True and prim["replica"] is False
    assert stby["replica"] is True and stby["writable"] is False
    assert stby["replicating"] is True and stby["lag_s"] is not None
    assert stby["applied_all_received"] is True and stby["received"] == stby["applied"]


def test_fence_kills_app_sessions_and_refuses_writes(maria: MariaPair) -> None:
    app = maria.connect("primary", APP)
    app.cursor().execute("BEGIN")
    app.cursor().execute("INSERT INTO orders VALUES ('open', 'x')")
    with maria.connect("primary", ADMIN) as c:
        sql_failover.fence(c, "mysql", token=7)
    with pytest.raises(pymysql.err.OperationalError):
        app.cursor().execute("COMMIT")  # the session was killed: the write never commits
    with pytest.raises(pymysql.err.OperationalError) as refused:
        insert(maria, "primary", "late")
    assert refused.value.args[0] == 1290  # --read-only
    assert probe(maria, "primary")["writable"] is False
    with maria.connect("primary", ADMIN) as c:
        age = sql_failover.fence_age_s(c, "mysql")
    assert age is not None and age >= 0
    assert "open" not in ids(maria, "primary")


def test_planned_switchover_loses_no_acknowledged_write(maria: MariaPair) -> None:
    acked: list[str] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        for k in range(2000):
            if stop.is_set():
                return
            try:
                insert(maria, "primary", f"w{n}-{k}")
                acked.append(f"w{n}-{k}")
            except pymysql.err.MySQLError:
                threading.Event().wait(0.01)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    threading.Event().wait(0.3)
    sw = switcher(maria)
    try:
        sw.apply(target(maria), "standby", token=1, reason="planned")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert sw.last["fenced"] is True and sw.last["promoted"] is True
    assert acked, "no write was acknowledged before the switch"
    assert set(acked) <= ids(maria, "standby")
    assert sw.current(target(maria)) == "standby"
    assert probe(maria, "standby")["writable"] is True
    assert probe(maria, "primary")["writable"] is False


def test_drain_honours_drain_timeout_and_gives_writes_back(maria: MariaPair) -> None:
    """MASTER_POS_WAIT(f, p, 0) waits forever on MariaDB: the drain ignored drain_timeout_s
    and died on the driver's 5 s read timeout instead."""
    hold = maria.connect("standby", ADMIN)
    hold.cursor().execute("FLUSH TABLES WITH READ LOCK")  # the replica stops applying
    try:
        insert(maria, "primary", "stuck")
        sw = switcher(maria)
        with pytest.raises(SwitchError, match="within drain_timeout_s=1 s"):
            sw.apply(target(maria, drain_timeout_s=1), "standby", token=1, reason="planned")
    finally:
        hold.close()
    assert probe(maria, "primary")["writable"] is True  # the fence we set was undone
    assert probe(maria, "standby")["replica"] is True  # and nothing was promoted
    insert(maria, "primary", "after")


def test_failover_after_primary_killed_promotes_when_all_received_was_applied(
        maria: MariaPair) -> None:
    """Seconds_Behind_Master is NULL once the primary is gone; the probe still tells that
    the replica applied everything it received, so the failover can go ahead."""
    for i in range(20):
        insert(maria, "primary", f"k{i}")
    wait_applied(maria, "k19")
    maria.kill("primary")
    data = probe(maria, "standby")
    for _ in range(600):  # bounded: the IO thread notices the dead primary within seconds
        if data["replicating"] is False:
            break
        threading.Event().wait(0.05)
        data = probe(maria, "standby")
    assert data["replicating"] is False and data["lag_s"] is None
    assert data["applied_all_received"] is True and data["replica"] is True
    sw = switcher(maria)
    sw.apply(target(maria), "standby", token=2, reason="primary down")
    assert sw.last["fenced"] is False and "unreachable" in sw.last
    assert {f"k{i}" for i in range(20)} <= ids(maria, "standby")
    assert probe(maria, "standby")["writable"] is True
    # The old primary comes back writable (MariaDB does not persist read_only): the
    # heartbeat fences it in the next round.
    maria.restart("primary")
    assert probe(maria, "primary")["writable"] is True
    sw.heartbeat(target(maria), "standby", token=2)
    assert probe(maria, "primary")["writable"] is False


def test_fence_failure_other_than_unreachable_aborts_the_switch(maria: MariaPair) -> None:
    """Before: any exception while fencing counted as "unreachable" and the replica was
    promoted with the old primary still writable."""
    with maria.connect("primary", ADMIN) as c:  # the primary alone refuses the admin login
        cur = c.cursor()
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute(f"ALTER USER '{ADMIN}'@'127.0.0.1' ACCOUNT LOCK")
    sw = switcher(maria)
    with pytest.raises(SwitchError, match="reachable"):
        sw.apply(target(maria), "standby", token=1, reason="planned")
    assert probe(maria, "standby")["replica"] is True
    insert(maria, "primary", "still-primary")
