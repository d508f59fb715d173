"""The SQL switch and probe on a real PostgreSQL primary and streaming replica
(``components.sandbox.pg``): regressions for the fence that did not hold, the lag guard that
read 0 on broken replication, the drain position read before terminated sessions were gone,
and the crash between fence and promote that nobody noticed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from components.runtime import sql_failover
from components.runtime.errors import SwitchError
from components.runtime.probes import sql_probe
from components.runtime.sql_switch import SqlPromoteSwitcher
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
    for _ in range(300):
        if cond():
            return
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
    sw = switcher(pg)
    try:
        sw.apply(target(pg), "standby", token=1, reason="planned")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert sw.last["fenced"] is True and sw.last["promoted"] is True and acked
    assert set(acked) <= ids(pg, "standby")
    assert sw.current(target(pg)) == "standby"


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
