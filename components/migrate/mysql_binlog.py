"""The binlog tail of the MySQL/MariaDB engine: read row events from a position, replay them
on the other side, checkpoint the position that was APPLIED.

Reading is python-mysql-replication (pure Python, the replication protocol over PyMySQL):
``mysqlbinlog``/``mariadb-binlog`` is not on every machine (not in this image's Debian
packages) and its text output would have to be parsed back into rows. The reader connects
as a replica with its own server id, from a file and position (the classic protocol, which
MySQL and MariaDB both speak), and stops at the end of what is written (non-blocking).

Only whole transactions are applied, each batch in one target transaction, and the position
after the batch's last commit (Xid) is handed to ``on_commit`` only once the target has
committed it: a runner killed in between replays the batch again, which is harmless because
the replay overwrites (REPLACE / DELETE).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.migrate.mysql_sql import RUN_ROWS, Change, Table, apply_many
from components.runtime.sql_failover import BINLOG_STATUS, first_spelling

# The reader warns on every connection when binlog_row_metadata is not FULL; preflight
# reports that setting itself, once, with the fix.
logging.getLogger("pymysqlreplication").setLevel(logging.ERROR)


@dataclass(frozen=True, order=True)
class Pos:
    """A binlog position; orders by file number, then offset."""

    seq: int
    pos: int
    file: str

    @classmethod
    def of(cls, file: str, pos: int) -> Pos:
        return cls(int(file.rsplit(".", 1)[1]), int(pos), file)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Pos:
        return cls.of(d["file"], d["pos"])

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "pos": self.pos}

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"


def master_pos(cur: Any) -> Pos:
    # MySQL 8.4 removed SHOW MASTER STATUS: ask with the newest spelling the server knows.
    first_spelling(cur, BINLOG_STATUS)
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("binary logging is off (log_bin): the binary log status is empty")
    return Pos.of(row[0], row[1])


def lag_bytes(cur: Any, applied: Pos) -> int:
    """Bytes written to the binlog after ``applied`` (the sizes of the later files)."""
    cur.execute("SHOW BINARY LOGS")
    total = 0
    for name, size, *_ in cur.fetchall():
        p = Pos.of(name, size)
        if p.seq == applied.seq:
            total += max(0, int(size) - applied.pos)
        elif p.seq > applied.seq:
            total += int(size)
    return total


@dataclass
class TailResult:
    applied: Pos
    rows: int
    transactions: int


def tail(settings: dict[str, Any], server_id: int, schema: str, tables: dict[str, Table],
         start: Pos, target: Any, on_commit: Callable[[Pos, int], None], *,
         batch_rows: int = 2000, deadline: float | None = None) -> TailResult:
    """Replay what the binlog holds after ``start`` onto ``target`` (a PyMySQL connection),
    up to its current end or, at a transaction boundary, ``deadline`` (monotonic)."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    stream = BinLogStreamReader(
        connection_settings=settings, server_id=server_id, resume_stream=True,
        log_file=start.file, log_pos=start.pos, blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent],
        only_schemas=[schema], only_tables=list(tables), enable_logging=False)
    applied, rows, txns, told = start, 0, 0, start
    pending: list[Change] = []  # the current transaction's changes
    batch = 0  # rows applied on the target and not yet committed there
    whole: list[Change] = []  # changes of committed source transactions, not yet applied
    cur = target.cursor()
    cur.execute("BEGIN")
    try:
        for ev in stream:
            if isinstance(ev, XidEvent):
                whole += pending
                batch += len(pending)
                pending = []
                if len(whole) >= RUN_ROWS:
                    apply_many(cur, tables, whole)
                    whole = []
                txns += 1
                applied = Pos.of(stream.log_file, stream.log_pos)
                if batch >= batch_rows or (deadline is not None and
                                           time.monotonic() >= deadline):
                    apply_many(cur, tables, whole)
                    whole = []
                    cur.execute("COMMIT")
                    rows += batch
                    on_commit(applied, rows)
                    batch, told = 0, applied
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    cur.execute("BEGIN")
                continue
            n = len(tables[ev.table].columns)
            for r in ev.rows:
                if isinstance(ev, WriteRowsEvent):
                    pending.append(Change(ev.table, "insert", None, _row(r["values"], n)))
                elif isinstance(ev, UpdateRowsEvent):
                    pending.append(Change(ev.table, "update", _row(r["before_values"], n),
                                          _row(r["after_values"], n)))
                else:
                    pending.append(Change(ev.table, "delete", _row(r["values"], n), None))
        else:
            # The end of what is written; changes without their commit are not applied (a
            # later tail reads them again from ``applied``).
            apply_many(cur, tables, whole)
            if not pending:
                # Events after the last commit that are not row changes (DDL elsewhere, a
                # rotation, checkpoints) are passed too: else a drain to the server's
                # position would wait for a commit that never comes.
                applied = max(applied, Pos.of(stream.log_file, stream.log_pos))
            cur.execute("COMMIT")
            rows += batch
            if applied != told:
                on_commit(applied, rows)
    except BaseException:
        target.rollback()
        raise
    finally:
        stream.close()
    return TailResult(applied, rows, txns)


def _row(values: dict[str, Any], n: int) -> tuple[Any, ...]:
    """The row image in column order. Without ``binlog_row_metadata = FULL`` the reader
    names columns UNKNOWN_COL0..n-1, so only the order is trusted, never the names."""
    row = tuple(values.values())
    if len(row) != n:
        raise RuntimeError(f"a row image has {len(row)} columns, the table {n}: "
                           "binlog_row_image must be FULL and the schema unchanged")
    return row
