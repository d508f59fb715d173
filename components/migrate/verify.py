"""The chunked compare every SQL engine's verify uses: hash each key range on the
authoritative side, let the other side catch up to that moment, hash it there, then compare
the rows of differing chunks and re-check only those keys (a row changed after the first
read differs until its change is applied; AWS DMS re-validates such busy rows the same way).

An engine supplies its queries (``ChunkQueries``): chunk bounds from the authoritative side,
a chunk's count and hash, and per-row hashes by range and by key. ``mysql_verify`` and
``pg_verify`` are the two engines today.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from components.migrate.state import Chunk

T = TypeVar("T")  # an engine's table
B = TypeVar("B")  # an engine's chunk bounds

#: Per table: ``rows_source``, ``rows_target``, ``mismatches``.
Counts = dict[str, dict[str, int]]


@dataclass(frozen=True)
class ChunkQueries(Generic[T, B]):
    name: Callable[[T], str]
    bounds: Callable[[Any, T, int], list[B]]
    chunk_hash: Callable[[Any, T, B], tuple[int, str]]
    row_hashes: Callable[[Any, T, B], dict[str, str]]
    key_hashes: Callable[[Any, T, list[str]], dict[str, str]]
    bound_text: Callable[[B], tuple[str, str]]
    """How a chunk's low and high bound are recorded in the state store."""


def compare(qs: ChunkQueries[T, B], primary: Any, replica: Any, tables: list[T],
            chunk_rows: int, drain: Callable[[], None], rechecks: int, exact: bool = False,
            ) -> tuple[Counts, list[Chunk], list[str], int]:
    """With ``exact`` (writes stopped) there is no re-check: any difference is real. Returns
    per-table counts, the chunks, up to 20 differing keys per table, and the re-check rounds
    used."""
    plan = [(t, i, b) for t in tables for i, b in enumerate(qs.bounds(primary, t, chunk_rows))]

    def hashes(conn: Any) -> dict[tuple[str, int], tuple[int, str]]:
        return {(qs.name(t), i): qs.chunk_hash(conn, t, b) for t, i, b in plan}

    if exact:
        # Nothing moves, so drain first and hash both servers at once (each on its own
        # connection): this halves the time spent inside a freeze.
        drain()
        with ThreadPoolExecutor(max_workers=2) as pool:
            fp, fr = pool.submit(hashes, primary), pool.submit(hashes, replica)
            p, r = fp.result(), fr.result()
    else:
        p = hashes(primary)
        drain()
        r = hashes(replica)
    differing: dict[tuple[str, int], set[str]] = {}
    for t, i, b in plan:
        if p[(qs.name(t), i)] != r[(qs.name(t), i)]:
            x, y = qs.row_hashes(primary, t, b), qs.row_hashes(replica, t, b)
            differing[(qs.name(t), i)] = {k for k in x.keys() | y.keys() if x.get(k) != y.get(k)}
    by_name = {qs.name(t): t for t in tables}
    rounds = 0
    while not exact and rounds < rechecks and any(differing.values()):
        rounds += 1
        seen = {ck: qs.key_hashes(primary, by_name[ck[0]], sorted(ks))
                for ck, ks in differing.items() if ks}
        drain()
        for ck, ks in differing.items():
            if ks:
                z = qs.key_hashes(replica, by_name[ck[0]], sorted(ks))
                differing[ck] = {k for k in ks if seen[ck].get(k) != z.get(k)}
    chunks: list[Chunk] = []
    keys: list[str] = []
    per_table: Counts = {qs.name(t): {"rows_source": 0, "rows_target": 0, "mismatches": 0}
                         for t in tables}
    for t, i, b in plan:
        name = qs.name(t)
        (np_, hp), (nr, hr) = p[(name, i)], r[(name, i)]
        diff = sorted(differing.get((name, i), ()))
        state = "match" if (np_, hp) == (nr, hr) else "mismatch" if diff else "rechecked"
        per_table[name]["mismatches"] += len(diff)
        keys += [f"{name}{k}" for k in diff[:20]]
        per_table[name]["rows_source"] += np_
        per_table[name]["rows_target"] += nr
        lo, hi = qs.bound_text(b)
        chunks.append(Chunk(name, i, lo, hi, np_, nr, hp, hr, state))
    return per_table, chunks, keys, rounds
