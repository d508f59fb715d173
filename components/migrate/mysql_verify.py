"""Chunked table comparison for MySQL/MariaDB: a count and a 64-bit checksum per key range.

Chunk bounds come from the authoritative side (every ``chunk_rows``-th primary key); both
sides checksum the same ranges, so a difference stays inside its chunk. A row's hash is the
md5 of its columns (with a NULL marker each); a chunk's is the XOR of the rows' first 64 bits
(pt-table-checksum's scheme). A chunk that differs is compared row by row to count the keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from components.migrate import verify
from components.migrate.mysql_sql import Table, q
from components.migrate.state import Chunk
from components.migrate.verify import ChunkQueries, Counts

Bounds = tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]


def _key_text(key: tuple[Any, ...]) -> str:
    return json.dumps([v if isinstance(v, (int, str)) or v is None else str(v) for v in key])


def bounds(conn: Any, t: Table, chunk_rows: int) -> list[Bounds]:
    sel, args = t.bounds(chunk_rows)
    with conn.cursor() as cur:
        cur.execute(sel, args)
        starts = [tuple(r) for r in cur.fetchall()]
    edges: list[tuple[Any, ...] | None] = [None, *starts, None]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def chunk_hash(conn: Any, t: Table, b: Bounds) -> tuple[int, str]:
    sel, args = t.checksum(*b)
    with conn.cursor() as cur:
        cur.execute(sel, args)
        n, h = cur.fetchone()
    return int(n), str(h)


def row_hashes(conn: Any, t: Table, b: Bounds) -> dict[str, str]:
    sel, args = t.row_hashes(*b)
    with conn.cursor() as cur:
        cur.execute(sel, args)
        return {_key_text(tuple(r[:-1])): str(r[-1]) for r in cur.fetchall()}


def key_hashes(conn: Any, t: Table, keys: list[str]) -> dict[str, str]:
    if not keys:
        return {}
    one = "(" + ", ".join(["%s"] * len(t.key)) + ")"
    cols = ", ".join(q(k) for k in t.key)
    sel, _ = t.row_hashes(None, None)
    sel = sel.replace(" WHERE TRUE", f" WHERE ({cols}) IN ({', '.join([one] * len(keys))})")
    with conn.cursor() as cur:
        cur.execute(sel, [v for k in keys for v in json.loads(k)])
        return {_key_text(tuple(r[:-1])): str(r[-1]) for r in cur.fetchall()}


def _bound_text(b: Bounds) -> tuple[str, str]:
    return (_key_text(b[0]) if b[0] else "null", _key_text(b[1]) if b[1] else "null")


QUERIES: ChunkQueries[Table, Bounds] = ChunkQueries(
    name=lambda t: t.name, bounds=bounds, chunk_hash=chunk_hash, row_hashes=row_hashes,
    key_hashes=key_hashes, bound_text=_bound_text)


def compare(primary: Any, replica: Any, tables: list[Table], chunk_rows: int,
            drain: Callable[[], None], rechecks: int, exact: bool = False,
            ) -> tuple[Counts, list[Chunk], list[str], int]:
    """``verify.compare`` with this engine's queries (see ``components.migrate.verify``)."""
    return verify.compare(QUERIES, primary, replica, tables, chunk_rows, drain, rechecks,
                          exact)
