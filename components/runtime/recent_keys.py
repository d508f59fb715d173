"""The idempotency keys recently applied to one key-value item or object, kept with it.

Remembering only the last writer's key lets a late retry of an earlier write overwrite a
newer acknowledged one (A writes with K1, B with K2, A's retry of K1 sees K2 != K1 and writes
again). Every key applied within ``window_s`` is kept instead (at most ``MAX_KEYS``, newest
last), each with a hash of what it wrote: a retry with a remembered key is a replay (same
hash) or a ``Conflict`` (another request under the same key), and never writes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from components.runtime.data_errors import DataError

MAX_KEYS = 32
HASH_CHARS = 32


def content_hash(value: Any) -> str:
    canon = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:HASH_CHARS]


@dataclass(frozen=True)
class Entry:
    key: str
    digest: str
    at: int  # epoch seconds


def seen(entries: list[Entry], key: str, digest: str, what: str) -> bool:
    """Whether ``key`` was already applied (a replay); ``Conflict`` if it was applied to
    another request."""
    for e in entries:
        if e.key == key:
            if e.digest != digest:
                raise DataError("Conflict", f"{what}: idempotency_key {key!r} was already used "
                                "for different content; use a new key per write")
            return True
    return False


def remember(entries: list[Entry], key: str | None, digest: str, now: int,
             window_s: float, max_keys: int = MAX_KEYS) -> list[Entry]:
    """The entries to store with the new write: expired ones dropped, the new key appended,
    at most ``max_keys``."""
    kept = [e for e in entries if now - e.at < window_s]
    if key is not None:
        kept.append(Entry(key, digest, now))
    return kept[-max_keys:]


def to_plain(entries: list[Entry]) -> list[dict[str, Any]]:
    return [{"k": e.key, "h": e.digest, "t": e.at} for e in entries]


def from_plain(raw: Any) -> list[Entry]:
    """Entries from their stored form; anything malformed is dropped (it was not ours)."""
    out: list[Entry] = []
    if not isinstance(raw, list):
        return out
    for e in raw:
        if isinstance(e, dict) and isinstance(e.get("k"), str) and isinstance(e.get("h"), str):
            try:
                out.append(Entry(e["k"], e["h"], int(e.get("t", 0))))
            except (TypeError, ValueError):
                continue
    return out
