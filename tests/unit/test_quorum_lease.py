"""The witness lease (2-of-3 register) on the reference MemoryStore with simulated clocks:
the conditions, then properties over partitions, skew, crashes, loss and delay
(``tests/unit/witness_sim.py`` is the world)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.runtime.errors import StoreError
from components.runtime.quorum_lease import (
    Grant,
    LeaseRecord,
    MemoryStore,
    QuorumLease,
    grant_valid,
    may_write,
)
from tests.unit.witness_sim import (
    MUTANTS,
    REGIONS,
    SIDES,
    Fault,
    Schedule,
    random_schedule,
    run,
)

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# --- the conditions ----------------------------------------------------------------------


def test_same_side_may_extend_but_never_shorten() -> None:
    cur = LeaseRecord(3, "primary", 100.0)
    assert may_write(cur, LeaseRecord(3, "primary", 101.0), now=50.0, skew_s=2.0)
    assert may_write(cur, LeaseRecord(4, "primary", 100.0), now=50.0, skew_s=2.0)
    assert not may_write(cur, LeaseRecord(3, "primary", 99.0), now=50.0, skew_s=2.0)
    assert not may_write(cur, LeaseRecord(2, "primary", 200.0), now=50.0, skew_s=2.0)


def test_takeover_waits_for_the_old_lease_end_plus_skew() -> None:
    cur = LeaseRecord(3, "primary", 100.0)
    new = LeaseRecord(4, "standby", 130.0)
    assert not may_write(cur, new, now=100.0, skew_s=2.0)
    assert not may_write(cur, new, now=101.99, skew_s=2.0)
    assert may_write(cur, new, now=102.0, skew_s=2.0)
    assert not may_write(cur, LeaseRecord(3, "standby", 130.0), now=500.0, skew_s=2.0)


def test_release_only_by_the_holder_of_that_epoch() -> None:
    s = MemoryStore("witness")
    assert s.write("data", LeaseRecord(1, "primary", 100.0), now=90.0, skew_s=1.0)
    assert not s.release("data", 1, "standby", 95.0)
    assert not s.release("data", 2, "primary", 95.0)
    assert s.release("data", 1, "primary", 95.0)
    assert s.read("data") == LeaseRecord(1, "primary", 95.0)


@pytest.mark.parametrize("ttl,skew", [(9.0, 3.0), (0.0, 0.0), (9.0, -1.0)])
def test_bad_timing_is_refused_with_the_rule(ttl: float, skew: float) -> None:
    stores = [MemoryStore(r) for r in REGIONS]
    with pytest.raises(ValueError, match=r"need ttl > 0 and 0 <= skew < ttl/3"):
        QuorumLease(stores, "primary", ttl_s=ttl, skew_s=skew)


def test_store_count_and_names_are_checked() -> None:
    with pytest.raises(ValueError, match="odd number, at least 3"):
        QuorumLease([MemoryStore("a"), MemoryStore("b")], "primary", ttl_s=9, skew_s=1)
    with pytest.raises(ValueError, match="must appear once"):
        QuorumLease([MemoryStore("a"), MemoryStore("a"), MemoryStore("b")], "primary",
                    ttl_s=9, skew_s=1)


def test_grant_fences_itself_skew_before_the_lease_end() -> None:
    g = Grant("primary", 1, 100.0)
    assert grant_valid(g, 106.99, ttl_s=9.0, skew_s=2.0)
    assert not grant_valid(g, 107.0, ttl_s=9.0, skew_s=2.0)
    assert not grant_valid(None, 0.0, ttl_s=9.0, skew_s=2.0)


class _Down(MemoryStore):
    def read(self, key: str) -> LeaseRecord:
        raise StoreError(f"{self.name}: unreachable")

    def write(self, key: str, new: LeaseRecord, now: float, skew_s: float) -> bool:
        raise StoreError(f"{self.name}: unreachable")


def test_one_store_down_is_an_alert_not_a_failure() -> None:
    seen: list[str] = []
    stores = [MemoryStore("primary"), MemoryStore("standby"), _Down("witness")]
    q = QuorumLease(stores, "primary", ttl_s=9, skew_s=1,
                    on_store_error=lambda name, exc: seen.append(name))
    out = q.promote(0.0)
    assert out.ok and out.acked == ("primary", "standby") and out.failed == ("witness",)
    assert q.renew(3.0).ok and q.write_allowed(10.9) and not q.write_allowed(11.0)
    assert seen == ["witness", "witness", "witness"]  # the read, the promotion, the renewal


def test_promotion_without_a_majority_of_reads_writes_nothing() -> None:
    stores = [MemoryStore("primary"), _Down("standby"), _Down("witness")]
    q = QuorumLease(stores, "primary", ttl_s=9, skew_s=1)
    out = q.promote(0.0)
    assert not out.ok and out.failed == ("standby", "witness") and out.acked == ()
    assert stores[0].read("data") == LeaseRecord() and q.grant is None


def test_holder_renews_every_third_of_the_ttl() -> None:
    q = QuorumLease([MemoryStore(r) for r in REGIONS], "primary", ttl_s=9, skew_s=1)
    assert not q.renew_due(0.0)  # no grant: nothing to renew
    assert q.promote(10.0).ok
    assert not q.renew_due(12.99) and q.renew_due(13.0)
    assert q.renew(13.0).ok and not q.renew_due(15.99) and q.renew_due(16.0)


def test_renewal_wins_back_a_store_a_failed_promotion_left_behind() -> None:
    stores = {r: MemoryStore(r) for r in REGIONS}
    p = QuorumLease(list(stores.values()), "primary", ttl_s=9, skew_s=1)
    assert p.promote(0.0).ok
    # The standby alone took its own store at a higher epoch (its lease there ended).
    assert stores["standby"].write("data", LeaseRecord(5, "standby", 20.0), 20.0, 1.0)
    out = p.renew(21.0)
    assert out.ok and out.refused == ("standby",)
    assert p.renew(24.0).ok and stores["standby"].read("data").epoch == 6
    assert stores["standby"].read("data").holder == "primary"


def test_release_lets_the_other_side_promote_at_once() -> None:
    stores = [MemoryStore(r) for r in REGIONS]
    p = QuorumLease(stores, "primary", ttl_s=9, skew_s=1)
    s = QuorumLease(stores, "standby", ttl_s=9, skew_s=1)
    assert p.promote(0.0).ok
    assert not s.promote(1.0).ok
    assert p.release(2.0).ok and not p.write_allowed(2.0)
    assert not s.promote(2.5).ok  # the released lease's end plus skew: 3.0
    out = s.promote(3.0)
    assert out.ok and out.epoch == 2 and s.write_allowed(3.0)


# --- properties over the simulated world ------------------------------------------------------

TTL = st.sampled_from([6.0, 9.0, 30.0])


@st.composite
def timing(draw: st.DrawFn) -> tuple[float, float, dict[str, float]]:
    ttl = draw(TTL)
    skew = draw(st.floats(0.0, ttl / 3 - 0.01))
    offsets: dict[str, float] = {s: draw(st.floats(-skew / 2, skew / 2)) for s in SIDES}
    return ttl, skew, offsets


@st.composite
def adversarial(draw: st.DrawFn) -> Schedule:
    ttl, skew, offsets = draw(timing())
    duration = 6 * ttl
    fault = st.one_of(
        st.builds(Fault, st.floats(0, duration), st.sampled_from(["cut", "heal"]),
                  st.sampled_from(REGIONS), st.sampled_from(REGIONS)),
        st.builds(Fault, st.floats(0, duration), st.sampled_from(["crash", "recover"]),
                  st.sampled_from(REGIONS)))
    return Schedule(ttl=ttl, skew=skew, dt=ttl / 36, duration=duration, offsets=offsets,
                    faults=draw(st.lists(fault, max_size=14)),
                    loss=draw(st.sampled_from([0.0, 0.05, 0.3])),
                    delay=draw(st.sampled_from([0.0, 0.1, 0.3])),
                    wants_from={s: draw(st.sampled_from([0.0, ttl, 3 * ttl])) for s in SIDES},
                    seed=draw(st.integers(0, 2**32)))


@SETTINGS
@given(adversarial())
def test_never_two_sides_with_a_valid_write_lease(sch: Schedule) -> None:
    trace = run(sch)
    overlaps = [(t, sorted(v)) for t, v in trace.valid if len(v) > 1]
    assert not overlaps, f"two writers at {overlaps[:3]}"


def _scenario(draw_timing: tuple[float, float, dict[str, float]], at: float,
              faults: list[Fault]) -> Schedule:
    ttl, skew, offsets = draw_timing
    return Schedule(ttl=ttl, skew=skew, dt=ttl / 36, duration=at + 4 * ttl,
                    offsets=offsets, faults=faults,
                    wants_from={"primary": 0.0, "standby": at}, seed=int(at * 1000))


def _bound(sch: Schedule, at: float) -> float:
    """The latest true time the standby may take over after the primary's renewals stop
    at ``at``: the old lease (ttl) plus the promoter's skew plus the clocks' difference
    (skew), plus one attempt period (ttl/3) and one tick."""
    return at + sch.ttl + 2 * sch.skew + sch.ttl / 3 + sch.dt


@SETTINGS
@given(timing(), st.floats(1.0, 40.0))
def test_primary_region_lost_standby_promotes_within_ttl_skew_renew(
        tm: tuple[float, float, dict[str, float]], at: float) -> None:
    sch = _scenario(tm, at, [Fault(at, "crash", "primary")])
    trace = run(sch)
    first = trace.first_valid("standby", after=at)
    assert first is not None and first <= _bound(sch, at), (first, _bound(sch, at))
    assert trace.violations() == 0


@SETTINGS
@given(timing(), st.floats(1.0, 40.0))
def test_primary_isolated_self_fences_before_standby_promotes(
        tm: tuple[float, float, dict[str, float]], at: float) -> None:
    sch = _scenario(tm, at, [Fault(at, "cut", "primary", "standby"),
                             Fault(at, "cut", "primary", "witness")])
    trace = run(sch)
    last_p, first_s = trace.last_valid("primary"), trace.first_valid("standby", after=at)
    assert last_p is not None and first_s is not None
    assert last_p < first_s <= _bound(sch, at)


@SETTINGS
@given(timing(), st.floats(1.0, 40.0))
def test_standby_isolated_no_failover(tm: tuple[float, float, dict[str, float]],
                                      at: float) -> None:
    sch = _scenario(tm, at, [Fault(at, "cut", "standby", "primary"),
                             Fault(at, "cut", "standby", "witness")])
    trace = run(sch)
    assert trace.always("primary", start=0.0) and trace.never("standby")


@SETTINGS
@given(timing(), st.floats(1.0, 40.0))
def test_witness_lost_no_change_and_an_alert(tm: tuple[float, float, dict[str, float]],
                                             at: float) -> None:
    sch = _scenario(tm, at, [Fault(at, "crash", "witness")])
    trace = run(sch)
    assert trace.always("primary", start=0.0) and trace.never("standby")
    assert any(side == "primary" and store == "witness" and t >= at
               for t, side, store in trace.alerts)


@SETTINGS
@given(timing(), st.floats(1.0, 40.0))
def test_primary_standby_link_cut_witness_sees_both_no_failover(
        tm: tuple[float, float, dict[str, float]], at: float) -> None:
    sch = _scenario(tm, at, [Fault(at, "cut", "primary", "standby")])
    trace = run(sch)
    assert trace.always("primary", start=0.0) and trace.never("standby")


# --- the checker can fail: one safeguard removed, a known schedule shows two writers -----------

#: Seeds of ``random_schedule`` on which each mutant shows two writers (found by
#: ``bench/witness.py``); the real lease shows none on the same schedules.
MUTANT_SEEDS = {"no_expiry_check": 0, "one_ack_counts": 1, "no_clock_skew_margin": 212,
                "until_may_shrink": 29}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_checker_finds_two_writers_when_a_safeguard_is_removed(mutant: str) -> None:
    sch = random_schedule(MUTANT_SEEDS[mutant])
    assert run(sch, mutant).violations() > 0
    assert run(sch).violations() == 0
