"""The administrative steps of a SQL switch, cloud-neutral: role, fence, drain position,
catch-up and promote, for PostgreSQL and MySQL/MariaDB. The caller supplies a DB-API
connection with administrative rights (``sqldb.connect``)."""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any


def role(c: Any, engine: str) -> dict[str, Any]:
    """``{"replica": bool, "read_only": bool, "position": ...}`` of one server."""
    cur = c.cursor()
    if engine == "postgres":
        cur.execute("SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')"
                    ", CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                    "ELSE pg_current_wal_lsn() END")
        replica, ro, lsn = cur.fetchone()
        return {"replica": bool(replica), "read_only": ro == "on", "position": str(lsn)}
    cur.execute("SELECT @@global.read_only")
    ro = bool(cur.fetchone()[0])
    status = _replica_status(cur)
    return {"replica": status is not None, "read_only": ro,
            "position": None if status is None else
            f"{status.get('Relay_Master_Log_File') or status.get('Relay_Source_Log_File')}:"
            f"{status.get('Exec_Master_Log_Pos') or status.get('Exec_Source_Log_Pos')}"}


def _replica_status(cur: Any) -> dict[str, Any] | None:
    cur.execute("SHOW SLAVE STATUS")  # MariaDB and MySQL 8 both answer this spelling
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=False))


def fence(c: Any, engine: str) -> None:
    """Make a server refuse writes from now on, and end the sessions that could still write.

    PostgreSQL: ``default_transaction_read_only`` (persisted, reloaded) and every other client
    session terminated. MySQL/MariaDB: ``read_only`` (and ``super_read_only`` where it
    exists) and every other application connection killed.
    """
    cur = c.cursor()
    if engine == "postgres":
        cur.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        cur.execute("SELECT pg_reload_conf()")
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                    "backend_type = 'client backend' AND pid <> pg_backend_pid()")
        return
    cur.execute("SET GLOBAL read_only = ON")
    with suppress(Exception):  # MariaDB has no super_read_only; read_only binds non-admins
        cur.execute("SET GLOBAL super_read_only = ON")
    cur.execute("SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() "
                "AND command NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', "
                "'Slave_SQL', 'Slave_worker') AND user NOT IN ('system user', 'event_scheduler')")
    for (pid,) in cur.fetchall():
        with suppress(Exception):  # already gone
            cur.execute(f"KILL {int(pid)}")


def unfence(c: Any, engine: str) -> None:
    cur = c.cursor()
    if engine == "postgres":
        cur.execute("SET default_transaction_read_only = off")
        cur.execute("ALTER SYSTEM RESET default_transaction_read_only")
        cur.execute("SELECT pg_reload_conf()")
        return
    with suppress(Exception):
        cur.execute("SET GLOBAL super_read_only = OFF")
    cur.execute("SET GLOBAL read_only = OFF")


def position(c: Any, engine: str) -> str:
    """The write position a replica must reach to hold everything this server committed."""
    cur = c.cursor()
    if engine == "postgres":
        cur.execute("SELECT pg_current_wal_lsn()")
        return str(cur.fetchone()[0])
    cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("SHOW MASTER STATUS is empty: binary logging is off on the primary")
    return f"{row[0]}:{row[1]}"


def caught_up(c: Any, engine: str, target: str) -> bool:
    cur = c.cursor()
    if engine == "postgres":
        cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
        return bool(cur.fetchone()[0])
    file, _, pos = target.rpartition(":")
    cur.execute("SELECT MASTER_POS_WAIT(%s, %s, 0)", (file, int(pos)))
    got = cur.fetchone()[0]
    return got is not None and int(got) >= 0


def promote(c: Any, engine: str, timeout_s: float) -> None:
    """Turn a replica into a writable primary (no-op if it already is one)."""
    cur = c.cursor()
    if engine == "postgres":
        cur.execute("SELECT pg_is_in_recovery()")
        if cur.fetchone()[0]:
            cur.execute("SELECT pg_promote(true, %s)", (max(1, int(timeout_s)),))
            if not cur.fetchone()[0]:
                raise RuntimeError(f"pg_promote did not finish within {timeout_s:g} s")
        unfence(c, engine)
        return
    if _replica_status(cur) is not None:
        cur.execute("STOP SLAVE")
        cur.execute("RESET SLAVE ALL")
    unfence(c, engine)


def wait_caught_up(c: Any, engine: str, target: str, timeout_s: float,
                   clock: Any = time.monotonic, sleep: Any = time.sleep) -> bool:
    """Poll until the replica has replayed ``target`` (bounded by ``timeout_s``)."""
    deadline = clock() + timeout_s
    while True:
        if caught_up(c, engine, target):
            return True
        if clock() >= deadline:
            return False
        sleep(0.05)
