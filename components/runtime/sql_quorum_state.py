"""One region's copy of the witness lease on MySQL/MariaDB (``quorum_lease.LeaseStore``).

For clouds whose regions offer a MySQL-compatible database (Tencent: TencentDB for MySQL),
as ``sql_state`` is for the rest of the state. Table ``<prefix>witness_lease`` (created
idempotently on first use): ``lease_key`` -> ``epoch``, ``holder``, ``lease_until``.
``write`` and ``release`` are one InnoDB transaction each: lock the row (``SELECT ... FOR
UPDATE``, which reads the newest committed row), decide with ``quorum_lease.may_write``
itself (the reference condition, not a re-spelling of it), update. Grants needed: SELECT,
INSERT, UPDATE on the table, CREATE once. A failed condition is ``False``; any other
failure (unreachable server, refused login, missing grant) ``StoreError``; a deadlock or
lock-wait timeout is retried a bounded number of times.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

import pymysql

from components.runtime.engine import Side
from components.runtime.errors import StoreError
from components.runtime.quorum_lease import LeaseRecord, may_write
from components.runtime.sql_state import Connect

T = TypeVar("T")

_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_RETRYABLE = {1213, 1205}  # deadlock; lock wait timeout: rolled back whole, safe to retry
RETRIES = 4


class SqlLeaseStore:
    def __init__(self, connect: Connect, name: str, prefix: str = "standby_") -> None:
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise ValueError(f"table prefix {prefix!r}: must match {_PREFIX.pattern} "
                             "(it is part of the table name)")
        self._connect = connect
        self.name = name
        self.table = f"{prefix}witness_lease"
        self._ready = False
        self._lock = threading.Lock()

    def _run(self, what: str, fn: Callable[[Any], T]) -> T:
        self._ensure()
        for attempt in range(RETRIES):
            try:
                c = self._connect()
            except pymysql.MySQLError as exc:
                raise StoreError(f"witness lease in {self.name}: {what} failed: cannot "
                                 f"connect: {exc}") from exc
            try:
                c.begin()
                out = fn(c.cursor())
                c.commit()
                return out
            except pymysql.MySQLError as exc:
                with suppress(pymysql.MySQLError):
                    c.rollback()
                code = exc.args[0] if exc.args else None
                if code in _RETRYABLE and attempt + 1 < RETRIES:
                    continue
                raise StoreError(f"witness lease in {self.name}: {what} failed: {exc}"
                                 ) from exc
            finally:
                with suppress(pymysql.MySQLError):
                    c.close()
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                c = self._connect()
                try:
                    c.cursor().execute(
                        f"CREATE TABLE IF NOT EXISTS `{self.table}` (lease_key VARCHAR(64) "
                        "NOT NULL PRIMARY KEY, epoch BIGINT NOT NULL DEFAULT 0, holder "
                        "VARCHAR(8) NULL, lease_until DOUBLE NOT NULL DEFAULT 0) "
                        "ENGINE=InnoDB")
                finally:
                    with suppress(pymysql.MySQLError):
                        c.close()
            except pymysql.MySQLError as exc:
                raise StoreError(f"witness lease in {self.name}: create the table failed: "
                                 f"{exc}") from exc
            self._ready = True

    @staticmethod
    def _record(row: tuple[Any, ...] | None) -> LeaseRecord:
        if row is None or row[1] is None:
            return LeaseRecord()
        holder: Side = "standby" if row[1] == "standby" else "primary"
        return LeaseRecord(int(row[0]), holder, float(row[2]))

    def _locked(self, cur: Any, key: str) -> LeaseRecord:
        cur.execute(f"INSERT IGNORE INTO `{self.table}` (lease_key) VALUES (%s)", (key,))
        cur.execute(f"SELECT epoch, holder, lease_until FROM `{self.table}` WHERE "
                    "lease_key = %s FOR UPDATE", (key,))
        return self._record(cur.fetchone())

    def read(self, key: str) -> LeaseRecord:
        def run(cur: Any) -> LeaseRecord:
            cur.execute(f"SELECT epoch, holder, lease_until FROM `{self.table}` WHERE "
                        "lease_key = %s", (key,))
            return self._record(cur.fetchone())
        return self._run("read", run)

    def _set(self, cur: Any, key: str, rec: LeaseRecord) -> None:
        cur.execute(f"UPDATE `{self.table}` SET epoch = %s, holder = %s, lease_until = %s "
                    "WHERE lease_key = %s", (rec.epoch, rec.holder, rec.until, key))

    def write(self, key: str, new: LeaseRecord, now: float, skew_s: float) -> bool:
        if new.holder is None:
            raise ValueError("a lease record is written with its holder")

        def run(cur: Any) -> bool:
            if not may_write(self._locked(cur, key), new, now, skew_s):
                return False
            self._set(cur, key, new)
            return True
        return self._run("write", run)

    def release(self, key: str, epoch: int, holder: Side, now: float) -> bool:
        def run(cur: Any) -> bool:
            cur_rec = self._locked(cur, key)
            if cur_rec.epoch != epoch or cur_rec.holder != holder or cur_rec.until <= now:
                return False
            self._set(cur, key, LeaseRecord(epoch, holder, now))
            return True
        return self._run("release", run)
