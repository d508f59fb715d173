"""SQL for the wrapper and the data monitor: connections, checked statements, idempotent
writes. Cloud-neutral (the switch steps are in ``sql_failover``):
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
