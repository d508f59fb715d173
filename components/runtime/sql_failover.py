"""The administrative steps of a SQL switch, cloud-neutral: role, fence, drain position,
catch-up and promote, for PostgreSQL and MySQL/MariaDB. The caller supplies a DB-API
connection with administrative rights (``sqldb.connect``).

MySQL 8.4 removed the ``SLAVE``/``MASTER`` statement spellings; MariaDB 10.11 lacks some of
the new ones (``SHOW BINARY LOG STATUS``, ``SOURCE_POS_WAIT``). Each statement is tried in
its new spelling first and falls back only on "syntax error" or "no such function", never on
any other error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from components.runtime.errors import SwitchError

#: MySQL/MariaDB errors that mean "this server does not know this spelling".
_MY_UNKNOWN_SPELLING = {1064, 1305, 1128}
_MY_UNKNOWN_THREAD = 1094
#: Longest single wait inside one statement: below PyMySQL's 5 s read timeout (sqldb.connect).
_MAX_WAIT_CALL_S = 3.0
#: How long one backend may take to end after it was told to (PostgreSQL 14+ waits for it).
TERMINATE_WAIT_MS = 2000


def first_spelling(cur: Any, spellings: Sequence[str], args: Sequence[Any] = ()) -> None:
    """Run the first spelling this server understands (newest first: MySQL 8.4 removed the
    ``MASTER``/``SLAVE`` ones, MariaDB 10.11 lacks some new ones). Used by the migration's
    binlog reader too."""
    last: Exception | None = None
    for sql in spellings:
        try:
            cur.execute(sql, tuple(args) or None)
            return
        except Exception as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            if code not in _MY_UNKNOWN_SPELLING:
                raise
            last = exc
    assert last is not None
    raise last


def replica_status(cur: Any) -> dict[str, Any] | None:
    """MySQL/MariaDB replica status with the column names of either era (``Source``/
    ``Replica`` in MySQL 8.0.22+, ``Master``/``Slave`` in MariaDB), normalised to the old
    names; None when the server is not a replica."""
    first_spelling(cur, ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"))
    row = cur.fetchone()
    if row is None:
        return None
    raw = dict(zip([d[0] for d in cur.description], row, strict=False))
    out = dict(raw)
    for k, v in raw.items():
        out.setdefault(k.replace("Source", "Master").replace("Replica", "Slave"), v)
    return out


#: The binary log's current position, newest spelling first (MySQL 8.2+, MariaDB 10.5.2+, old).
BINLOG_STATUS = ("SHOW BINARY LOG STATUS", "SHOW BINLOG STATUS", "SHOW MASTER STATUS")


def _binlog_position(cur: Any) -> str:
    first_spelling(cur, BINLOG_STATUS)
    row = cur.fetchone()
    if row is None:
        raise SwitchError("the binary log status is empty: binary logging is off on the "
                          "primary, so a replica cannot be drained to it")
    return f"{row[0]}:{int(row[1])}"


def _pos(value: str) -> tuple[str, int]:
    file, _, pos = value.rpartition(":")
    return file, int(pos)


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
    status = replica_status(cur)
    return {"replica": status is not None, "read_only": ro,
            "position": None if status is None else
            f"{status.get('Relay_Master_Log_File')}:{status.get('Exec_Master_Log_Pos')}"}


def fence(c: Any, engine: str, token: int = 0) -> None:
    """Make a server refuse writes from now on, end every session that could still write, and
    wait until they are gone. Raises ``SwitchError`` if any session survives.

    PostgreSQL: ``default_transaction_read_only`` (persisted, reloaded), then every other
    client session terminated with ``pg_terminate_backend(pid, timeout)``, which waits for
    the backend to exit (the one-argument form only sends the signal, so a commit could still
    be acknowledged after the drain position was read). MySQL/MariaDB: ``read_only`` (and
    ``super_read_only`` where it exists) and every other application connection killed; the
    fence time is recorded in ``mysql.standby_fence`` (not replicated) for ``fence_age_s``.
    """
    cur = c.cursor()
    if engine == "postgres":
        cur.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        cur.execute("SELECT pg_reload_conf()")
        cur.execute("SELECT pid, pg_terminate_backend(pid, %s) FROM pg_stat_activity WHERE "
                    "backend_type = 'client backend' AND pid <> pg_backend_pid()",
                    (TERMINATE_WAIT_MS,))
        cur.fetchall()  # False = gone before we asked, or still running: the check decides
        _check_no_other_sessions(c, engine)
        return
    # Recorded first: once super_read_only is on (MySQL 8), not even an admin may write.
    cur.execute("SET SESSION sql_log_bin = 0")  # the record stays on this server
    try:
        cur.execute("CREATE TABLE IF NOT EXISTS mysql.standby_fence (id int PRIMARY KEY, "
                    "token bigint NOT NULL, fenced_at timestamp(3) NOT NULL)")
        cur.execute("REPLACE INTO mysql.standby_fence VALUES (1, %s, NOW(3))", (int(token),))
    finally:
        cur.execute("SET SESSION sql_log_bin = 1")
    # SET GLOBAL read_only waits for commits in flight; never longer than a drain may.
    cur.execute("SET SESSION lock_wait_timeout = 5")
    cur.execute("SET GLOBAL read_only = ON")
    try:
        cur.execute("SET GLOBAL super_read_only = ON")
    except Exception as exc:  # MariaDB has no super_read_only; read_only binds non-admins
        if not (exc.args and exc.args[0] in (1193, 1064)):
            raise
    _check_no_other_sessions(c, engine, victims=_my_other_sessions(cur))


def _my_other_sessions(cur: Any) -> list[int]:
    cur.execute("SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() "
                "AND command NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', "
                "'Slave_SQL', 'Slave_worker') AND user NOT IN ('system user', "
                "'event_scheduler', 'unauthenticated user')")
    return [int(r[0]) for r in cur.fetchall()]


def _check_no_other_sessions(c: Any, engine: str, victims: Sequence[int] = (),
                             wait_s: float = 5.0, clock: Any = time.monotonic,
                             sleep: Any = time.sleep) -> None:
    """Bounded wait until no session that could write before the fence is left (sessions
    opened after it are read-only: they do not count)."""
    cur = c.cursor()
    deadline = clock() + wait_s
    while True:
        if engine == "postgres":
            cur.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
                        "AND pid <> pg_backend_pid() AND backend_start < ("
                        "pg_stat_file('postgresql.auto.conf')).modification")
            left = [int(r[0]) for r in cur.fetchall()]
        else:
            left = sorted(set(victims) & set(_my_other_sessions(cur)))
        if not left:
            return
        if clock() >= deadline:
            raise SwitchError(f"fence incomplete: session(s) {left[:10]} still open "
                              f"{wait_s:g} s after being terminated")
        if engine == "postgres":
            cur.execute("SELECT pg_terminate_backend(pid, %s) FROM unnest(%s::int[]) AS pid",
                        (TERMINATE_WAIT_MS, left))
            cur.fetchall()
        else:
            for pid in left:
                try:
                    cur.execute(f"KILL CONNECTION {int(pid)}")
                except Exception as exc:
                    if not (exc.args and exc.args[0] == _MY_UNKNOWN_THREAD):  # already gone
                        raise
        sleep(0.05)


def fenced(c: Any, engine: str) -> bool:
    """Whether the server refuses application writes, as a fresh session sees it."""
    r = role(c, engine)
    return bool(r["read_only"] or r["replica"])


def fence_age_s(c: Any, engine: str) -> float | None:
    """Seconds since this server was fenced, by its own clock (no cross-machine skew), or
    None when it is not fenced or the time was not recorded."""
    cur = c.cursor()
    try:
        if engine == "postgres":
            cur.execute("SELECT current_setting('default_transaction_read_only') = 'on', "
                        "EXTRACT(EPOCH FROM now() - (pg_stat_file('postgresql.auto.conf'))"
                        ".modification)")
            on, age = cur.fetchone()
            return float(age) if on else None
        cur.execute("SELECT @@global.read_only, TIMESTAMPDIFF(MICROSECOND, fenced_at, NOW(3)) "
                    "FROM mysql.standby_fence WHERE id = 1")
        row = cur.fetchone()
        return float(row[1]) / 1e6 if row and row[0] else None
    except Exception:  # no record table (never fenced by us) or no pg_stat_file right
        return None


def unfence(c: Any, engine: str) -> None:
    cur = c.cursor()
    if engine == "postgres":
        cur.execute("SET default_transaction_read_only = off")
        cur.execute("ALTER SYSTEM RESET default_transaction_read_only")
        cur.execute("SELECT pg_reload_conf()")
        return
    try:
        cur.execute("SET GLOBAL super_read_only = OFF")
    except Exception as exc:
        if not (exc.args and exc.args[0] in (1193, 1064)):
            raise
    cur.execute("SET GLOBAL read_only = OFF")
    cur.execute("SET SESSION sql_log_bin = 0")
    try:
        cur.execute("DELETE FROM mysql.standby_fence WHERE id = 1")
    except Exception as exc:
        if not (exc.args and exc.args[0] == 1146):  # no table: never fenced by us
            raise
    finally:
        cur.execute("SET SESSION sql_log_bin = 1")


def position(c: Any, engine: str) -> str:
    """The position a replica must reach to hold everything this server committed. Read
    after the fence: on PostgreSQL the insert position, which covers WAL a terminated
    backend inserted but had not yet flushed."""
    cur = c.cursor()
    if engine == "postgres":
        cur.execute("SELECT pg_current_wal_insert_lsn()")
        return str(cur.fetchone()[0])
    return _binlog_position(cur)


def wait_caught_up(c: Any, engine: str, target: str, timeout_s: float,
                   clock: Any = time.monotonic, sleep: Any = time.sleep) -> bool:
    """Until the replica has applied ``target``; False after ``timeout_s`` (every engine:
    on MySQL/MariaDB each ``*_POS_WAIT`` call carries a real timeout, because 0 means
    "wait forever" there)."""
    deadline = clock() + timeout_s
    cur = c.cursor()
    while True:
        left = deadline - clock()
        if engine == "postgres":
            cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
            if cur.fetchone()[0]:
                return True
            if left <= 0:
                return False
            sleep(min(0.05, left))
            continue
        file, pos = _pos(target)
        wait = max(0.001, min(left, _MAX_WAIT_CALL_S))
        first_spelling(cur, ("SELECT SOURCE_POS_WAIT(%s, %s, %s)",
                             "SELECT MASTER_POS_WAIT(%s, %s, %s)"), (file, pos, wait))
        got = cur.fetchone()[0]
        if got is None:  # not a replica, or its SQL thread is stopped: it cannot catch up
            raise SwitchError("the replica's SQL thread is not running: it cannot apply "
                              f"{target}")
        if int(got) >= 0:
            return True
        if clock() >= deadline:
            return False


def promote(c: Any, engine: str, timeout_s: float) -> None:
    """Turn a replica into a writable primary (no-op if it already is one)."""
    cur = c.cursor()
    if engine == "postgres":
        cur.execute("SELECT pg_is_in_recovery()")
        if cur.fetchone()[0]:
            cur.execute("SELECT pg_promote(true, %s)", (max(1, int(timeout_s)),))
            if not cur.fetchone()[0]:
                raise SwitchError(f"pg_promote did not finish within {timeout_s:g} s")
        unfence(c, engine)
        return
    if replica_status(cur) is not None:
        first_spelling(cur, ("STOP REPLICA", "STOP SLAVE"))
        first_spelling(cur, ("RESET REPLICA ALL", "RESET SLAVE ALL"))
    unfence(c, engine)
