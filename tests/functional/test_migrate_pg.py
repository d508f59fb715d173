"""``standby migrate`` PostgreSQL -> PostgreSQL against real PostgreSQL 15 servers (two
clusters with wal_level = logical, in temp dirs, on free ports), with an application writer
doing inserts, updates and deletes while the migration copies and catches up."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.migrate import Migration, MigrationError, Phase, TransitionError, open_migration
from components.sandbox.pg import APP, PgPair, PgUnavailable, pg_bin
from tests.conftest import ROOT

try:
    pg_bin()
except PgUnavailable as exc:  # pragma: no cover - the image has PostgreSQL 15
    pytest.skip(str(exc), allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SCHEMA = [
    "CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int, note text)",
    "CREATE TABLE pairs (a int, b text, v numeric, PRIMARY KEY (a, b))",
    "CREATE TABLE events (payload jsonb NOT NULL)",  # no key: replica identity full
    "ALTER TABLE events REPLICA IDENTITY FULL",
]


@pytest.fixture
def pgs() -> Iterator[tuple[PgPair, PgPair]]:
    src = PgPair(wal_level="logical", with_standby=False)
    dst = PgPair(wal_level="logical", with_standby=False)
    try:
        src.start()
        dst.start()
        for p in (src, dst):
            with p.connect("primary", APP) as c:
                for stmt in SCHEMA:
                    c.execute(stmt)
        with src.connect("primary", APP) as c:
            c.execute("INSERT INTO items (name, qty) SELECT 'n' || g, g "
                      "FROM generate_series(1, 30000) g")
            c.execute("INSERT INTO pairs SELECT g % 50, 'k' || g, g / 3.0 "
                      "FROM generate_series(1, 5000) g")
            c.execute("INSERT INTO events SELECT jsonb_build_object('n', g) "
                      "FROM generate_series(1, 500) g")
        yield src, dst
    finally:
        src.close()
        dst.close()


def table_state(p: PgPair) -> dict[str, tuple[int, str]]:
    """Count and an order-independent digest of every table, read as the admin."""
    out = {}
    with p.connect("primary", dbname=p.database) as c:
        for t, order in (("items", "id"), ("pairs", "a, b"), ("events", "payload::text")):
            out[t] = c.execute(f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY "
                               f"{order})), '') FROM {t} t").fetchone()
    return out


def artifacts(p: PgPair) -> dict[str, Any]:
    with p.connect("primary", dbname=p.database) as c:
        return {
            "publications": c.execute("SELECT count(*) FROM pg_publication").fetchone()[0],
            "subscriptions": c.execute("SELECT count(*) FROM pg_subscription").fetchone()[0],
            "slots": c.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0],
            "grants": c.execute("SELECT c.relname, a.grantee::regrole::text, a.privilege_type "
                                "FROM pg_class c CROSS JOIN aclexplode(coalesce(c.relacl, "
                                "acldefault('r', c.relowner))) a WHERE c.relname IN "
                                "('items', 'pairs', 'events') AND a.privilege_type IN "
                                "('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE') "
                                "ORDER BY 1, 2, 3").fetchall(),
        }


class Writer:
    """The application: inserts, updates and deletes through the app role, as fast as one
    connection goes, until stopped (bounded by ``max_ops``). Errors are kept, not raised."""

    def __init__(self, p: PgPair, seed: int, max_ops: int = 200_000) -> None:
        self.p, self.rng, self.max_ops = p, random.Random(seed), max_ops
        self.ops = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        with self.p.connect("primary", APP) as c:
            while not self._stop.is_set() and self.ops < self.max_ops:
                self.one(c)
                time.sleep(0.001)

    def one(self, c: Any) -> None:
        r = self.rng.random()
        k = self.rng.randint(1, 32000)
        try:
            if r < 0.35:
                c.execute("INSERT INTO items (name, qty) VALUES (%s, %s)", (f"w{k}", k))
            elif r < 0.65:
                c.execute("UPDATE items SET qty = qty + 1, note = %s WHERE id = %s",
                          (f"u{self.ops}", k))
            elif r < 0.8:
                c.execute("DELETE FROM items WHERE id = %s", (k,))
            elif r < 0.9:
                c.execute("INSERT INTO pairs VALUES (%s, %s, %s) ON CONFLICT (a, b) DO UPDATE "
                          "SET v = pairs.v + 1", (k % 50, f"k{k}", k))
            elif r < 0.95:
                c.execute("DELETE FROM pairs WHERE a = %s AND b = %s", (k % 50, f"k{k}"))
            else:
                c.execute("INSERT INTO events VALUES (jsonb_build_object('w', %s::int))", (k,))
            self.ops += 1
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")


def migration(src: PgPair, dst: PgPair, tmp_path: Path, mid: str = "orders") -> Migration:
    return open_migration(mid, src.url(), dst.url(), f"sqlite:///{tmp_path}/state.sqlite",
                          lease_s=5, poll_s=0.1, max_freeze_s=10,
                          adapter_options={"chunk_rows": 2000, "drain_timeout_s": 20})


def test_migration_under_concurrent_writer_cuts_over_with_zero_mismatches(
        pgs: tuple[PgPair, PgPair], tmp_path: Path) -> None:
    src, dst = pgs
    m = migration(src, dst, tmp_path)
    with Writer(src, seed=1) as w:
        rec = m.run(until=Phase.VERIFY, max_s=120)
        assert rec.phase == Phase.VERIFY
        assert m.verify()["mismatches"] is not None  # a verify while the writer goes on
        w.stop()
        assert w.errors == [] and w.ops > 100
        doc = m.cutover(writes_stopped=True)
    assert doc["phase"] == "reverse-sync"
    assert doc["verify"]["exact"] and doc["mismatches"] == 0
    assert table_state(src) == table_state(dst)
    # Chunks cover each row once: bounds in key order, not in the text order of the keys.
    counted = {t.split(".")[1]: v["rows_source"] for t, v in doc["verify"]["tables"].items()}
    assert counted == {t: n for t, (n, _) in table_state(src).items()}
    assert doc["verify"]["chunks"] > 15
    with src.connect("primary", APP) as c, pytest.raises(Exception, match="permission denied"):
        c.execute("INSERT INTO items (name) VALUES ('fenced')")
    with dst.connect("primary", APP) as c:  # setval: the next id follows the source's last
        new_id = c.execute("INSERT INTO items (name) VALUES ('after') RETURNING id").fetchone()
    with src.connect("primary", dbname=src.database) as c:
        assert new_id[0] > c.execute("SELECT last_value FROM items_id_seq").fetchone()[0]
    assert m.finalize()["phase"] == "finalized"
    a, b = artifacts(src), artifacts(dst)
    assert (a["publications"], a["subscriptions"], a["slots"]) == (0, 0, 0)
    assert (b["publications"], b["subscriptions"], b["slots"]) == (0, 0, 0)
    assert a["grants"] == []  # the old side stays fenced (owner included)


def test_rollback_after_cutover_restores_every_write_made_since(
        pgs: tuple[PgPair, PgPair], tmp_path: Path) -> None:
    src, dst = pgs
    grants_before = artifacts(src)["grants"]
    m = migration(src, dst, tmp_path)
    with Writer(src, seed=2):
        assert m.run(until=Phase.VERIFY, max_s=120).phase == Phase.VERIFY
    m.cutover(writes_stopped=True)
    with Writer(dst, seed=3) as w:  # the application now writes to the target
        deadline = time.monotonic() + 20
        while w.ops < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert w.errors == [] and w.ops >= 500
    after_cutover = table_state(dst)
    doc = m.rollback(writes_stopped=True)
    assert doc["phase"] == "rolled-back" and doc["mismatches"] == 0
    assert table_state(src) == after_cutover
    with src.connect("primary", APP) as c:  # writable again, sequence past the target's ids
        new_id = c.execute("INSERT INTO items (name) VALUES ('back') RETURNING id").fetchone()
    with dst.connect("primary", dbname=dst.database) as c:
        assert new_id[0] > c.execute("SELECT max(id) FROM items").fetchone()[0]
    a = artifacts(src)
    assert a["grants"] == grants_before
    assert (a["publications"], a["subscriptions"], a["slots"]) == (0, 0, 0)
    with dst.connect("primary", APP) as c, pytest.raises(Exception, match="permission denied"):
        c.execute("INSERT INTO items (name) VALUES ('target stays fenced')")


@pytest.mark.parametrize("stop_at", [Phase.CAPTURE, Phase.VERIFY])
def test_abort_before_cutover_leaves_the_source_as_it_was(
        pgs: tuple[PgPair, PgPair], tmp_path: Path, stop_at: Phase) -> None:
    src, dst = pgs
    before, data_before = artifacts(src), table_state(src)
    target_grants = artifacts(dst)["grants"]
    m = migration(src, dst, tmp_path)
    if stop_at == Phase.CAPTURE:
        m.run(until=Phase.BACKFILL, max_s=60)  # capture done: slot and publication exist
        assert artifacts(src)["slots"] == 1
    else:
        m.run(until=Phase.VERIFY, max_s=120)
    assert m.abort()["phase"] == "aborted"
    assert artifacts(src) == before and table_state(src) == data_before
    b = artifacts(dst)
    assert (b["subscriptions"], b["grants"]) == (0, target_grants)
    with pytest.raises(TransitionError, match="the phase is aborted"):
        m.cutover(writes_stopped=True)


def test_cutover_refused_when_the_target_differs_and_source_stays_writable(
        pgs: tuple[PgPair, PgPair], tmp_path: Path) -> None:
    src, dst = pgs
    m = migration(src, dst, tmp_path)
    assert m.run(until=Phase.VERIFY, max_s=120).phase == Phase.VERIFY
    with dst.connect("primary", dbname=dst.database) as c:  # a rogue write on the target
        c.execute("UPDATE items SET qty = -1 WHERE id = 7")
    with pytest.raises(MigrationError, match=r"1 rows differ .*public\.items\[\"7\"\]"):
        m.cutover(writes_stopped=True)
    doc = m.status()
    assert doc["phase"] == "verify" and doc["mismatches"] == 1
    with src.connect("primary", APP) as c:
        c.execute("INSERT INTO items (name) VALUES ('still writable')")


def test_preflight_refuses_missing_replica_identity_and_names_the_table(
        pgs: tuple[PgPair, PgPair], tmp_path: Path) -> None:
    src, dst = pgs
    for p in (src, dst):
        with p.connect("primary", APP) as c:
            c.execute("CREATE TABLE nokey (x int)")
    out = cli("plan", "--id", "nokey", "--source", src.url(), "--target", dst.url(),
              "--state", f"sqlite:///{tmp_path}/s.sqlite", "--json")
    assert out.returncode == 1
    plan = json.loads(out.stdout)
    bad = [c for c in plan["checks"] if not c["ok"]]
    assert [c["name"] for c in bad] == ["public.nokey replica identity"]
    assert "REPLICA IDENTITY FULL" in bad[0]["detail"]
    assert plan["sequences"] == ["public.items_id_seq"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "components", "migrate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def phase_in(state: Path, mid: str) -> str | None:
    try:
        with sqlite3.connect(state, timeout=5) as db:
            row = db.execute("SELECT phase FROM migrations WHERE id = ?", (mid,)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


@pytest.mark.parametrize("kill_in", ["backfill", "verify"])
def test_killed_runner_resumes_and_finishes_under_a_writer(
        pgs: tuple[PgPair, PgPair], tmp_path: Path, kill_in: str) -> None:
    src, dst = pgs
    state = tmp_path / "state.sqlite"
    base = ["--id", "orders", "--source", src.url(), "--target", dst.url(),
            "--state", f"sqlite:///{state}"]
    with Writer(src, seed=4) as w:
        proc = subprocess.Popen([sys.executable, "-m", "components", "migrate", "start", *base,
                                 "--lease-s", "2", "--poll-s", "0.1"], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while phase_in(state, "orders") != kill_in and time.monotonic() < deadline:
                time.sleep(0.01)
            assert phase_in(state, "orders") == kill_in
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        out = cli("start", *base, "--until", "verify", "--lease-s", "2", "--poll-s", "0.1",
                  "--json")
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["phase"] == "verify" and doc["mismatches"] == 0
        w.stop()
        assert w.errors == []
    out = cli("cutover", *base, "--writes-stopped", "--max-freeze-s", "10", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["phase"] == "reverse-sync" and doc["mismatches"] == 0
    assert {"phase", "counts", "lag", "mismatches"} <= doc.keys()
    assert table_state(src) == table_state(dst)
    out = cli("verify", *base, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["mismatches"] == 0
    tokens = {h["token"] for h in Migration(
        "orders", open_migration("orders", src.url(), dst.url(), f"sqlite:///{state}").adapter,
        open_migration("orders", src.url(), dst.url(), f"sqlite:///{state}").store,
        source_shown=src.url().replace(f":{src.admin_password}", ""),
        target_shown=dst.url().replace(f":{dst.admin_password}", ""),
        create=False).store.history("orders")}
    assert len(tokens) >= 2  # the phases were written by the killed runner and its successor


def test_ctrl_c_pauses_and_commands_from_another_terminal_reach_the_runner(
        pgs: tuple[PgPair, PgPair], tmp_path: Path) -> None:
    """The README flow: ``start`` in the foreground (Ctrl-C pauses, a later start resumes);
    ``cutover`` and ``finalize`` from another terminal act through the state store."""
    src, dst = pgs
    state = tmp_path / "state.sqlite"
    base = ["--id", "orders", "--source", src.url(), "--target", dst.url(),
            "--state", f"sqlite:///{state}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = [sys.executable, "-m", "components", "migrate", "start", *base, "--lease-s", "3",
             "--poll-s", "0.1"]
    first = subprocess.Popen(start, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while phase_in(state, "orders") != "verify" and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=30)
    assert first.returncode == 130 and "paused" in err
    doc = json.loads(cli("status", *base, "--json").stdout)
    assert doc["paused"] is True and doc["runner"] is None
    runner = subprocess.Popen(start, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            doc = json.loads(cli("status", *base, "--json").stdout)
            if doc["runner"] and not doc["paused"] and doc["mismatches"] == 0:
                break
            time.sleep(0.2)
        assert doc["runner"] and doc["mismatches"] == 0
        out = cli("cutover", *base, "--writes-stopped", "--max-freeze-s", "10", "--json")
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["phase"] == "reverse-sync" and doc["last_request"]["command"] == "cutover"
        assert doc["runner"] is not None  # done by the live runner, not by this command
        out = cli("abort", *base)
        assert out.returncode == 1 and "only possible before cutover" in out.stderr
        assert cli("finalize", *base).returncode == 0
        runner.wait(timeout=60)
        assert runner.returncode == 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=10)
    assert table_state(src) == table_state(dst)


def test_write_between_final_verify_and_fence_is_neither_lost_nor_reused(
        pgs: tuple[PgPair, PgPair], tmp_path: Path) -> None:
    """A caller that said --writes-stopped too early: one write commits after the final
    verify, just before the source is fenced, and one transaction is still open across the
    fence. The first used to be lost (the forward subscription was disabled right after
    the fence) and its id reused (sequences were copied before the fence); the second
    committed on the fenced source after the forward direction stopped."""
    from components.migrate import SQLiteStore
    from components.migrate.postgres import PostgresAdapter
    from components.migrate.urls import endpoint

    src, dst = pgs
    written: list[int] = []
    late = src.connect("primary", APP)
    late.autocommit = False

    class WindowWrite(PostgresAdapter):
        def _fence(self, ctx: Any, side: str) -> None:
            if side == "source" and ctx.phase == Phase.CUTOVER and not written:
                with src.connect("primary", APP) as c:
                    written.append(c.execute("INSERT INTO items (name) VALUES ('window') "
                                             "RETURNING id").fetchone()[0])
                late.execute("INSERT INTO items (name) VALUES ('open across the fence')")
            super()._fence(ctx, side)

    s, t = endpoint(src.url()), endpoint(dst.url(), "--target")
    m = Migration("orders", WindowWrite("orders", s, t, drain_timeout_s=20),
                  SQLiteStore(tmp_path / "state.sqlite"), source_shown=s.shown,
                  target_shown=t.shown, lease_s=5, poll_s=0.1, max_freeze_s=10)
    assert m.run(until=Phase.VERIFY, max_s=120).phase == Phase.VERIFY
    assert m.cutover(writes_stopped=True)["phase"] == "reverse-sync"
    with pytest.raises(Exception, match="terminat"):
        late.commit()  # rolled back by the cutover: never acknowledged
    late.close()
    assert table_state(src) == table_state(dst)
    with dst.connect("primary", APP) as c:
        assert c.execute("SELECT name FROM items WHERE id = %s", (written[0],)).fetchone() == (
            "window",)
        new_id = c.execute("INSERT INTO items (name) VALUES ('after') RETURNING id").fetchone()
        assert new_id[0] > written[0]
        assert c.execute("SELECT count(*) FROM items WHERE name = 'open across the fence'"
                         ).fetchone() == (0,)
