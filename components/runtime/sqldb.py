"""SQL for the wrapper and the data monitor: connections, checked statements, idempotent
writes, and the administrative steps of a switch (fence, drain, promote). Cloud-neutral:
the caller supplies host, port, database and credentials; the drivers are psycopg 3
(PostgreSQL) and PyMySQL (MySQL, MariaDB).

Idempotent writes: a write with an idempotency key inserts the key into
``standby_idempotency`` in the same transaction as the statement. A retry with the same key
finds the key and gets the first answer back (``replayed: true``) without running the
statement again. Because the key row replicates with the write it guards, a retry after a
failover is also applied at most once.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from components.runtime.data_api import DataError, Statement

ENGINES = ("postgres", "mysql")
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}
IDEMPOTENCY_DDL = {
    "postgres": "CREATE TABLE IF NOT EXISTS standby_idempotency (idem_key varchar(128) PRIMARY "
                "KEY, result text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
    "mysql": "CREATE TABLE IF NOT EXISTS standby_idempotency (idem_key varchar(128) PRIMARY "
             "KEY, result text NOT NULL, created_at timestamp NOT NULL DEFAULT "
             "CURRENT_TIMESTAMP) ENGINE=InnoDB",
}
_CLAIM = {
    "postgres": "INSERT INTO standby_idempotency (idem_key, result) VALUES (%s, '') "
                "ON CONFLICT (idem_key) DO NOTHING",
    "mysql": "INSERT IGNORE INTO standby_idempotency (idem_key, result) VALUES (%s, '')",
}


@dataclass(frozen=True)
class Endpoint:
    engine: str
    host: str
    port: int
    database: str

    @classmethod
    def parse(cls, engine: str, value: Any, database: str) -> Endpoint:
        """``host``, ``host:port`` or ``{"host": ..., "port": ...}``."""
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}; allowed: {', '.join(ENGINES)}")
        if isinstance(value, Mapping):
            return cls(engine, str(value["host"]), int(value.get("port") or DEFAULT_PORTS[engine]),
                       str(value.get("database") or database))
        host, _, port = str(value).rpartition(":") if ":" in str(value) else (str(value), "", "")
        return cls(engine, host, int(port) if port else DEFAULT_PORTS[engine], database)

    def __str__(self) -> str:
        return f"{self.engine}://{self.host}:{self.port}/{self.database}"


def connect(ep: Endpoint, user: str, password: str, timeout_s: float) -> Any:
    """A DB-API connection in autocommit mode (transactions are explicit)."""
    if ep.engine == "postgres":
        import psycopg

        return psycopg.connect(host=ep.host, port=ep.port, user=user, password=password,
                               dbname=ep.database, connect_timeout=max(1, round(timeout_s)),
                               autocommit=True, application_name="standby")
    import pymysql

    return pymysql.connect(host=ep.host, port=ep.port, user=user, password=password,
                           database=ep.database, connect_timeout=timeout_s,
                           read_timeout=max(timeout_s, 5.0), write_timeout=max(timeout_s, 5.0),
                           autocommit=True)


# -- error mapping --------------------------------------------------------------------------

_PG_READ_ONLY = {"25006"}  # read_only_sql_transaction (a replica, or a fenced primary)
_PG_GONE = {"57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004"}
_MY_READ_ONLY = {1290, 1836}  # --read-only / running in read-only mode (replica)
_MY_GONE = {2002, 2003, 2006, 2013, 2055, 1053, 1927}


def classify(exc: BaseException, ep: Endpoint) -> DataError:
    """Map a driver exception to a wrapper error code."""
    where = f"{ep.engine} at {ep.host}:{ep.port}"
    state = getattr(exc, "sqlstate", None)
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    name = type(exc).__name__
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else name
    if state in _PG_READ_ONLY or code in _MY_READ_ONLY:
        return DataError("NotPrimary", f"{where} is read-only (a replica or a fenced old "
                         "primary): retry; the pointer moves to the promoted side")
    if state in _PG_GONE or code in _MY_GONE or name in ("OperationalError", "InterfaceError"):
        return DataError("Unavailable", f"{where} unavailable: {first}")
    if name in ("IntegrityError", "UniqueViolation", "ForeignKeyViolation", "NotNullViolation",
                "CheckViolation"):
        return DataError("Conflict", f"constraint violated: {first}")
    if name in ("ProgrammingError", "DataError", "SyntaxError", "UndefinedTable",
                "UndefinedColumn", "InvalidTextRepresentation", "NumericValueOutOfRange"):
        return DataError("BadRequest", f"statement rejected by {ep.engine}: {first}")
    return DataError("Internal", f"{name} from {where}: {first}")


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


class SqlPool:
    """A few open connections to one endpoint, reused across invocations (warm starts)."""

    def __init__(self, ep: Endpoint, user: str, password: str, timeout_s: float,
                 size: int = 4) -> None:
        self.ep = ep
        self._user, self._password = user, password
        self.timeout_s = timeout_s
        self.size = size
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._ddl_done = False

    @contextmanager
    def conn(self) -> Iterator[Any]:
        with self._lock:
            c = self._idle.pop() if self._idle else None
        if c is None:
            try:
                c = connect(self.ep, self._user, self._password, self.timeout_s)
            except Exception as exc:
                raise classify(exc, self.ep) from None
        ok = False
        try:
            yield c
            ok = True
        finally:
            if ok:
                with self._lock:
                    if len(self._idle) < self.size:
                        self._idle.append(c)
                        c = None
            if c is not None:
                with suppress(Exception):  # already broken: nothing to release
                    c.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            with suppress(Exception):
                c.close()

    def execute(self, stmt: Statement, idempotency_key: str | None, max_rows: int) -> dict[str, Any]:  # noqa: E501
        try:
            with self.conn() as c:
                if stmt.writes and idempotency_key is not None:
                    return self._idempotent(c, stmt, idempotency_key, max_rows)
                cur = c.cursor()
                cur.execute(stmt.text, stmt.params)
                return self._result(cur, max_rows)
        except DataError:
            raise
        except Exception as exc:
            raise classify(exc, self.ep) from None

    def _idempotent(self, c: Any, stmt: Statement, key: str, max_rows: int) -> dict[str, Any]:
        engine = self.ep.engine
        cur = c.cursor()
        if not self._ddl_done:
            cur.execute(IDEMPOTENCY_DDL[engine])
            self._ddl_done = True
        cur.execute("BEGIN")
        try:
            cur.execute(_CLAIM[engine], (key,))
            if cur.rowcount == 0:
                cur.execute("ROLLBACK")
                cur.execute("SELECT result FROM standby_idempotency WHERE idem_key = %s", (key,))
                row = cur.fetchone()
                first = json.loads(row[0]) if row and row[0] else {}
                return {**first, "replayed": True}
            cur.execute(stmt.text, stmt.params)
            result = self._result(cur, max_rows)
            cur.execute("UPDATE standby_idempotency SET result = %s WHERE idem_key = %s",
                        (json.dumps(result), key))
            cur.execute("COMMIT")
            return {**result, "replayed": False}
        except BaseException:
            with suppress(Exception):
                cur.execute("ROLLBACK")
            raise

    @staticmethod
    def _result(cur: Any, max_rows: int) -> dict[str, Any]:
        out: dict[str, Any] = {"row_count": cur.rowcount}
        if cur.description:
            rows = cur.fetchmany(max_rows + 1)
            out["columns"] = [d[0] for d in cur.description]
            out["rows"] = [[_jsonable(v) for v in r] for r in rows[:max_rows]]
            out["truncated"] = len(rows) > max_rows
            out["row_count"] = len(out["rows"])
        return out


# -- administration: what a switch does to the servers ---------------------------------------


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
