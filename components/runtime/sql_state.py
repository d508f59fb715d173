"""The state store on MySQL/MariaDB: lease + fencing token, scope state + intent, votes, log.

Cloud-neutral: any cloud whose control region offers a MySQL-compatible database uses it
(Tencent: TencentDB for MySQL). It implements ``components.runtime.lease.StateStore`` with
the same conditions as ``MemoryStore`` (the reference) and the DynamoDB store.

Tables (prefix configurable, created idempotently on first use):
  ``<p>lease``  layer -> holder, lease_until, token (the counter; the row is never deleted,
                so a token is never reused)
  ``<p>scope``  (layer, scope) -> active, token, last_switch_at, last_practice_at,
                last_alert, intent (JSON) + intent_token (an unfinished switch)
  ``<p>vote``   (layer, scope, vantage) -> streaks, at
  ``<p>log``    one switch record per row (JSON), kept
  ``<p>pointer`` name -> active, token, reason, switched_at (what the wrapper and the
                functions read: the active side's name), fenced by the token

Every protocol step is one InnoDB transaction that takes row locks (``SELECT ... FOR
UPDATE``) on the lease row and then the scope row, checks the condition on what it locked,
and writes; a locking read always sees the newest committed row, so the checks are as strong
as DynamoDB's conditional writes. The lock order (lease before scope) is the same everywhere;
a deadlock or lock-wait timeout the server still reports is retried a bounded number of
times. A failed condition is ``LeaseLost``/``StaleToken``; any other failure (refused login,
unreachable server, a missing grant) is ``StoreError``, so a driver error never escapes.

One connection per operation: a connection broken by a database failover or an idle
timeout can never poison the next call, and operations from several threads never share
a connection (PyMySQL connections are not thread-safe).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from typing import Any, TypeVar

import pymysql

from components.runtime.engine import Intent, ScopeState, Side, Vote
from components.runtime.errors import LeaseLost, StaleToken, StoreError
from components.runtime.lease import Lease, SwitchRecord

T = TypeVar("T")

_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
#: Deadlock found / lock wait timeout: the transaction was rolled back and may be retried.
_RETRYABLE = {1213, 1205}
RETRIES = 4

Connect = Callable[[], Any]
"""Returns a new DB-API connection (PyMySQL) to the state database."""


def mysql_connect(host: str, port: int, user: str, password: str, database: str,
                  timeout_s: float = 3.0) -> Connect:
    """A connection factory with bounded connect/read/write timeouts, so an unreachable
    store fails a round (``StoreError``) instead of hanging the monitor."""
    t = max(1, round(timeout_s))

    def connect() -> Any:
        return pymysql.connect(host=host, port=int(port), user=user, password=password,
                               database=database, autocommit=True, connect_timeout=t,
                               read_timeout=t, write_timeout=t)
    return connect


def _ddl(p: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS `{p}lease` (layer VARCHAR(64) NOT NULL PRIMARY KEY, "
        "holder VARCHAR(255) NULL, lease_until DOUBLE NOT NULL DEFAULT 0, "
        "token BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS `{p}scope` (layer VARCHAR(64) NOT NULL, "
        "scope VARCHAR(128) NOT NULL, active VARCHAR(8) NOT NULL DEFAULT 'primary', "
        "token BIGINT NOT NULL DEFAULT 0, last_switch_at DOUBLE NULL, "
        "last_practice_at DOUBLE NULL, last_alert TEXT NULL, intent TEXT NULL, "
        "intent_token BIGINT NULL, PRIMARY KEY (layer, scope)) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS `{p}vote` (layer VARCHAR(64) NOT NULL, "
        "scope VARCHAR(128) NOT NULL, vantage VARCHAR(128) NOT NULL, at DOUBLE NOT NULL, "
        "primary_fail INT NOT NULL, primary_ok INT NOT NULL, standby_fail INT NOT NULL, "
        "standby_ok INT NOT NULL, PRIMARY KEY (layer, scope, vantage)) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS `{p}log` (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "layer VARCHAR(64) NOT NULL, scope VARCHAR(128) NOT NULL, at DOUBLE NOT NULL, "
        "token BIGINT NOT NULL, record MEDIUMTEXT NOT NULL, evidence MEDIUMTEXT NOT NULL, "
        "KEY by_layer (layer, at, token)) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS `{p}pointer` (name VARCHAR(128) NOT NULL PRIMARY KEY, "
        "active VARCHAR(255) NOT NULL, token BIGINT NOT NULL, reason VARCHAR(500) NOT NULL, "
        "switched_at DOUBLE NOT NULL) ENGINE=InnoDB",
    ]


def _side(raw: Any) -> Side:
    return "standby" if raw == "standby" else "primary"


def _lost(lease: Lease) -> LeaseLost:
    return LeaseLost(f"lease on {lease.layer} lost (token {lease.token})")


class SqlStateStore:
    def __init__(self, connect: Connect, prefix: str = "standby_") -> None:
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise ValueError(f"table prefix {prefix!r}: must match {_PREFIX.pattern} "
                             "(it is part of every table name)")
        self._connect = connect
        self.p = prefix
        self._ready = False
        self._lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------

    def create_tables(self) -> None:
        """Idempotent (``IF NOT EXISTS``); DDL commits implicitly, so it runs on its own."""
        with self._conn("create the state tables") as c:
            cur = c.cursor()
            for stmt in _ddl(self.p):
                cur.execute(stmt)
        self._ready = True

    def _ensure(self) -> None:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self.create_tables()

    @contextmanager
    def _conn(self, what: str) -> Iterator[Any]:
        try:
            c = self._connect()
        except pymysql.MySQLError as exc:
            raise StoreError(f"state database: {what} failed: cannot connect: {exc}") from exc
        try:
            yield c
        except pymysql.MySQLError as exc:
            raise StoreError(f"state database: {what} failed: {exc}") from exc
        finally:
            # Already broken: the operation's own outcome was reported above.
            with suppress(pymysql.MySQLError):
                c.close()

    def transaction(self, what: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(cursor)`` in one transaction; retried on a deadlock or lock timeout
        (InnoDB rolled it back whole, so nothing is half-written)."""
        self._ensure()
        for attempt in range(RETRIES):
            with self._conn(what) as c:
                try:
                    c.begin()
                    out = fn(c.cursor())
                    c.commit()
                    return out
                except (LeaseLost, StaleToken):
                    c.rollback()
                    raise
                except pymysql.MySQLError as exc:
                    code = exc.args[0] if exc.args else None
                    if code in _RETRYABLE and attempt + 1 < RETRIES:
                        continue
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _read(self, what: str, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        self._ensure()
        with self._conn(what) as c:
            cur = c.cursor()
            cur.execute(sql, args)
            return list(cur.fetchall())

    def server_time(self) -> float:
        """The store's clock, in epoch seconds; the ops CLI bounds its own skew with it."""
        [(t,)] = self._read("read the server time", "SELECT UNIX_TIMESTAMP(NOW(6))", ())
        return float(t)

    # -- lease ----------------------------------------------------------------------------

    def acquire(self, layer: str, holder: str, now: float, ttl_s: float) -> Lease | None:
        def run(cur: Any) -> Lease | None:
            cur.execute(f"INSERT IGNORE INTO `{self.p}lease` (layer) VALUES (%s)", (layer,))
            cur.execute(f"SELECT holder, lease_until, token FROM `{self.p}lease` "
                        "WHERE layer = %s FOR UPDATE", (layer,))
            cur_holder, until, token = cur.fetchone()
            if cur_holder is not None and cur_holder != holder and until > now:
                return None
            cur.execute(f"UPDATE `{self.p}lease` SET holder = %s, lease_until = %s, "
                        "token = %s WHERE layer = %s", (holder, now + ttl_s, token + 1, layer))
            return Lease(layer, holder, int(token) + 1, now + ttl_s)
        return self.transaction("acquire the lease", run)

    def release(self, lease: Lease) -> None:
        def run(cur: Any) -> None:
            cur.execute(f"UPDATE `{self.p}lease` SET holder = NULL, lease_until = 0 "
                        "WHERE layer = %s AND holder = %s AND token = %s",
                        (lease.layer, lease.holder, lease.token))
        self.transaction("release the lease", run)

    def _check_held(self, cur: Any, lease: Lease, now: float) -> None:
        cur.execute(f"SELECT holder, lease_until, token FROM `{self.p}lease` "
                    "WHERE layer = %s FOR UPDATE", (lease.layer,))
        row = cur.fetchone()
        if row is None or row[0] != lease.holder or row[2] != lease.token or row[1] <= now:
            raise _lost(lease)

    # -- scope state ----------------------------------------------------------------------

    _COLS = "active, token, last_switch_at, last_practice_at, last_alert, intent, intent_token"

    @staticmethod
    def _state(row: tuple[Any, ...] | None) -> ScopeState:
        if row is None:
            return ScopeState()
        active, token, switched, practiced, alert, raw_intent, _ = row
        intent = None
        if raw_intent:
            doc = json.loads(raw_intent)
            doc["targets"] = tuple(doc["targets"])
            intent = Intent(**doc)
        return ScopeState(active=_side(active), token=int(token),
                          last_switch_at=None if switched is None else float(switched),
                          last_practice_at=None if practiced is None else float(practiced),
                          last_alert=alert, intent=intent)

    def read_scope(self, layer: str, scope: str) -> ScopeState:
        rows = self._read("read the scope", f"SELECT {self._COLS} FROM `{self.p}scope` "
                          "WHERE layer = %s AND scope = %s", (layer, scope))
        return self._state(rows[0] if rows else None)

    def scopes(self, layer: str) -> dict[str, ScopeState]:
        rows = self._read("list the scopes", f"SELECT scope, {self._COLS} FROM "
                          f"`{self.p}scope` WHERE layer = %s", (layer,))
        return {r[0]: self._state(r[1:]) for r in rows}

    def save_scope_meta(self, layer: str, scope: str, state: ScopeState) -> None:
        def run(cur: Any) -> None:
            cur.execute(f"INSERT INTO `{self.p}scope` (layer, scope, last_practice_at, "
                        "last_alert) VALUES (%s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
                        "last_practice_at = VALUES(last_practice_at), "
                        "last_alert = VALUES(last_alert)",
                        (layer, scope, state.last_practice_at, state.last_alert))
        self.transaction("save alert bookkeeping", run)

    def _locked_scope(self, cur: Any, layer: str, scope: str) -> tuple[ScopeState, int | None]:
        cur.execute(f"INSERT IGNORE INTO `{self.p}scope` (layer, scope) VALUES (%s, %s)",
                    (layer, scope))
        cur.execute(f"SELECT {self._COLS} FROM `{self.p}scope` WHERE layer = %s AND "
                    "scope = %s FOR UPDATE", (layer, scope))
        row = cur.fetchone()
        return self._state(row), row[6]

    def begin(self, lease: Lease, scope: str, expected: Side, intent: Intent,
              now: float) -> None:
        def run(cur: Any) -> None:
            self._check_held(cur, lease, now)
            cur_state, intent_token = self._locked_scope(cur, lease.layer, scope)
            if (cur_state.active != expected or cur_state.token >= lease.token
                    or (intent_token is not None and intent_token >= lease.token)):
                raise StaleToken(
                    f"{lease.layer}/{scope}: expected {expected} at token < {lease.token} "
                    f"with no newer switch unfinished, found {cur_state.active} at token "
                    f"{cur_state.token}" + (f", intent {intent_token}" if intent_token else ""))
            cur.execute(f"UPDATE `{self.p}scope` SET intent = %s, intent_token = %s "
                        "WHERE layer = %s AND scope = %s",
                        (json.dumps(asdict(intent)), lease.token, lease.layer, scope))
        self.transaction("record the switch intent", run)

    def progress(self, lease: Lease, scope: str, step: int) -> None:
        def run(cur: Any) -> None:
            cur.execute(f"SELECT intent, intent_token FROM `{self.p}scope` WHERE layer = %s "
                        "AND scope = %s FOR UPDATE", (lease.layer, scope))
            row = cur.fetchone()
            if row is None or row[1] != lease.token or not row[0]:
                raise StaleToken(f"{lease.layer}/{scope}: intent of token {lease.token} "
                                 "replaced by a newer holder")
            doc = json.loads(row[0])
            doc["step"] = step
            cur.execute(f"UPDATE `{self.p}scope` SET intent = %s WHERE layer = %s AND "
                        "scope = %s", (json.dumps(doc), lease.layer, scope))
        self.transaction("record switch progress", run)

    def commit(self, lease: Lease, scope: str, expected: Side, state: ScopeState,
               record: SwitchRecord, now: float) -> None:
        def run(cur: Any) -> None:
            self._check_held(cur, lease, now)
            cur_state, intent_token = self._locked_scope(cur, lease.layer, scope)
            if (cur_state.active != expected or cur_state.token >= lease.token
                    or intent_token != lease.token):
                raise StaleToken(
                    f"{lease.layer}/{scope}: expected {expected} with the intent of token "
                    f"{lease.token}, found {cur_state.active} at token {cur_state.token}")
            # Like the DynamoDB store: a state without last_switch_at keeps the stored one.
            cur.execute(f"UPDATE `{self.p}scope` SET active = %s, token = %s, "
                        "last_switch_at = COALESCE(%s, last_switch_at), last_alert = NULL, "
                        "intent = NULL, intent_token = NULL WHERE layer = %s AND scope = %s",
                        (state.active, lease.token, state.last_switch_at, lease.layer, scope))
            self._insert_log(cur, record)
        self.transaction("commit the switch", run)

    # -- pointers -------------------------------------------------------------------------

    def write_pointer(self, name: str, value: str, token: int, reason: str, now: float) -> None:
        """Set the pointer unless it holds a newer token; the same token may only repeat its
        own write (a retry), never move the pointer elsewhere (``StaleToken``)."""
        def run(cur: Any) -> None:
            cur.execute(f"SELECT active, token FROM `{self.p}pointer` WHERE name = %s "
                        "FOR UPDATE", (name,))
            row = cur.fetchone()
            if row is not None and (row[1] > token or (row[1] == token and row[0] != value)):
                raise StaleToken(f"pointer {name} holds token {row[1]} ({row[0]!r}): a write "
                                 f"of {value!r} with token {token} is stale")
            cur.execute(f"REPLACE INTO `{self.p}pointer` (name, active, token, reason, "
                        "switched_at) VALUES (%s, %s, %s, %s, %s)",
                        (name, value, token, reason[:500], now))
        self.transaction("write the pointer", run)

    def read_pointer(self, name: str) -> tuple[str | None, int]:
        """The pointer's value and token; ``(None, 0)`` before the first write."""
        rows = self._read("read the pointer", f"SELECT active, token FROM `{self.p}pointer` "
                          "WHERE name = %s", (name,))
        return (rows[0][0], int(rows[0][1])) if rows else (None, 0)

    # -- votes and log --------------------------------------------------------------------

    def put_vote(self, layer: str, scope: str, vote: Vote, gap_s: float = 0.0) -> bool:
        def run(cur: Any) -> bool:
            cur.execute(f"SELECT at FROM `{self.p}vote` WHERE layer = %s AND scope = %s AND "
                        "vantage = %s FOR UPDATE", (layer, scope, vote.vantage))
            row = cur.fetchone()
            # A duplicate or late step of this vantage is refused, not counted.
            if row is not None and row[0] > vote.at - gap_s:
                return False
            cur.execute(f"REPLACE INTO `{self.p}vote` (layer, scope, vantage, at, "
                        "primary_fail, primary_ok, standby_fail, standby_ok) VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s, %s)",
                        (layer, scope, vote.vantage, vote.at, vote.primary_fail,
                         vote.primary_ok, vote.standby_fail, vote.standby_ok))
            return True
        return self.transaction("store the vote", run)

    def votes(self, layer: str, scope: str) -> list[Vote]:
        rows = self._read("read the votes", "SELECT vantage, at, primary_fail, primary_ok, "
                          f"standby_fail, standby_ok FROM `{self.p}vote` WHERE layer = %s AND "
                          "scope = %s ORDER BY vantage", (layer, scope))
        return [Vote(r[0], float(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
                for r in rows]

    def _insert_log(self, cur: Any, r: SwitchRecord) -> None:
        doc = r.as_dict()
        evidence = json.dumps(doc.pop("evidence"), default=str)
        cur.execute(f"INSERT INTO `{self.p}log` (layer, scope, at, token, record, evidence) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (r.layer, r.scope, r.at, r.token, json.dumps(doc, default=str), evidence))

    def record(self, record: SwitchRecord) -> None:
        self.transaction("log the practice switch", lambda cur: self._insert_log(cur, record))

    def log(self, layer: str, limit: int = 20) -> list[SwitchRecord]:
        rows = self._read("read the switch log", f"SELECT record, evidence FROM `{self.p}log` "
                          "WHERE layer = %s ORDER BY at DESC, token DESC, id DESC LIMIT %s",
                          (layer, int(limit)))
        out = []
        for raw, evidence in rows:
            doc = json.loads(raw)
            doc["evidence"] = json.loads(evidence)
            out.append(SwitchRecord(**doc))
        return out
