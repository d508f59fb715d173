"""The monitor decision engine: pure functions, no I/O, no clock, no cloud.

One *scope* is one switchable thing (a region's gateway stage, a region's wrapper pointer,
the data pointer, a region's DNS health). Each monitor is a *vantage point*. Per round:

1. ``observe(prev, vantage, now, primary_healthy, standby_healthy) -> Vote``: the vantage's
   consecutive failure/success streaks for both sides (hysteresis lives in the streaks).
   A round in which both sides fail does not advance the primary's failure streak: the
   cause is shared (a dependency such as the database, or this vantage's own network), a
   switch would not help, and when the shared cause ends first on the standby side a streak
   built during it would fail over a primary that was never at fault.
2. Votes are shared (the state table); ``decide(state, votes, now, settings, me)`` turns the
   fresh votes of every vantage into a decision for the scope:

   * ``switch_to_standby`` when at least ``quorum`` fresh vantages have seen the primary fail
     ``failure_threshold`` times in a row, the deciding vantage sees the standby healthy,
     and the last switch is at least ``cooldown_s`` ago;
   * ``switch_back`` only with ``failback: auto``, when ``quorum`` vantages have seen the
     primary succeed ``recovery_threshold`` times in a row (and the cooldown has passed);
   * ``alert`` for what a human must know but the engine must not act on (no quorum, the
     standby is unhealthy, cooldown, manual failback is due, both sides down), once per
     condition, not every round;
   * ``none`` otherwise.

   In practice mode a switch decision is returned with ``practice=True`` and the active side
   is left as it is: the caller alerts "would switch" and records it, and switches nothing.

The caller applies a switch only under the lease, and only if the scope's active side is
still the one this decision was based on (see ``lease.py``).

Run-time facts this module is built for: every scheduled invocation may be a fresh process,
and invocations of one vantage may overlap or be delivered twice. So the streaks are seeded
from the vantage's own stored vote (``observe(prev=stored)``), and a vote advances a streak
at most once per ``vote_gap_s``: a second observation within that gap (an overlapping or
duplicated invocation) is merged into the stored vote instead of counted again, and the
store refuses a vote write inside the gap (a late or replayed vote).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

Side = Literal["primary", "standby"]
Action = Literal["none", "switch_to_standby", "switch_back", "alert"]
SIDES: tuple[Side, Side] = ("primary", "standby")


def other(side: Side) -> Side:
    return "standby" if side == "primary" else "primary"


@dataclass(frozen=True)
class Settings:
    interval_s: float = 10.0
    timeout_s: float = 2.0
    failure_threshold: int = 3
    recovery_threshold: int = 5
    cooldown_s: float = 300.0
    failback: Literal["auto", "manual"] = "manual"
    quorum: int = 2
    practice: bool = False

    @property
    def vote_gap_s(self) -> float:
        """Minimum spacing of two streak steps of one vantage: one step per interval, with
        10 % slack for scheduler jitter (so no round is lost to a late timer)."""
        return 0.9 * self.interval_s

    @property
    def switch_floor_s(self) -> float:
        """The cooldown is never shorter than two rounds: a switch and a switch back can never
        rest on the same round's votes (quorum 1 + failback auto would flap otherwise)."""
        return max(self.cooldown_s, 2 * self.interval_s)

    @property
    def freshness_s(self) -> float:
        """How old another vantage's vote may be and still count: three rounds, at least 90 s
        (one scheduler period plus slack when the monitor runs once a minute)."""
        return max(3 * self.interval_s + self.timeout_s, 90.0)


@dataclass(frozen=True)
class Vote:
    """One vantage point's view of one scope after its latest probe round."""

    vantage: str
    at: float
    primary_fail: int = 0
    primary_ok: int = 0
    standby_fail: int = 0
    standby_ok: int = 0

    def primary_down(self, s: Settings) -> bool:
        return self.primary_fail >= s.failure_threshold

    def primary_recovered(self, s: Settings) -> bool:
        return self.primary_ok >= s.recovery_threshold

    def standby_healthy(self) -> bool:
        return self.standby_ok >= 1 and self.standby_fail == 0

    def standby_down(self, s: Settings) -> bool:
        return self.standby_fail >= s.failure_threshold


def _streak(fail: int, ok: int, healthy: bool | None) -> tuple[int, int]:
    if healthy is None:  # not probed this round: no evidence either way
        return 0, 0
    return (0, ok + 1) if healthy else (fail + 1, 0)


def _merge(fail: int, ok: int, healthy: bool | None) -> tuple[int, int]:
    """The same step seen again: keep a streak that agrees, restart one that does not."""
    if healthy is None:
        return fail, ok
    if healthy:
        return (0, ok) if ok else (0, 1)
    return (fail, 0) if fail else (1, 0)


def observe(
    prev: Vote | None,
    vantage: str,
    now: float,
    primary_healthy: bool | None,
    standby_healthy: bool | None,
    gap_s: float = 0.0,
) -> Vote:
    """Fold one probe round into the vantage's streaks.

    When ``prev`` is less than ``gap_s`` old (or from the future), this round is the same
    step as ``prev`` (another invocation of this vantage already voted it): the result keeps
    ``prev.at`` and does not advance any streak, so it is never stored as a new step.
    """
    p = prev or Vote(vantage, now)
    same_step = prev is not None and now - prev.at < gap_s
    step = _merge if same_step else _streak
    pf, po = step(p.primary_fail, p.primary_ok, primary_healthy)
    sf, so = step(p.standby_fail, p.standby_ok, standby_healthy)
    if primary_healthy is False and standby_healthy is False:
        pf = p.primary_fail  # both down: a shared cause, the primary's streak holds
    return Vote(vantage, p.at if same_step else now, pf, po, sf, so)


def sees_healthy(vote: Vote | None, side: Side) -> bool:
    """Whether this vote's latest round saw ``side`` healthy."""
    if vote is None:
        return False
    if side == "standby":
        return vote.standby_healthy()
    return vote.primary_ok >= 1 and vote.primary_fail == 0


@dataclass(frozen=True)
class Intent:
    """A switch that was started and not yet committed (written before any target moves).

    Whoever next holds the layer's lease finishes it (to ``to``) or rolls it back (to
    ``frm``), so targets and the committed scope always converge, even after a crash."""

    token: int
    to: Side
    frm: Side
    holder: str
    targets: tuple[str, ...]
    step: int = 0
    """How many of ``targets`` were applied (in order)."""
    at: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class ScopeState:
    """What every monitor of a scope shares (the state table's scope item)."""

    active: Side = "primary"
    token: int = 0
    """Fencing token of the switch that set ``active``."""
    last_switch_at: float | None = None
    last_practice_at: float | None = None
    last_alert: str | None = None
    """The condition last alerted, so an alert is sent once per condition."""
    intent: Intent | None = None
    """An unfinished switch; no new decision is taken while it is set."""


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    to: Side | None = None
    practice: bool = False
    agreeing: tuple[str, ...] = ()
    """The vantages whose votes the decision rests on."""

    @property
    def is_switch(self) -> bool:
        return self.action in ("switch_to_standby", "switch_back")


NONE = Decision("none", "healthy")


def _alert(state: ScopeState, key: str, reason: str, agreeing: Sequence[str] = ()) -> tuple[ScopeState, Decision]:  # noqa: E501
    if state.last_alert == key:
        return state, Decision("none", reason)
    return replace(state, last_alert=key), Decision("alert", reason, agreeing=tuple(agreeing))


def _cooling(state: ScopeState, now: float, s: Settings) -> float:
    """Seconds of cooldown left (switches and practice switches both count)."""
    last = max(state.last_switch_at or -1e18, state.last_practice_at or -1e18)
    return max(0.0, last + s.switch_floor_s - now)


def decide(
    state: ScopeState,
    votes: Sequence[Vote],
    now: float,
    s: Settings,
    me: str,
    mine: Vote | None = None,
) -> tuple[ScopeState, Decision]:
    """The decision for one scope from the fresh votes of every vantage (pure).

    ``mine`` is this invocation's own observation; the side to switch to must be healthy in
    it. The store's copy of this vantage's vote may have been written by an overlapping
    invocation that saw something else, so it counts towards quorum but never stands in for
    what this decider saw (it is used only when ``mine`` is not given).
    """
    fresh = {v.vantage: v for v in votes if 0 <= now - v.at <= s.freshness_s}
    if mine is None:
        mine = fresh.get(me)
    if state.intent is not None:
        return state, Decision("none", f"switch to {state.intent.to} (token "
                                       f"{state.intent.token}) unfinished: resume it first")
    if state.active == "primary":
        down = sorted(v.vantage for v in fresh.values() if v.primary_down(s))
        if not down:
            both = sorted(v.vantage for v in fresh.values()
                          if v.standby_down(s) and v.primary_ok == 0)
            if both:
                return _alert(
                    state, "both-failing",
                    f"both sides failing at {', '.join(both)}: a shared cause (a dependency "
                    "such as the database, or the network) is likely; this layer does not "
                    "switch for it", both)
            # Back to normal: a later failure alerts again.
            return replace(state, last_alert=None), NONE
        if len(down) < s.quorum:
            return _alert(
                state, "no-quorum",
                f"primary failing at {', '.join(down)} only: {len(down)} of {s.quorum} "
                "vantage points needed to switch (a monitor that is cut off must not fail "
                "over a healthy primary)", down,
            )
        if not sees_healthy(mine, "standby"):
            return _alert(
                state, "standby-unhealthy",
                "primary down by quorum, but the standby is not healthy from this vantage "
                "point: not switching to it", down,
            )
        left = _cooling(state, now, s)
        if left > 0:
            return _alert(state, "cooldown",
                          f"primary down by quorum; cooldown has {left:.0f} s left", down)
        reason = (f"primary failed {s.failure_threshold}+ consecutive probes at "
                  f"{', '.join(down)} (quorum {s.quorum}); standby healthy")
        return _switch(state, now, s, "switch_to_standby", "standby", reason, down)

    # The standby is active.
    recovered = sorted(v.vantage for v in fresh.values() if v.primary_recovered(s))
    standby_down = sorted(v.vantage for v in fresh.values() if v.standby_down(s))
    if len(recovered) >= s.quorum:
        if s.failback == "manual":
            return _alert(
                state, "failback-due",
                f"primary healthy again at {', '.join(recovered)}; failback is manual: "
                "run `standby switch --to primary` when ready", recovered,
            )
        if mine is None or not mine.primary_recovered(s) or not sees_healthy(mine, "primary"):
            return state, Decision("none", "waiting for this vantage to see the primary recover")
        left = _cooling(state, now, s)
        if left > 0:
            return state, Decision("none", f"failback waits for cooldown ({left:.0f} s)")
        reason = (f"primary succeeded {s.recovery_threshold}+ consecutive probes at "
                  f"{', '.join(recovered)} (quorum {s.quorum}); failback is auto")
        return _switch(state, now, s, "switch_back", "primary", reason, recovered)
    if len(standby_down) >= s.quorum:
        return _alert(state, "both-down",
                      "the standby (now active) is failing and the primary has not recovered",
                      standby_down)
    return state, Decision("none", "standby active")


def _switch(
    state: ScopeState, now: float, s: Settings, action: Action, to: Side, reason: str,
    agreeing: Sequence[str],
) -> tuple[ScopeState, Decision]:
    if s.practice:
        return (
            replace(state, last_practice_at=now, last_alert=None),
            Decision(action, f"practice: would switch to {to}: {reason}", to, True,
                     tuple(agreeing)),
        )
    # The new state is what the caller commits if, under the lease, the scope is unchanged.
    return (
        replace(state, active=to, last_switch_at=now, last_alert=None),
        Decision(action, reason, to, False, tuple(agreeing)),
    )
