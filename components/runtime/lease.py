"""The lease and fencing protocol, cloud-neutral.

A switch of a layer happens only under that layer's lease:

1. ``acquire`` is one conditional write: it succeeds when the lease is free, expired, or
   already held by this holder, and it increments the layer's **fencing token** (never
   reused: the counter lives in the lease item, which has no expiry attribute). A holder is
   one invocation (region + request id, or the CLI's host + a uuid), never a region: two
   overlapping invocations of one monitor are two holders.
2. The holder re-reads the scope (strongly consistent) and gives up if the active side is
   no longer the one its decision was based on, or if another switch is unfinished.
3. ``begin`` records the **intent** (token, to, from, targets, step) in the scope item,
   conditioned on the lease and the active side, BEFORE any target is touched;
   ``progress`` advances its step after each target. A holder that dies mid-switch leaves
   the intent; the next holder finishes it or rolls it back (``monitor_core``).
4. Every write to a pointer carries the token; a pointer rejects a token lower than the one
   it holds (``StaleToken``). Targets with no conditional write of their own (an API
   Gateway stage, a CloudWatch metric) are guarded by the lease and by refusing to start a
   target switch with less than ``MIN_LEASE_LEFT_S`` of lease left.
5. ``commit`` is a conditional write of the scope item (active side + token, intent
   cleared) that fails unless the intent is this lease's and the lease is still held, plus
   the switch record (who, when, why, token, probe evidence).

Conditional failures raise ``LeaseLost``/``StaleToken``; any other store failure raises
``StoreError``, never the cloud SDK's own exception.

Time. Lease expiry, cooldown and vote freshness compare the writer's wall clock with the
reader's. The monitors run on the cloud's hosts, whose clocks are disciplined by the
provider's time service (AWS: Amazon Time Sync, documented within a millisecond or so); the
one machine whose clock is not trusted is the operator's, so the ops CLI measures its skew
against the store's own clock (the HTTP ``Date`` of a store response) and refuses to switch
above ``MAX_CLIENT_SKEW_S``. ``MIN_LEASE_LEFT_S`` is larger than that bound, so a holder
within the bound never starts a target write on a lease another holder can see as expired.

``MemoryStore`` is the reference implementation, used by the protocol property tests; the
DynamoDB store (``components.runtime.aws.state``) implements the same conditions and runs
the same tests against a moto server.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from components.runtime.engine import Intent, ScopeState, Side, Vote
from components.runtime.errors import LeaseLost, StaleToken

#: The most the ops CLI's clock may differ from the state store's before it refuses to act.
MAX_CLIENT_SKEW_S = 5.0


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
    """The holder: ``<region>#<invocation>`` for a monitor, ``ops:<user>@<host>#<uuid>``
    for the CLI."""
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
        """Alert/practice bookkeeping only; never changes ``active``, ``token``, intent."""
        ...
    def begin(self, lease: Lease, scope: str, expected: Side, intent: Intent,
              now: float) -> None:
        """Record ``intent`` (token = lease token) if the lease is held, the scope is
        ``expected`` at an older token, and any unfinished intent is older than this lease;
        else ``LeaseLost``/``StaleToken``."""
        ...
    def progress(self, lease: Lease, scope: str, step: int) -> None:
        """Advance this lease's intent to ``step`` (targets applied); ``StaleToken`` if the
        intent is not this lease's any more."""
        ...
    def commit(self, lease: Lease, scope: str, expected: Side, state: ScopeState,
               record: SwitchRecord, now: float) -> None:
        """Set active/token/last_switch_at from ``state`` and clear the intent, if the
        intent is this lease's, the scope is still ``expected`` and the lease is held."""
        ...
    def record(self, record: SwitchRecord) -> None:
        """Log a practice (not committed) switch."""
        ...
    def put_vote(self, layer: str, scope: str, vote: Vote, gap_s: float = 0.0) -> bool:
        """Store the vantage's vote unless its stored vote is less than ``gap_s`` older
        (a duplicate or late step); returns whether it was stored."""
        ...
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
            self._scopes[(layer, scope)] = replace(
                cur, last_practice_at=state.last_practice_at, last_alert=state.last_alert)

    def _held(self, lease: Lease, now: float) -> None:
        holder, until, token = self._leases.get(lease.layer, (None, 0.0, 0))
        if holder != lease.holder or token != lease.token or until <= now:
            raise LeaseLost(f"lease on {lease.layer} lost (token {lease.token})")

    def begin(self, lease: Lease, scope: str, expected: Side, intent: Intent,
              now: float) -> None:
        with self._lock:
            self._held(lease, now)
            cur = self._scopes.get((lease.layer, scope), ScopeState())
            if (cur.active != expected or cur.token >= lease.token
                    or (cur.intent is not None and cur.intent.token >= lease.token)):
                raise StaleToken(
                    f"{lease.layer}/{scope}: expected {expected} at token < {lease.token} "
                    f"with no newer switch unfinished, found {cur.active} at token "
                    f"{cur.token}" + (f", intent {cur.intent.token}" if cur.intent else ""))
            self._scopes[(lease.layer, scope)] = replace(cur, intent=intent)

    def progress(self, lease: Lease, scope: str, step: int) -> None:
        with self._lock:
            cur = self._scopes.get((lease.layer, scope), ScopeState())
            if cur.intent is None or cur.intent.token != lease.token:
                raise StaleToken(f"{lease.layer}/{scope}: intent of token {lease.token} "
                                 "replaced by a newer holder")
            self._scopes[(lease.layer, scope)] = replace(cur, intent=replace(cur.intent,
                                                                             step=step))

    def commit(self, lease: Lease, scope: str, expected: Side, state: ScopeState,
               record: SwitchRecord, now: float) -> None:
        with self._lock:
            self._held(lease, now)
            cur = self._scopes.get((lease.layer, scope), ScopeState())
            if (cur.active != expected or cur.token >= lease.token or cur.intent is None
                    or cur.intent.token != lease.token):
                raise StaleToken(
                    f"{lease.layer}/{scope}: expected {expected} with the intent of token "
                    f"{lease.token}, found {cur.active} at token {cur.token}")
            self._scopes[(lease.layer, scope)] = replace(
                cur, active=state.active, token=lease.token,
                last_switch_at=state.last_switch_at, last_alert=None, intent=None)
            self._log.setdefault(lease.layer, []).append(record)

    def record(self, record: SwitchRecord) -> None:
        with self._lock:
            self._log.setdefault(record.layer, []).append(record)

    def put_vote(self, layer: str, scope: str, vote: Vote, gap_s: float = 0.0) -> bool:
        with self._lock:
            votes = self._votes.setdefault((layer, scope), {})
            cur = votes.get(vote.vantage)
            if cur is not None and cur.at > vote.at - gap_s:
                return False
            votes[vote.vantage] = vote
            return True

    def votes(self, layer: str, scope: str) -> list[Vote]:
        with self._lock:
            return list(self._votes.get((layer, scope), {}).values())

    def log(self, layer: str, limit: int = 20) -> list[SwitchRecord]:
        with self._lock:
            return list(reversed(self._log.get(layer, [])))[:limit]

    def scopes(self, layer: str) -> dict[str, ScopeState]:
        with self._lock:
            return {s: st for (lay, s), st in self._scopes.items() if lay == layer}
