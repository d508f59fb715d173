"""Property tests of the switch protocol: the REAL ``Monitor.round`` (fresh ``Monitor`` per
invocation, as on Lambda) through a real store, under random schedules.

A schedule has two vantages (r1, r2) invoked once per interval, plus overlapping duplicate
invocations of r1 and late invocations of r2 (started earlier, voting with an older clock),
per-vantage clock skew within the documented bound, partitions (a vantage sees the primary
down), and crashes injected at every step of a switch: after the intent, before/after each
target apply, before/after the commit, at the release; or a commit that fails for a
non-condition reason (``StoreError``). Overlapping invocations really interleave: each runs
on its own thread and a seeded baton hands the turn over at every store and switcher call.

After every step and after the recovery rounds the checker looks for, by kind:
  quorum        a switch begun without quorum of really fresh votes (true time)
  double-count  one vantage's streak advanced twice within one vote gap
  unhealthy     a switch committed to a side the committing invocation saw unhealthy
  diverged      no switch unfinished, yet a target disagrees with the committed side
  stale-write   a target written with an older token after a newer one
  token-order   committed tokens not strictly increasing
  flap          two switches less than one round (or the cooldown) apart
  unrecovered   after recovery rounds, a switch still unfinished or targets not converged

``run_schedule(seed, store_factory)`` is shared with ``bench/safety.py``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.runtime.config import MonitorConfig, StateRef
from components.runtime.engine import Intent, ScopeState, Settings, Side, Vote
from components.runtime.errors import StaleToken, StoreError
from components.runtime.lease import Lease, MemoryStore, StateStore, SwitchRecord
from components.runtime.monitor_core import LEASE_TTL_S, Monitor
from components.runtime.notify import Alert, Notifier
from components.runtime.observe import Log
from components.runtime.probes import ProbeResult

INTERVAL = 10.0
MAX_SKEW = 2.0
#: The checker's own definitions (not read from the code under test): one streak step per
#: interval with 10 % jitter slack; no switch back within one round or the cooldown.
STEP_GAP = 0.9 * INTERVAL
SCOPE = "x"
TARGETS = [{"scope": SCOPE, "kind": "fenced", "name": "pointer"},
           {"scope": SCOPE, "kind": "plain", "name": "stage"}]
PROBES = [{"scope": SCOPE, "kind": "lambda", "side": s} for s in ("primary", "standby")]
KINDS = ("quorum", "double-count", "unhealthy", "diverged", "stale-write", "token-order",
         "flap", "unrecovered")
CRASH_POINTS = ("after-begin", "apply0-before", "apply0-after", "apply1-before",
                "apply1-after", "commit-before", "commit-after", "release", "commit-error")


class Crash(BaseException):
    """The invocation's process died here (nothing after this line of it runs)."""


class _Null:
    def write(self, s: str) -> int:
        return len(s)


# -- a baton: overlapping invocations interleave at every store / switcher call -------------


class Baton:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.cv = threading.Condition()
        self.turn: str | None = None
        self.local = threading.local()

    def point(self) -> None:
        name = getattr(self.local, "name", None)
        if name is None:
            return
        with self.cv:
            self.turn = None
            self.cv.notify_all()
            if not self.cv.wait_for(lambda: self.turn == name, timeout=30):
                raise RuntimeError(f"baton: {name} never got the turn back")

    def run(self, tasks: dict[str, Callable[[], None]]) -> None:
        if len(tasks) == 1:
            [fn] = tasks.values()
            fn()
            return
        live = set(tasks)
        order = self.rng.sample(sorted(tasks), len(tasks))

        def body(name: str, fn: Callable[[], None]) -> None:
            self.local.name = name
            with self.cv:
                self.cv.wait_for(lambda: self.turn == name, timeout=30)
            try:
                fn()
            finally:
                with self.cv:
                    live.discard(name)
                    self.turn = None
                    self.cv.notify_all()

        threads = [threading.Thread(target=body, args=(n, f), daemon=True)
                   for n, f in tasks.items()]
        for t in threads:
            t.start()
        with self.cv:
            for _ in range(10_000):  # bounded: each turn is one store or switcher call
                if not live:
                    break
                # Mostly one task runs ahead (so one can act on another's finished
                # switch), sometimes any: every interleaving is reachable.
                first = next(n for n in order if n in live)
                self.turn = first if self.rng.random() < 0.75 else self.rng.choice(
                    sorted(live))
                self.cv.notify_all()
                if not self.cv.wait_for(lambda: self.turn is None, timeout=30):
                    raise RuntimeError("baton: a task kept the turn")
            else:
                raise RuntimeError("baton: schedule did not finish")
        for t in threads:
            t.join(30)


# -- the world: targets, health, views ------------------------------------------------------


@dataclass
class Target:
    fenced: bool
    value: Side = "primary"
    token: int = 0
    writes: list[int] = field(default_factory=list)

    def write(self, to: Side, token: int) -> None:
        if self.fenced and token < self.token:
            raise StaleToken(f"target holds token {self.token}, refused {token}")
        self.writes.append(token)
        self.value, self.token = to, max(self.token, token)


@dataclass
class Sim:
    s: Settings
    rng: random.Random
    store: StateStore
    baton: Baton
    pool: ThreadPoolExecutor
    notifier: Notifier
    targets: dict[str, Target] = field(default_factory=lambda: {
        "fenced": Target(True), "plain": Target(False)})
    now: float = 1_000_000.0
    violations: Counter[str] = field(default_factory=Counter)
    votes: list[tuple[float, Vote]] = field(default_factory=list)
    views: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    observed: dict[str, float] = field(default_factory=dict)
    switches: list[tuple[float, Side, Side]] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    invocations: int = 0
    crashes: int = 0

    # the checker ------------------------------------------------------------------------

    def fresh_quorum(self, to: Side) -> bool:
        """Quorum as the engine defines it, judged on true time: ``quorum`` vantages with an
        accepted vote, observed within the freshness window, that shows the condition."""
        slack = 2 * MAX_SKEW
        ok = {v.vantage for t, v in self.votes if self.now - t <= self.s.freshness_s + slack
              and (v.primary_down(self.s) if to == "standby" else v.primary_recovered(self.s))}
        return len(ok) >= self.s.quorum

    def on_vote(self, task: str, v: Vote) -> None:
        observed = self.observed[task]  # true time of the probe round (a late one is older)
        prior = [t for t, old in self.votes if old.vantage == v.vantage]
        if prior and abs(observed - prior[-1]) < STEP_GAP - 1e-6:
            self.violations["double-count"] += 1
        self.votes.append((observed, v))

    def on_begin(self, task: str, intent: Intent, before: ScopeState) -> None:
        if before.intent is None and not self.fresh_quorum(intent.to):
            self.violations["quorum"] += 1

    def on_commit(self, task: str, frm: Side, state: ScopeState, token: int) -> None:
        if self.tokens and token <= self.tokens[-1]:
            self.violations["token-order"] += 1
        self.tokens.append(token)
        if state.active != frm:
            p_ok, s_ok = self.views[task]
            if not (s_ok if state.active == "standby" else p_ok):
                self.violations["unhealthy"] += 1
            if self.switches and self.now - self.switches[-1][0] < (
                    max(self.s.cooldown_s, INTERVAL) - 2 * MAX_SKEW):
                self.violations["flap"] += 1
            self.switches.append((self.now, frm, state.active))

    def check_settled(self, kind: str) -> None:
        st = self.store.read_scope("logic", SCOPE)
        values = {t.value for t in self.targets.values()}
        unfinished = kind == "unrecovered" and st.intent is not None
        if unfinished or (st.intent is None and values != {st.active}):
            self.violations[kind] += 1
        for t in self.targets.values():
            if t.writes != sorted(t.writes):
                self.violations["stale-write"] += 1
                t.writes.sort()


# -- per-invocation proxies: the baton, the crash plan, the checker's hooks -----------------


class Invocation:
    def __init__(self, sim: Sim, task: str, crash: str | None) -> None:
        self.sim, self.task, self.crash, self.dead = sim, task, crash, False

    def at(self, point: str) -> None:
        if self.crash == point:
            self.dead = True
            self.sim.crashes += 1
            raise Crash(point)

    def enter(self) -> None:
        self.sim.baton.point()
        if self.dead:
            raise Crash("dead")


class Store:
    """The real store, seen by one invocation."""

    def __init__(self, inv: Invocation) -> None:
        self.inv, self.real = inv, inv.sim.store

    def acquire(self, layer: str, holder: str, now: float, ttl_s: float) -> Lease | None:
        self.inv.enter()
        return self.real.acquire(layer, holder, now, ttl_s)

    def release(self, lease: Lease) -> None:
        self.inv.enter()
        self.inv.at("release")
        self.real.release(lease)

    def read_scope(self, layer: str, scope: str) -> ScopeState:
        self.inv.enter()
        return self.real.read_scope(layer, scope)

    def save_scope_meta(self, layer: str, scope: str, state: ScopeState) -> None:
        self.inv.enter()
        self.real.save_scope_meta(layer, scope, state)

    def begin(self, lease: Lease, scope: str, expected: Side, intent: Intent,
              now: float) -> None:
        self.inv.enter()
        before = self.real.read_scope(lease.layer, scope)
        self.real.begin(lease, scope, expected, intent, now)
        self.inv.sim.on_begin(self.inv.task, intent, before)
        self.inv.at("after-begin")

    def progress(self, lease: Lease, scope: str, step: int) -> None:
        self.inv.enter()
        self.real.progress(lease, scope, step)

    def commit(self, lease: Lease, scope: str, expected: Side, state: ScopeState,
               record: SwitchRecord, now: float) -> None:
        self.inv.enter()
        self.inv.at("commit-before")
        if self.inv.crash == "commit-error":
            raise StoreError("state table: commit the switch failed: AccessDeniedException")
        self.real.commit(lease, scope, expected, state, record, now)
        self.inv.sim.on_commit(self.inv.task, expected, state, lease.token)
        self.inv.at("commit-after")

    def record(self, record: SwitchRecord) -> None:
        self.inv.enter()
        self.real.record(record)

    def put_vote(self, layer: str, scope: str, vote: Vote, gap_s: float = 0.0) -> bool:
        self.inv.enter()
        ok = self.real.put_vote(layer, scope, vote, gap_s)
        if ok:
            self.inv.sim.on_vote(self.inv.task, vote)
        return ok

    def votes(self, layer: str, scope: str) -> list[Vote]:
        self.inv.enter()
        return self.real.votes(layer, scope)

    def log(self, layer: str, limit: int = 20) -> list[SwitchRecord]:
        return self.real.log(layer, limit)

    def scopes(self, layer: str) -> dict[str, ScopeState]:
        return self.real.scopes(layer)


class Switcher:
    def __init__(self, inv: Invocation, index: int) -> None:
        self.inv, self.index = inv, index

    def _target(self, t: Mapping[str, Any]) -> Target:
        return self.inv.sim.targets[str(t["kind"])]

    def current(self, t: Mapping[str, Any]) -> Side | None:
        return self._target(t).value

    def apply(self, t: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        self.inv.enter()
        self.inv.at(f"apply{self.index}-before")
        self._target(t).write(to, token)
        self.inv.at(f"apply{self.index}-after")

    def verify(self, t: Mapping[str, Any], to: Side) -> bool:
        return self._target(t).value == to


def invoke(sim: Sim, task: str, vantage: str, clock: float, view: tuple[bool, bool],
           crash: str | None, skew: float, later: float | None = None) -> None:
    """One invocation: a fresh Monitor, one round, on a clock ``skew`` off true time.

    The round's observation is at ``clock``; a late invocation (slow probes, a slow store)
    acts at ``later``: every clock reading after the first returns it."""
    readings = iter([clock])

    def now() -> float:
        return next(readings, clock if later is None else later)

    inv = Invocation(sim, task, crash)
    sim.views[task] = view
    sim.observed[task] = clock - skew
    sim.invocations += 1

    def probe(t: Mapping[str, Any], timeout_s: float) -> ProbeResult:
        ok = view[0] if t["side"] == "primary" else view[1]
        return ProbeResult(SCOPE, "lambda", ok, 1.0, "sim", str(t["side"]))

    cfg = MonitorConfig("sim", "logic", vantage, sim.s, PROBES, TARGETS,
                        StateRef("memory", "t", "r"))
    m = Monitor(cfg, Store(inv), {"fenced": Switcher(inv, 0), "plain": Switcher(inv, 1)},
                {"lambda": probe}, sim.notifier, Log(stream=_Null()), clock=now,
                _pool=sim.pool, invocation=task)
    with contextlib.suppress(Crash):
        m.round()


# -- schedules -----------------------------------------------------------------------------


def random_settings(rng: random.Random) -> Settings:
    if rng.random() < 0.25:  # the flappiest settings the engine accepts
        return Settings(interval_s=INTERVAL, timeout_s=1.0, failure_threshold=1,
                        recovery_threshold=1, cooldown_s=0.0, failback="auto", quorum=1)
    return Settings(interval_s=INTERVAL, timeout_s=1.0,
                    failure_threshold=rng.randint(1, 3), recovery_threshold=rng.randint(1, 3),
                    cooldown_s=rng.choice([0.0, 30.0]), failback=rng.choice(["auto", "manual"]),
                    quorum=rng.randint(1, 2))


def _segments(rng: random.Random, n: int, p_down: float) -> list[bool]:
    up, out = True, []
    for _ in range(n):
        if rng.random() < p_down:
            up = not up
        out.append(up)
    return out


def run_schedule(seed: int, store: StateStore, steps: int = 24,
                 pool: ThreadPoolExecutor | None = None) -> Counter[str]:
    """One random schedule; returns the violations found, by kind (empty when safe)."""
    rng = random.Random(seed)
    sent: list[Alert] = []

    def record_alert(a: Alert) -> tuple[bool, str]:
        sent.append(a)
        return True, "recorded"

    own_pool = pool is None
    pool = pool or ThreadPoolExecutor(max_workers=2)
    notifier = Notifier({"record": record_alert}, Log(stream=_Null()))
    sim = Sim(random_settings(rng), rng, store, Baton(rng), pool, notifier, alerts=sent)
    primary = _segments(rng, steps, 0.2)
    standby = _segments(rng, steps, 0.1)
    skew = {"r1": rng.uniform(-MAX_SKEW, MAX_SKEW), "r2": rng.uniform(-MAX_SKEW, MAX_SKEW)}
    phase = {"r1": 0.0, "r2": rng.uniform(0, INTERVAL / 2)}
    try:
        for k in range(steps):
            sim.now += INTERVAL
            tasks: dict[str, Callable[[], None]] = {}

            def add(tasks: dict[str, Callable[[], None]], name: str, vantage: str,
                    clock: float, crash: str | None, k: int = k,
                    later: float | None = None) -> None:
                cut = rng.random() < 0.1  # partitioned: sees the primary down
                view = (primary[k] and not cut, standby[k])
                tasks[name] = functools.partial(invoke, sim, name, vantage, clock, view, crash,
                                                skew[vantage], later)

            def crash() -> str | None:
                return rng.choice(CRASH_POINTS) if rng.random() < 0.3 else None

            for v in ("r1", "r2"):
                if rng.random() < 0.9:
                    add(tasks, f"{v}-{k}", v, sim.now + phase[v] + skew[v], crash())
            if rng.random() < 0.3:  # a duplicate delivery of r1's schedule, overlapping
                add(tasks, f"r1-{k}-dup", "r1", sim.now + rng.uniform(0, 3) + skew["r1"], crash())
            if rng.random() < 0.15:  # a late r2 invocation: probed long ago, votes now
                add(tasks, f"r2-{k}-late", "r2", sim.now - rng.uniform(5, 25) + skew["r2"],
                    crash(), later=sim.now + skew["r2"])
            sim.baton.run(tasks)
            sim.check_settled("diverged")
        # Recovery: no crashes, no duplicates, the world as it last was, past a lease TTL.
        for k in range(int(LEASE_TTL_S / INTERVAL) + 3):
            sim.now += INTERVAL
            view = (primary[-1], standby[-1])
            sim.baton.run({f"{v}-rec{k}": functools.partial(
                invoke, sim, f"{v}-rec{k}", v, sim.now + phase[v] + skew[v], view, None,
                skew[v]) for v in ("r1", "r2")})
        sim.check_settled("unrecovered")
    finally:
        notifier.drain(5.0)
        notifier.close()
        if own_pool:
            pool.shutdown()
    return sim.violations


# -- the properties ------------------------------------------------------------------------

POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sim-probe")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_protocol_is_safe_over_random_schedules_memory_store(seed: int) -> None:
    assert run_schedule(seed, MemoryStore(), pool=POOL) == Counter()


TABLES = itertools.count()


@pytest.mark.usefixtures("aws")
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_protocol_is_safe_over_random_schedules_dynamodb(seed: int) -> None:
    from components.runtime.aws.clients import Clients
    from components.runtime.aws.state import DynamoStateStore
    from components.sandbox import world as w

    table = w.state_table(name=f"sim-{next(TABLES)}")
    assert run_schedule(seed, DynamoStateStore(Clients(), table, w.R2), steps=12,
                        pool=POOL) == Counter()
