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
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from components.sandbox.migrate_demo_run import Closable, Demo, WriteOnce, run
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


def setup(args: argparse.Namespace, servers: list[Closable]) -> Demo:
    src = PgPair(wal_level="logical", with_standby=False)
    servers.append(src)
    dst = PgPair(wal_level="logical", with_standby=False)
    servers.append(dst)
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

    @contextmanager
    def writer() -> Iterator[WriteOnce]:
        with src.connect("primary", APP) as c:
            yield lambda rng, top, n: write_once(c, rng, top, n)

    return Demo(src.url(), dst.url(), writer)


def main(argv: list[str] | None = None) -> int:
    return run("python -m components.sandbox.migrate_demo", __doc__, ".migrate-demo", argv,
               ensure_postgres, setup)


if __name__ == "__main__":
    sys.exit(main())
