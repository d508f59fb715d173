"""SQL for the wrapper and the data monitor: connections, checked statements, idempotent
writes. Cloud-neutral (the switch steps are in ``sql_failover``):
the caller supplies host, port, database and credentials; the drivers are psycopg 3
(PostgreSQL) and PyMySQL (MySQL, MariaDB).

Idempotent writes: a write with an idempotency key inserts the key, bound to a hash of the
statement and its parameters, into ``standby_idempotency`` in the same transaction as the
statement. A retry with the same key and request finds the key and gets the first answer back
(``replayed: true``) without running the statement again; the same key with another request
is a ``Conflict``. Because the key row replicates with the write it guards, a retry after a
failover is also applied at most once. Keys expire after ``idempotency_ttl_s`` (a retry after
that runs again); expired rows are deleted in bounded batches, at most once a minute per pool.
Reads never get a key row.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from components.runtime import sql_errors
from components.runtime.data_errors import DataError
from components.runtime.sql_gate import Statement

ENGINES = ("postgres", "mysql")
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}
STATEMENT_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 1024 * 1024
IDEMPOTENCY_TTL_S = 24 * 3600.0
SWEEP_EVERY_S = 60.0
SWEEP_BATCH = 500
IDEMPOTENCY_LOCK_ID = 0x5354414E444259  # pg_advisory_xact_lock key of the table's creation
IDEMPOTENCY_DDL = {
    "postgres": (
        "CREATE TABLE IF NOT EXISTS standby_idempotency (idem_key varchar(128) PRIMARY KEY, "
        "request_hash char(64) NOT NULL, result text NOT NULL, "
        "created_at timestamptz NOT NULL DEFAULT now())",
        # a table created by an earlier version has no request hash: such keys never match
        "ALTER TABLE standby_idempotency ADD COLUMN IF NOT EXISTS request_hash char(64) "
        "NOT NULL DEFAULT ''",
        "CREATE INDEX IF NOT EXISTS standby_idempotency_created "
        "ON standby_idempotency (created_at)",
    ),
    "mysql": (
        "CREATE TABLE IF NOT EXISTS standby_idempotency (idem_key varchar(128) PRIMARY KEY, "
        "request_hash char(64) NOT NULL, result mediumtext NOT NULL, created_at timestamp "
        "NOT NULL DEFAULT CURRENT_TIMESTAMP, INDEX standby_idempotency_created (created_at)) "
        "ENGINE=InnoDB",
    ),
}
_EXPIRE_ONE = {
    "postgres": "DELETE FROM standby_idempotency WHERE idem_key = %s "
                "AND created_at < now() - make_interval(secs => %s)",
    "mysql": "DELETE FROM standby_idempotency WHERE idem_key = %s "
             "AND created_at < NOW() - INTERVAL %s SECOND",
}
_CLAIM = {
    "postgres": "INSERT INTO standby_idempotency (idem_key, request_hash, result) "
                "VALUES (%s, %s, '') ON CONFLICT (idem_key) DO NOTHING",
    "mysql": "INSERT IGNORE INTO standby_idempotency (idem_key, request_hash, result) "
             "VALUES (%s, %s, '')",
}
_SWEEP = {
    "postgres": "DELETE FROM standby_idempotency WHERE idem_key IN (SELECT idem_key FROM "
                "standby_idempotency WHERE created_at < now() - make_interval(secs => %s) "
                "ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED)",
    "mysql": "DELETE FROM standby_idempotency WHERE created_at < NOW() - INTERVAL %s SECOND "
             "ORDER BY created_at LIMIT %s",
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
                               autocommit=True, application_name="standby",
                               # no server-side prepared statements: DISCARD ALL between
                               # requests would drop them under psycopg's cache
                               prepare_threshold=None)
    import pymysql

    return pymysql.connect(host=ep.host, port=ep.port, user=user, password=password,
                           database=ep.database, connect_timeout=timeout_s,
                           read_timeout=max(timeout_s, 5.0), write_timeout=max(timeout_s, 5.0),
                           autocommit=True)


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


def classify(exc: BaseException, ep: Endpoint) -> DataError:
    """Map a driver exception to a wrapper error code (see ``sql_errors``)."""
    return sql_errors.classify(exc, ep.engine, ep.host, ep.port)


def request_hash(stmt: Statement) -> str:
    """What an idempotency key is bound to: the statement and its parameters."""
    canon = json.dumps([stmt.text, stmt.params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


class SqlPool:
    """A few open connections to one endpoint, reused across invocations (warm starts).

    Every request runs in its own transaction under a statement timeout; a write first
    re-checks, in that transaction, that the server is writable (a fenced old primary answers
    ``NotPrimary`` before the statement runs). A PostgreSQL session is reset (``DISCARD
    ALL``) before it goes back to the pool, so nothing a statement did to the session (a
    setting, an advisory lock, a temp table) reaches the next request.
    """

    def __init__(self, ep: Endpoint, user: str, password: str, timeout_s: float,
                 size: int = 4, idempotency_ttl_s: float = IDEMPOTENCY_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ep = ep
        self._user, self._password = user, password
        self.timeout_s = timeout_s
        self.size = size
        self.idempotency_ttl_s = idempotency_ttl_s
        self._clock = clock
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._ddl_done = False
        self._swept_at: float | None = None
        self._mariadb: dict[int, bool] = {}

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
            ok = self._reset(c)
        finally:
            if ok:
                with self._lock:
                    if len(self._idle) < self.size:
                        self._idle.append(c)
                        c = None
            if c is not None:
                with suppress(Exception):  # already broken: nothing to release
                    c.close()

    def _reset(self, c: Any) -> bool:
        """Whether the session is clean again (else it is closed, not pooled)."""
        if self.ep.engine != "postgres":
            return True  # the gate refuses every statement that changes a MySQL session
        try:
            c.execute("DISCARD ALL")
        except Exception:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            with suppress(Exception):
                c.close()

    def execute(self, stmt: Statement, idempotency_key: str | None, max_rows: int,
                statement_timeout_s: float = STATEMENT_TIMEOUT_S) -> dict[str, Any]:
        """Run one checked statement in its own transaction; ``statement_timeout_s`` bounds
        its run time on the server."""
        try:
            with self.conn() as c:
                cur = c.cursor()
                if stmt.writes and idempotency_key is not None:
                    self._ensure_idempotency_table(c, statement_timeout_s)
                self._begin(c, cur, stmt.writes, statement_timeout_s)
                try:
                    if stmt.writes and idempotency_key is not None:
                        result = self._idempotent(c, cur, stmt, idempotency_key, max_rows)
                    else:
                        result = self._run(c, cur, stmt, max_rows)
                        cur.execute("COMMIT")
                except BaseException:
                    with suppress(Exception):
                        cur.execute("ROLLBACK")
                    raise
                if stmt.writes and idempotency_key is not None:
                    self._maybe_sweep(c, statement_timeout_s)
                return result
        except DataError:
            raise
        except Exception as exc:
            raise classify(exc, self.ep) from None

    # -- one transaction -----------------------------------------------------------------

    def _begin(self, c: Any, cur: Any, writes: bool, timeout_s: float) -> None:
        """BEGIN, set the statement timeout for this transaction only, and for a write check
        that this server takes writes now (from the very session that will write)."""
        ms = max(1, int(timeout_s * 1000))
        cur.execute("BEGIN")
        try:
            if self.ep.engine == "postgres":
                cur.execute("SELECT set_config('statement_timeout', %s, true), "
                            "set_config('lock_timeout', %s, true), "
                            "current_setting('transaction_read_only'), pg_is_in_recovery()",
                            (str(ms), str(ms)))
                _, _, read_only, recovery = cur.fetchone()
                fenced = read_only == "on" or bool(recovery)
            else:
                var = "max_statement_time" if self._is_mariadb(c) else "max_execution_time"
                value: float = ms / 1000 if var == "max_statement_time" else ms
                cur.execute(f"SET SESSION {var} = %s", (value,))
                cur.execute("SET SESSION innodb_lock_wait_timeout = %s",
                            (max(1, round(timeout_s)),))
                cur.execute("SELECT @@global.read_only")
                row = cur.fetchone()
                fenced = bool(int(row[0]))
        except BaseException:
            with suppress(Exception):
                cur.execute("ROLLBACK")
            raise
        if writes and fenced:
            cur.execute("ROLLBACK")
            raise DataError("NotPrimary", f"{self.ep} is read-only (a replica or a fenced old "
                            "primary): retry; the pointer moves to the promoted side")

    def _is_mariadb(self, c: Any) -> bool:
        key = id(c)
        if key not in self._mariadb:
            self._mariadb[key] = "mariadb" in str(c.get_server_info()).lower()
        return self._mariadb[key]

    def _run(self, c: Any, cur: Any, stmt: Statement, max_rows: int) -> dict[str, Any]:
        if stmt.writes:
            cur.execute(stmt.text, stmt.params)
            return _result(cur, max_rows)
        # A read streams through a server-side cursor: a huge result is cut off at max_rows
        # (or the byte limit) instead of being buffered whole in the function's memory.
        if self.ep.engine == "postgres":
            rcur = c.cursor(name="standby_read")
        else:
            import pymysql.cursors

            rcur = c.cursor(pymysql.cursors.SSCursor)
        try:
            rcur.execute(stmt.text, stmt.params)
            return _result(rcur, max_rows)
        finally:
            rcur.close()

    # -- idempotency ---------------------------------------------------------------------

    def _ensure_idempotency_table(self, c: Any, timeout_s: float) -> None:
        if self._ddl_done:
            return
        cur = c.cursor()
        for attempt in range(3):
            try:
                self._begin(c, cur, True, timeout_s)
                if self.ep.engine == "postgres":
                    # Serialises concurrent first writes: CREATE TABLE IF NOT EXISTS alone
                    # races on the catalog's unique index and one side fails.
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (IDEMPOTENCY_LOCK_ID,))
                for ddl in IDEMPOTENCY_DDL[self.ep.engine]:
                    cur.execute(ddl)
                cur.execute("COMMIT")
                self._ddl_done = True
                return
            except DataError:
                raise
            except Exception as exc:
                with suppress(Exception):
                    cur.execute("ROLLBACK")
                err = classify(exc, self.ep)
                # A concurrent creator won the race: the table exists now, check again.
                duplicate = getattr(exc, "sqlstate", None) in ("23505", "42P07", "42710") or (
                    bool(exc.args) and exc.args[0] in (1050, 1061))
                if not duplicate or attempt == 2:
                    raise err from None

    def _idempotent(self, c: Any, cur: Any, stmt: Statement, key: str,
                    max_rows: int) -> dict[str, Any]:
        engine = self.ep.engine
        digest = request_hash(stmt)
        ttl = int(self.idempotency_ttl_s)
        cur.execute(_EXPIRE_ONE[engine], (key, ttl))
        cur.execute(_CLAIM[engine], (key, digest))
        if cur.rowcount == 0:
            cur.execute("ROLLBACK")
            cur.execute("SELECT result, request_hash FROM standby_idempotency "
                        "WHERE idem_key = %s", (key,))
            row = cur.fetchone()
            if row is None:  # expired and swept between the claim and this read
                raise DataError("Aborted", f"idempotency_key {key!r}: its record expired "
                                "while this request ran: resend")
            if row[1] != digest:
                raise DataError("Conflict", f"idempotency_key {key!r} was already used for a "
                                "different statement or parameters; use a new key per write")
            first = json.loads(row[0]) if row[0] else {}
            return {**first, "replayed": True}
        result = self._run(c, cur, stmt, max_rows)
        cur.execute("UPDATE standby_idempotency SET result = %s WHERE idem_key = %s",
                    (json.dumps(result), key))
        cur.execute("COMMIT")
        return {**result, "replayed": False}

    def _maybe_sweep(self, c: Any, timeout_s: float) -> None:
        """Delete a bounded batch of expired keys, at most once a minute per pool."""
        now = self._clock()
        if self._swept_at is not None and now - self._swept_at < SWEEP_EVERY_S:
            return
        self._swept_at = now
        cur = c.cursor()
        try:
            self._begin(c, cur, True, timeout_s)
            cur.execute(_SWEEP[self.ep.engine], (int(self.idempotency_ttl_s), SWEEP_BATCH))
            cur.execute("COMMIT")
        except Exception:
            # The sweep is housekeeping: the write it follows was committed and answers ok.
            with suppress(Exception):
                cur.execute("ROLLBACK")


def _result(cur: Any, max_rows: int) -> dict[str, Any]:
    out: dict[str, Any] = {"row_count": cur.rowcount}
    if cur.description:
        out["columns"] = [d[0] for d in cur.description]
        size = len(json.dumps(out["columns"]))
        rows: list[list[Any]] = []
        truncated = False
        while len(rows) <= max_rows:
            want = min(100, max_rows + 1 - len(rows))
            batch = cur.fetchmany(want)
            for r in batch:
                if len(rows) == max_rows:
                    truncated = True
                    break
                row = [_jsonable(v) for v in r]
                size += len(json.dumps(row)) + 1
                if size > MAX_ANSWER_BYTES:
                    raise DataError("PayloadTooLarge", f"answer: over {MAX_ANSWER_BYTES} bytes "
                                    f"after {len(rows)} rows; select fewer or narrower "
                                    "columns, or lower max_rows")
                rows.append(row)
            if truncated or len(batch) < want:
                break  # the last batch: no need to ask the server again
        out["rows"] = rows
        out["truncated"] = truncated
        out["row_count"] = len(rows)
    return out
