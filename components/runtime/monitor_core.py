"""One monitor, cloud-neutral: probe → assess → vote → decide → (lease) switch → alert.

The cloud adapters supply the probes, the switchers and the state store; the handler
(``components.runtime.aws.monitor``) builds them from the environment and calls ``run``.
The ops CLI uses ``Monitor.switch`` directly, so planned switchovers go through the same
lease, fencing and switch log as automatic ones.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from components.runtime.config import MonitorConfig
from components.runtime.engine import (
    Decision,
    ScopeState,
    Side,
    Vote,
    decide,
    observe,
    other,
)
from components.runtime.errors import LeaseLost, RuntimeFailure, StaleToken, SwitchError
from components.runtime.lease import Lease, StateStore, SwitchRecord
from components.runtime.notify import Alert, Notifier
from components.runtime.observe import Log
from components.runtime.probes import Probe, ProbeResult, run_probes
from components.runtime.verdict import assess

#: A lease outlives the slowest switch we allow; a holder never starts a target switch with
#: less than MIN_LEASE_LEFT_S left.
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
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe"))

    @property
    def me(self) -> str:
        return self.config.region

    # -- one round ------------------------------------------------------------------------

    def probe(self) -> list[ProbeResult]:
        return run_probes(self.config.probes, self.probes, self.config.settings.timeout_s,
                          self._pool)

    def round(self) -> list[Outcome]:
        cfg = self.config
        results = self.probe()
        verdict_at = time.perf_counter()
        now = self.clock()
        outcomes: list[Outcome] = []
        on_standby: list[bool] = []
        for scope in cfg.scopes:
            targets = [t for t in cfg.switch if str(t["scope"]) == scope]
            primary_ok, standby_ok = assess(cfg.layer, scope, targets, results)
            vote = observe(self.votes.get(scope), self.me, now, primary_ok, standby_ok)
            self.votes[scope] = vote
            self.store.put_vote(cfg.layer, scope, vote)
            state = self.store.read_scope(cfg.layer, scope)
            new_state, decision = decide(state, self.store.votes(cfg.layer, scope), now,
                                         cfg.settings, self.me)
            evidence = {"probes": [r.brief() for r in results
                                   if r.scope == scope or cfg.layer in ("data", "dns")],
                        "vote": vote.__dict__}
            outcome = Outcome(scope, decision)
            if decision.is_switch and not decision.practice:
                assert decision.to is not None
                outcome = self.switch(scope, decision.to, decision.reason, evidence,
                                      expected=state.active, decision=decision,
                                      new_state=new_state)
                if outcome.switched:
                    outcome.latency_s = time.perf_counter() - verdict_at
            else:
                if new_state != state:
                    self.store.save_scope_meta(cfg.layer, scope, new_state)
                if decision.practice:
                    assert decision.to is not None
                    self.store.record(SwitchRecord(
                        cfg.layer, scope, now, self.me, state.active, decision.to,
                        state.token, decision.reason, practice=True, evidence=evidence))
                    self._alert("warning", f"[practice] {cfg.layer}/{scope}: would switch "
                                f"to {decision.to}", decision.reason, scope)
                elif decision.action == "alert":
                    self._alert("warning", f"{cfg.layer}/{scope}: attention", decision.reason,
                                scope)
            # A switch attempt (ours or a racing monitor's) may have moved the scope: re-read
            # only then; otherwise the state read this round holds.
            after = self.store.read_scope(cfg.layer, scope) if decision.is_switch else state
            self._heartbeat(targets, after)
            on_standby.append(after.active == "standby")
            outcomes.append(outcome)
        self._metrics(results, outcomes, any(on_standby))
        for o in outcomes:
            self.log.info("decision", scope=o.scope, action=o.decision.action,
                          reason=o.decision.reason, switched=o.switched, detail=o.detail)
        return outcomes

    def run(self, budget_s: float, sleep: Callable[[float], None] = time.sleep) -> list[Outcome]:
        """Rounds every ``interval_s`` until ``budget_s`` is spent (at least one round)."""
        start = time.monotonic()
        outcomes: list[Outcome] = []
        interval = self.config.settings.interval_s
        while True:
            t0 = time.monotonic()
            outcomes.extend(self.round())
            if time.monotonic() - start + interval > budget_s:
                return outcomes
            sleep(max(0.0, interval - (time.monotonic() - t0)))

    # -- switching under the lease --------------------------------------------------------

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
    ) -> Outcome:
        cfg = self.config
        holder = by or self.me
        decision = decision or Decision(
            "switch_to_standby" if to == "standby" else "switch_back", reason, to)
        targets = [t for t in cfg.switch if str(t["scope"]) == scope]
        if not targets:
            raise SwitchError(f"{cfg.layer}: no scope {scope!r}; known: {', '.join(cfg.scopes)}")
        now = self.clock()
        lease = self.store.acquire(cfg.layer, holder, now, LEASE_TTL_S)
        if lease is None:
            return Outcome(scope, decision, detail="lease held by another monitor; not switching")
        try:
            current = self.store.read_scope(cfg.layer, scope)
            if expected is None:
                expected = other(to)
            if current.active != expected:
                return Outcome(scope, decision,
                               detail=f"already {current.active}: switched by someone else")
            for t in targets:
                self._check_lease(lease)
                self.switchers[t["kind"]].apply(t, to, lease.token, reason)
            verified = all(self.switchers[t["kind"]].verify(t, to) for t in targets)
            state = new_state or replace(current, active=to, last_switch_at=now)
            record = SwitchRecord(cfg.layer, scope, now, holder, expected, to, lease.token,
                                  reason, evidence=evidence, verified=verified)
            self.store.commit(lease, scope, expected, state, record, self.clock())
        except (LeaseLost, StaleToken) as exc:
            self.log.warning("switch fenced off", scope=scope, error=str(exc))
            return Outcome(scope, decision, detail=f"fenced: {exc}")
        except RuntimeFailure as exc:
            self._alert("critical", f"{cfg.layer}/{scope}: switch to {to} FAILED", str(exc),
                        scope)
            self.log.error("switch failed", scope=scope, error=str(exc))
            return Outcome(scope, decision, detail=f"failed: {exc}")
        finally:
            self.store.release(lease)
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

    def _alert(self, severity: str, title: str, text: str, scope: str, **fields: Any) -> None:
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
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"ops:{user}"
