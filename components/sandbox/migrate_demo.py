"""Two local PostgreSQL 15 servers for trying ``standby migrate`` (README "Migrating data").

    python -m components.sandbox.migrate_demo --dir .migrate-demo --rows 100000 --write-seconds 40

starts a source and a target (``wal_level = logical``, temp data dirs, free ports on
127.0.0.1), creates the same schema on both, fills the source, writes the URLs to
``DIR/env`` (``SOURCE=...``, ``TARGET=...``, sourceable by a shell), then runs an application
writer (inserts, updates, deletes as the app role) on the source for ``--write-seconds`` and
stops it, so the caller can cut over with ``--writes-stopped``. It keeps the servers until
Ctrl-C or ``--hold-seconds``, then stops them and deletes their data.
"""

from __future__ import annotations

import argparse
import random
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from components.sandbox.pg import APP, PgPair, ensure_postgres

SCHEMA = [
    "CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, qty int, note text)",
    "CREATE TABLE pairs (a int, b text, v numeric, PRIMARY KEY (a, b))",
]


def write_once(c: Any, rng: random.Random, top: int, n: int) -> None:
    r, k = rng.random(), rng.randint(1, top)
    if r < 0.4:
        c.execute("INSERT INTO items (name, qty) VALUES (%s, %s)", (f"w{n}", k))
    elif r < 0.7:
        c.execute("UPDATE items SET qty = qty + 1, note = %s WHERE id = %s", (f"u{n}", k))
    elif r < 0.85:
        c.execute("DELETE FROM items WHERE id = %s", (k,))
    else:
        c.execute("INSERT INTO pairs VALUES (%s, %s, %s) ON CONFLICT (a, b) DO UPDATE "
                  "SET v = pairs.v + 1", (k % 50, f"k{k}", k))


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the servers as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m components.sandbox.migrate_demo",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--dir", type=Path, default=Path(".migrate-demo"))
    ap.add_argument("--rows", type=int, default=100_000, choices=range(1, 10_000_001),
                    metavar="1..10000000")
    ap.add_argument("--write-seconds", type=float, default=40.0)
    ap.add_argument("--hold-seconds", type=float, default=3600.0)
    args = ap.parse_args(argv)
    ensure_postgres(lambda m: print(m, file=sys.stderr))
    args.dir.mkdir(parents=True, exist_ok=True)
    src = PgPair(wal_level="logical", with_standby=False)
    dst = PgPair(wal_level="logical", with_standby=False)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        src.start()
        dst.start()
        for p in (src, dst):
            with p.connect("primary", APP) as c:
                for stmt in SCHEMA:
                    c.execute(stmt)
        with src.connect("primary", APP) as c:
            c.execute("INSERT INTO items (name, qty) SELECT 'n' || g, g "
                      "FROM generate_series(1, %s) g", (args.rows,))
            c.execute("INSERT INTO pairs SELECT g %% 50, 'k' || g, g / 3.0 "
                      "FROM generate_series(1, %s) g", (max(1, args.rows // 10),))
        env = args.dir / "env"
        env.write_text(f"SOURCE={shlex.quote(src.url())}\nTARGET={shlex.quote(dst.url())}\n")
        env.chmod(0o600)
        print(f"source and target up; URLs in {env} (source it: . {env})", flush=True)
        rng, n, errors = random.Random(7), 0, 0
        end = time.monotonic() + args.write_seconds
        with src.connect("primary", APP) as c:
            while time.monotonic() < end:
                try:
                    write_once(c, rng, args.rows, n)
                    n += 1
                except Exception as exc:
                    errors += 1
                    print(f"write error: {exc}", file=sys.stderr)
                time.sleep(0.002)
        print(f"writes stopped after {n} writes ({errors} errors); holding the servers "
              "(Ctrl-C stops them)", flush=True)
        time.sleep(args.hold_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        src.close()
        dst.close()
        print("servers stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
