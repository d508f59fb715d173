"""``standby migrate`` MySQL/MariaDB -> MySQL/MariaDB against two real MariaDB 10.11 servers
(independent, ROW binlogs, different server ids, temp dirs, free ports), with an application
writer doing inserts, updates and deletes while the migration copies and tails the binlog."""

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

from components.migrate import Migration, MigrationError, Phase, open_migration
from components.sandbox.mariadb import APP, MariaPair, MariaUnavailable, mariadb_bin
from components.sandbox.migrate_demo_mysql import solo, url
from tests.conftest import ROOT

try:
    mariadb_bin()
except MariaUnavailable as exc:  # pragma: no cover - the image has MariaDB 10.11
    pytest.skip(str(exc), allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SCHEMA = [
    "CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL, "
    "qty INT, note VARCHAR(200), price DECIMAL(10,2), at DATETIME, big BIGINT UNSIGNED)",
    "CREATE TABLE pairs (a INT, b VARCHAR(20), v DECIMAL(12,3), PRIMARY KEY (a, b))",
]


@pytest.fixture
def dbs() -> Iterator[tuple[MariaPair, MariaPair]]:
    src, dst = solo(11), solo(22)
    try:
        for p in (src, dst):
            with p.connect("primary") as c:
                for stmt in SCHEMA:
                    c.cursor().execute(stmt)
        with src.connect("primary") as c:
            cur = c.cursor()
            cur.execute("INSERT INTO items (name, qty, note, price, at, big) SELECT "
                        "CONCAT('n', seq), seq, IF(seq % 7 = 0, NULL, 'x'), seq / 4, "
                        "'2026-01-01 00:00:00' + INTERVAL seq SECOND, "
                        "18446744073709551615 - seq FROM seq_1_to_20000")
            cur.execute("INSERT INTO pairs SELECT seq % 50, CONCAT('k', seq), seq / 3 "
                        "FROM seq_1_to_3000")
        yield src, dst
    finally:
        src.close()
        dst.close()


def state_of(p: MariaPair) -> dict[str, tuple[int, str]]:
    """Count and md5 of every row in key order (NULL-safe), read as the admin."""
    out = {}
    with p.connect("primary") as c:
        cur = c.cursor()
        cur.execute("SET SESSION group_concat_max_len = 1073741824")
        for t, cols, order in (("items", "id, name, qty, note, price, at, big", "id"),
                               ("pairs", "a, b, v", "a, b")):
            row = ", ".join(f"ISNULL({x}), {x}" for x in cols.split(", "))
            cur.execute(f"SELECT COUNT(*), COALESCE(MD5(GROUP_CONCAT(CONCAT_WS('#', {row}) "
                        f"ORDER BY {order} SEPARATOR '|')), '') FROM {t}")
            n, h = cur.fetchone()
            out[t] = (int(n), str(h))
    return out


def read_only(p: MariaPair) -> str:
    with p.connect("primary") as c:
        cur = c.cursor()
        cur.execute("SELECT @@global.read_only")
        return str(cur.fetchone()[0])


class Writer:
    """The application: inserts, updates and deletes through the app user until stopped
    (bounded by ``max_ops``). Errors are kept, not raised."""

    def __init__(self, p: MariaPair, seed: int, max_ops: int = 100_000) -> None:
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
            cur = c.cursor()
            while not self._stop.is_set() and self.ops < self.max_ops:
                try:
                    self.one(cur)
                except Exception as exc:  # the app's view, kept for the asserts
                    self.errors.append(str(exc))
                self.ops += 1
                time.sleep(0.001)

    def one(self, cur: Any) -> None:
        r, k = self.rng.random(), self.rng.randint(1, 25_000)
        if r < 0.3:
            cur.execute("INSERT INTO items (name, qty, note, price, at) VALUES "
                        "(%s, %s, NULL, 1.5, NOW())", (f"w{self.ops}", self.ops))
        elif r < 0.6:
            # big > 2**63: decoded as a negative number without binlog_row_metadata = FULL.
            cur.execute("UPDATE items SET qty = qty + 1, note = %s, big = big - 1 WHERE id = %s",
                        (f"u{self.ops}", k))
        elif r < 0.75:
            cur.execute("DELETE FROM items WHERE id = %s", (k,))
        elif r < 0.9:
            cur.execute("REPLACE INTO pairs VALUES (%s, %s, %s)",
                        (k % 50, f"k{k % 3000}", self.ops))
        else:
            cur.execute("DELETE FROM pairs WHERE a = %s AND b = %s", (k % 50, f"k{k % 3000}"))


def migration(src: MariaPair, dst: MariaPair, tmp_path: Path, **opts: Any) -> Migration:
    return open_migration("orders", url(src), url(dst), f"sqlite:///{tmp_path}/m.sqlite",
                          adapter_options={"chunk_rows": 500, **opts}, lease_s=5, poll_s=0.05)


def test_migration_under_concurrent_writer_cuts_over_with_zero_mismatches(
        dbs: tuple[MariaPair, MariaPair], tmp_path: Path) -> None:
    src, dst = dbs
    m = migration(src, dst, tmp_path)
    with Writer(src, seed=1) as w:
        rec = m.run(until=Phase.VERIFY, max_s=200)
        assert rec.phase == Phase.VERIFY
        assert w.ops > 100  # the writer ran during copy and tail
        assert read_only(dst) == "1"  # never two writable sides
    assert not w.errors
    out = m.cutover(writes_stopped=True)
    assert out["phase"] == "reverse-sync" and out["mismatches"] == 0
    assert state_of(src) == state_of(dst)
    assert (read_only(src), read_only(dst)) == ("1", "0")
    assert m.store.chunks("orders")  # per-chunk checksums were recorded


def test_rollback_after_cutover_restores_every_write_made_since(
        dbs: tuple[MariaPair, MariaPair], tmp_path: Path) -> None:
    src, dst = dbs
    m = migration(src, dst, tmp_path)
    assert m.run(until=Phase.VERIFY, max_s=200).phase == Phase.VERIFY
    m.cutover(writes_stopped=True)
    with Writer(dst, seed=2, max_ops=400) as w:
        deadline = time.monotonic() + 60
        rotated = False
        while w.ops < 400 and time.monotonic() < deadline:
            if w.ops > 200 and not rotated:  # the reverse tail crosses a binlog file
                with dst.connect("primary") as c:
                    c.cursor().execute("FLUSH BINARY LOGS")
                rotated = True
            time.sleep(0.05)
        assert rotated
    assert not w.errors and w.ops == 400
    assert m.rollback(writes_stopped=True)["phase"] == "rolled-back"
    assert state_of(src) == state_of(dst)
    assert (read_only(src), read_only(dst)) == ("0", "1")


def test_abort_before_cutover_leaves_the_source_untouched(
        dbs: tuple[MariaPair, MariaPair], tmp_path: Path) -> None:
    src, dst = dbs
    before = state_of(src)
    m = migration(src, dst, tmp_path)
    m.run(until=Phase.CATCH_UP, max_s=200)
    assert m.abort()["phase"] == "aborted"
    assert state_of(src) == before
    assert (read_only(src), read_only(dst)) == ("0", "0")


def test_preflight_refuses_mixed_binlog_with_the_exact_fix(
        dbs: tuple[MariaPair, MariaPair], tmp_path: Path) -> None:
    src, dst = dbs
    with src.connect("primary") as c:
        c.cursor().execute("SET GLOBAL binlog_format = 'MIXED'")
    m = migration(src, dst, tmp_path)
    plan = m.adapter.plan()
    bad = {c["name"]: c["detail"] for c in plan["checks"] if not c["ok"]}
    assert not plan["ok"]
    assert "SET GLOBAL binlog_format = 'ROW'" in bad["source binlog_format"]
    assert "binlog_format = ROW" in bad["source binlog_format"]
    with pytest.raises(MigrationError, match="source binlog_format: is MIXED"):
        m.run(until=Phase.VERIFY, max_s=60)
    assert read_only(dst) == "0"  # refused before anything was fenced


def test_preflight_refuses_minimal_row_metadata_which_would_corrupt_unsigned(
        dbs: tuple[MariaPair, MariaPair], tmp_path: Path) -> None:
    src, dst = dbs
    with dst.connect("primary") as c:  # the target's binlog feeds the rollback
        c.cursor().execute("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
    with pytest.raises(MigrationError, match="target binlog_row_metadata: is MINIMAL; must be "
                                             "FULL: SET GLOBAL binlog_row_metadata = 'FULL'"):
        migration(src, dst, tmp_path).run(until=Phase.VERIFY, max_s=60)


def test_preflight_refuses_a_table_without_primary_key(
        dbs: tuple[MariaPair, MariaPair], tmp_path: Path) -> None:
    src, dst = dbs
    for p in (src, dst):
        with p.connect("primary") as c:
            c.cursor().execute("CREATE TABLE nokey (v INT)")
    with pytest.raises(MigrationError, match="nokey primary key: missing: ALTER TABLE"):
        migration(src, dst, tmp_path).run(until=Phase.VERIFY, max_s=60)


def test_crash_mid_copy_resumes_from_the_checkpoint_under_a_writer(
        dbs: tuple[MariaPair, MariaPair], tmp_path: Path) -> None:
    src, dst = dbs
    m = migration(src, dst, tmp_path)
    crashed = {"n": 0}
    real_tick = None

    class Crash(BaseException):
        """A runner dying mid-copy: nothing after this point runs (not a clean pause)."""

    def dying_backfill(ctx: Any) -> None:
        def tick(**progress: Any) -> None:
            assert real_tick is not None
            real_tick(**progress)
            if (ctx.data.get("copy") or {}).get("items", {}).get("rows", 0) >= 6000:
                crashed["n"] += 1
                raise Crash
        nonlocal real_tick
        real_tick = ctx.tick
        ctx.tick = tick
        orig_backfill(ctx)

    orig_backfill = m.adapter.backfill
    m.adapter.backfill = dying_backfill  # type: ignore[method-assign]
    with Writer(src, seed=3) as w:
        with pytest.raises(Crash):
            m.run(until=Phase.VERIFY, max_s=200)
        copied = m.store.get("orders").data["copy"]["items"]["rows"]  # type: ignore[union-attr]
        assert crashed["n"] == 1 and 6000 <= copied < 20000
        m.adapter.backfill = orig_backfill  # type: ignore[method-assign]
        m2 = migration(src, dst, tmp_path)
        rec = m2.run(until=Phase.VERIFY, max_s=200, wait_lease=True)
        assert rec.phase == Phase.VERIFY and rec.token >= 2
    assert not w.errors
    out = m2.cutover(writes_stopped=True)
    assert out["mismatches"] == 0
    assert state_of(src) == state_of(dst)



def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "components", "migrate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def record(state: Path) -> tuple[str | None, dict[str, Any]]:
    try:
        with sqlite3.connect(state, timeout=5) as db:
            row = db.execute("SELECT phase, data FROM migrations WHERE id = 'orders'").fetchone()
    except sqlite3.Error:
        return None, {}
    return (None, {}) if row is None else (str(row[0]), json.loads(row[1]))


@pytest.mark.parametrize("kill_in", ["backfill", "verify"])
def test_sigkilled_cli_runner_resumes_and_cuts_over_under_a_writer(
        dbs: tuple[MariaPair, MariaPair], tmp_path: Path, kill_in: str) -> None:
    src, dst = dbs
    state = tmp_path / "state.sqlite"
    base = ["--id", "orders", "--source", url(src), "--target", url(dst),
            "--state", f"sqlite:///{state}"]
    with Writer(src, seed=4) as w:
        proc = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "components", "migrate",
                                 "start", *base, "--lease-s", "2", "--poll-s", "0.1"],
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                phase, data = record(state)
                copied = (data.get("copy") or {}).get("items", {}).get("rows", 0)
                if phase == kill_in and (kill_in != "backfill" or copied >= 4000):
                    break
                time.sleep(0.01)
            assert record(state)[0] == kill_in
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        out = cli("start", *base, "--until", "verify", "--lease-s", "2", "--poll-s", "0.1",
                  "--json")
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["phase"] == "verify" and doc["mismatches"] == 0 and doc["token"] >= 2
        w.stop()
        assert w.errors == []
    out = cli("cutover", *base, "--writes-stopped", "--max-freeze-s", "10", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["phase"] == "reverse-sync" and doc["mismatches"] == 0
    assert state_of(src) == state_of(dst)
    assert (read_only(src), read_only(dst)) == ("1", "0")
