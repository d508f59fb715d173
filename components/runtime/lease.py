"""The lease and fencing protocol, cloud-neutral.

A switch of a layer happens only under that layer's lease:

1. ``acquire`` is one conditional write: it succeeds when the lease is free, expired, or
   already ours, and it increments the layer's **fencing token** (never reused: the counter
   lives in the lease item, which has no expiry attribute).
2. The holder re-reads the scope (strongly consistent) and gives up if the active side is
   no longer the one its decision was based on: another monitor switched first.
3. Every write to a pointer carries the token; a pointer rejects a token lower than the one
   it holds (``StaleToken``). Targets with no conditional write of their own (an API
   Gateway stage, a CloudWatch metric) are guarded by the scope item's conditional commit
   and by refusing to start a switch with less than ``min_remaining_s`` of lease left.
4. ``commit`` is a conditional write of the scope item (active side + token) that fails if
   the active side changed or a newer token committed, plus the switch record (who, when,
   why, token, probe evidence).

``MemoryStore`` is the reference implementation, used by the engine's property tests; the
DynamoDB store (``components.runtime.aws.state``) implements the same conditions and is
tested against moto with the same protocol tests.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from components.runtime.engine import ScopeState, Side, Vote
from components.runtime.errors import LeaseLost, StaleToken


@dataclass(frozen=True)
class Lease:
    layer: str
    holder: str
    token: int
    until: float


@dataclass(frozen=True)
class SwitchRecord:
    layer: str
    scope: str
    at: float
    by: str
    """The vantage (monitor region) or ``ops:<user>`` for the CLI."""
    from_side: Side
    to_side: Side
    token: int
    reason: str
    practice: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)
    verified: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StateStore(Protocol):
    def acquire(self, layer: str, holder: str, now: float, ttl_s: float) -> Lease | None: ...
    def release(self, lease: Lease) -> None: ...
    def read_scope(self, layer: str, scope: str) -> ScopeState: ...
    def save_scope_meta(self, layer: str, scope: str, state: ScopeState) -> None:
        """Alert/practice bookkeeping only; never changes ``active`` or ``token``."""
        ...
    def commit(self, lease: Lease, scope: str, expected: Side, state: ScopeState,
               record: SwitchRecord, now: float) -> None: ...
    def record(self, record: SwitchRecord) -> None:
        """Log a practice (not committed) switch."""
        ...
    def put_vote(self, layer: str, scope: str, vote: Vote) -> None: ...
    def votes(self, layer: str, scope: str) -> list[Vote]: ...
    def log(self, layer: str, limit: int = 20) -> list[SwitchRecord]: ...
    def scopes(self, layer: str) -> dict[str, ScopeState]: ...


class MemoryStore:
    """In-process store with the same conditional semantics as the DynamoDB store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[str | None, float, int]] = {}
        self._scopes: dict[tuple[str, str], ScopeState] = {}
        self._votes: dict[tuple[str, str], dict[str, Vote]] = {}
        self._log: dict[str, list[SwitchRecord]] = {}

    def acquire(self, layer: str, holder: str, now: float, ttl_s: float) -> Lease | None:
        with self._lock:
            cur_holder, until, token = self._leases.get(layer, (None, 0.0, 0))
            if cur_holder is not None and cur_holder != holder and until > now:
                return None
            token += 1
            self._leases[layer] = (holder, now + ttl_s, token)
            return Lease(layer, holder, token, now + ttl_s)

    def release(self, lease: Lease) -> None:
        with self._lock:
            holder, _, token = self._leases.get(lease.layer, (None, 0.0, 0))
            if holder == lease.holder and token == lease.token:
                self._leases[lease.layer] = (None, 0.0, token)

    def lease_valid(self, lease: Lease, now: float) -> bool:
        with self._lock:
            holder, until, token = self._leases.get(lease.layer, (None, 0.0, 0))
            return holder == lease.holder and token == lease.token and until > now

    def read_scope(self, layer: str, scope: str) -> ScopeState:
        with self._lock:
            return self._scopes.get((layer, scope), ScopeState())

    def save_scope_meta(self, layer: str, scope: str, state: ScopeState) -> None:
        with self._lock:
            cur = self._scopes.get((layer, scope), ScopeState())
            self._scopes[(layer, scope)] = ScopeState(
                cur.active, cur.token, cur.last_switch_at, state.last_practice_at,
                state.last_alert,
            )

    def commit(self, lease: Lease, scope: str, expected: Side, state: ScopeState,
               record: SwitchRecord, now: float) -> None:
        with self._lock:
            holder, until, token = self._leases.get(lease.layer, (None, 0.0, 0))
            if holder != lease.holder or token != lease.token or until <= now:
                raise LeaseLost(f"lease on {lease.layer} lost before commit (token {lease.token})")
            cur = self._scopes.get((lease.layer, scope), ScopeState())
            if cur.active != expected or cur.token >= lease.token:
                raise StaleToken(
                    f"{lease.layer}/{scope}: expected {expected} at token < {lease.token}, "
                    f"found {cur.active} at token {cur.token}"
                )
            self._scopes[(lease.layer, scope)] = ScopeState(
                state.active, lease.token, state.last_switch_at, state.last_practice_at,
                state.last_alert,
            )
            self._log.setdefault(lease.layer, []).append(record)

    def record(self, record: SwitchRecord) -> None:
        with self._lock:
            self._log.setdefault(record.layer, []).append(record)

    def put_vote(self, layer: str, scope: str, vote: Vote) -> None:
        with self._lock:
            self._votes.setdefault((layer, scope), {})[vote.vantage] = vote

    def votes(self, layer: str, scope: str) -> list[Vote]:
        with self._lock:
            return list(self._votes.get((layer, scope), {}).values())

    def log(self, layer: str, limit: int = 20) -> list[SwitchRecord]:
        with self._lock:
            return list(reversed(self._log.get(layer, [])))[:limit]

    def scopes(self, layer: str) -> dict[str, ScopeState]:
        with self._lock:
            return {s: st for (lay, s), st in self._scopes.items() if lay == layer}
