"""Benchmark (not a test): ``standby migrate`` PostgreSQL -> PostgreSQL on two local
PostgreSQL 15 servers (fsync off, loopback), in one run:

- copy efficiency E = backfill rows/s / raw rows/s, where raw is a server-side batched
  ``INSERT ... SELECT generate_series`` of the same rows into an empty table of the same
  shape on the same target (no source reads, no replication);
- replay headroom H = apply rows/s / offered rows/s: the offered load is one application
  connection writing single-row transactions as fast as it can (its measured rate); the
  apply rate is how fast the subscription drains a backlog of those writes made while it
  was disabled;
- freeze p50/p99/max over BENCH_CUTOVERS cutovers (``--writes-stopped``: drain to the freeze
  position, exact verify, sequences, fence, reverse subscription; the engine's own clock),
  and the errors the application writer saw while the migration ran;
- verify rows/s (the exact verify inside the freeze).

    python bench/migrate.py            # BENCH_ROWS (200000), BENCH_CUTOVERS (5)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.migrate import Phase, open_migration  # noqa: E402
from components.sandbox.pg import ADMIN, PgPair  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "200000"))
CUTOVERS = int(os.environ.get("BENCH_CUTOVERS", "5"))
SCHEMA = "CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int, note text)"
FILL = ("INSERT INTO {t} (name, qty, note) SELECT 'n' || g, g, repeat('x', 40) "
        "FROM generate_series(1, %s) g")


def url(p: PgPair, db: str) -> str:
    return (f"postgresql://{ADMIN}:{quote(p.admin_password, safe='')}@127.0.0.1:"
            f"{p.servers['primary'].port}/{db}")


def fresh_db(p: PgPair, db: str) -> None:
    with p.connect("primary") as c:
        c.execute(f"CREATE DATABASE {db}")
    with p.connect("primary", dbname=db) as c:
        c.execute(SCHEMA)


def raw_rate(dst: PgPair, db: str) -> float:
    with dst.connect("primary", dbname=db) as c:
        c.execute(SCHEMA.replace("items", "raw_items"))
        t = time.perf_counter()
        c.execute(FILL.format(t="raw_items"), (ROWS,))
        dt = time.perf_counter() - t
        c.execute("DROP TABLE raw_items")
    return ROWS / dt


class AppWriter:
    def __init__(self, p: PgPair, db: str) -> None:
        self.p, self.db, self.ops, self.errors = p, db, 0, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.p.connect("primary", dbname=self.db) as c:
            while not self._stop.is_set() and self.ops < 10_000_000:
                try:
                    c.execute("UPDATE items SET qty = qty + 1 WHERE id = %s",
                              (1 + self.ops * 7919 % ROWS,))
                    c.execute("INSERT INTO items (name, qty) VALUES ('w', 1)")
                    self.ops += 2
                except Exception:
                    self.errors += 1

    def start(self) -> AppWriter:
        self._t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._t.join(timeout=30)


def one_migration(src: PgPair, dst: PgPair, i: int, state: Path) -> dict[str, Any]:
    db = f"bench{i}"
    fresh_db(src, db)
    fresh_db(dst, db)
    with src.connect("primary", dbname=db) as c:
        c.execute(FILL.format(t="items"), (ROWS,))
        c.execute("ANALYZE items")
    out: dict[str, Any] = {}
    if i == 0:
        out["raw_rows_s"] = raw_rate(dst, db)
    m = open_migration(f"bench{i}", url(src, db), url(dst, db), f"sqlite:///{state}",
                       lease_s=15, poll_s=0.05, max_freeze_s=60,
                       adapter_options={"poll_s": 0.02})
    w = AppWriter(src, db).start()
    m.run(until=Phase.VERIFY, max_s=600)
    hist = {h["to"]: h["at"] for h in m.store.history(m.id)}
    out["backfill_rows_s"] = ROWS / (hist["catch-up"] - hist["backfill"])
    if i == 0:  # replay headroom, under the writer's own pace
        t0, ops0 = time.perf_counter(), w.ops
        time.sleep(3)
        out["offered_rows_s"] = (w.ops - ops0) / (time.perf_counter() - t0)
    w.stop()
    out["app_errors"] = w.errors
    if i == 0:
        with dst.connect("primary", dbname=db) as c:
            c.execute(f"ALTER SUBSCRIPTION standby_bench{i} DISABLE")
        backlog = AppWriter(src, db).start()
        time.sleep(5)
        backlog.stop()
        with src.connect("primary", dbname=db) as c:
            goal = c.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        t = time.perf_counter()
        with dst.connect("primary", dbname=db) as c:
            c.execute(f"ALTER SUBSCRIPTION standby_bench{i} ENABLE")
        with src.connect("primary", dbname=db) as c:
            for _ in range(60_000):
                if c.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                             "WHERE slot_name = %s", (goal, f"standby_bench{i}")).fetchone()[0]:
                    break
                time.sleep(0.005)
        out["apply_rows_s"] = backlog.ops / (time.perf_counter() - t)
        m.run(until=Phase.VERIFY, max_s=120)  # verify again after the backlog
    doc = m.cutover(writes_stopped=True, max_freeze_s=60)
    out["freeze_s"] = doc["last_cutover"]["freeze_total_s"]
    out["mismatches"] = doc["mismatches"]
    out["verify_rows_s"] = doc["counts"]["rows_source"] / doc["verify"]["seconds"]
    m.finalize()
    m.adapter.close()
    return out


def main() -> int:
    src = PgPair(wal_level="logical", with_standby=False)
    dst = PgPair(wal_level="logical", with_standby=False)
    try:
        src.start()
        dst.start()
        state = Path(tempfile.mkdtemp(prefix="bench-migrate-")) / "state.sqlite"
        runs = [one_migration(src, dst, i, state) for i in range(CUTOVERS)]
    finally:
        src.close()
        dst.close()
    first = runs[0]
    freezes = sorted(r["freeze_s"] for r in runs)
    result = {
        "rows": ROWS, "cutovers": CUTOVERS, "engine": "postgresql 15 -> postgresql 15",
        "E": round(statistics.median(r["backfill_rows_s"] for r in runs)
                   / first["raw_rows_s"], 2),
        "backfill_rows_s": round(statistics.median(r["backfill_rows_s"] for r in runs)),
        "raw_rows_s": round(first["raw_rows_s"]),
        "H": round(first["apply_rows_s"] / first["offered_rows_s"], 2),
        "apply_rows_s": round(first["apply_rows_s"]),
        "offered_rows_s": round(first["offered_rows_s"]),
        "freeze_s": {"p50": statistics.median(freezes),
                     "p99": freezes[min(len(freezes) - 1, int(0.99 * len(freezes)))],
                     "max": freezes[-1]},
        "app_errors": sum(r["app_errors"] for r in runs),
        "mismatches": sum(r["mismatches"] for r in runs),
        "verify_rows_s": round(statistics.median(r["verify_rows_s"] for r in runs)),
        "notes": "loopback, fsync off; freeze = from the freeze position to the target's "
                 "unfence (drain, exact verify, setval, fence, reverse subscription), writes "
                 "stopped by the caller (no wrapper freeze yet); p99 of "
                 f"{CUTOVERS} cutovers is their max",
    }
    out = ROOT / "bench" / "results" / "migrate.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
