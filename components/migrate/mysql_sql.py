"""The SQL of the MySQL/MariaDB engine: tables, key ranges, the copy and the replay.

The two write rules are gh-ost's and Ghostferry's: the copy never overwrites (``INSERT
IGNORE``), the replay always does (``REPLACE`` / ``DELETE``). With the capture position taken
before the first row is read and every copied chunk locked (``FOR UPDATE``) until the target
has committed it, any interleaving of copy, update and log replay ends with the source's
last value: a row copied before a change is overwritten by the change's replay; a row copied
after the change already holds it and the replay writes the same thing again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def q(name: str) -> str:
    """A quoted identifier; names come from information_schema, backticks are doubled."""
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]  # in ordinal order: the binlog's row images are positional
    key: tuple[str, ...]  # the primary key, in index order

    @property
    def ident(self) -> str:
        return q(self.name)

    @property
    def key_pos(self) -> tuple[int, ...]:
        return tuple(self.columns.index(k) for k in self.key)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Table:
        return cls(d["name"], tuple(d["columns"]), tuple(d["key"]))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "columns": list(self.columns), "key": list(self.key)}

    # -- key ranges -----------------------------------------------------------------------

    def _cols(self) -> str:
        return ", ".join(q(c) for c in self.columns)

    def _keys(self) -> str:
        return "(" + ", ".join(q(k) for k in self.key) + ")"

    def _tuple(self) -> str:
        return "(" + ", ".join(["%s"] * len(self.key)) + ")"

    def where(self, lo: Sequence[Any] | None, hi: Sequence[Any] | None,
              lo_open: bool = False) -> tuple[str, list[Any]]:
        """Rows with lo <= key < hi (lo < key when ``lo_open``); None is unbounded."""
        parts, args = [], []
        if lo is not None:
            parts.append(f"{self._keys()} {'>' if lo_open else '>='} {self._tuple()}")
            args += list(lo)
        if hi is not None:
            parts.append(f"{self._keys()} < {self._tuple()}")
            args += list(hi)
        return (" AND ".join(parts) or "TRUE"), args

    def select_chunk(self, after: Sequence[Any] | None, rows: int) -> tuple[str, list[Any]]:
        """The next ``rows`` rows after the key ``after``, locked until the caller commits:
        no write to them can commit (and reach the binlog) before the target has them."""
        cond, args = self.where(after, None, lo_open=True)
        order = ", ".join(q(k) for k in self.key)
        return (f"SELECT {self._cols()} FROM {self.ident} WHERE {cond} ORDER BY {order} "
                f"LIMIT {int(rows)} FOR UPDATE", args)

    def insert_ignore(self, n: int) -> str:
        row = "(" + ", ".join(["%s"] * len(self.columns)) + ")"
        return f"INSERT IGNORE INTO {self.ident} ({self._cols()}) VALUES " + \
            ", ".join([row] * n)

    def replace(self, n: int = 1) -> str:
        row = "(" + ", ".join(["%s"] * len(self.columns)) + ")"
        return f"REPLACE INTO {self.ident} ({self._cols()}) VALUES " + ", ".join([row] * n)

    def delete(self, n: int = 1) -> str:
        return f"DELETE FROM {self.ident} WHERE {self._keys()} IN (" + \
            ", ".join([self._tuple()] * n) + ")"

    def key_of(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[i] for i in self.key_pos)

    # -- checksums ------------------------------------------------------------------------

    def _row_hash(self) -> str:
        # ISNULL beside each value: CONCAT_WS skips NULLs, so NULL and '' would hash alike.
        parts = ", ".join(f"ISNULL({q(c)}), {q(c)}" for c in self.columns)
        return f"MD5(CONCAT_WS('#', {parts}))"

    def checksum(self, lo: Sequence[Any] | None, hi: Sequence[Any] | None
                 ) -> tuple[str, list[Any]]:
        """Count and an order-independent 64-bit sum of the rows' md5s in [lo, hi)."""
        cond, args = self.where(lo, hi)
        h = f"CAST(CONV(SUBSTRING({self._row_hash()}, 1, 16), 16, 10) AS UNSIGNED)"
        return (f"SELECT COUNT(*), COALESCE(BIT_XOR({h}), 0) FROM {self.ident} "
                f"WHERE {cond}", args)

    def row_hashes(self, lo: Sequence[Any] | None, hi: Sequence[Any] | None
                   ) -> tuple[str, list[Any]]:
        cond, args = self.where(lo, hi)
        keys = ", ".join(q(k) for k in self.key)
        return f"SELECT {keys}, {self._row_hash()} FROM {self.ident} WHERE {cond}", args

    def bounds(self, every: int) -> tuple[str, list[Any]]:
        """Every ``every``-th key: the starts of the verify's chunks."""
        keys = ", ".join(q(k) for k in self.key)
        return (f"SELECT {keys} FROM (SELECT {keys}, ROW_NUMBER() OVER (ORDER BY {keys}) AS "
                f"rn FROM {self.ident}) t WHERE MOD(rn - 1, {int(every)}) = 0 AND rn > 1 "
                f"ORDER BY rn", [])


# -- the replay ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """One row change from the binlog: ``before`` for update/delete, ``after`` for
    insert/update (full row images, in column order)."""

    table: str
    kind: str  # "insert", "update", "delete"
    before: tuple[Any, ...] | None
    after: tuple[Any, ...] | None


#: Rows per replay statement: one round trip per run instead of per row.
RUN_ROWS = 500


def apply_many(cur: Any, tables: dict[str, Table], changes: Sequence[Change]) -> None:
    """Replay changes in order, as few statements as order allows: consecutive REPLACEs of
    one table go in one multi-row REPLACE (rows apply in order, so the last image of a key
    wins) and consecutive DELETEs in one ``IN`` list (their order does not matter); a change
    of kind or table ends the run, so a delete and a later re-insert stay in order."""
    run: list[tuple[Any, ...]] = []
    run_of: tuple[str, str] | None = None

    def flush() -> None:
        if run_of is None or not run:
            return
        t = tables[run_of[1]]
        if run_of[0] == "replace":
            cur.execute(t.replace(len(run)), [v for r in run for v in r])
        else:
            cur.execute(t.delete(len(run)), [v for k in run for v in k])
        run.clear()

    for ch in changes:
        t = tables[ch.table]
        ops: list[tuple[str, tuple[Any, ...]]] = []
        if ch.kind == "delete":
            assert ch.before is not None
            ops.append(("delete", t.key_of(ch.before)))
        else:
            assert ch.after is not None
            if ch.kind == "update" and ch.before is not None and \
                    t.key_of(ch.before) != t.key_of(ch.after):
                ops.append(("delete", t.key_of(ch.before)))
            ops.append(("replace", ch.after))
        for kind, vals in ops:
            if (kind, ch.table) != run_of or len(run) >= RUN_ROWS:
                flush()
                run_of = (kind, ch.table)
            run.append(vals)
    flush()


def copy_rows(cur: Any, t: Table, rows: Sequence[Sequence[Any]]) -> None:
    """Write a copied chunk without overwriting anything the replay wrote already."""
    if rows:
        cur.execute(t.insert_ignore(len(rows)), [v for r in rows for v in r])

