"""The decision engine (pure) and the reference store's conditions: unit tests.

The protocol's property tests drive the real ``Monitor`` (``test_protocol.py``); the
regressions of the monitor's run-time behaviour are in ``test_protocol_monitor.py``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.runtime.engine import Intent, ScopeState, Settings, Vote, decide, observe
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
    store.begin(a, "data", "primary", Intent(a.token, "standby", "primary", "a", ()), 1)
    b = store.acquire("data", "b", 61, 60)  # expired: taken over with a newer token
    assert b is not None and b.token > a.token
    rec = SwitchRecord("data", "data", 61, "a", "primary", "standby", a.token, "x")
    with pytest.raises(LeaseLost):
        store.commit(a, "data", "primary", ScopeState(active="standby"), rec, 62)
    with pytest.raises(StaleToken):  # b has not taken the intent over yet
        store.commit(b, "data", "primary", ScopeState(active="standby"), rec, 62)
    store.begin(b, "data", "primary", Intent(b.token, "standby", "primary", "b", ()), 62)
    store.commit(b, "data", "primary", ScopeState(active="standby"), rec, 62)
    assert store.read_scope("data", "data").intent is None
    store.release(b)
    c = store.acquire("data", "a", 63, 60)
    assert c is not None
    with pytest.raises(StaleToken):  # the scope moved on: not primary any more
        store.begin(c, "data", "primary", Intent(c.token, "standby", "primary", "a", ()), 64)


def test_an_older_lease_cannot_replace_a_newer_unfinished_intent() -> None:
    store = MemoryStore()
    a = store.acquire("L", "a", 0, 60)
    assert a is not None
    store.release(a)
    b = store.acquire("L", "b", 1, 60)
    assert b is not None
    store.begin(b, "x", "primary", Intent(b.token, "standby", "primary", "b", ()), 1)
    with pytest.raises((LeaseLost, StaleToken)):
        store.begin(a, "x", "primary", Intent(a.token, "primary", "primary", "a", ()), 2)
    assert store.read_scope("L", "x").intent == Intent(b.token, "standby", "primary", "b", ())


# -- regressions ----------------------------------------------------------------------------


def test_decide_uses_this_invocations_view_not_the_stored_vote_of_its_vantage() -> None:
    # The stored vote of "a" was written by an overlapping invocation that saw the standby
    # healthy; this invocation sees it failing. It must not switch to it.
    stored = [down("a", 100), down("b", 100)]
    mine = Vote("a", 100, primary_fail=3, standby_fail=1)
    state, d = decide(ScopeState(), stored, 100, S, "a", mine=mine)
    assert d.action == "alert" and "standby is not healthy" in d.reason
    assert state.active == "primary"
    assert decide(ScopeState(), stored, 100, S, "a", mine=down("a", 100))[1].is_switch


def test_quorum_1_auto_failback_cannot_switch_back_in_the_same_round() -> None:
    flappy = Settings(interval_s=10, failure_threshold=1, recovery_threshold=1, cooldown_s=0,
                      quorum=1, failback="auto")
    # a saw the primary down and switched at t=100; b sees it up in the same round.
    state, d = decide(ScopeState(), [Vote("a", 100, primary_fail=1, standby_ok=1)], 100,
                      flappy, "a")
    assert d.action == "switch_to_standby"
    up = Vote("b", 100, primary_ok=1, standby_ok=1)
    _, back = decide(state, [up], 100, flappy, "b", mine=up)
    assert not back.is_switch and "cooldown" in back.reason
    # Two rounds later the failback is allowed again.
    later = Vote("b", 120, primary_ok=2, standby_ok=2)
    assert decide(state, [later], 120, flappy, "b", mine=later)[1].action == "switch_back"


def test_a_second_observation_within_the_vote_gap_does_not_advance_the_streak() -> None:
    first = observe(None, "a", 100, False, True, S.vote_gap_s)
    dup = observe(first, "a", 103, False, True, S.vote_gap_s)  # overlapping invocation
    assert dup == first  # same step: nothing new to store
    late = observe(first, "a", 95, False, True, S.vote_gap_s)  # an older clock: no step
    assert late.primary_fail == 1 and late.at == 100
    nxt = observe(first, "a", 110, False, True, S.vote_gap_s)
    assert nxt.primary_fail == 2 and nxt.at == 110


def test_an_unfinished_switch_blocks_new_decisions() -> None:
    pending = ScopeState(intent=Intent(3, "standby", "primary", "r1#x", ("pointer",)))
    _, d = decide(pending, [down("a", 100), down("b", 100)], 100, S, "a")
    assert d.action == "none" and "unfinished" in d.reason


def test_memory_store_refuses_duplicate_and_late_votes() -> None:
    store = MemoryStore()
    assert store.put_vote("L", "x", Vote("a", 100, primary_fail=1), gap_s=9)
    assert not store.put_vote("L", "x", Vote("a", 104, primary_fail=2), gap_s=9)
    assert not store.put_vote("L", "x", Vote("a", 90, primary_fail=5), gap_s=9)
    assert store.votes("L", "x") == [Vote("a", 100, primary_fail=1)]


def test_both_sides_failing_never_builds_the_primarys_streak() -> None:
    # Regression (aws-sql drill): a database outage failed both logic functions' deep checks
    # for several rounds; the database fails over, the standby side's path recovers a round
    # before the primary's, and the streak built during the outage failed the gateway over
    # although the gateway's primary was never at fault.
    v = None
    for t in range(6):  # the shared outage: both sides fail
        v = observe(v, "a", t * 10, False, False, gap_s=9)
    assert v is not None and v.primary_fail == 0 and v.primary_ok == 0 and v.standby_fail == 6
    v = observe(v, "a", 60, False, True, gap_s=9)  # the standby side recovers first
    votes = [v, replace(v, vantage="b")]
    state, d = decide(ScopeState(), votes, 60, S, "a", v)
    assert d.action != "switch_to_standby" and state.active == "primary"
    # A primary that keeps failing while the standby is healthy is this layer's fault.
    for t in (70, 80):
        v = observe(v, "a", t, False, True, gap_s=9)
    state, d = decide(ScopeState(), [v, replace(v, vantage="b")], 80, S, "a", v)
    assert d.action == "switch_to_standby" and state.active == "standby"


def test_a_streak_from_before_a_shared_outage_holds_through_it() -> None:
    v = observe(Vote("a", 0, primary_fail=2, standby_ok=3), "a", 30, False, False, gap_s=9)
    assert v.primary_fail == 2 and v.primary_ok == 0 and v.standby_fail == 1


def test_both_sides_failing_alerts_once_and_does_not_switch() -> None:
    v = Vote("a", 100, primary_fail=0, primary_ok=0, standby_fail=S.failure_threshold)
    state, d = decide(ScopeState(), [v, replace(v, vantage="b")], 100, S, "a", v)
    assert d.action == "alert" and "both sides failing at a, b" in d.reason
    assert state.active == "primary"
    _, again = decide(state, [v, replace(v, vantage="b")], 110, S, "a", v)
    assert again.action == "none"
