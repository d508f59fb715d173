"""MySQL/MariaDB -> MySQL/MariaDB, the Ghostferry way (works whenever the runner reaches both).

Capture: the source's binlog position is checkpointed BEFORE any row is read. Backfill:
chunks in primary-key order, each read with ``SELECT ... FOR UPDATE`` on the source and held
until the target committed its ``INSERT IGNORE`` (Ghostferry issue #169: without the lock a
row copied stale after its change was replayed stays stale for good); between chunks the
binlog is replayed from the applied position (``REPLACE`` / ``DELETE``). Catch-up replays to
the source's current position. Verify: per-chunk checksums on both sides.
Cutover (writes stopped by the caller): drain to the freeze position, verify exactly, fence
the source (``read_only``, and ``super_read_only`` where the server has it), drain the
writes that slipped in, take the target's binlog position (the reverse tail starts there),
unfence the target. Rollback replays the target's binlog back to the source from there.

The fence is server-wide ``read_only``: it binds every user without SUPER (MySQL) or
READ_ONLY ADMIN (MariaDB), which is the application; the migration's own user needs those
to replay into a fenced side. ``super_read_only`` (MySQL) would bind that user too, so it is
lifted on the side being replayed into (``read_only`` stays) and set again at finalize. The
target is fenced from capture until cutover, so there is never a second writable side.
"""

from __future__ import annotations

import time
import zlib
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from components.migrate.adapter import (
    Check,
    Context,
    MigrationError,
    Overrun,
    PreflightFailed,
    VerifyResult,
)
from components.migrate.mysql_binlog import Pos, lag_bytes, master_pos, tail
from components.migrate.mysql_sql import Table, copy_rows
from components.migrate.mysql_verify import compare
from components.migrate.phases import Phase
from components.migrate.urls import Endpoint

#: Assumed copy rate for the plan's estimate (rows/s), conservative for a chunked copy.
ESTIMATE_ROWS_PER_S = 20_000

BINLOG_FIX = {
    "binlog_format": ("ROW", "SET GLOBAL binlog_format = 'ROW'; in my.cnf [mysqld]: "
                             "binlog_format = ROW"),
    "binlog_row_image": ("FULL", "SET GLOBAL binlog_row_image = 'FULL'; in my.cnf "
                                 "[mysqld]: binlog_row_image = FULL"),
    # The column types in the binlog: without them UNSIGNED values decode as negative.
    "binlog_row_metadata": ("FULL", "SET GLOBAL binlog_row_metadata = 'FULL'; in my.cnf "
                                    "[mysqld]: binlog_row_metadata = FULL"),
}


def _json_key(key: tuple[Any, ...]) -> list[Any]:
    return [v if isinstance(v, (int, str)) or v is None else str(v) for v in key]


class MySQLAdapter:
    engine = "mysql"

    def __init__(self, mid: str, source: Endpoint, target: Endpoint, *, chunk_rows: int = 2000,
                 tail_every: int = 5, batch_rows: int = 2000, step_timeout_s: float = 3600.0,
                 drain_timeout_s: float = 60.0, rechecks: int = 3, poll_s: float = 0.2) -> None:
        self.mid, self.source, self.target = mid, source, target
        self.chunk_rows, self.tail_every, self.batch_rows = chunk_rows, tail_every, batch_rows
        self.step_timeout_s, self.drain_timeout_s = step_timeout_s, drain_timeout_s
        self.rechecks, self.poll_s = rechecks, poll_s
        # A replica id per migration and direction, far from the small ids servers use.
        base = 3_000_000_000 + zlib.crc32(mid.encode()) % 100_000_000 * 2
        self._server_ids = {"source": base, "target": base + 1}
        self._conns: dict[str, Any] = {}

    # -- connections -------------------------------------------------------------------------

    def _settings(self, side: str) -> dict[str, Any]:
        ep = self.source if side == "source" else self.target
        parts = urlsplit(ep.url)
        return {"host": ep.host, "port": ep.port, "user": unquote(parts.username or ""),
                "password": unquote(parts.password or "")}

    def _c(self, side: str) -> Any:
        conn = self._conns.get(side)
        if conn is None or not conn.open:
            ep = self.source if side == "source" else self.target
            s = self._settings(side)
            try:
                conn = pymysql.connect(host=s["host"], port=s["port"], user=s["user"],
                                       password=s["password"], database=ep.database,
                                       autocommit=True, connect_timeout=5, read_timeout=120,
                                       write_timeout=120)
            except pymysql.err.OperationalError as exc:
                raise MigrationError(f"cannot connect to the {side} {ep.shown}: "
                                     f"{exc.args[-1]}"[:400]) from None
            self._conns[side] = conn
        return conn

    def _all(self, side: str, q: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self._c(side).cursor() as cur:
            cur.execute(q, args)
            return list(cur.fetchall())

    def _one(self, side: str, q: str, args: Any = None) -> Any:
        rows = self._all(side, q, args)
        return rows[0][0] if rows else None

    def _var(self, side: str, name: str) -> str | None:
        rows = self._all(side, "SHOW GLOBAL VARIABLES LIKE %s", (name,))
        return str(rows[0][1]) if rows else None

    def close(self) -> None:
        for conn in self._conns.values():
            if conn.open:
                conn.close()
        self._conns.clear()

    # -- checks ------------------------------------------------------------------------------

    def _tables(self, side: str) -> dict[str, tuple[Table | None, int, int]]:
        """Every base table: (Table or None when it has no primary key, estimated rows,
        bytes)."""
        db = (self.source if side == "source" else self.target).database
        est = {r[0]: (int(r[1]), int(r[2])) for r in self._all(
            side, "SELECT table_name, COALESCE(table_rows, 0), COALESCE(data_length, 0) + "
                  "COALESCE(index_length, 0) FROM information_schema.tables WHERE "
                  "table_schema = %s AND table_type = 'BASE TABLE'", (db,))}
        cols: dict[str, list[str]] = {}
        for name, col in self._all(side, "SELECT table_name, column_name FROM "
                                         "information_schema.columns WHERE table_schema = %s "
                                         "ORDER BY table_name, ordinal_position", (db,)):
            cols.setdefault(name, []).append(col)
        keys: dict[str, list[str]] = {}
        for name, col in self._all(side, "SELECT table_name, column_name FROM "
                                         "information_schema.statistics WHERE table_schema = %s "
                                         "AND index_name = 'PRIMARY' ORDER BY table_name, "
                                         "seq_in_index", (db,)):
            keys.setdefault(name, []).append(col)
        return {n: (Table(n, tuple(cols[n]), tuple(keys[n])) if n in keys else None,
                    *est[n]) for n in sorted(est)}

    def _grants_ok(self, side: str) -> tuple[bool, str]:
        text = " ".join(r[0] for r in self._all(side, "SHOW GRANTS")).upper()
        if "ALL PRIVILEGES ON *.*" in text:
            return True, "ALL PRIVILEGES"
        need = {"REPLICATION SLAVE": ("REPLICATION SLAVE", "REPLICATION REPLICA"),
                "REPLICATION CLIENT": ("REPLICATION CLIENT", "BINLOG MONITOR")}
        missing = [k for k, names in need.items() if not any(n in text for n in names)]
        return not missing, ("REPLICATION SLAVE and CLIENT" if not missing else
                             f"missing {', '.join(missing)}: GRANT REPLICATION SLAVE, "
                             "REPLICATION CLIENT ON *.* TO the URL's user")

    def _checks(self) -> tuple[list[Check], dict[str, tuple[Table | None, int, int]]]:
        checks: list[Check] = []
        ids = {}
        for side in ("source", "target"):
            # The target's binlog is the rollback's source, so both sides need the settings.
            log_bin = self._var(side, "log_bin")
            checks.append(Check(f"{side} log_bin", log_bin == "ON",
                                "ON" if log_bin == "ON" else f"is {log_bin}: start the server "
                                "with log_bin (my.cnf [mysqld]: log_bin = binlog)"))
            for var, (want, fix) in BINLOG_FIX.items():
                got = self._var(side, var)
                if got is None and var == "binlog_row_metadata":
                    continue  # MySQL < 8.0.14, MariaDB < 10.5: the reader cannot use it
                checks.append(Check(f"{side} {var}", got == want, want if got == want else
                                    f"is {got}; must be {want}: {fix}"))
            ids[side] = self._var(side, "server_id")
            ok, detail = self._grants_ok(side)
            checks.append(Check(f"{side} privileges", ok, detail))
        checks.append(Check("server ids", ids["source"] != ids["target"],
                            f"source {ids['source']}, target {ids['target']}"
                            + ("" if ids["source"] != ids["target"] else
                               ": must differ (SET GLOBAL server_id = N on one side)")))
        src, tgt = self._tables("source"), self._tables("target")
        checks.append(Check("tables", bool(src), f"{len(src)} tables" if src else
                            "the source database has no tables"))
        for name, (t, _, _) in src.items():
            checks.append(Check(f"{name} primary key", t is not None, "ok" if t else
                                f"missing: ALTER TABLE `{name}` ADD PRIMARY KEY (...) (the copy "
                                "and the replay address rows by it)"))
            other = tgt.get(name)
            if other is None:
                checks.append(Check(f"{name} on target", False, "missing: create the schema "
                                    "on the target first (mysqldump --no-data | mysql)"))
            elif t is not None:
                same = other[0] is not None and other[0].columns == t.columns and \
                    other[0].key == t.key
                checks.append(Check(f"{name} columns", same, "same" if same else
                                    f"differ: source {t.columns} key {t.key}, target "
                                    f"{other[0].columns if other[0] else '(no primary key)'}"))
        return checks, src

    def _empty_target(self, tables: list[Table]) -> list[Check]:
        out = []
        for t in tables:
            full = self._one("target", f"SELECT EXISTS (SELECT 1 FROM {t.ident})")
            out.append(Check(f"{t.name} empty on target", not full, "empty" if not full
                             else "has rows: the copy would not overwrite them; empty it "
                                  "first"))
        return out

    def _copyable(self, checks: list[Check], src: dict[str, tuple[Table | None, int, int]]
                  ) -> list[Table]:
        return [t for n, (t, _, _) in src.items() if t is not None and
                any(c.name == f"{n} columns" and c.ok for c in checks)]

    # -- plan and preflight --------------------------------------------------------------------

    def plan(self) -> dict[str, Any]:
        checks, src = self._checks()
        checks += self._empty_target(self._copyable(checks, src))
        rows = sum(n for _, n, _ in src.values())
        return {
            "engine": self.engine, "ok": all(c.ok for c in checks),
            "checks": [vars(c) for c in checks],
            "tables": [{"table": n, "rows_estimate": r, "bytes": b,
                        "key": list(t.key) if t else []} for n, (t, r, b) in src.items()],
            # AUTO_INCREMENT needs no setval: InnoDB moves it past every id inserted.
            "sequences": [],
            "estimate": {"rows": rows, "bytes": sum(b for _, _, b in src.values()),
                         "copy_seconds": round(rows / ESTIMATE_ROWS_PER_S, 1),
                         "basis": f"{ESTIMATE_ROWS_PER_S} rows/s assumed for a chunked copy"},
            "rollback": [
                "until cutover: `abort` makes the target writable again; the source was "
                "only read (chunks locked while each was copied) and is left as it was",
                "after cutover: stop writes to the target, `rollback --writes-stopped` "
                "replays the target's binlog from the cutover position onto the source, "
                "verifies, fences the target and makes the source writable",
                "after finalize: no rollback"],
        }

    def preflight(self, ctx: Context) -> None:
        checks, src = self._checks()
        if all(c.ok for c in checks):
            checks += self._empty_target(self._copyable(checks, src))
        if not all(c.ok for c in checks):
            raise PreflightFailed(checks)
        ctx.save(tables=[t.to_json() for t, _, _ in src.values() if t is not None],
                 checks=[vars(c) for c in checks],
                 rows_estimate=sum(n for _, n, _ in src.values()))

    def _table_map(self, ctx: Context) -> dict[str, Table]:
        return {d["name"]: Table.from_json(d) for d in ctx.data["tables"]}

    # -- capture, backfill, the tail -----------------------------------------------------------

    def capture(self, ctx: Context) -> None:
        self._fence(ctx, "target")
        if not ctx.data.get("capture"):
            with self._c("source").cursor() as cur:
                start = master_pos(cur)
            gtid = self._var("source", "gtid_binlog_pos") or self._var("source",
                                                                        "gtid_executed")
            ctx.save(capture={"start": start.to_json(), "applied": start.to_json(),
                              "gtid": gtid})

    def _direction(self, ctx: Context) -> tuple[str, str, str]:
        """(the side whose binlog is replayed, the side it goes to, checkpoint key)."""
        if ctx.phase in (Phase.REVERSE_SYNC, Phase.ROLLBACK, Phase.FINALIZE):
            return "target", "source", "reverse"
        return "source", "target", "capture"

    def _follow(self, ctx: Context, primary: str, deadline: float | None = None) -> Pos:
        """Replay ``primary``'s binlog from the applied checkpoint to its current end."""
        replica = "target" if primary == "source" else "source"
        key = "capture" if primary == "source" else "reverse"
        start = Pos.from_json(ctx.data[key]["applied"])

        def on_commit(pos: Pos, rows: int) -> None:
            ctx.save(**{key: {**ctx.data[key], "applied": pos.to_json()}})
            ctx.tick(applied=str(pos), replayed_rows=rows)

        ep = self.source if primary == "source" else self.target
        self._replay_allowed(replica)
        result = tail(self._settings(primary), self._server_ids[primary], ep.database,
                      self._table_map(ctx), start, self._c(replica), on_commit,
                      batch_rows=self.batch_rows, deadline=deadline)
        return result.applied

    def _drain_to(self, ctx: Context, primary: str, goal: Pos, deadline: float) -> bool:
        while True:
            applied = self._follow(ctx, primary, deadline)
            if applied >= goal:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_s / 4)

    def _now(self, side: str) -> Pos:
        with self._c(side).cursor() as cur:
            return master_pos(cur)

    def backfill(self, ctx: Context) -> None:
        tables = self._table_map(ctx)
        copy: dict[str, Any] = dict(ctx.data.get("copy") or {})
        total = int(ctx.data.get("rows_estimate") or 0)
        done_rows = sum(int(v.get("rows", 0)) for v in copy.values())
        started, first, chunks = time.monotonic(), done_rows, 0
        src, tgt = self._c("source"), self._c("target")
        for name, t in tables.items():
            st = dict(copy.get(name) or {"after": None, "rows": 0, "done": False})
            while not st["done"]:
                sel, args = t.select_chunk(st["after"], self.chunk_rows)
                with src.cursor() as s, tgt.cursor() as d:
                    s.execute("BEGIN")
                    try:
                        s.execute(sel, args)
                        rows = list(s.fetchall())
                        d.execute("BEGIN")
                        copy_rows(d, t, rows)
                        d.execute("COMMIT")
                    finally:
                        # The lock is released only once the target has the chunk.
                        s.execute("ROLLBACK")
                if rows:
                    st["after"] = _json_key(t.key_of(rows[-1]))
                st["rows"] += len(rows)
                st["done"] = len(rows) < self.chunk_rows
                copy[name] = st
                ctx.save(copy=copy)  # after the commit: a resumed copy skips only what landed
                done_rows += len(rows)
                chunks += 1
                if chunks % self.tail_every == 0:
                    self._follow(ctx, "source")
                rate = (done_rows - first) / max(time.monotonic() - started, 1e-3)
                ctx.tick(rows_source=total, rows_target=done_rows, tables=len(tables),
                         tables_ready=sum(bool(v.get("done")) for v in copy.values()),
                         rate_rows_s=round(rate), throttle=None,
                         eta_s=round((total - done_rows) / rate, 1)
                         if rate > 0 and total > done_rows else None)

    def catch_up(self, ctx: Context) -> None:
        goal = self._now("source")
        if not self._drain_to(ctx, "source", goal, time.monotonic() + self.step_timeout_s):
            raise MigrationError(f"catch-up did not reach {goal} within "
                                 f"{self.step_timeout_s:g} s (replay slower than writes?)")
        ctx.tick(**self.lag(ctx, follow=False))

    def lag(self, ctx: Context, follow: bool = True) -> dict[str, Any]:
        """The lag of the live direction; while the runner waits (verify, reverse-sync) it
        also keeps that direction applied, bounded to one second per call."""
        primary, _, key = self._direction(ctx)
        if key not in ctx.data or ctx.phase == Phase.FINALIZE:
            return {"lag_bytes": None, "applied": None, "direction": None}
        if follow:
            self._follow(ctx, primary, time.monotonic() + 1.0)
        applied = Pos.from_json(ctx.data[key]["applied"])
        with self._c(primary).cursor() as cur:
            lag = lag_bytes(cur, applied)
        return {"lag_bytes": lag, "applied": str(applied),
                "direction": "forward" if primary == "source" else "reverse"}

    # -- verify ------------------------------------------------------------------------------

    def _compare(self, ctx: Context, primary: str, exact: bool) -> VerifyResult:
        started = time.monotonic()
        replica = "target" if primary == "source" else "source"

        def drain() -> None:
            self._drain_to(ctx, primary, self._now(primary),
                           time.monotonic() + self.drain_timeout_s)

        per_table, chunks, keys, rounds = compare(
            self._c(primary), self._c(replica), list(self._table_map(ctx).values()),
            self.chunk_rows * 5, drain, self.rechecks, exact)
        if primary == "target":
            for v in per_table.values():
                v["rows_source"], v["rows_target"] = v["rows_target"], v["rows_source"]
        return VerifyResult(per_table, chunks, sum(v["mismatches"] for v in per_table.values()),
                            rounds, exact, time.monotonic() - started, keys)

    def verify(self, ctx: Context, exact: bool) -> VerifyResult:
        primary, _, _ = self._direction(ctx)
        return self._compare(ctx, primary, exact)

    # -- fences ------------------------------------------------------------------------------

    def _fence(self, ctx: Context, side: str) -> None:
        """Recorded before it is set, so a runner killed in between sets it again."""
        fences = dict(ctx.data.get("fences") or {})
        if not (fences.get(side) or {}).get("on"):
            fences[side] = {"on": True, "was_read_only": self._var(side, "read_only")}
            ctx.save(fences=fences)
        # Waits for running statements; a transaction holding locks keeps its writes, which
        # the drain after the fence then carries over.
        self._all(side, "SET GLOBAL read_only = ON")
        if self._var(side, "super_read_only") is not None:  # MySQL only; MariaDB lacks it
            self._all(side, "SET GLOBAL super_read_only = ON")

    def _unfence(self, ctx: Context, side: str) -> None:
        fences = dict(ctx.data.get("fences") or {})
        entry = fences.get(side) or {}
        if not entry.get("on"):
            return
        if self._var(side, "super_read_only") is not None:
            self._all(side, "SET GLOBAL super_read_only = OFF")
        if entry.get("was_read_only") != "ON":
            self._all(side, "SET GLOBAL read_only = OFF")
        fences[side] = {**entry, "on": False}
        ctx.save(fences=fences)

    def _replay_allowed(self, side: str) -> None:
        """super_read_only binds the migration's user too: lift it (read_only stays) on the
        side the replay writes to."""
        if self._var(side, "super_read_only") == "ON":
            self._all(side, "SET GLOBAL super_read_only = OFF")

    # -- cutover, rollback, finalize, abort -------------------------------------------------

    def freeze(self, ctx: Context, deadline: float) -> None:
        goal = self._now("source")
        started = time.monotonic()
        ctx.save(freeze={"pos": str(goal), "at": time.time()})
        if not self._drain_to(ctx, "source", goal, deadline):
            raise Overrun(f"the drain to the freeze position {goal} overran max_freeze_s")
        ctx.save(freeze={"pos": str(goal), "at": time.time(),
                         "drain_s": round(time.monotonic() - started, 3)})

    def cutover(self, ctx: Context) -> None:
        self._fence(ctx, "source")
        # A write that slipped in after the final verify (the caller said writes were
        # stopped) is carried over before the direction turns, not lost.
        goal = self._now("source")
        if not self._drain_to(ctx, "source", goal, time.monotonic() + self.drain_timeout_s):
            raise MigrationError("the source's last writes were not applied to the target "
                                 f"within {self.drain_timeout_s:g} s; run the cutover again "
                                 "(the source stays fenced)")
        if not ctx.data.get("reverse"):
            # Nothing writes to the target until it is unfenced below: its position now is
            # where the two sides are equal, so the reverse tail loses and repeats nothing.
            start = self._now("target")
            ctx.save(reverse={"start": start.to_json(), "applied": start.to_json()})
        self._unfence(ctx, "target")

    def rollback(self, ctx: Context, deadline: float) -> VerifyResult | None:
        self._fence(ctx, "target")
        if not self._drain_to(ctx, "target", self._now("target"), deadline):
            self._unfence(ctx, "target")
            raise Overrun("the reverse drain overran max_freeze_s; the target is writable "
                          "again")
        result = self._compare(ctx, "target", exact=True)
        ctx.save(verify={**result.summary(), "at": time.time(), "phase": "rollback"})
        if result.mismatches:
            self._unfence(ctx, "target")
            return result
        self._unfence(ctx, "source")
        return None

    def finalize(self, ctx: Context) -> None:
        """Nothing lives on the servers (the tail is a client). The old source stays fenced,
        with super_read_only again where the server has it (the reverse replay lifted it)."""
        self._fence(ctx, "source")
        ctx.save(finalized_at=time.time())

    def abort(self, ctx: Context) -> None:
        self._unfence(ctx, "target")
