"""Regressions of the monitor's run-time protocol: the real ``Monitor`` on the reference
``MemoryStore``, a fresh ``Monitor`` per simulated invocation (as on Lambda), with targets
that record what was written and probes whose health the test sets."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

import components.runtime.aws.kinds  # noqa: F401  registers the "lambda" probe kind (a backend)
from components.runtime.config import MonitorConfig, StateRef
from components.runtime.engine import ScopeState, Settings, Side
from components.runtime.errors import StoreError
from components.runtime.lease import Lease, MemoryStore, SwitchRecord
from components.runtime.monitor_core import LEASE_TTL_S, Monitor, ops_holder
from components.runtime.notify import Alert, Notifier
from components.runtime.observe import Log
from components.runtime.probes import ProbeResult

SCOPE = "x"
TARGETS = [{"scope": SCOPE, "kind": "pointer", "name": "a"},
           {"scope": SCOPE, "kind": "pointer", "name": "b"}]
PROBES = [{"scope": SCOPE, "kind": "lambda", "side": s} for s in ("primary", "standby")]
POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-probe")


class Died(BaseException):
    """The invocation's process is gone (not an error the monitor may catch)."""


class _Null:
    def write(self, s: str) -> int:
        return len(s)


class Mortal(MemoryStore):
    """A process that died releases nothing: its lease stays until it expires."""

    dead = False

    def release(self, lease: Lease) -> None:
        if self.dead:
            raise Died("release")
        super().release(lease)


@dataclass
class World:
    settings: Settings
    store: Mortal = field(default_factory=Mortal)
    health: dict[str, bool] = field(default_factory=lambda: {"primary": True,
                                                             "standby": True})
    targets: dict[str, tuple[Side, int]] = field(default_factory=lambda: {
        "a": ("primary", 0), "b": ("primary", 0)})
    alerts: list[Alert] = field(default_factory=list)
    die_after: str | None = None
    """Name of a target after whose write the invocation's process dies."""

    def monitor(self, region: str, at: float, invocation: str | None = None) -> Monitor:
        world = self

        class Pointer:
            def current(self, t: Mapping[str, Any]) -> Side | None:
                return world.targets[t["name"]][0]

            def apply(self, t: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
                world.targets[t["name"]] = (to, token)
                if world.die_after == t["name"]:
                    world.die_after = None
                    world.store.dead = True
                    raise Died(t["name"])

            def verify(self, t: Mapping[str, Any], to: Side) -> bool:
                return world.targets[t["name"]][0] == to

        def probe(t: Mapping[str, Any], timeout_s: float) -> ProbeResult:
            return ProbeResult(SCOPE, "lambda", world.health[t["side"]], 1.0, "", t["side"])

        def record(a: Alert) -> tuple[bool, str]:
            world.alerts.append(a)
            return True, "ok"

        cfg = MonitorConfig("t", "logic", region, self.settings, PROBES, TARGETS,
                            StateRef("memory", "s", "r"))
        m = Monitor(cfg, self.store, {"pointer": Pointer()}, {"lambda": probe},
                    Notifier({"rec": record}, Log(stream=_Null())), Log(stream=_Null()),
                    clock=lambda: at, _pool=POOL)
        if invocation:
            m.invocation = invocation
        return m

    def invoke(self, region: str, at: float, invocation: str | None = None) -> list[Any]:
        """One scheduled invocation: a fresh Monitor, one round, alerts delivered."""
        m = self.monitor(region, at, invocation)
        try:
            return m.round()
        finally:
            self.store.dead = False
            m.notifier.drain(5.0)
            m.notifier.close()

    def active(self) -> Side:
        return self.store.read_scope("logic", SCOPE).active


def settings(interval: float, threshold: int, quorum: int = 1) -> Settings:
    return Settings(interval_s=interval, timeout_s=1, failure_threshold=threshold,
                    recovery_threshold=2, cooldown_s=0, quorum=quorum)


@pytest.mark.parametrize(("interval", "threshold"), [(30, 3), (60, 2), (10, 3)])
def test_streak_survives_fresh_monitor_per_invocation(interval: float, threshold: int) -> None:
    # Before: the streak lived in Monitor.votes, so a fresh Monitor per invocation restarted
    # at 1 every time and never reached the threshold (interval 30/60 never switched).
    world = World(settings(interval, threshold))
    world.health["primary"] = False
    t0 = 1_000_000.0
    for i in range(threshold - 1):
        world.invoke("r1", t0 + i * interval)
        assert world.active() == "primary"
    [o] = world.invoke("r1", t0 + (threshold - 1) * interval)
    assert o.switched and world.active() == "standby"
    assert world.targets == {"a": ("standby", 1), "b": ("standby", 1)}


def test_duplicate_invocations_do_not_double_count() -> None:
    world = World(settings(30, 2))
    world.health["primary"] = False
    t0 = 1_000_000.0
    # Three deliveries of the same schedule (at-least-once, retries, a manual run).
    for dup in (0.0, 1.5, 4.0):
        world.invoke("r1", t0 + dup)
    [vote] = world.store.votes("logic", SCOPE)
    assert vote.primary_fail == 1 and world.active() == "primary"
    world.invoke("r1", t0 + 30)
    assert world.active() == "standby"


def test_overlapping_invocations_of_one_region_are_two_lease_holders() -> None:
    world = World(settings(10, 1))
    a = world.monitor("r1", 100.0, invocation="req-a")
    b = world.monitor("r1", 100.0, invocation="req-b")
    assert a.holder != b.holder
    lease = world.store.acquire("logic", a.holder, 100.0, LEASE_TTL_S)
    assert lease is not None
    out = b.switch(SCOPE, "standby", "test", {})
    assert not out.switched and "lease held" in out.detail
    assert world.targets["a"] == ("primary", 0)
    cli = {ops_holder() for _ in range(3)}
    assert len(cli) == 3 and all(h.startswith("ops:") and "@" in h for h in cli)


class FailingCommit(Mortal):
    def __init__(self) -> None:
        super().__init__()
        self.fail = 1

    def commit(self, lease: Lease, scope: str, expected: Side, state: ScopeState,
               record: SwitchRecord, now: float) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreError("state table: commit the switch failed: AccessDeniedException")
        super().commit(lease, scope, expected, state, record, now)


def test_commit_failure_alerts_applied_not_committed_and_the_next_round_repairs() -> None:
    # Before: a non-condition ClientError at the commit escaped switch() after the targets
    # moved: no record, no alert, and nothing ever reconciled the scope.
    world = World(settings(10, 1), store=FailingCommit())
    world.health["primary"] = False
    [o] = world.invoke("r1", 100.0)
    assert not o.switched and "applied, NOT committed" in o.detail
    assert any(a.severity == "critical" and "applied, NOT committed" in a.title
               for a in world.alerts)
    st = world.store.read_scope("logic", SCOPE)
    assert st.active == "primary" and st.intent is not None and st.intent.step == 2
    [o2] = world.invoke("r1", 110.0)  # the next invocation finds the intent and finishes it
    st = world.store.read_scope("logic", SCOPE)
    assert o2.switched and st.active == "standby" and st.intent is None
    assert {v for v, _ in world.targets.values()} == {"standby"}
    assert all(tok == st.token for _, tok in world.targets.values())
    [rec, *_] = world.store.log("logic")
    assert rec.evidence["resumed"]["step"] == 2


def test_crash_between_targets_is_finished_by_the_next_holder_after_the_lease_expires() -> None:
    world = World(settings(10, 1))
    world.health["primary"] = False
    world.die_after = "a"
    with pytest.raises(Died):
        world.invoke("r1", 100.0)  # the process dies with target a moved, b not
    assert world.targets == {"a": ("standby", 1), "b": ("primary", 0)}
    intent = world.store.read_scope("logic", SCOPE).intent
    assert intent is not None and intent.holder.startswith("r1#")
    assert (intent.token, intent.to, intent.frm, intent.targets, intent.step) == (
        1, "standby", "primary", ("pointer::a", "pointer::b"), 0)
    # The dead holder's lease is still live: the next invocation waits, touches nothing.
    world.invoke("r2", 110.0)
    assert world.targets["b"] == ("primary", 0)
    world.invoke("r2", 100.0 + LEASE_TTL_S + 1)
    st = world.store.read_scope("logic", SCOPE)
    assert st.active == "standby" and st.intent is None
    assert world.targets == {"a": ("standby", st.token), "b": ("standby", st.token)}


def test_an_unfinished_switch_to_a_side_now_unhealthy_is_rolled_back() -> None:
    world = World(settings(10, 1))
    world.health["primary"] = False
    world.die_after = "a"
    with pytest.raises(Died):
        world.invoke("r1", 100.0)
    world.health["standby"] = False  # the standby failed meanwhile; the primary is back
    world.health["primary"] = True
    [o] = world.invoke("r1", 100.0 + LEASE_TTL_S + 1)
    st = world.store.read_scope("logic", SCOPE)
    assert not o.switched and "rolled back" in o.detail
    assert st.active == "primary" and st.intent is None
    assert world.targets == {"a": ("primary", st.token), "b": ("primary", st.token)}


def test_an_unfinished_switch_stops_a_planned_switch() -> None:
    world = World(settings(10, 1))
    world.health["primary"] = False
    world.die_after = "a"
    with pytest.raises(Died):
        world.invoke("r1", 100.0)
    ops = world.monitor("r1", 100.0 + LEASE_TTL_S + 1)
    out = ops.switch(SCOPE, "primary", "planned", {}, expected="standby", by=ops_holder())
    assert not out.switched and "unfinished" in out.detail
    assert world.targets == {"a": ("standby", 1), "b": ("primary", 0)}


def test_store_outage_alerts_instead_of_crashing_the_round() -> None:
    class Down(Mortal):
        def votes(self, layer: str, scope: str) -> list[Any]:
            raise StoreError("state table: read the votes failed: EndpointConnectionError")

    world = World(settings(10, 1), store=Down())
    [o] = world.invoke("r1", 100.0)
    assert o.decision.action == "none" and "EndpointConnectionError" in o.detail
    assert [a.severity for a in world.alerts] == ["critical"]


def test_a_slow_round_decides_again_under_the_lease_on_current_votes() -> None:
    # r2 voted "down" at t=0. r1's round observes at t=80 (r2's vote is fresh: quorum 2),
    # but its probes and store calls were slow and it takes the lease at t=100, when r2's
    # vote is older than the freshness window: the quorum no longer exists.
    world = World(settings(10, 1, quorum=2))
    world.health["primary"] = False
    world.invoke("r2", 0.0)
    m = world.monitor("r1", 80.0)
    readings = iter([80.0])
    m.clock = lambda: next(readings, 100.0)
    [o] = m.round()
    assert o.decision.is_switch and not o.switched
    assert "no longer holds under the lease" in o.detail and "1 of 2" in o.detail
    assert world.active() == "primary" and world.targets["a"] == ("primary", 0)
    # The same round without the delay switches (the quorum was real at t=80).
    world2 = World(settings(10, 1, quorum=2))
    world2.health["primary"] = False
    world2.invoke("r2", 0.0)
    [o2] = world2.invoke("r1", 80.0)
    assert o2.switched and world2.active() == "standby"
