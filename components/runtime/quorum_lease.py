"""The witness write lease: a 2-of-3 register, cloud-neutral (issue 15, build item 1).

With two regions no rule can both fail over on the loss of the region that holds the
primary database and never fail over a healthy primary cut off from the standby (see
docs/research/dr.md, section 3). A third failure domain, the witness region, holds one
vote and no data. The data layer's write lease becomes one record per region (primary,
standby, witness), each in that region's own store, each changed only by a conditional
write. An operation counts when a majority (2 of 3) of the records took it.

Record: ``(epoch, holder, until)``. ``holder`` is a side (``primary``/``standby``),
``until`` the end of the holder's lease on the holder's own clock.

A conditional write of ``(e, h, u)`` applies when the stored record is either
  * the same side's: ``holder == h and epoch <= e and until <= u`` (a late, re-ordered
    renewal never shortens a lease another reader may rely on; a side may move its own
    lease to a higher epoch), or
  * never written, or the other side's, ended with margin: ``epoch < e and until <= now -
    clock_skew`` (``now`` on the writer's clock).
There is no other write, except ``release`` by the holder (see below). Every write that
hands a store from one side to the other therefore checks that the old lease has ended.

Operations (``QuorumLease``):
  * ``renew(now)``: the holder writes ``(epoch, side, now + ttl)`` to every store. With a
    majority of acks its grant becomes ``renewed_at = now``; the start of the round, never
    the time of the last ack, so a slow round can only shorten the grant. A store that
    refuses because it holds a higher epoch (a failed promotion by the other side left it
    there) is read, and the next renewal moves the lease above that epoch, so the store is
    won back once that promotion's lease has ended and the holder never loses a vote to it.
  * ``promote(now)`` (also the first acquire): read a majority, write
    ``(max_epoch + 1, side, now + ttl)``. The second write condition makes every store
    refuse it until the old lease's end as that store saw it, plus ``clock_skew``, has
    passed on the promoter's clock. So an old holder that still reaches a majority (the
    witness and its own store) keeps its lease, and no promotion can win a majority while
    it does. The added promotion time after a failure is therefore at most
    ``lease_ttl + clock_skew`` on the promoter's clock after the old holder's last renewal,
    and ``lease_ttl + 2 x clock_skew`` in true time (the two clocks may differ by
    ``clock_skew``).
  * ``write_allowed(now)``: ``now < renewed_at + lease_ttl - clock_skew``: the self-fence,
    answered from the side's own last majority-acked renewal, with no cross-region read.
  * ``release(now)``: planned hand-over: the holder stops writing first, then sets ``until``
    to ``now`` on the stores, so the other side may promote without waiting.

Why it is safe (never two sides with ``write_allowed`` true at one instant, given that any
two clocks differ by at most ``clock_skew``): take a grant of side A won by a round that
started at ``r`` (A's clock) and a grant of side B won at ``g`` (B's clock), each on a
majority, so they share a store X. Say A's write reached X first (the other order is the
same argument with A and B swapped). The first of B's writes
applied on X after it hands X from A to B, so it checked ``until_X <= now_B - skew``; A's
writes never shorten ``until_X``, so ``until_X >= r + ttl``; B's writes never shorten it
either, so B's winning round (if not that first write) started later still. Hence ``g >=
r + ttl + skew`` on B's clock; at that instant A's clock reads at least ``r + ttl``, past
A's fence at ``r + ttl - skew``. The margin is doubled on purpose: one ``clock_skew`` for
clocks, one for a write A admitted just before its fence and still reaching the database.

The active side renews every ``lease_ttl / 3`` (``renew_due``): its grant outlives one
missed renewal because ``clock_skew < lease_ttl / 3`` (checked in the spec).

Store calls are made one after another; a store that fails (``StoreError``, a timeout) is
a missing ack, never an error of the operation. Time is always passed in (``now``), so the
property tests drive every operation with simulated clocks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from components.runtime.engine import Side
from components.runtime.errors import StoreError

#: The active side renews every ``lease_ttl / RENEWS_PER_TTL`` seconds.
RENEWS_PER_TTL = 3


@dataclass(frozen=True)
class LeaseRecord:
    """One region's copy of the lease; ``epoch 0`` is "never written"."""

    epoch: int = 0
    holder: Side | None = None
    until: float = 0.0


def may_write(cur: LeaseRecord, new: LeaseRecord, now: float, skew_s: float) -> bool:
    """The conditional write every store implements (the DynamoDB and MySQL adapters spell
    the same condition in their own language; the reference ``MemoryStore`` calls this)."""
    if cur.holder is None:  # never written
        return cur.epoch < new.epoch
    if cur.holder == new.holder:
        return cur.epoch <= new.epoch and cur.until <= new.until
    return cur.epoch < new.epoch and cur.until <= now - skew_s


class LeaseStore(Protocol):
    """One region's lease record, keyed by ``key`` (one key per layer: ``data``)."""

    name: str
    """The region (or ``witness``); appears in acks and errors."""

    def read(self, key: str) -> LeaseRecord:
        """Strongly consistent read; ``LeaseRecord()`` when absent; ``StoreError``."""
        ...

    def write(self, key: str, new: LeaseRecord, now: float, skew_s: float) -> bool:
        """Apply ``new`` if ``may_write(stored, new, now, skew_s)``, atomically; return
        whether it applied; ``StoreError`` on any other failure."""
        ...

    def release(self, key: str, epoch: int, holder: Side, now: float) -> bool:
        """Set ``until = now`` if the stored record is ``(epoch, holder)`` with a later
        ``until``; return whether it applied; ``StoreError`` on any other failure."""
        ...


class MemoryStore:
    """The reference store: one lock, the conditions exactly as documented above."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._records: dict[str, LeaseRecord] = {}

    def read(self, key: str) -> LeaseRecord:
        with self._lock:
            return self._records.get(key, LeaseRecord())

    def write(self, key: str, new: LeaseRecord, now: float, skew_s: float) -> bool:
        with self._lock:
            if not may_write(self._records.get(key, LeaseRecord()), new, now, skew_s):
                return False
            self._records[key] = new
            return True

    def release(self, key: str, epoch: int, holder: Side, now: float) -> bool:
        with self._lock:
            cur = self._records.get(key, LeaseRecord())
            if cur.epoch != epoch or cur.holder != holder or cur.until <= now:
                return False
            self._records[key] = LeaseRecord(epoch, holder, now)
            return True


@dataclass(frozen=True)
class Grant:
    """What a side holds after a majority-acked renewal or promotion. Small and plain, so
    the wiring can keep it where the side's request handlers read it (no cross-region
    read per request)."""

    side: Side
    epoch: int
    renewed_at: float
    """The start of the round that won it, on this side's clock."""


def grant_valid(grant: Grant | None, now: float, ttl_s: float, skew_s: float) -> bool:
    """The self-fence: true only while the last majority-acked renewal is younger than
    ``ttl - skew`` on this side's clock."""
    return grant is not None and now < grant.renewed_at + ttl_s - skew_s


@dataclass(frozen=True)
class Outcome:
    """One quorum operation: who acked, who refused (a condition failed), who failed."""

    ok: bool
    epoch: int
    acked: tuple[str, ...]
    refused: tuple[str, ...]
    failed: tuple[str, ...]


class QuorumLease:
    """One side's view of the register over ``stores`` (three: primary, standby and witness
    regions). Not shared between sides: each side has its own instance and its own clock."""

    def __init__(self, stores: Sequence[LeaseStore], side: Side, *, key: str = "data",
                 ttl_s: float, skew_s: float,
                 on_store_error: Callable[[str, StoreError], None] | None = None) -> None:
        if len(stores) < 3 or len(stores) % 2 == 0:
            raise ValueError(f"{len(stores)} stores: a quorum lease needs an odd number, "
                             "at least 3 (primary, standby and witness regions)")
        names = [s.name for s in stores]
        if len(set(names)) != len(names):
            raise ValueError(f"store names {names}: each region's store must appear once")
        if not ttl_s > 0 or not 0 <= skew_s < ttl_s / RENEWS_PER_TTL:
            raise ValueError(f"lease_ttl_s {ttl_s} / clock_skew_s {skew_s}: need ttl > 0 and "
                             f"0 <= skew < ttl/{RENEWS_PER_TTL}, so a grant outlives one "
                             "missed renewal")
        self.stores = list(stores)
        self.side: Side = side
        self.key = key
        self.ttl_s = ttl_s
        self.skew_s = skew_s
        self.majority = len(stores) // 2 + 1
        self.grant: Grant | None = None
        self._on_store_error = on_store_error
        self._bump = 0
        """An epoch seen on a refusing store: the next renewal moves above it."""

    # -- the self-fence -------------------------------------------------------------------

    def write_allowed(self, now: float) -> bool:
        return grant_valid(self.grant, now, self.ttl_s, self.skew_s)

    def renew_due(self, now: float) -> bool:
        """True when the holder should renew (every ``ttl / 3``)."""
        return (self.grant is not None
                and now >= self.grant.renewed_at + self.ttl_s / RENEWS_PER_TTL)

    # -- operations -----------------------------------------------------------------------

    def _each(self, call: Callable[[LeaseStore], bool]) -> tuple[list[str], list[str],
                                                                  list[str]]:
        acked: list[str] = []
        refused: list[str] = []
        failed: list[str] = []
        for store in self.stores:
            try:
                (acked if call(store) else refused).append(store.name)
            except StoreError as exc:
                failed.append(store.name)
                if self._on_store_error is not None:
                    self._on_store_error(store.name, exc)
        return acked, refused, failed

    def renew(self, now: float) -> Outcome:
        """Extend this side's lease; without a majority the grant is kept as it was (it
        still ends on time) and the caller learns it is at risk."""
        if self.grant is None:
            return Outcome(False, 0, (), (), ())
        epoch = max(self.grant.epoch, self._bump)
        outcome = self._write(LeaseRecord(epoch, self.side, now + self.ttl_s), now)
        if outcome.ok:
            self.grant = Grant(self.side, epoch, max(now, self.grant.renewed_at))
        return outcome

    def read_majority(self) -> tuple[list[LeaseRecord], tuple[str, ...]]:
        """The records of the stores that answered (fewer than a majority means the
        caller must not act on them) and the names of those that did not."""
        out: list[LeaseRecord] = []

        def read(s: LeaseStore) -> bool:
            out.append(s.read(self.key))
            return True
        _, _, failed = self._each(read)
        return out, tuple(failed)

    def promote(self, now: float) -> Outcome:
        """Take the lease at a new epoch (the first acquire is a promotion from epoch 0).
        Every store still holding the other side's lease refuses until that lease ended
        ``clock_skew`` ago; the grant exists only with a majority."""
        seen, unread = self.read_majority()
        if len(seen) < self.majority:
            return Outcome(False, 0, (), (), unread)
        epoch = max(max(r.epoch for r in seen), self._bump - 1) + 1
        outcome = self._write(LeaseRecord(epoch, self.side, now + self.ttl_s), now)
        if outcome.ok:
            self.grant = Grant(self.side, epoch, now)
        return outcome

    def _write(self, new: LeaseRecord, now: float) -> Outcome:
        acked, refused, failed = self._each(
            lambda s: s.write(self.key, new, now, self.skew_s))
        by_name = {s.name: s for s in self.stores}
        for name in refused:
            try:
                higher = by_name[name].read(self.key).epoch
            except StoreError:
                continue
            if higher >= new.epoch:
                self._bump = max(self._bump, higher + 1)
        return Outcome(len(acked) >= self.majority, new.epoch, tuple(acked), tuple(refused),
                       tuple(failed))

    def release(self, now: float) -> Outcome:
        """Planned hand-over: the grant is dropped BEFORE any store is told, so this side
        never writes on a lease the other side may already hold."""
        grant, self.grant = self.grant, None
        if grant is None:
            return Outcome(False, 0, (), (), ())
        acked, refused, failed = self._each(
            lambda s: s.release(self.key, grant.epoch, self.side, now))
        return Outcome(len(acked) >= self.majority, grant.epoch, tuple(acked),
                       tuple(refused), tuple(failed))
