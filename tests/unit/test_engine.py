"""The decision engine and the lease protocol: unit tests and property tests.

The property tests simulate two monitors (vantage points) over random probe sequences,
partitions, crashed rounds and racing decisions, sharing the reference ``MemoryStore`` and a
fenced pointer, and check the safety properties after every round.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.runtime.engine import ScopeState, Settings, Side, Vote, decide, observe
from components.runtime.errors import LeaseLost, StaleToken
from components.runtime.lease import MemoryStore, SwitchRecord

S = Settings(interval_s=10, failure_threshold=3, recovery_threshold=2, cooldown_s=60,
             quorum=2, failback="manual")


def down(v: str, at: float, n: int = 3) -> Vote:
    return Vote(v, at, primary_fail=n, standby_ok=1)


def test_one_vantage_cannot_fail_over_a_healthy_primary() -> None:
    state, d = decide(ScopeState(), [down("a", 100)], 100, S, "a")
    assert d.action == "alert" and "1 of 2" in d.reason
    assert state.active == "primary"
    # The same condition alerts once, not every round.
    _, again = decide(state, [down("a", 110)], 110, S, "a")
    assert again.action == "none"


def test_quorum_switches_to_a_healthy_standby() -> None:
    state, d = decide(ScopeState(), [down("a", 100), down("b", 95)], 100, S, "a")
    assert d.action == "switch_to_standby" and d.to == "standby"
    assert set(d.agreeing) == {"a", "b"} and state.active == "standby"


def test_stale_votes_do_not_count() -> None:
    old = 100 - S.freshness_s - 1
    _, d = decide(ScopeState(), [down("a", 100), down("b", old)], 100, S, "a")
    assert d.action == "alert"


def test_never_switches_to_an_unhealthy_standby() -> None:
    votes = [Vote("a", 100, primary_fail=3, standby_fail=2), down("b", 100)]
    state, d = decide(ScopeState(), votes, 100, S, "a")
    assert d.action == "alert" and "standby is not healthy" in d.reason
    assert state.active == "primary"


def test_cooldown_blocks_a_second_switch() -> None:
    st0 = ScopeState(active="primary", last_switch_at=80)
    _, d = decide(st0, [down("a", 100), down("b", 100)], 100, S, "a")
    assert d.action == "alert" and "cooldown" in d.reason


def test_manual_failback_alerts_and_never_switches_back() -> None:
    st0 = ScopeState(active="standby", last_switch_at=0)
    rec = [Vote("a", 500, primary_ok=5, standby_ok=5), Vote("b", 500, primary_ok=5, standby_ok=5)]
    state, d = decide(st0, rec, 500, S, "a")
    assert d.action == "alert" and "failback is manual" in d.reason
    assert state.active == "standby"


def test_auto_failback_needs_recovery_threshold_at_quorum() -> None:
    auto = Settings(**{**S.__dict__, "failback": "auto"})
    st0 = ScopeState(active="standby", last_switch_at=0)
    one = [Vote("a", 500, primary_ok=2), Vote("b", 500, primary_ok=1)]
    assert decide(st0, one, 500, auto, "a")[1].action == "none"
    both = [Vote("a", 500, primary_ok=2), Vote("b", 500, primary_ok=2)]
    state, d = decide(st0, both, 500, auto, "a")
    assert d.action == "switch_back" and state.active == "primary"


def test_practice_decides_and_alerts_but_keeps_the_active_side() -> None:
    practice = Settings(**{**S.__dict__, "practice": True})
    state, d = decide(ScopeState(), [down("a", 100), down("b", 100)], 100, practice, "a")
    assert d.is_switch and d.practice and d.reason.startswith("practice: would switch")
    assert state.active == "primary" and state.last_practice_at == 100
    # Practice decisions respect the cooldown too, so alerts are bounded.
    _, d2 = decide(state, [down("a", 110), down("b", 110)], 110, practice, "a")
    assert d2.action == "alert"


def test_hysteresis_streaks() -> None:
    v = None
    for ok in (False, False, True, False, False, False):
        v = observe(v, "a", 0, ok, True)
    assert v is not None and v.primary_fail == 3 and v.primary_ok == 0
    v = observe(v, "a", 0, None, True)  # not probed: no evidence either way
    assert v.primary_fail == 0 and v.primary_ok == 0 and v.standby_ok == 7


def test_lease_is_exclusive_until_expiry_and_tokens_grow() -> None:
    store = MemoryStore()
    a = store.acquire("data", "a", 0, 60)
    assert a is not None and store.acquire("data", "b", 10, 60) is None
    b = store.acquire("data", "b", 61, 60)  # expired: taken over with a newer token
    assert b is not None and b.token > a.token
    rec = SwitchRecord("data", "data", 61, "a", "primary", "standby", a.token, "x")
    with pytest.raises(LeaseLost):
        store.commit(a, "data", "primary", ScopeState(active="standby"), rec, 62)
    store.commit(b, "data", "primary", ScopeState(active="standby"), rec, 62)
    store.release(b)
    c = store.acquire("data", "a", 63, 60)
    assert c is not None
    with pytest.raises(StaleToken):  # the scope moved on: not primary any more
        store.commit(c, "data", "primary", ScopeState(active="standby"), rec, 64)


# -- property tests ---------------------------------------------------------------------------


@dataclass
class Pointer:
    """A fenced pointer: rejects a token that is not newer than the one it holds."""

    active: Side = "primary"
    token: int = 0
    writes: list[tuple[int, Side]] = field(default_factory=list)

    def write(self, to: Side, token: int) -> None:
        if token <= self.token:
            raise StaleToken(f"{token} <= {self.token}")
        self.active, self.token = to, token
        self.writes.append((token, to))


@dataclass
class Switch:
    at: float
    by: str
    frm: Side
    to: Side
    votes: list[Vote]
    mine: Vote


def simulate(s: Settings, rounds: list[tuple[tuple[bool, bool, bool], tuple[bool, bool, bool], bool]]) -> tuple[list[Switch], Pointer, MemoryStore]:  # noqa: E501
    """Each round: per vantage (runs, primary seen up, standby seen up), and whether the two
    decide concurrently (both read the state before either switches)."""
    store, pointer = MemoryStore(), Pointer()
    prev: dict[str, Vote | None] = {"a": None, "b": None}
    switches: list[Switch] = []
    for i, (va, vb, concurrent) in enumerate(rounds):
        now = 10.0 * (i + 1)
        pending = []
        for name, (runs, p_up, s_up) in (("a", va), ("b", vb)):
            if not runs:
                continue  # crashed or cut off from the state table this round
            vote = observe(prev[name], name, now, p_up, s_up)
            prev[name] = vote
            store.put_vote("L", "x", vote)
            pending.append((name, vote))
            if not concurrent:
                _act(s, store, pointer, switches, name, vote, now)
        if concurrent:
            decided = []
            for name, vote in pending:
                state = store.read_scope("L", "x")
                decided.append((name, vote, state, *decide(state, store.votes("L", "x"), now, s, name)))  # noqa: E501
            for name, vote, state, new_state, d in decided:
                _commit(s, store, pointer, switches, name, vote, state, new_state, d, now)
        # Invariant: exactly one active side, and the pointer agrees with the committed state.
        assert pointer.active == store.read_scope("L", "x").active
        assert [t for t, _ in pointer.writes] == sorted({t for t, _ in pointer.writes})
    return switches, pointer, store


def _act(s: Settings, store: MemoryStore, pointer: Pointer, switches: list[Switch], name: str,
         vote: Vote, now: float) -> None:
    state = store.read_scope("L", "x")
    new_state, d = decide(state, store.votes("L", "x"), now, s, name)
    _commit(s, store, pointer, switches, name, vote, state, new_state, d, now)


def _commit(s: Settings, store: MemoryStore, pointer: Pointer, switches: list[Switch],
            name: str, vote: Vote, state: ScopeState, new_state: ScopeState, d: object,
            now: float) -> None:
    from components.runtime.engine import Decision

    assert isinstance(d, Decision)
    if not d.is_switch or d.practice:
        store.save_scope_meta("L", "x", new_state)
        return
    assert d.to is not None
    lease = store.acquire("L", name, now, 60)
    if lease is None:
        return
    try:
        current = store.read_scope("L", "x")
        if current.active != state.active:
            return  # someone else switched first: the racing monitor gives up
        votes = store.votes("L", "x")
        pointer.write(d.to, lease.token)
        store.commit(lease, "x", state.active, new_state,
                     SwitchRecord("L", "x", now, name, state.active, d.to, lease.token,
                                  d.reason), now)
        switches.append(Switch(now, name, state.active, d.to, votes, vote))
    finally:
        store.release(lease)


view = st.tuples(st.booleans(), st.booleans(), st.booleans())
run_view = st.tuples(st.just(True), st.booleans(), st.booleans())
settings_st = st.builds(
    Settings,
    interval_s=st.just(10.0),
    failure_threshold=st.integers(1, 4),
    recovery_threshold=st.integers(1, 4),
    cooldown_s=st.sampled_from([0.0, 30.0, 120.0]),
    failback=st.sampled_from(["auto", "manual"]),
    quorum=st.integers(1, 2),
    practice=st.booleans(),
)
rounds_st = st.lists(st.tuples(st.one_of(view, run_view), st.one_of(view, run_view),
                               st.booleans()), min_size=1, max_size=60)
PROPS = settings(max_examples=250, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(s=settings_st, rounds=rounds_st)
def test_safety_properties_over_random_runs(s: Settings, rounds: list) -> None:  # type: ignore[type-arg]
    switches, pointer, _ = simulate(s, rounds)
    if s.practice:
        assert switches == [] and pointer.writes == []
    for sw in switches:
        fresh = [v for v in sw.votes if 0 <= sw.at - v.at <= s.freshness_s]
        if sw.to == "standby":
            # No switch without quorum, and never to an unhealthy standby.
            assert sum(v.primary_down(s) for v in fresh) >= s.quorum
            assert sw.mine.standby_healthy()
        else:
            assert s.failback == "auto"  # manual failback never switches back by itself
            assert sum(v.primary_recovered(s) for v in fresh) >= s.quorum
    for a, b in itertools.pairwise(switches):
        assert b.at - a.at >= s.cooldown_s  # switches are bounded by the cooldown
    # Racing monitors never both switch in one round.
    assert len({sw.at for sw in switches}) == len(switches)


@PROPS
@given(s=settings_st.filter(lambda s: s.quorum == 2),
       cut_off=st.lists(st.booleans(), min_size=1, max_size=60),
       standby_up=st.lists(st.booleans(), min_size=60, max_size=60))
def test_a_partitioned_monitor_never_fails_over_a_healthy_primary(
    s: Settings, cut_off: list[bool], standby_up: list[bool],
) -> None:
    # The primary is up. Monitor a is sometimes cut off (sees everything down); b sees truth.
    rounds = [((True, not cut, not cut), (True, True, standby_up[i]), i % 2 == 0)
              for i, cut in enumerate(cut_off)]
    switches, pointer, _ = simulate(s, rounds)
    assert switches == [] and pointer.active == "primary"


@PROPS
@given(s=settings_st.filter(lambda s: not s.practice and s.cooldown_s == 0),
       outage=st.integers(1, 20))
def test_a_real_outage_is_switched_exactly_once(s: Settings, outage: int) -> None:
    # Both monitors see the primary down and the standby up, racing each round.
    rounds = [((True, False, True), (True, False, True), True)] * (s.failure_threshold + outage)
    switches, pointer, _ = simulate(s, rounds)
    assert len(switches) == 1 and pointer.active == "standby" and len(pointer.writes) == 1
