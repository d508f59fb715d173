"""Two local MariaDB 10.11 servers for trying ``standby migrate`` with MySQL URLs (README
"Migrating data").

    python -m components.sandbox.migrate_demo_mysql --dir .migrate-demo-mysql --rows 100000

starts a source and a target (stand-alone servers, ROW binlogs with full images and
metadata, server ids 1 and 2, temp data dirs, free ports on 127.0.0.1), creates the same
schema on both, fills the source, writes the URLs to ``DIR/env`` (``SOURCE=...``,
``TARGET=...``), then runs an application writer (inserts, updates, deletes as the app user,
which has no SUPER, so the migration's ``read_only`` fence binds it) on the source for
``--write-seconds`` and stops it, so the caller can cut over with ``--writes-stopped``. It
keeps the servers until Ctrl-C or ``--hold-seconds``, then stops them and deletes their data.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from components.sandbox.mariadb import ADMIN, APP, MariaPair, MariaServer, ensure_mariadb
from components.sandbox.migrate_demo_run import Closable, Demo, WriteOnce, run
from components.sandbox.pg import free_port

SCHEMA = [
    "CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL, "
    "qty INT, note VARCHAR(200))",
    "CREATE TABLE pairs (a INT, b VARCHAR(20), v DECIMAL(12,3), PRIMARY KEY (a, b))",
]


def solo(server_id: int) -> MariaPair:
    """One stand-alone server named ``primary`` with the sandbox's admin and app users and
    no replica (a migration's source or target is not a replica of the other)."""
    p = MariaPair()
    srv = MariaServer("primary", p.base / "primary", free_port(), server_id)
    p.servers["primary"] = srv
    try:
        # MariaPair's own steps, without the replica that its start() adds.
        p._install(srv)
        p._start(srv)
        c = p._root(srv)
        try:
            cur = c.cursor()
            for user, pw in ((ADMIN, p.admin_password), (APP, p.app_password)):
                cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (pw,))
            cur.execute(f"GRANT ALL ON *.* TO '{ADMIN}'@'127.0.0.1' WITH GRANT OPTION")
            # Column types in the binlog, which the migration's preflight asks for.
            cur.execute("SET GLOBAL binlog_row_metadata = 'FULL'")
            cur.execute(f"CREATE DATABASE `{p.database}`")
            cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{p.database}`.* TO "
                        f"'{APP}'@'127.0.0.1'")
        finally:
            c.close()
    except BaseException:
        p.close()
        raise
    return p


def url(p: MariaPair) -> str:
    """The migration's URL: the admin user (replication privileges, writes through the
    fence)."""
    return (f"mysql://{ADMIN}:{p.admin_password}@127.0.0.1:{p.servers['primary'].port}/"
            f"{p.database}")


def write_once(cur: Any, rng: random.Random, top: int, n: int) -> None:
    r, k = rng.random(), rng.randint(1, top)
    if r < 0.4:
        cur.execute("INSERT INTO items (name, qty) VALUES (%s, %s)", (f"w{n}", k))
    elif r < 0.7:
        cur.execute("UPDATE items SET qty = qty + 1, note = %s WHERE id = %s", (f"u{n}", k))
    elif r < 0.85:
        cur.execute("DELETE FROM items WHERE id = %s", (k,))
    else:
        cur.execute("INSERT INTO pairs VALUES (%s, %s, %s) ON DUPLICATE KEY UPDATE "
                    "v = v + 1", (k % 50, f"k{k}", k))


def setup(args: argparse.Namespace, servers: list[Closable]) -> Demo:
    src = solo(1)
    servers.append(src)
    dst = solo(2)
    servers.append(dst)
    for p in (src, dst):
        with p.connect("primary") as c:
            for stmt in SCHEMA:
                c.cursor().execute(stmt)
    with src.connect("primary") as c:
        cur = c.cursor()
        cur.execute("INSERT INTO items (name, qty) SELECT CONCAT('n', seq), seq "
                    "FROM seq_1_to_%s", (args.rows,))
        cur.execute("INSERT INTO pairs SELECT seq %% 50, CONCAT('k', seq), seq / 3 "
                    "FROM seq_1_to_%s", (max(1, args.rows // 10),))

    @contextmanager
    def writer() -> Iterator[WriteOnce]:
        with src.connect("primary", APP) as c:
            cur = c.cursor()
            yield lambda rng, top, n: write_once(cur, rng, top, n)

    return Demo(url(src), url(dst), writer)


def main(argv: list[str] | None = None) -> int:
    return run("python -m components.sandbox.migrate_demo_mysql", __doc__,
               ".migrate-demo-mysql", argv, ensure_mariadb, setup)


if __name__ == "__main__":
    sys.exit(main())
