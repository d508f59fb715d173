"""Chunked table comparison for MySQL/MariaDB: a count and a 64-bit checksum per key range.

Chunk bounds come from the authoritative side (every ``chunk_rows``-th primary key); both
sides checksum the same ranges, so a difference stays inside its chunk. A row's hash is the
md5 of its columns (with a NULL marker each); a chunk's is the XOR of the rows' first 64 bits
(pt-table-checksum's scheme). A chunk that differs is compared row by row to count the keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from components.migrate.mysql_sql import Table, q
from components.migrate.state import Chunk

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


def compare(primary: Any, replica: Any, tables: list[Table], chunk_rows: int,
            drain: Callable[[], None], rechecks: int, exact: bool = False
            ) -> tuple[dict[str, dict[str, int]], list[Chunk], list[str], int]:
    """Checksum every chunk on ``primary``, let the replica catch up to that moment
    (``drain``), checksum it there; list the rows of differing chunks and re-check only those
    keys, up to ``rechecks`` rounds (a row changed after the primary's read differs until
    its change is replayed). With ``exact`` (writes stopped) there is no re-check: any
    difference is real. Returns per-table counts, the chunks, the differing keys, rounds."""
    plan = [(t, i, b) for t in tables for i, b in enumerate(bounds(primary, t, chunk_rows))]

    def hashes(conn: Any) -> dict[tuple[str, int], tuple[int, str]]:
        return {(t.name, i): chunk_hash(conn, t, b) for t, i, b in plan}

    if exact:
        drain()
        with ThreadPoolExecutor(max_workers=2) as pool:  # one connection per thread
            fp, fr = pool.submit(hashes, primary), pool.submit(hashes, replica)
            p, r = fp.result(), fr.result()
    else:
        p = hashes(primary)
        drain()
        r = hashes(replica)
    differing: dict[tuple[str, int], set[str]] = {}
    for t, i, b in plan:
        if p[(t.name, i)] != r[(t.name, i)]:
            x, y = row_hashes(primary, t, b), row_hashes(replica, t, b)
            differing[(t.name, i)] = {k for k in x.keys() | y.keys() if x.get(k) != y.get(k)}
    by_name = {t.name: t for t in tables}
    rounds = 0
    while not exact and rounds < rechecks and any(differing.values()):
        rounds += 1
        seen = {ck: key_hashes(primary, by_name[ck[0]], sorted(ks))
                for ck, ks in differing.items() if ks}
        drain()
        for ck, ks in differing.items():
            if ks:
                z = key_hashes(replica, by_name[ck[0]], sorted(ks))
                differing[ck] = {k for k in ks if seen[ck].get(k) != z.get(k)}
    chunks: list[Chunk] = []
    keys: list[str] = []
    per_table = {t.name: {"rows_source": 0, "rows_target": 0, "mismatches": 0} for t in tables}
    for t, i, b in plan:
        (np_, hp), (nr, hr) = p[(t.name, i)], r[(t.name, i)]
        diff = sorted(differing.get((t.name, i), ()))
        state = "match" if (np_, hp) == (nr, hr) else "mismatch" if diff else "rechecked"
        per_table[t.name]["mismatches"] += len(diff)
        keys += [f"{t.name}{k}" for k in diff[:20]]
        per_table[t.name]["rows_source"] += np_
        per_table[t.name]["rows_target"] += nr
        chunks.append(Chunk(t.name, i, _key_text(b[0]) if b[0] else "null",
                            _key_text(b[1]) if b[1] else "null", np_, nr, hp, hr, state))
    return per_table, chunks, keys, rounds
