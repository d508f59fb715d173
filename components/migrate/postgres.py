"""PostgreSQL -> PostgreSQL with native logical replication, orchestrated.

Forward: a publication and a ``pgoutput`` slot on the source (the capture position exists
before any row is copied), then a subscription on the target that uses that slot with
``copy_data = true``: PostgreSQL copies each table inside its own snapshot and joins the
stream at that snapshot's position, so there is no gap and no overlap.
Cutover (writes stopped by the caller): drain to the source's WAL position, verify, fence
the source, end write transactions older than the fence and drain again (a write that
slipped in is carried, not lost), ``setval`` every sequence (logical replication does not
carry them), disable the forward subscription, start the reverse one with
``copy_data = false`` while nothing writes, then unfence the target.

Fencing is by table privileges: INSERT/UPDATE/DELETE/TRUNCATE of every non-superuser role
(owner included) on the migrated tables are revoked and recorded in the checkpoint, and
granted back on unfence. The apply workers run as the subscription owner (a superuser) and
are not affected. The target is fenced from capture until cutover, so there is never a
second writable side.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from components.migrate import pg_catalog, pg_verify
from components.migrate.adapter import (
    Check,
    Context,
    MigrationError,
    Overrun,
    PreflightFailed,
    VerifyResult,
)
from components.migrate.pg_verify import Table
from components.migrate.phases import Phase
from components.migrate.urls import Endpoint

#: Assumed copy rate for the plan's estimate: the local measurement of PostgreSQL 15's
#: initial sync (200k rows and 20k changes in 0.8 s) rounded down to be conservative.
ESTIMATE_ROWS_PER_S = 100_000


class PostgresAdapter:
    engine = "postgresql"

    def __init__(self, mid: str, source: Endpoint, target: Endpoint, *, chunk_rows: int = 10_000,
                 step_timeout_s: float = 3600.0, drain_timeout_s: float = 60.0,
                 rechecks: int = 3, poll_s: float = 0.2) -> None:
        self.mid, self.source, self.target = mid, source, target
        self.chunk_rows, self.step_timeout_s = chunk_rows, step_timeout_s
        self.drain_timeout_s, self.rechecks, self.poll_s = drain_timeout_s, rechecks, poll_s
        self.pub = self.slot = self.sub = f"standby_{mid}"
        self.back = f"standby_{mid}_back"
        self._conns: dict[str, Any] = {}

    # -- connections -------------------------------------------------------------------------

    def _c(self, side: str) -> Any:
        conn = self._conns.get(side)
        if conn is None or conn.closed:
            ep = self.source if side == "source" else self.target
            try:
                conn = psycopg.connect(ep.url, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as exc:
                why = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
                raise MigrationError(f"cannot connect to the {side} {ep.shown}: "
                                     f"{why[:300]}") from None
            self._conns[side] = conn
        return conn

    def _one(self, side: str, q: Any, args: Any = None) -> Any:
        with self._c(side).cursor() as cur:
            cur.execute(q, args)
            row = cur.fetchone()
        return None if row is None else row[0]

    def _all(self, side: str, q: Any, args: Any = None) -> list[tuple[Any, ...]]:
        with self._c(side).cursor() as cur:
            cur.execute(q, args)
            return list(cur.fetchall())

    def _exec(self, side: str, q: Any, args: Any = None) -> None:
        with self._c(side).cursor() as cur:
            cur.execute(q, args)

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    # -- checks ------------------------------------------------------------------------------

    def _checks(self) -> tuple[list[Check], list[dict[str, Any]], list[str]]:
        checks: list[Check] = []
        for side in ("source", "target"):
            wal = self._one(side, "SHOW wal_level")
            checks.append(Check(f"{side} wal_level", wal == "logical",
                                f"is {wal}; must be logical (set wal_level = logical and "
                                "restart; on RDS: rds.logical_replication = 1)"
                                if wal != "logical" else "logical"))
            sup = self._one(side, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            checks.append(Check(f"{side} role", bool(sup), "superuser" if sup else
                                "the URL's user must be a superuser (subscriptions, fences)"))
            free = self._one(side, "SELECT current_setting('max_replication_slots')::int - "
                                   "(SELECT count(*) FROM pg_replication_slots)")
            need = 2 if side == "source" else 1
            checks.append(Check(f"{side} replication slots", free >= need,
                                f"{free} free; needs {need} (max_replication_slots)"))
        coll = [self._one(s, "SELECT datcollate FROM pg_database WHERE datname = "
                             "current_database()") for s in ("source", "target")]
        checks.append(Check("collation", coll[0] == coll[1],
                            f"source {coll[0]}, target {coll[1]}"
                            + ("" if coll[0] == coll[1] else ": must be equal (key order "
                                                                "of the verify)")))
        src = pg_catalog.tables(self._c("source"))
        tgt = {(t["schema"], t["name"]): t for t in pg_catalog.tables(self._c("target"))}
        checks.append(Check("tables", bool(src), f"{len(src)} tables" if src else
                            "the source database has no tables"))
        for t in src:
            q = f"{t['schema']}.{t['name']}"
            ok = t["ident"] == "f" or (t["ident"] == "d" and t["pk"]) or \
                (t["ident"] == "i" and t["ri_index"])
            checks.append(Check(f"{q} replica identity", ok, "ok" if ok else
                                "no primary key and no replica identity: add a primary key or "
                                "ALTER TABLE ... REPLICA IDENTITY FULL (else UPDATE/DELETE "
                                "fail on the source once it is published)"))
            other = tgt.get((t["schema"], t["name"]))
            if other is None:
                checks.append(Check(f"{q} on target", False, "missing: create the schema on "
                                    "the target first (pg_dump --schema-only | psql)"))
                continue
            same = other["columns"] == t["columns"]
            checks.append(Check(f"{q} columns", same, "same" if same else
                                f"differ: source {t['columns']}, target {other['columns']}"))
        seqs = pg_catalog.sequences(self._c("source"))
        missing = sorted(set(seqs) - set(pg_catalog.sequences(self._c("target"))))
        checks.append(Check("sequences", not missing, f"{len(seqs)} listed: {', '.join(seqs)}"
                            if not missing else f"missing on the target: {', '.join(missing)}"))
        return checks, src, seqs

    def _empty_target(self, tables: list[Table]) -> list[Check]:
        out = []
        for t in tables:
            full = self._one("target", sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                t.ident))
            out.append(Check(f"{t.qualified} empty on target", not full, "empty" if not full
                             else "has rows: the copy would conflict; empty it first"))
        return out

    # -- plan and preflight --------------------------------------------------------------------

    def plan(self) -> dict[str, Any]:
        checks, tables, seqs = self._checks()
        known = [Table(t["schema"], t["name"], tuple(t["key"]), tuple(t["key_types"]))
                 for t in tables if any(c.name == f"{t['schema']}.{t['name']} columns" and c.ok
                                        for c in checks)]
        checks += self._empty_target(known)
        rows = sum(t["rows"] for t in tables)
        return {
            "engine": self.engine, "ok": all(c.ok for c in checks),
            "checks": [vars(c) for c in checks],
            "tables": [{"table": f"{t['schema']}.{t['name']}", "rows_estimate": t["rows"],
                        "bytes": t["bytes"], "key": t["key"]} for t in tables],
            "sequences": seqs,
            "estimate": {"rows": rows, "bytes": sum(t["bytes"] for t in tables),
                         "copy_seconds": round(rows / ESTIMATE_ROWS_PER_S, 1),
                         "basis": f"{ESTIMATE_ROWS_PER_S} rows/s assumed (local PostgreSQL 15 "
                                  "initial sync: 200k rows in 0.8 s)"},
            "rollback": [
                "until cutover: `abort` drops the subscription, slot and publication; the "
                "source is left as it was",
                "after cutover: stop writes to the target, `rollback --writes-stopped` "
                "drains the reverse subscription, verifies, sets the sequences on the source "
                "and gives its write privileges back",
                "after finalize: no rollback (reverse replication is dropped)"],
        }

    def preflight(self, ctx: Context) -> None:
        checks, tables, seqs = self._checks()
        if all(c.ok for c in checks):
            objs = [Table(t["schema"], t["name"], tuple(t["key"]), tuple(t["key_types"]))
                    for t in tables]
            # Only a migration that has not copied yet requires an empty target: a resumed
            # runner in a later phase never comes back here.
            checks += self._empty_target(objs)
        if not all(c.ok for c in checks):
            raise PreflightFailed(checks)
        ctx.save(tables=[Table(t["schema"], t["name"], tuple(t["key"]),
                               tuple(t["key_types"])).to_json() for t in tables],
                 sequences=seqs, checks=[vars(c) for c in checks],
                 rows_estimate=sum(t["rows"] for t in tables))

    def _table_list(self, ctx: Context) -> list[Table]:
        return [Table.from_json(t) for t in ctx.data["tables"]]

    # -- capture and backfill ----------------------------------------------------------------

    def capture(self, ctx: Context) -> None:
        tables = self._table_list(ctx)
        self._fence(ctx, "target")
        if not self._one("source", "SELECT count(*) FROM pg_publication WHERE pubname = %s",
                         (self.pub,)):
            self._exec("source", sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(self.pub), sql.SQL(", ").join(t.ident for t in tables)))
        if not self._one("source", "SELECT count(*) FROM pg_replication_slots WHERE "
                         "slot_name = %s", (self.slot,)):
            self._exec("source", "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
                       (self.slot,))
        if not ctx.data.get("capture"):
            lsn = self._one("source", "SELECT confirmed_flush_lsn::text FROM "
                            "pg_replication_slots WHERE slot_name = %s", (self.slot,))
            ctx.save(capture={"slot": self.slot, "start_lsn": lsn, "applied": lsn})

    def _progress(self) -> dict[str, Any]:
        states = dict(self._all("target", """
            SELECT r.srsubstate, count(*) FROM pg_subscription_rel r
            JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = %s GROUP BY 1""",
                                (self.sub,)))
        rows = self._one("target", "SELECT coalesce(sum(n_live_tup), 0)::bigint FROM "
                         "pg_stat_user_tables") or 0
        copying = self._one("target", "SELECT coalesce(sum(tuples_processed), 0)::bigint "
                            "FROM pg_stat_progress_copy") or 0
        errors = self._one("target", "SELECT apply_error_count + sync_error_count FROM "
                           "pg_stat_subscription_stats WHERE subname = %s", (self.sub,))
        return {"tables": sum(states.values()), "tables_ready": states.get("r", 0),
                "rows_target": int(rows) + int(copying), "apply_errors": errors or 0,
                "throttle": None}

    def backfill(self, ctx: Context) -> None:
        if not self._one("target", "SELECT count(*) FROM pg_subscription WHERE subname = %s",
                         (self.sub,)):
            self._exec("target", sql.SQL(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (create_slot = false,"
                " slot_name = {}, copy_data = true)").format(
                sql.Identifier(self.sub), sql.Literal(self.source.url),
                sql.Identifier(self.pub), sql.Literal(self.slot)))
        deadline = time.monotonic() + self.step_timeout_s
        total = int(ctx.data.get("rows_estimate") or 0)
        start, first = time.monotonic(), None
        while time.monotonic() < deadline:
            p = self._progress()
            first = p["rows_target"] if first is None else first
            rate = (p["rows_target"] - first) / max(time.monotonic() - start, 1e-3)
            p |= {"rows_source": total, "rate_rows_s": round(rate),
                  "eta_s": round((total - p["rows_target"]) / rate, 1)
                  if rate > 0 and total > p["rows_target"] else None}
            ctx.tick(**p)
            if p["tables"] and p["tables"] == p["tables_ready"]:
                return
            time.sleep(self.poll_s)
        raise MigrationError(f"backfill not finished within {self.step_timeout_s:g} s; "
                             "run start again to keep waiting")

    # -- positions ---------------------------------------------------------------------------

    def _direction(self, ctx: Context) -> tuple[str, str]:
        """(publisher side, slot) of the replication that is live in this phase."""
        forward = ctx.phase not in (Phase.REVERSE_SYNC, Phase.ROLLBACK, Phase.FINALIZE)
        return ("source", self.slot) if forward else ("target", self.back)

    def _applied(self, side: str, slot: str) -> tuple[str, int]:
        row = self._all(side, "SELECT confirmed_flush_lsn::text, pg_wal_lsn_diff("
                              "pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM "
                              "pg_replication_slots WHERE slot_name = %s", (slot,))
        if not row:
            raise MigrationError(f"replication slot {slot} is missing on the {side}")
        return str(row[0][0]), int(row[0][1])

    def _wait_applied(self, side: str, slot: str, goal: str, deadline: float,
                      ctx: Context | None) -> bool:
        """Until the slot's subscriber confirmed (applied and flushed) ``goal``."""
        while True:
            done = self._one(side, "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM "
                                   "pg_replication_slots WHERE slot_name = %s", (goal, slot))
            if done:
                return True
            if time.monotonic() >= deadline:
                return False
            if ctx is not None:
                applied, lag = self._applied(side, slot)
                ctx.tick(lag_bytes=lag, applied=applied)
            time.sleep(self.poll_s / 4)

    def lag(self, ctx: Context) -> dict[str, Any]:
        side, slot = self._direction(ctx)
        applied, lag = self._applied(side, slot)
        return {"lag_bytes": lag, "applied": applied, "direction":
                "forward" if side == "source" else "reverse"}

    def catch_up(self, ctx: Context) -> None:
        goal = self._one("source", "SELECT pg_current_wal_lsn()::text")
        if not self._wait_applied("source", self.slot, goal,
                                  time.monotonic() + self.step_timeout_s, ctx):
            raise MigrationError(f"catch-up did not reach {goal} within "
                                 f"{self.step_timeout_s:g} s (apply slower than writes?)")
        applied, lag = self._applied("source", self.slot)
        ctx.save(capture={**ctx.data["capture"], "applied": applied})
        ctx.tick(lag_bytes=lag, applied=applied)

    # -- verify ------------------------------------------------------------------------------

    def _compare(self, ctx: Context, primary: str, exact: bool) -> VerifyResult:
        started = time.monotonic()
        slot = self.slot if primary == "source" else self.back

        def drain() -> None:
            goal = self._one(primary, "SELECT pg_current_wal_lsn()::text")
            self._wait_applied(primary, slot, goal, time.monotonic() + self.drain_timeout_s,
                               None)
            ctx.tick()

        replica = "target" if primary == "source" else "source"
        per_table, chunks, keys, rounds = pg_verify.compare(
            self._c(primary), self._c(replica), self._table_list(ctx), self.chunk_rows, drain,
            self.rechecks, exact)
        if primary == "target":  # counts are named by side, not by role in the comparison
            for v in per_table.values():
                v["rows_source"], v["rows_target"] = v["rows_target"], v["rows_source"]
        return VerifyResult(per_table, chunks, sum(v["mismatches"] for v in per_table.values()),
                            rounds, exact, time.monotonic() - started, keys)

    def verify(self, ctx: Context, exact: bool) -> VerifyResult:
        side, _ = self._direction(ctx)
        return self._compare(ctx, side, exact)

    # -- fences ------------------------------------------------------------------------------

    def _fence(self, ctx: Context, side: str) -> None:
        """Revoke the app's write privileges on ``side``; recorded before they are revoked,
        so a runner killed in between revokes the same set again."""
        fences = dict(ctx.data.get("fences") or {})
        if not (fences.get(side) or {}).get("on"):
            fences[side] = {"on": True, "grants": pg_catalog.write_grants(
                self._c(side), self._table_list(ctx))}
            ctx.save(fences=fences)
        pg_catalog.change_grants(self._c(side), fences[side]["grants"], give=False)

    def _unfence(self, ctx: Context, side: str) -> None:
        fences = dict(ctx.data.get("fences") or {})
        entry = fences.get(side) or {}
        if not entry.get("on"):
            return
        pg_catalog.change_grants(self._c(side), entry["grants"], give=True)
        fences[side] = {**entry, "on": False}
        ctx.save(fences=fences)

    # -- cutover, rollback, finalize, abort -------------------------------------------------

    def freeze(self, ctx: Context, deadline: float) -> None:
        goal = self._one("source", "SELECT pg_current_wal_lsn()::text")
        started = time.monotonic()
        ctx.save(freeze={"lsn": goal, "at": time.time()})
        if not self._wait_applied("source", self.slot, goal, deadline, ctx):
            raise Overrun(f"the drain to the freeze position {goal} overran max_freeze_s")
        ctx.save(freeze={"lsn": goal, "at": time.time(),
                         "drain_s": round(time.monotonic() - started, 3)})

    def _copy_sequences(self, ctx: Context, frm: str, to: str) -> None:
        done = {}
        for seq in ctx.data.get("sequences") or []:
            schema, name = seq.split(".", 1)
            ident = sql.Identifier(schema, name)
            last, called = self._all(frm, sql.SQL("SELECT last_value, is_called FROM {}")
                                     .format(ident))[0]
            self._exec(to, "SELECT setval(%s::regclass, %s, %s)",
                       (ident.as_string(self._c(to)), last, called))
            done[seq] = int(last)
        ctx.save(**{f"sequences_set_{to}": done})

    def _seal(self, side: str, slot: str, fenced_at: Any, deadline: float) -> bool:
        """After a fence (``fenced_at``: the server's clock once it was in place): end the
        write transactions that began before it (their writes were checked against the old
        privileges and could still commit), then drain the slot to the position after them,
        so every committed write has been replicated."""
        old = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND "
               "pid <> pg_backend_pid() AND backend_xid IS NOT NULL AND xact_start < %s AND "
               "usename NOT IN (SELECT rolname FROM pg_roles WHERE rolsuper)")
        grace = min(deadline, time.monotonic() + 2.0)
        while self._all(side, old, (fenced_at,)) and time.monotonic() < grace:
            time.sleep(0.02)
        for (pid,) in self._all(side, old, (fenced_at,)):
            # Not committed, so never acknowledged to the application: safe to roll back.
            self._exec(side, "SELECT pg_terminate_backend(%s, 2000)", (pid,))
        goal = self._one(side, "SELECT pg_current_wal_lsn()::text")
        return self._wait_applied(side, slot, goal, deadline, None)

    def cutover(self, ctx: Context) -> None:
        tables = self._table_list(ctx)
        self._fence(ctx, "source")
        fenced_at = self._one("source", "SELECT clock_timestamp()")
        # A write that slipped in after the final verify (the caller said writes were
        # stopped) is replicated before the forward direction stops, and the sequences are
        # read only once nothing can move them any more.
        if not self._seal("source", self.slot, fenced_at,
                          time.monotonic() + self.drain_timeout_s):
            raise MigrationError("the source's last writes were not applied to the target "
                                 f"within {self.drain_timeout_s:g} s; run the cutover again "
                                 "(the source stays fenced)")
        self._copy_sequences(ctx, "source", "target")
        self._exec("target", sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(
            sql.Identifier(self.sub)))
        if not self._one("target", "SELECT count(*) FROM pg_publication WHERE pubname = %s",
                         (self.back,)):
            self._exec("target", sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(self.back), sql.SQL(", ").join(t.ident for t in tables)))
        if not self._one("source", "SELECT count(*) FROM pg_subscription WHERE subname = %s",
                         (self.back,)):
            # Created while nothing writes to either side: its slot starts at the position
            # where the two sides are equal, so copy_data = false loses and repeats nothing.
            self._exec("source", sql.SQL(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (copy_data = false)")
                .format(sql.Identifier(self.back), sql.Literal(self.target.url),
                        sql.Identifier(self.back)))
        start = self._one("target", "SELECT confirmed_flush_lsn::text FROM "
                          "pg_replication_slots WHERE slot_name = %s", (self.back,))
        ctx.save(reverse={"slot": self.back, "start_lsn": start})
        self._unfence(ctx, "target")

    def rollback(self, ctx: Context, deadline: float) -> VerifyResult | None:
        self._fence(ctx, "target")
        fenced_at = self._one("target", "SELECT clock_timestamp()")
        if not self._seal("target", self.back, fenced_at, deadline):
            self._unfence(ctx, "target")
            raise Overrun("the reverse drain overran max_freeze_s; the target is writable "
                          "again")
        result = self._compare(ctx, "target", exact=True)
        ctx.save(verify={**result.summary(), "at": time.time(), "phase": "rollback"})
        if result.mismatches:
            self._unfence(ctx, "target")
            return result
        self._copy_sequences(ctx, "target", "source")
        self._unfence(ctx, "source")
        self._drop_all()
        return None

    def finalize(self, ctx: Context) -> None:
        self._drop_all()

    def abort(self, ctx: Context) -> None:
        self._drop_all()
        self._unfence(ctx, "target")

    def _drop_all(self) -> None:
        for side, sub in (("source", self.back), ("target", self.sub)):
            if self._one(side, "SELECT count(*) FROM pg_subscription WHERE subname = %s",
                         (sub,)):
                # DROP SUBSCRIPTION also drops its slot on the publisher.
                self._exec(side, sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(sub)))
        for side, pub in (("target", self.back), ("source", self.pub)):
            self._exec(side, sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
                sql.Identifier(pub)))
        # A slot made by capture that no subscription took over (abort before backfill).
        for side, slot in (("source", self.slot), ("target", self.back)):
            for _ in range(50):
                try:
                    self._exec(side, "SELECT pg_drop_replication_slot(slot_name) FROM "
                                     "pg_replication_slots WHERE slot_name = %s", (slot,))
                    break
                except psycopg.errors.ObjectInUse:  # its walsender is still exiting
                    time.sleep(0.1)
