"""A simulated world for the witness lease (``components.runtime.quorum_lease``).

Three regions (primary, standby, witness), each with its own ``MemoryStore`` copy of the
lease; two sides (the primary's and the standby's ``QuorumLease``), each with its own
clock, offset from true time by at most ``skew/2`` (so any two clocks differ by at most
``skew``). Between regions, three links that can be cut one by one; a region can crash
(its store and its side become unreachable, its side forgets its grant) and recover.
Every store call from one region to another can lose its request (nothing applied), lose
its answer (applied, the caller sees a failure) or be delayed (applied at a later tick,
the caller sees a failure). Time advances in ticks of ``dt``; within a tick the delayed
requests land first, then each live side acts: renew when due, else (no grant, or a grant
that ended) try to take the lease every ``ttl/3`` if its policy wants it.

After every tick the checker records which sides hold ``write_allowed`` at that true
instant. Between ticks grants only end, so checking at each tick sees every overlap.

``MUTANTS`` remove one safeguard each; the bench and a test show the checker finds each.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from components.runtime.engine import Side
from components.runtime.errors import StoreError
from components.runtime.quorum_lease import (
    LeaseRecord,
    LeaseStore,
    MemoryStore,
    QuorumLease,
    grant_valid,
    may_write,
)

Region = Literal["primary", "standby", "witness"]
REGIONS: tuple[Region, ...] = ("primary", "standby", "witness")
SIDES: tuple[Side, ...] = ("primary", "standby")


def link(a: str, b: str) -> frozenset[str]:
    return frozenset((a, b))


@dataclass(frozen=True)
class Fault:
    at: float
    """True time of the fault, in seconds from the start."""
    kind: Literal["cut", "heal", "crash", "recover"]
    a: Region
    b: Region | None = None


@dataclass
class Schedule:
    ttl: float = 9.0
    skew: float = 2.0
    dt: float = 0.25
    duration: float = 60.0
    offsets: dict[str, float] = field(default_factory=lambda: {"primary": 0.0,
                                                               "standby": 0.0})
    faults: list[Fault] = field(default_factory=list)
    loss: float = 0.0
    """Probability that a cross-region request is lost, and again that its answer is."""
    delay: float = 0.0
    """Probability that a cross-region request is held for up to ``ttl`` (the caller times
    out; the request lands later, possibly after newer ones)."""
    wants_from: dict[str, float] = field(default_factory=lambda: {"primary": 0.0,
                                                                  "standby": 0.0})
    """From when (true time) a side without a valid grant tries to take the lease: the
    monitors' decision, which is not under test here. In the adversarial schedules both
    want it from the start; in the scenarios the standby wants it from the fault on."""
    seed: int = 0


@dataclass
class Trace:
    valid: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    """(true time, sides with write_allowed) after each tick."""
    alerts: list[tuple[float, str, str]] = field(default_factory=list)
    """(true time, side, store) for every store failure a side saw."""

    def violations(self) -> int:
        return sum(1 for _, v in self.valid if len(v) > 1)

    def first_valid(self, side: str, after: float = 0.0) -> float | None:
        return next((t for t, v in self.valid if side in v and t >= after), None)

    def last_valid(self, side: str) -> float | None:
        return next((t for t, v in reversed(self.valid) if side in v), None)

    def always(self, side: str, start: float) -> bool:
        return all(side in v for t, v in self.valid if t >= start)

    def never(self, side: str, start: float = 0.0) -> bool:
        return all(side not in v for t, v in self.valid if t >= start)


class World:
    def __init__(self, sch: Schedule,
                 make_store: Callable[[str], LeaseStore] = MemoryStore,
                 lease_cls: type[QuorumLease] = QuorumLease) -> None:
        self.sch = sch
        self.rng = random.Random(sch.seed)
        self.stores = {r: make_store(r) for r in REGIONS}
        self.cut: set[frozenset[str]] = set()
        self.down: set[str] = set()
        self.held: list[tuple[float, Callable[[], object]]] = []
        self.t = 0.0
        self.lease_cls = lease_cls
        self.trace = Trace()
        self.sides: dict[str, QuorumLease] = {s: self._side(s) for s in SIDES}
        self.next_try: dict[str, float] = {s: 0.0 for s in SIDES}

    def _side(self, side: Side) -> QuorumLease:
        stores = [_Remote(self, side, self.stores[r]) for r in REGIONS]
        return self.lease_cls(stores, side, ttl_s=self.sch.ttl, skew_s=self.sch.skew,
                              on_store_error=lambda name, _exc: self.trace.alerts.append(
                                  (self.t, side, name)))

    def now(self, side: str) -> float:
        return self.t + self.sch.offsets[side]

    def reachable(self, caller: str, region: str) -> bool:
        return (caller not in self.down and region not in self.down
                and (caller == region or link(caller, region) not in self.cut))

    def _apply(self, f: Fault) -> None:
        if f.kind == "cut" and f.b is not None:
            self.cut.add(link(f.a, f.b))
        elif f.kind == "heal" and f.b is not None:
            self.cut.discard(link(f.a, f.b))
        elif f.kind == "crash":
            self.down.add(f.a)
            for side in SIDES:  # the process dies: its grant is gone with it
                if side == f.a:
                    self.sides[side] = self._side(side)
        elif f.kind == "recover":
            self.down.discard(f.a)

    def run(self) -> Trace:
        sch = self.sch
        faults = sorted(sch.faults, key=lambda f: f.at)
        ticks = int(sch.duration / sch.dt) + 1
        for i in range(ticks):
            self.t = i * sch.dt
            while faults and faults[0].at <= self.t:
                self._apply(faults.pop(0))
            due = [h for h in self.held if h[0] <= self.t]
            self.held = [h for h in self.held if h[0] > self.t]
            for _, deliver in due:
                deliver()
            order = list(SIDES)
            self.rng.shuffle(order)
            for side in order:
                if side not in self.down:
                    self._act(side)
            self.trace.valid.append((self.t, frozenset(
                s for s in SIDES if s not in self.down
                and self.sides[s].write_allowed(self.now(s)))))
        return self.trace

    def _act(self, side: str) -> None:
        q, now = self.sides[side], self.now(side)
        if q.grant is not None and (q.write_allowed(now) or q.renew_due(now)):
            if q.renew_due(now):
                q.renew(now)
            if q.write_allowed(now):
                return
        if self.t >= max(self.sch.wants_from[side], self.next_try[side]):
            # Monitors run at arbitrary phases: the next attempt is at most ttl/3 away.
            self.next_try[side] = self.t + self.rng.uniform(self.sch.dt, self.sch.ttl / 3)
            q.promote(now)


class _Remote:
    """A store as seen from one side's region: links, crashes, loss and delay."""

    def __init__(self, world: World, caller: str, store: LeaseStore) -> None:
        self.w, self.caller, self.store, self.name = world, caller, store, store.name

    def _call(self, op: Callable[[], bool], mutates: bool) -> bool:
        w = self.w
        if not w.reachable(self.caller, self.name):
            raise StoreError(f"{self.name}: unreachable from {self.caller}")
        if self.caller != self.name:
            if w.rng.random() < w.sch.loss:
                raise StoreError(f"{self.name}: request lost")
            if mutates and w.rng.random() < w.sch.delay:
                hold = w.rng.randint(1, max(1, round(w.sch.ttl / w.sch.dt)))
                w.held.append((w.t + w.sch.dt * hold, op))
                raise StoreError(f"{self.name}: timed out (request still in flight)")
        out = op()
        if self.caller != self.name and w.rng.random() < w.sch.loss:
            raise StoreError(f"{self.name}: answer lost")
        return out

    def read(self, key: str) -> LeaseRecord:
        box: list[LeaseRecord] = []

        def op() -> bool:
            box.append(self.store.read(key))
            return True
        self._call(op, mutates=False)
        return box[0]

    def write(self, key: str, new: LeaseRecord, now: float, skew_s: float) -> bool:
        return self._call(lambda: self.store.write(key, new, now, skew_s), mutates=True)

    def release(self, key: str, epoch: int, holder: Side, now: float) -> bool:
        return self._call(lambda: self.store.release(key, epoch, holder, now), mutates=True)


# --- mutants: one safeguard removed each -----------------------------------------------------


class _NoExpiryCheck(MemoryStore):
    """A takeover does not wait for the old lease to end."""

    def write(self, key: str, new: LeaseRecord, now: float, skew_s: float) -> bool:
        return super().write(key, new, now + 1e9, skew_s)


class _UntilMayShrink(MemoryStore):
    """A late renewal may shorten the stored lease."""

    def write(self, key: str, new: LeaseRecord, now: float, skew_s: float) -> bool:
        with self._lock:
            cur = self._records.get(key, LeaseRecord())
            ok = (cur.holder == new.holder and cur.epoch <= new.epoch) or may_write(
                cur, new, now, skew_s)
            if ok:
                self._records[key] = new
            return ok


class _OneAck(QuorumLease):
    """One ack counts as a majority."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.majority = 1


class _NoSkewStore(MemoryStore):
    def write(self, key: str, new: LeaseRecord, now: float, skew_s: float) -> bool:
        return super().write(key, new, now, 0.0)


class _NoSkewFence(QuorumLease):
    """The holder writes until the very end of its lease; stores take over at its end."""

    def write_allowed(self, now: float) -> bool:
        return grant_valid(self.grant, now, self.ttl_s, 0.0)


MUTANTS: dict[str, tuple[type[MemoryStore], type[QuorumLease]]] = {
    "no_expiry_check": (_NoExpiryCheck, QuorumLease),
    "one_ack_counts": (MemoryStore, _OneAck),
    "no_clock_skew_margin": (_NoSkewStore, _NoSkewFence),
    "until_may_shrink": (_UntilMayShrink, QuorumLease),
}


def random_schedule(seed: int) -> Schedule:
    """An adversarial schedule: both sides want the lease, random skew, link cuts and
    heals, region crashes and recoveries, message loss and delay."""
    rng = random.Random(seed)
    ttl = rng.choice((6.0, 9.0, 12.0))
    skew = round(rng.uniform(0.0, ttl / 3 - 0.01), 2)
    offsets: dict[str, float] = {s: rng.uniform(-skew / 2, skew / 2) for s in SIDES}
    duration = 90.0
    faults: list[Fault] = []
    for _ in range(rng.randint(0, 16)):
        at = round(rng.uniform(0, duration), 2)
        if rng.random() < 0.7:
            a, b = rng.sample(REGIONS, 2)
            faults.append(Fault(at, rng.choice(("cut", "heal")), a, b))
        else:
            faults.append(Fault(at, rng.choice(("crash", "recover")), rng.choice(REGIONS)))
    return Schedule(ttl=ttl, skew=skew, dt=0.25, duration=duration, offsets=offsets,
                    faults=faults, loss=rng.choice((0.0, 0.05, 0.2)),
                    delay=rng.choice((0.0, 0.1, 0.3)), seed=seed,
                    wants_from={str(s): rng.choice((0.0, 0.0, rng.uniform(0, duration)))
                                for s in SIDES})


def run(sch: Schedule, mutant: str | None = None,
        make_store: Callable[[str], LeaseStore] = MemoryStore) -> Trace:
    """Run one schedule; ``make_store(region)`` gives each region's store (a real
    DynamoDB or MySQL one in the functional tests)."""
    if mutant is None:
        return World(sch, make_store).run()
    store_cls, lease_cls = MUTANTS[mutant]
    return World(sch, store_cls, lease_cls).run()
