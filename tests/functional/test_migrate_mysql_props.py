"""Ghostferry's per-key interleavings, run on two real MariaDB 10.11 servers with the
engine's own copy (``SELECT ... FOR UPDATE`` + ``INSERT IGNORE``) and binlog tail
(``REPLACE`` / ``DELETE``): copy->update->log, update->copy->log, update->log->copy, with
inserts, deletes, key changes, and log delivery repeated from an older checkpoint (a runner
that died after applying but before checkpointing replays old events after newer ones).

Invariants at the end (after the copy finished and the tail drained): the target equals the
source, so no write is lost, no delete is resurrected, no stale value overwrote a newer one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.migrate.mysql_binlog import Pos, master_pos, tail
from components.migrate.mysql_sql import Table, copy_rows
from components.sandbox.mariadb import ADMIN, MariaPair
from components.sandbox.migrate_demo_mysql import solo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KV = Table("kv", ("k", "v"), ("k",))
KEYS = range(1, 7)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[MariaPair, MariaPair]]:
    src, dst = solo(31), solo(32)
    try:
        for p in (src, dst):
            with p.connect("primary") as c:
                c.cursor().execute("CREATE TABLE kv (k INT PRIMARY KEY, v VARCHAR(20))")
        yield src, dst
    finally:
        src.close()
        dst.close()


def settings_of(p: MariaPair) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": p.servers["primary"].port, "user": ADMIN,
            "password": p.admin_password}


def rows(c: Any) -> dict[int, str]:
    with c.cursor() as cur:
        cur.execute("SELECT k, v FROM kv")
        return {int(k): str(v) for k, v in cur.fetchall()}


class World:
    """One migration of table kv, driven one step at a time."""

    def __init__(self, src: MariaPair, dst: MariaPair) -> None:
        self.src_p = src
        self.src, self.dst = src.connect("primary"), dst.connect("primary")
        self.app = src.connect("primary")
        for c in (self.src, self.dst):
            c.cursor().execute("TRUNCATE kv")
        self.app.cursor().execute("INSERT INTO kv VALUES (1, 'a'), (2, 'b'), (4, 'd')")
        with self.src.cursor() as cur:
            self.start = master_pos(cur)  # before any row is read
        self.applied = self.start
        self.checkpoints = [self.start]
        self.after: int | None = None
        self.copy_done = False

    def close(self) -> None:
        for c in (self.src, self.dst, self.app):
            c.close()

    def copy(self) -> None:
        """One chunk of one row, the lock held until the target committed it."""
        if self.copy_done:
            return
        sel, args = KV.select_chunk(None if self.after is None else (self.after,), 1)
        with self.src.cursor() as s, self.dst.cursor() as d:
            s.execute("BEGIN")
            s.execute(sel, args)
            got = list(s.fetchall())
            d.execute("BEGIN")
            copy_rows(d, KV, got)
            d.execute("COMMIT")
            s.execute("ROLLBACK")
        if got:
            self.after = int(got[-1][0])
        else:
            self.copy_done = True

    def tail_from(self, start: Pos, batch_rows: int) -> None:
        """``batch_rows`` 1: every source transaction in its own target transaction (a
        checkpoint each); large: all in one, the replay's statements grouped across them."""
        def on_commit(pos: Pos, _: int) -> None:
            self.checkpoints.append(pos)

        result = tail(settings_of(self.src_p), 77_000 + len(self.checkpoints), "orders",
                      {"kv": KV}, start, self.dst, on_commit, batch_rows=batch_rows)
        self.applied = max(self.applied, result.applied)

    def op(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        cur = self.app.cursor()
        if kind == "insert":
            cur.execute("INSERT IGNORE INTO kv VALUES (%s, %s)", (step[1], step[2]))
        elif kind == "update":
            cur.execute("UPDATE kv SET v = %s WHERE k = %s", (step[2], step[1]))
        elif kind == "delete":
            cur.execute("DELETE FROM kv WHERE k = %s", (step[1],))
        elif kind == "move":  # the key changes: possibly behind the copy's cursor
            cur.execute("UPDATE IGNORE kv SET k = %s WHERE k = %s", (step[2], step[1]))
        elif kind == "copy":
            self.copy()
        elif kind == "log":
            self.tail_from(self.applied, 10_000)
        elif kind == "redeliver":  # from an older checkpoint: duplicates, old after new
            self.tail_from(self.checkpoints[step[1] % len(self.checkpoints)], 1)


KEY = st.sampled_from(list(KEYS))
VAL = st.text(alphabet="xyz", min_size=1, max_size=4)
STEP = st.one_of(
    st.tuples(st.just("insert"), KEY, VAL),
    st.tuples(st.just("update"), KEY, VAL),
    st.tuples(st.just("delete"), KEY),
    st.tuples(st.just("move"), KEY, KEY),
    st.tuples(st.just("copy")),
    st.tuples(st.just("log")),
    st.tuples(st.just("redeliver"), st.integers(0, 50)),
)


def run(world: World, steps: list[tuple[Any, ...]]) -> None:
    for step in steps:
        world.op(step)
    for _ in range(len(KEYS) + 2):  # the copy ends (bounded: one key per chunk)
        world.copy()
    assert world.copy_done
    world.tail_from(world.applied, 10_000)
    assert rows(world.dst) == rows(world.src)


@pytest.mark.parametrize("name,steps", [
    # Ghostferry's three per-key orders, for an update and for a delete.
    ("copy->update->log", [("copy",), ("update", 1, "z"), ("log",)]),
    ("update->copy->log", [("update", 1, "z"), ("copy",), ("log",)]),
    ("update->log->copy", [("update", 1, "z"), ("log",), ("copy",)]),
    ("copy->delete->log", [("copy",), ("delete", 1), ("log",)]),
    ("delete->copy->log", [("delete", 1), ("copy",), ("log",)]),
    ("delete->log->copy", [("delete", 1), ("log",), ("copy",)]),
    ("copy past 4, move 4->3 behind the cursor", [("copy",), ("copy",), ("copy",),
                                                  ("move", 4, 3), ("log",)]),
    ("delete, re-insert, delete in one replay batch", [
        ("copy",), ("delete", 1), ("insert", 1, "y"), ("update", 1, "yy"), ("delete", 2),
        ("insert", 2, "q"), ("delete", 1), ("log",)]),
    ("insert->delete->log->redeliver", [("insert", 3, "c"), ("delete", 3), ("log",),
                                        ("copy",), ("copy",), ("redeliver", 0)]),
])
def test_ghostferry_interleavings_end_equal(pair: tuple[MariaPair, MariaPair], name: str,
                                            steps: list[tuple[Any, ...]]) -> None:
    w = World(*pair)
    try:
        run(w, steps)
    finally:
        w.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(STEP, max_size=14))
def test_any_interleaving_with_redelivery_ends_equal(pair: tuple[MariaPair, MariaPair],
                                                     steps: list[tuple[Any, ...]]) -> None:
    w = World(*pair)
    try:
        run(w, steps)
    finally:
        w.close()


def test_applied_position_passes_events_that_are_not_row_changes(
        pair: tuple[MariaPair, MariaPair]) -> None:
    """A drain waits until the applied position reaches the server's: a DDL statement (or a
    rotation) after the last commit must not leave the applied position short of it."""
    w = World(*pair)
    try:
        w.op(("update", 1, "z"))
        w.app.cursor().execute("CREATE DATABASE IF NOT EXISTS unrelated")
        w.app.cursor().execute("FLUSH BINARY LOGS")
        w.app.cursor().execute("CREATE TABLE IF NOT EXISTS unrelated.t (k INT PRIMARY KEY)")
        with w.src.cursor() as cur:
            goal = master_pos(cur)
        w.tail_from(w.applied, 10_000)
        assert w.applied >= goal
        run(w, [])
    finally:
        w.close()


def test_source_write_waits_until_the_copied_chunk_is_on_the_target(
        pair: tuple[MariaPair, MariaPair]) -> None:
    """The FOR UPDATE lock (Ghostferry #169): while a chunk is being written to the target,
    a source write to its rows cannot commit, so it cannot reach the binlog (and be replayed)
    before the copy's older image lands."""
    src, dst = pair
    w = World(src, dst)
    blocker = dst.connect("primary")
    try:
        # Hold the target's gap for k=1, so the copy's INSERT IGNORE waits mid-chunk.
        b = blocker.cursor()
        b.execute("BEGIN")
        b.execute("SELECT * FROM kv WHERE k = 1 FOR UPDATE")
        copier = threading.Thread(target=w.copy, daemon=True)
        copier.start()
        app = src.connect("primary")
        try:
            cur = app.cursor()
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
            waiting = 0
            deadline = time.monotonic() + 20
            with dst.connect("primary") as probe:
                pc = probe.cursor()
                while not waiting and time.monotonic() < deadline:
                    pc.execute("SELECT COUNT(*) FROM information_schema.innodb_trx "
                               "WHERE trx_state = 'LOCK WAIT'")
                    waiting = pc.fetchone()[0]
                    time.sleep(0.02)
            assert waiting, "the copy never reached the target write"
            with pytest.raises(pymysql.err.OperationalError) as refused:
                cur.execute("UPDATE kv SET v = 'new' WHERE k = 1")
            assert refused.value.args[0] == 1205  # lock wait timeout: the chunk holds k=1
            b.execute("ROLLBACK")
            copier.join(timeout=30)
            assert not copier.is_alive()
            cur.execute("UPDATE kv SET v = 'new' WHERE k = 1")  # now it goes through
        finally:
            app.close()
        run(w, [("log",)])
        assert rows(w.dst)[1] == "new"
    finally:
        blocker.close()
        w.close()
