"""The migration's checkpoints, in a store with conditional writes.

One runner at a time holds a migration's lease; every acquisition bumps the fencing token,
and every checkpoint write names the token it was taken under, so a runner that lost its
lease (paused by the OS, killed and replaced) can no longer write anything.

The SQLite store is the default (``sqlite:///PATH``). SQLite serialises writers with
``BEGIN IMMEDIATE``, which is the compare-and-set the lease needs on one machine; several
machines need a store with conditional writes over the network (DynamoDB, later).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from components.migrate.phases import Phase, check_transition


class StateError(RuntimeError):
    """The state store refused or could not do what was asked."""


class Fenced(StateError):
    """This runner's lease was taken over: it must stop writing."""


class LeaseHeld(StateError):
    """Another live runner holds the migration's lease."""


@dataclass
class Record:
    id: str
    source: str
    target: str
    engine: str
    phase: Phase
    paused: bool
    token: int
    holder: str | None
    lease_until: float
    request: dict[str, Any] | None
    data: dict[str, Any] = field(default_factory=dict)
    updated: float = 0.0


@dataclass
class Chunk:
    table: str
    index: int
    lo: str
    hi: str
    rows_source: int
    rows_target: int
    sum_source: str
    sum_target: str
    state: str  # "match", "rechecked" (busy rows equal on a re-check) or "mismatch"


class StateStore(Protocol):
    def now(self) -> float: ...
    def create(self, mid: str, source: str, target: str, engine: str) -> Record: ...
    def get(self, mid: str) -> Record | None: ...
    def acquire(self, mid: str, holder: str, lease_s: float) -> Record: ...
    def renew(self, mid: str, holder: str, token: int, lease_s: float) -> None: ...
    def release(self, mid: str, holder: str, token: int) -> None: ...
    def save(self, mid: str, token: int, *, phase: Phase | None = None,
             paused: bool | None = None, data: dict[str, Any] | None = None,
             clear_request: str | None = None) -> Record: ...
    def put_chunks(self, mid: str, token: int, chunks: list[Chunk]) -> None: ...
    def chunks(self, mid: str) -> list[Chunk]: ...
    def request(self, mid: str, command: str, args: dict[str, Any]) -> str: ...
    def history(self, mid: str) -> list[dict[str, Any]]: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS migrations (
  id TEXT PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL, engine TEXT NOT NULL,
  phase TEXT NOT NULL, paused INTEGER NOT NULL DEFAULT 0,
  token INTEGER NOT NULL DEFAULT 0, holder TEXT, lease_until REAL NOT NULL DEFAULT 0,
  request TEXT, data TEXT NOT NULL DEFAULT '{}', updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
  id TEXT NOT NULL, tbl TEXT NOT NULL, idx INTEGER NOT NULL, lo TEXT NOT NULL,
  hi TEXT NOT NULL, rows_source INTEGER NOT NULL, rows_target INTEGER NOT NULL,
  sum_source TEXT NOT NULL, sum_target TEXT NOT NULL, state TEXT NOT NULL,
  PRIMARY KEY (id, tbl, idx));
CREATE TABLE IF NOT EXISTS history (
  id TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, from_phase TEXT NOT NULL,
  to_phase TEXT NOT NULL, token INTEGER NOT NULL, PRIMARY KEY (id, seq));
"""


class SQLiteStore:
    """``sqlite:///PATH``: one file, any number of processes on this machine."""

    def __init__(self, path: str | Path, clock: Any = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        with self._tx() as db:
            for stmt in _SCHEMA.split(";"):  # executescript would COMMIT our transaction
                if stmt.strip():
                    db.execute(stmt)

    def now(self) -> float:
        return float(self._clock())

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # A connection per call: the store is shared by processes and threads, and a short
        # BEGIN IMMEDIATE ... COMMIT is the unit of every conditional write.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def _row(self, db: sqlite3.Connection, mid: str) -> Record | None:
        r = db.execute("SELECT id, source, target, engine, phase, paused, token, holder, "
                       "lease_until, request, data, updated FROM migrations WHERE id = ?",
                       (mid,)).fetchone()
        if r is None:
            return None
        return Record(r[0], r[1], r[2], r[3], Phase(r[4]), bool(r[5]), r[6], r[7], r[8],
                      json.loads(r[9]) if r[9] else None, json.loads(r[10]), r[11])

    def _must(self, db: sqlite3.Connection, mid: str) -> Record:
        rec = self._row(db, mid)
        if rec is None:
            raise StateError(f"no migration {mid!r} in {self.path}; create it with "
                             "`standby migrate plan` or `start`")
        return rec

    def create(self, mid: str, source: str, target: str, engine: str) -> Record:
        """The record, created in PLANNED; an existing one must name the same endpoints."""
        with self._tx() as db:
            rec = self._row(db, mid)
            if rec is None:
                db.execute("INSERT INTO migrations (id, source, target, engine, phase, updated)"
                           " VALUES (?, ?, ?, ?, ?, ?)",
                           (mid, source, target, engine, Phase.PLANNED.value, self._clock()))
                return self._must(db, mid)
        if (rec.source, rec.target) != (source, target):
            raise StateError(f"migration {mid!r} already exists with source {rec.source} and "
                             f"target {rec.target}; use another --id or the same endpoints")
        return rec

    def get(self, mid: str) -> Record | None:
        with self._tx() as db:
            return self._row(db, mid)

    def acquire(self, mid: str, holder: str, lease_s: float) -> Record:
        """Take the lease if it is free, expired or already ours; bump the fencing token."""
        with self._tx() as db:
            rec = self._must(db, mid)
            now = self._clock()
            if rec.holder not in (None, holder) and rec.lease_until > now:
                raise LeaseHeld(f"migration {mid!r} is run by {rec.holder} (lease for another "
                                f"{rec.lease_until - now:.1f} s)")
            db.execute("UPDATE migrations SET token = token + 1, holder = ?, lease_until = ?,"
                       " updated = ? WHERE id = ?", (holder, now + lease_s, now, mid))
            return self._must(db, mid)

    def _check(self, db: sqlite3.Connection, mid: str, token: int) -> Record:
        rec = self._must(db, mid)
        if rec.token != token or rec.holder is None:
            raise Fenced(f"migration {mid!r}: token {token} was superseded by {rec.token} "
                         f"(holder {rec.holder}); this runner must stop")
        return rec

    def renew(self, mid: str, holder: str, token: int, lease_s: float) -> None:
        with self._tx() as db:
            rec = self._check(db, mid, token)
            if rec.holder != holder:
                raise Fenced(f"migration {mid!r}: the lease belongs to {rec.holder}")
            now = self._clock()
            db.execute("UPDATE migrations SET lease_until = ?, updated = ? WHERE id = ?",
                       (now + lease_s, now, mid))

    def release(self, mid: str, holder: str, token: int) -> None:
        with self._tx() as db:
            rec = self._must(db, mid)
            if rec.token == token and rec.holder == holder:
                db.execute("UPDATE migrations SET holder = NULL, lease_until = 0 WHERE id = ?",
                           (mid,))

    def save(self, mid: str, token: int, *, phase: Phase | None = None,
             paused: bool | None = None, data: dict[str, Any] | None = None,
             clear_request: str | None = None) -> Record:
        """One conditional write: only under the current token, only a legal transition.
        ``data`` is merged key by key into the stored checkpoint data."""
        with self._tx() as db:
            rec = self._check(db, mid, token)
            now = self._clock()
            if phase is not None and phase != rec.phase:
                check_transition(rec.phase, phase)
                seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM history WHERE id = ?",
                                 (mid,)).fetchone()[0]
                db.execute("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)",
                           (mid, seq, now, rec.phase.value, phase.value, token))
                db.execute("UPDATE migrations SET phase = ? WHERE id = ?", (phase.value, mid))
            if paused is not None:
                db.execute("UPDATE migrations SET paused = ? WHERE id = ?", (int(paused), mid))
            if data:
                merged = {**rec.data, **data}
                db.execute("UPDATE migrations SET data = ? WHERE id = ?",
                           (json.dumps(merged, default=str), mid))
            if clear_request is not None and rec.request is not None \
                    and rec.request.get("rid") == clear_request:
                db.execute("UPDATE migrations SET request = NULL WHERE id = ?", (mid,))
            db.execute("UPDATE migrations SET updated = ? WHERE id = ?", (now, mid))
            return self._must(db, mid)

    def put_chunks(self, mid: str, token: int, chunks: list[Chunk]) -> None:
        """Replace the chunk table of a migration (one verify's result), fenced."""
        with self._tx() as db:
            self._check(db, mid, token)
            db.execute("DELETE FROM chunks WHERE id = ?", (mid,))
            db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(mid, c.table, c.index, c.lo, c.hi, c.rows_source, c.rows_target,
                             c.sum_source, c.sum_target, c.state) for c in chunks])

    def chunks(self, mid: str) -> list[Chunk]:
        with self._tx() as db:
            rows = db.execute("SELECT tbl, idx, lo, hi, rows_source, rows_target, sum_source, "
                              "sum_target, state FROM chunks WHERE id = ? ORDER BY tbl, idx",
                              (mid,)).fetchall()
        return [Chunk(*r) for r in rows]

    def request(self, mid: str, command: str, args: dict[str, Any]) -> str:
        """Post a command for the live runner; one pending request at a time."""
        rid = os.urandom(8).hex()
        with self._tx() as db:
            rec = self._must(db, mid)
            if rec.request is not None:
                raise StateError(f"migration {mid!r} already has a pending request "
                                 f"{rec.request.get('command')!r}; wait for it")
            db.execute("UPDATE migrations SET request = ? WHERE id = ?",
                       (json.dumps({"rid": rid, "command": command, "args": args}), mid))
        return rid

    def history(self, mid: str) -> list[dict[str, Any]]:
        with self._tx() as db:
            rows = db.execute("SELECT at, from_phase, to_phase, token FROM history "
                              "WHERE id = ? ORDER BY seq", (mid,)).fetchall()
        return [{"at": r[0], "from": r[1], "to": r[2], "token": r[3]} for r in rows]
