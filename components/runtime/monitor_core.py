"""One monitor, cloud-neutral: probe → assess → vote → decide → (lease) switch → alert.

The cloud adapters supply the probes, the switchers and the state store; the handler
(``components.runtime.aws.monitor``) builds them from the environment and calls ``run``.
The ops CLI uses ``Monitor.switch`` directly, so planned switchovers go through the same
lease, intent, fencing and switch log as automatic ones.

A ``Monitor`` may live for one invocation only, and invocations of one vantage may overlap:
nothing the protocol depends on is kept in memory. Streaks are seeded from the vantage's
stored vote each round; a switch is written as an intent before any target moves, and a
round that finds an unfinished intent resumes it before deciding anything new.
"""

from __future__ import annotations

import getpass
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from components.runtime.config import MonitorConfig
from components.runtime.engine import (
    Decision,
    Intent,
    ScopeState,
    Side,
    Vote,
    decide,
    observe,
    other,
    sees_healthy,
)
from components.runtime.errors import (
    LeaseLost,
    RuntimeFailure,
    StaleToken,
    StoreError,
    SwitchError,
)
from components.runtime.lease import Lease, StateStore, SwitchRecord
from components.runtime.notify import Alert, Notifier
from components.runtime.observe import Log
from components.runtime.probes import Probe, ProbeResult, run_probes
from components.runtime.verdict import assess_scope

#: A lease outlives the slowest switch we allow; a holder never starts a target switch with
#: less than MIN_LEASE_LEFT_S left (more than ``lease.MAX_CLIENT_SKEW_S``).
LEASE_TTL_S = 60.0
MIN_LEASE_LEFT_S = 15.0


class Switcher(Protocol):
    def current(self, target: Mapping[str, Any]) -> Side | None: ...
    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None: ...
    def verify(self, target: Mapping[str, Any], to: Side) -> bool: ...


class Heartbeat(Protocol):
    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None: ...


@dataclass
class Outcome:
    scope: str
    decision: Decision
    switched: bool = False
    verified: bool = False
    detail: str = ""
    latency_s: float | None = None
    """Probe verdict to verified switch, for switches."""


def target_key(t: Mapping[str, Any]) -> str:
    """A short, stable name of a switch target for the intent record."""
    for k in ("table", "rest_api_id", "api_id", "instance_id", "name", "database", "key"):
        if k in t:
            return f"{t['kind']}:{t.get('region', '')}:{t[k]}"
    return str(t["kind"])


def new_invocation() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Monitor:
    config: MonitorConfig
    store: StateStore
    switchers: Mapping[str, Switcher]
    probes: Mapping[str, Probe]
    notifier: Notifier
    log: Log
    clock: Callable[[], float] = time.time
    votes: dict[str, Vote] = field(default_factory=dict)
    """This invocation's latest own observation per scope (diagnostics; not its memory)."""
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe"))
    invocation: str = field(default_factory=new_invocation)
    """Unique per invocation (the Lambda request id when there is one)."""
    _alerted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Switchers whose heartbeat can find something only a human can fix (a SQL pair
        # with no writable side) alert through this monitor's channels.
        for sw in self.switchers.values():
            bind = getattr(sw, "bind_alerts", None)
            if callable(bind):
                bind(self._switcher_alert)

    def _switcher_alert(self, title: str, text: str) -> None:
        self._alert("critical", f"{self.config.layer}: {title}", text, self.config.layer,
                    once=f"switcher:{title}")

    @property
    def me(self) -> str:
        return self.config.region

    @property
    def holder(self) -> str:
        """The lease holder: this invocation, not the region (two overlapping invocations of
        one region must never both hold the lease)."""
        return f"{self.me}#{self.invocation}"

    # -- one round ------------------------------------------------------------------------

    def probe(self) -> list[ProbeResult]:
        return run_probes(self.config.probes, self.probes, self.config.settings.timeout_s,
                          self._pool)

    def _vote(self, scope: str, now: float, primary_ok: bool | None,
              standby_ok: bool | None) -> tuple[Vote, list[Vote]]:
        """This round's own vote, seeded from the stored one; and every stored vote.

        The stored vote of this vantage is the streak so far when it is fresh (a new
        invocation continues it). The write is conditional: if an overlapping invocation of
        this vantage stored a step less than ``vote_gap_s`` ago, this round is the same step
        and is not stored (it does not advance the streak a second time)."""
        s, layer = self.config.settings, self.config.layer
        for _ in range(3):  # bounded: each retry follows another invocation's write
            stored = self.store.votes(layer, scope)
            prev = next((v for v in stored if v.vantage == self.me
                         and now - v.at <= s.freshness_s), None)
            vote = observe(prev, self.me, now, primary_ok, standby_ok, s.vote_gap_s)
            if prev is not None and vote.at == prev.at:
                return vote, stored
            if self.store.put_vote(layer, scope, vote, s.vote_gap_s):
                return vote, [v for v in stored if v.vantage != self.me] + [vote]
        return vote, stored

    def round(self) -> list[Outcome]:
        cfg = self.config
        results = self.probe()
        verdict_at = time.perf_counter()
        now = self.clock()
        outcomes: list[Outcome] = []
        on_standby: list[bool] = []
        for scope in cfg.scopes:
            targets = [t for t in cfg.switch if str(t["scope"]) == scope]
            verdict = assess_scope(cfg.layer, scope, targets, results)
            primary_ok, standby_ok = verdict.pair
            for r in verdict.reported:
                # A dependency (a bucket for the data layer) never moves this layer, but a
                # human must know: it may need its own failover or a fix.
                self._alert("warning", f"{cfg.layer}/{scope}: {r.kind} failing on {r.side}",
                            f"{r.detail} (reported, not switched: the {r.kind} probe is a "
                            "dependency of this layer)", scope, once=f"dep:{scope}:{r.kind}:"
                            f"{r.side}")
            evidence: dict[str, Any] = {
                "probes": [r.brief() for r in results
                           if r.scope == scope or cfg.layer in ("data", "dns")],
                "verdict": list(verdict.notes)}
            try:
                outcome, after = self._scope_round(scope, targets, now, primary_ok,
                                                   standby_ok, evidence, verdict_at)
            except StoreError as exc:
                # No vote, no decision: the other vantages and the next round carry on.
                self._alert("critical", f"{cfg.layer}/{scope}: state store failing",
                            f"{exc}; this monitor can neither vote nor switch", scope,
                            once=f"store:{scope}")
                self.log.error("state store failed", scope=scope, error=str(exc))
                outcome, after = Outcome(scope, Decision("none", "state store failing"),
                                         detail=str(exc)), None
            if after is not None:
                if after.intent is None:  # a switch in flight owns its targets
                    self._heartbeat(targets, after)
                on_standby.append(after.active == "standby")
            outcomes.append(outcome)
        self._metrics(results, outcomes, any(on_standby))
        for o in outcomes:
            self.log.info("decision", scope=o.scope, action=o.decision.action,
                          reason=o.decision.reason, switched=o.switched, detail=o.detail)
        return outcomes

    def _scope_round(self, scope: str, targets: list[dict[str, Any]], now: float,
                     primary_ok: bool | None, standby_ok: bool | None,
                     evidence: dict[str, Any], verdict_at: float,
                     ) -> tuple[Outcome, ScopeState]:
        cfg = self.config
        vote, votes = self._vote(scope, now, primary_ok, standby_ok)
        self.votes[scope] = vote
        evidence["vote"] = vote.__dict__
        state = self.store.read_scope(cfg.layer, scope)
        if state.intent is not None:
            outcome = self._resume(scope, state, vote, evidence)
            return outcome, self.store.read_scope(cfg.layer, scope)
        new_state, decision = decide(state, votes, now, cfg.settings, self.me, mine=vote)
        outcome = Outcome(scope, decision)
        if decision.is_switch and not decision.practice:
            assert decision.to is not None
            outcome = self.switch(scope, decision.to, decision.reason, evidence,
                                  expected=state.active, decision=decision,
                                  new_state=new_state, mine=vote)
            if outcome.switched:
                outcome.latency_s = time.perf_counter() - verdict_at
            # Ours or a racing monitor's switch may have moved the scope.
            return outcome, self.store.read_scope(cfg.layer, scope)
        if new_state != state:
            self.store.save_scope_meta(cfg.layer, scope, new_state)
        if decision.practice:
            assert decision.to is not None
            self.store.record(SwitchRecord(
                cfg.layer, scope, now, self.holder, state.active, decision.to,
                state.token, decision.reason, practice=True, evidence=evidence))
            self._alert("warning", f"[practice] {cfg.layer}/{scope}: would switch "
                        f"to {decision.to}", decision.reason, scope)
        elif decision.action == "alert":
            self._alert("warning", f"{cfg.layer}/{scope}: attention", decision.reason, scope)
        return outcome, state

    def run(self, budget_s: float, sleep: Callable[[float], None] = time.sleep,
            rounds: int | None = None) -> list[Outcome]:
        """Rounds every ``interval_s`` until ``budget_s`` is spent (at least one round), or
        ``rounds`` rounds if the budget allows. Rounds are always an interval apart:
        back-to-back rounds would be one step of the streak anyway (``vote_gap_s``)."""
        start = time.monotonic()
        outcomes: list[Outcome] = []
        interval = self.config.settings.interval_s
        done = 0
        while True:
            t0 = time.monotonic()
            outcomes.extend(self.round())
            done += 1
            if rounds is not None and done >= rounds:
                return outcomes
            if time.monotonic() - start + interval > budget_s:
                return outcomes
            sleep(max(0.0, interval - (time.monotonic() - t0)))

    # -- switching under the lease --------------------------------------------------------

    def _resume(self, scope: str, state: ScopeState, mine: Vote,
                evidence: dict[str, Any]) -> Outcome:
        """Finish an unfinished switch, or roll it back.

        Forward only when this invocation itself sees the intended side healthy now;
        otherwise back to the side that is still committed (that is no switch at all: the
        targets that had moved are moved back under a newer token)."""
        intent = state.intent
        assert intent is not None
        forward = sees_healthy(mine, intent.to)
        side = intent.to if forward else intent.frm
        why = (f"resuming the unfinished switch to {intent.to} (token {intent.token}, by "
               f"{intent.holder}, {intent.step} of {len(intent.targets)} targets applied)"
               if forward else
               f"rolling back the unfinished switch to {intent.to} (token {intent.token}, by "
               f"{intent.holder}): {intent.to} is not healthy from here")
        reason = f"{why}: {intent.reason}"
        decision = Decision("switch_to_standby" if side == "standby" else "switch_back",
                            reason, side) if forward else Decision("none", reason)
        evidence = {**evidence, "resumed": {"token": intent.token, "holder": intent.holder,
                                            "step": intent.step, "to": intent.to}}
        return self.switch(scope, side, reason, evidence, expected=intent.frm,
                           decision=decision, resume=intent)

    def switch(
        self,
        scope: str,
        to: Side,
        reason: str,
        evidence: dict[str, Any],
        *,
        expected: Side | None = None,
        by: str | None = None,
        decision: Decision | None = None,
        new_state: ScopeState | None = None,
        resume: Intent | None = None,
        mine: Vote | None = None,
    ) -> Outcome:
        """Switch one scope to ``to`` under the lease: intent, targets, commit.

        With ``resume``, the unfinished intent is taken over (``to`` may be its ``frm``: a
        roll-back). Otherwise a pending intent of another holder stops this switch. With
        ``mine`` (an automatic decision), the decision is taken again under the lease, on
        the votes and the clock of that moment: a round that was slow (probes, store) must
        not act on votes that have gone stale or changed since it read them."""
        cfg = self.config
        holder = by or self.holder
        decision = decision or Decision(
            "switch_to_standby" if to == "standby" else "switch_back", reason, to)
        targets = [t for t in cfg.switch if str(t["scope"]) == scope]
        if not targets:
            raise SwitchError(f"{cfg.layer}: no scope {scope!r}; known: {', '.join(cfg.scopes)}")
        now = self.clock()
        lease = self.store.acquire(cfg.layer, holder, now, LEASE_TTL_S)
        if lease is None:
            return Outcome(scope, decision, detail="lease held by another holder; not switching")
        applied = False
        try:
            current = self.store.read_scope(cfg.layer, scope)
            if expected is None:
                expected = other(to)
            if resume is not None and (current.intent is None
                                       or current.intent.token != resume.token):
                return Outcome(scope, decision, detail=(
                    f"the unfinished switch of token {resume.token} was finished or rolled "
                    "back by another holder"))
            if current.intent is not None and resume is None:
                pend = current.intent
                return Outcome(scope, decision, detail=(
                    f"a switch to {pend.to} (token {pend.token}, by {pend.holder}) is "
                    "unfinished; "
                    "the monitors finish or roll it back first"))
            if current.active != expected:
                return Outcome(scope, decision,
                               detail=f"already {current.active}: switched by someone else")
            if mine is not None and resume is None:
                _, again = decide(current, self.store.votes(cfg.layer, scope), self.clock(),
                                  cfg.settings, self.me, mine=mine)
                if not (again.is_switch and again.to == to):
                    return Outcome(scope, decision, detail=(
                        f"decision no longer holds under the lease: {again.reason}"))
            intent = Intent(lease.token, to, expected, holder,
                            tuple(target_key(t) for t in targets), 0, now, reason)
            self.store.begin(lease, scope, expected, intent, now)
            for i, t in enumerate(targets):
                self._check_lease(lease)
                applied = True
                self.switchers[t["kind"]].apply(t, to, lease.token, reason)
                self.store.progress(lease, scope, i + 1)
            verified = all(self.switchers[t["kind"]].verify(t, to) for t in targets)
            if to == expected:  # a roll-back: the committed side stays, under a newer token
                state = replace(current, token=lease.token, intent=None)
            else:
                state = replace(new_state or current, active=to, last_switch_at=now,
                                intent=None)
            record = SwitchRecord(cfg.layer, scope, now, holder, expected, to, lease.token,
                                  reason, evidence=evidence, verified=verified)
            self.store.commit(lease, scope, expected, state, record, self.clock())
        except (LeaseLost, StaleToken) as exc:
            # A newer holder owns the scope now; it finishes or rolls back our intent.
            self.log.warning("switch fenced off", scope=scope, error=str(exc))
            return Outcome(scope, decision, detail=f"fenced: {exc}")
        except StoreError as exc:
            what = "applied, NOT committed" if applied else "not started"
            self._alert("critical", f"{cfg.layer}/{scope}: switch to {to} {what}",
                        f"{exc}. The intent stays in the state table; the next round "
                        "finishes or rolls it back.", scope, token=lease.token, by=holder)
            self.log.error("switch store failure", scope=scope, error=str(exc), state=what)
            return Outcome(scope, decision, detail=f"{what}: {exc}")
        except RuntimeFailure as exc:
            self._alert("critical", f"{cfg.layer}/{scope}: switch to {to} FAILED",
                        f"{exc}. The intent stays in the state table; the next round "
                        "finishes or rolls it back.", scope, token=lease.token, by=holder)
            self.log.error("switch failed", scope=scope, error=str(exc))
            return Outcome(scope, decision, detail=f"failed: {exc}")
        finally:
            try:
                self.store.release(lease)
            except StoreError as exc:  # the lease expires on its own
                self.log.warning("lease release failed", error=str(exc))
        if to == expected:
            self._alert("warning", f"{cfg.layer}/{scope}: unfinished switch rolled back",
                        reason, scope, token=lease.token, by=holder, verified=verified)
            return Outcome(scope, decision, verified=verified,
                           detail=f"rolled back, token {lease.token}")
        self._alert("critical" if to == "standby" else "info",
                    f"{cfg.layer}/{scope}: switched to {to}", reason, scope,
                    token=lease.token, by=holder, verified=verified)
        return Outcome(scope, decision, switched=True, verified=verified,
                       detail=f"token {lease.token}")

    def _check_lease(self, lease: Lease) -> None:
        left = lease.until - self.clock()
        if left < MIN_LEASE_LEFT_S:
            raise LeaseLost(f"only {left:.0f} s of lease left; not starting a target switch")

    def _heartbeat(self, targets: Sequence[Mapping[str, Any]], state: ScopeState) -> None:
        """Targets that need a steady signal (DNS metrics) or a catch-up (a pointer in a
        region that was unreachable during the switch) get it every round."""
        for t in targets:
            sw = self.switchers.get(t["kind"])
            beat = getattr(sw, "heartbeat", None)
            if beat is not None:
                try:
                    beat(t, state.active, state.token)
                except Exception as exc:  # the next round retries
                    self.log.warning("heartbeat failed", kind=t["kind"], error=str(exc))

    def _alert(self, severity: str, title: str, text: str, scope: str, once: str | None = None,
               **fields: Any) -> None:
        """Queue an alert; with ``once``, at most one per key in this invocation."""
        if once is not None:
            if once in self._alerted:
                return
            self._alerted.add(once)
        cfg = self.config
        self.notifier.send(Alert(f"[{cfg.topology}] {title}", text, severity, {
            "layer": cfg.layer, "scope": scope, "monitor": self.me, **fields}))

    def _metrics(self, results: Sequence[ProbeResult], outcomes: Sequence[Outcome],
                 any_on_standby: bool) -> None:
        cfg = self.config
        latency = max((r.latency_ms for r in results), default=0.0)
        active = 1.0 if any_on_standby else 0.0
        self.log.metrics(cfg.metric_namespace, {"Topology": cfg.topology, "Layer": cfg.layer},
                         {"ProbeLatency": (latency, "Milliseconds"),
                          "ActiveSide": (active, "None"),
                          "Switches": (float(sum(o.switched for o in outcomes)), "Count")})

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def ops_holder() -> str:
    """The CLI's lease holder: unique per run (``ops:root`` is every bastion's user)."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"ops:{user}@{socket.gethostname()}#{new_invocation()}"


#: Seconds an invocation keeps free at its end for alert delivery and the last log line.
RESERVE_S = 8.0


def run_invocation(monitor: Monitor, rounds: int | None, limit_s: float, started: float,
                   log: Log) -> dict[str, Any]:
    """One function invocation of a monitor, for every cloud's handler: ``rounds`` rounds
    (a manual run) or rounds every ``interval_s`` for ``loop_s``, within ``limit_s`` of
    ``started`` (``time.monotonic()``); then deliver alerts and summarise."""
    cfg = monitor.config
    try:
        remaining = limit_s - (time.monotonic() - started)
        budget = remaining - RESERVE_S if rounds is not None else min(cfg.loop_s,
                                                                      remaining - RESERVE_S)
        outcomes = monitor.run(max(0.0, budget), rounds=rounds)
        deliveries = monitor.notifier.drain(
            max(0.5, min(5.0, limit_s - (time.monotonic() - started) - 1.0)))
    finally:
        monitor.close()
        monitor.notifier.close()
    summary = {
        "layer": cfg.layer, "region": cfg.region,
        "rounds": len(outcomes) // max(1, len(cfg.scopes)),
        "switches": [{"scope": o.scope, "to": o.decision.to, "verified": o.verified,
                      "detail": o.detail} for o in outcomes if o.switched],
        "alerts_delivered": sum(d.ok for d in deliveries),
        "alerts_failed": sum(not d.ok for d in deliveries),
    }
    log.info("monitor done", **summary)
    return summary


def default_limit_s(cfg: MonitorConfig, rounds: int | None) -> float:
    """The invocation's time limit when the platform gives none (local runs, tests)."""
    return (max(cfg.loop_s, (rounds or 1) * cfg.settings.interval_s) + RESERVE_S
            + cfg.settings.interval_s)
