"""Chunked table comparison for PostgreSQL: row counts and a hash per key range.

Chunk bounds come from the authoritative side (every ``chunk_rows``-th key); both sides hash
the same key ranges, so a difference stays inside its chunk. A chunk's hash is the md5 of the
rows' md5s in key order, each row as its text form (``t::text``), which is equal on two
servers of one major version with the same columns. A chunk that differs is compared row by
row to count the keys that differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from components.migrate import verify
from components.migrate.state import Chunk
from components.migrate.verify import ChunkQueries, Counts


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    key: tuple[str, ...]  # empty: REPLICA IDENTITY FULL without a key, one chunk
    key_types: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Table:
        return cls(d["schema"], d["name"], tuple(d["key"]), tuple(d["key_types"]))

    def to_json(self) -> dict[str, Any]:
        return {"schema": self.schema, "name": self.name, "key": list(self.key),
                "key_types": list(self.key_types)}


Bounds = tuple[tuple[str, ...] | None, tuple[str, ...] | None]


def _order(t: Table) -> sql.Composable:
    if not t.key:
        return sql.SQL("t::text")
    return sql.SQL(", ").join(sql.Identifier(k) for k in t.key)


def _where(t: Table, lo: tuple[str, ...] | None, hi: tuple[str, ...] | None
           ) -> tuple[sql.Composable, list[str]]:
    if not t.key:
        return sql.SQL("true"), []
    cols = sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(k) for k in t.key))
    parts: list[sql.Composable] = []
    args: list[str] = []
    for op, bound in ((">=", lo), ("<", hi)):
        if bound is None:
            continue
        vals = sql.SQL("({})").format(sql.SQL(", ").join(
            sql.SQL("%s::{}").format(sql.SQL(typ)) for typ in t.key_types))
        parts.append(sql.SQL("{} {} {}").format(cols, sql.SQL(op), vals))
        args += list(bound)
    return (sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")), args


def bounds(conn: Any, t: Table, chunk_rows: int) -> list[Bounds]:
    """Key ranges covering the whole key space: (-inf, b1), [b1, b2), ..., [bn, +inf)."""
    if not t.key:
        return [(None, None)]
    keys = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in t.key)
    # ORDER BY rn, not by the key: the output columns are the keys as text, and ORDER BY a
    # name sorts by the output column, so 100122 would come before 20023.
    q = sql.SQL("SELECT {keys} FROM (SELECT {cols}, row_number() OVER (ORDER BY {cols}) AS rn "
                "FROM {tbl}) s WHERE rn %% %s = 1 AND rn > 1 ORDER BY rn").format(
        keys=keys, cols=_order(t), tbl=t.ident)
    with conn.cursor() as cur:
        cur.execute(q, (chunk_rows,))
        starts = [tuple(r) for r in cur.fetchall()]
    edges: list[tuple[str, ...] | None] = [None, *starts, None]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def chunk_hash(conn: Any, t: Table, b: Bounds) -> tuple[int, str]:
    where, args = _where(t, *b)
    q = sql.SQL("SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY {o})), '')"
                " FROM {tbl} AS t WHERE {w}").format(o=_order(t), tbl=t.ident, w=where)
    with conn.cursor() as cur:
        cur.execute(q, args)
        n, h = cur.fetchone()
    return int(n), str(h)


def _key_text(t: Table) -> sql.Composable:
    if not t.key:
        return sql.SQL("t::text")
    return sql.SQL("json_build_array({})::text").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in t.key))


def row_hashes(conn: Any, t: Table, b: Bounds) -> dict[str, str]:
    where, args = _where(t, *b)
    q = sql.SQL("SELECT {k}, md5(t::text) FROM {tbl} AS t WHERE {w}").format(
        k=_key_text(t), tbl=t.ident, w=where)
    with conn.cursor() as cur:
        cur.execute(q, args)
        return {str(k): str(h) for k, h in cur.fetchall()}


def key_hashes(conn: Any, t: Table, keys: list[str]) -> dict[str, str]:
    """The rows of these keys (as ``row_hashes`` names them), by key lookup."""
    if not keys:
        return {}
    if not t.key:  # the key is the row itself
        q = sql.SQL("SELECT t::text, md5(t::text) FROM {tbl} AS t WHERE t::text = ANY(%s)"
                    ).format(tbl=t.ident)
        args: list[Any] = [keys]
    else:
        one = sql.SQL("({})").format(sql.SQL(", ").join(
            sql.SQL("%s::{}").format(sql.SQL(typ)) for typ in t.key_types))
        q = sql.SQL("SELECT {k}, md5(t::text) FROM {tbl} AS t WHERE ({cols}) IN ({vals})"
                    ).format(k=_key_text(t), tbl=t.ident,
                             cols=sql.SQL(", ").join(sql.Identifier(k) for k in t.key),
                             vals=sql.SQL(", ").join([one] * len(keys)))
        args = [v for k in keys for v in json.loads(k)]
    with conn.cursor() as cur:
        cur.execute(q, args)
        return {str(k): str(h) for k, h in cur.fetchall()}


def _bound_text(b: Bounds) -> tuple[str, str]:
    return (json.dumps(b[0]), json.dumps(b[1]))


QUERIES: ChunkQueries[Table, Bounds] = ChunkQueries(
    name=lambda t: t.qualified, bounds=bounds, chunk_hash=chunk_hash, row_hashes=row_hashes,
    key_hashes=key_hashes, bound_text=_bound_text)


def compare(primary: Any, replica: Any, tables: list[Table], chunk_rows: int,
            drain: Callable[[], None], rechecks: int, exact: bool = False,
            ) -> tuple[Counts, list[Chunk], list[str], int]:
    """``verify.compare`` with this engine's queries (see ``components.migrate.verify``)."""
    return verify.compare(QUERIES, primary, replica, tables, chunk_rows, drain, rechecks,
                          exact)
