"""Verdicts: the health of a scope's primary and standby side from one round's probe
results. Pure; the monitor core calls ``assess`` (or ``assess_scope``) once per scope per
round.

A verdict reads each probe's **role** from the registry, never its kind name:

* ``backend`` probes decide (the thing the layer switches);
* ``entry`` probes decide in the DNS layer, which switches the entry path itself;
* everything else that fails (a ``dependency`` such as the bucket next to the database, an
  entry path outside the DNS layer, a kind nobody registered) is *reported*, so the monitor
  can alert, and never fails the side: a switch cannot fix it, and a one-way database
  promotion for an object-store hiccup would cost more than the hiccup.

Two checks apply to what a backend probe measured, not only to whether it answered:

* the **active** side must accept writes: ``data["writable"] is False`` (a fenced server, or
  one a crash left read-only between fence and promote) is unhealthy although it answers;
* when the scope has a lag-guarded switch target (``max_lag_s``), the **other** side is fit
  to take over only when its probes of that component say it is replicating
  (``data["replicating"]``, or ``data["replica"]`` from probes that report no more) with a
  known lag (``data["lag_s"]`` not None) within ``max_lag_s``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.runtime.engine import Side, other
from components.runtime.probes import ProbeResult
from components.runtime.registry import REGISTRY, Registry, Role, UnknownKind


@dataclass(frozen=True)
class Verdict:
    primary_ok: bool | None
    standby_ok: bool | None
    """None: nothing that decides was probed for that side this round (no evidence)."""
    reported: tuple[ProbeResult, ...] = ()
    """Failed probes that do not decide a switch; the monitor alerts on them."""
    notes: tuple[str, ...] = ()
    """Why a side whose probes answered is still judged unfit (not writable, lag)."""

    @property
    def pair(self) -> tuple[bool | None, bool | None]:
        return self.primary_ok, self.standby_ok


def assess(
    layer: str,
    scope: str,
    targets: Sequence[Mapping[str, Any]],
    results: Sequence[ProbeResult],
) -> tuple[bool | None, bool | None]:
    """Primary and standby health of one scope from this round's probe results (the active
    side inferred as in ``assess_scope``)."""
    return assess_scope(layer, scope, targets, results).pair


def assess_scope(
    layer: str,
    scope: str,
    targets: Sequence[Mapping[str, Any]],
    results: Sequence[ProbeResult],
    active: Side | None = None,
    registry: Registry = REGISTRY,
) -> Verdict:
    """The verdict for one scope. ``active`` is the side the scope's committed state names:
    it must be writable, and the other side must pass the lag guard. Without it, the side
    whose probes alone say ``writable: True`` is taken as active (after a failover the
    standby is the writer and the primary a replica), else the primary."""

    def role(r: ProbeResult) -> Role | None:
        try:
            return registry.probe(r.kind).role
        except UnknownKind:
            return None

    deciding_roles: tuple[Role, ...] = ("backend", "entry") if layer == "dns" else ("backend",)
    if layer == "dns":
        return _dns(scope, targets, results, [role(r) in deciding_roles for r in results])
    mine = [r for r in results if r.scope == scope]
    deciding = [r for r in mine if role(r) in deciding_roles]
    reported = tuple(r for r in mine if not r.ok and role(r) not in deciding_roles)
    by_side: dict[Side, list[ProbeResult]] = {
        "primary": [r for r in deciding if r.side == "primary"],
        "standby": [r for r in deciding if r.side == "standby"],
    }
    health: dict[Side, bool | None] = {s: _all_ok(rs) for s, rs in by_side.items()}
    notes: list[str] = []
    act: Side = active or _writer(by_side) or "primary"
    if health[act]:
        fenced = [r for r in by_side[act] if r.data.get("writable") is False]
        if fenced:
            health[act] = False
            notes.append(f"{act} (active) answers but does not accept writes: "
                         f"{', '.join(r.kind for r in fenced)}")
    cand = other(act)
    for t in targets:
        try:
            kind = registry.switch(t.get("kind"))
        except UnknownKind:
            continue
        if not kind.lag_guard or not health[cand]:
            continue
        why = _lag_unfit(by_side[cand], kind.component, float(t["max_lag_s"]), registry)
        if why:
            health[cand] = False
            notes.append(f"{cand} is not fit to take over ({t['kind']}): {why}")
    return Verdict(health["primary"], health["standby"], reported, tuple(notes))


def _writer(by_side: Mapping[Side, Sequence[ProbeResult]]) -> Side | None:
    writers = [s for s, rs in by_side.items()
               if any(r.data.get("writable") is True for r in rs)
               and not any(r.data.get("writable") is False for r in rs)]
    return writers[0] if len(writers) == 1 else None


def _all_ok(rs: Sequence[ProbeResult]) -> bool | None:
    return all(r.ok for r in rs) if rs else None


def _lag_unfit(results: Sequence[ProbeResult], component: str | None, max_lag_s: float,
               registry: Registry) -> str | None:
    """Why the side's replication does not meet the guard, or None when it does."""
    measured = [r for r in results if registry.probe(r.kind).component == component]
    if not measured:
        return f"no {component} probe reports its replication"
    for r in measured:
        replicating = r.data.get("replicating", r.data.get("replica"))
        if replicating is not True:
            # The primary died (or its link did): a replica that has applied everything it
            # received is as current as it can get. What the primary committed after the
            # last receipt is the unplanned loss, reported by the switch, not a reason to
            # stay down for ever (MariaDB shows Seconds_Behind_Master NULL here).
            if r.data.get("replica") is True and r.data.get("applied_all_received") is True:
                continue
            return (f"{r.kind} probe does not report replication running ({replicating!r}) "
                    "and has not applied everything it received")
        lag = r.data.get("lag_s")
        if isinstance(lag, bool) or not isinstance(lag, (int, float)):
            return f"{r.kind} probe reports no lag (unknown lag is not promotable)"
        if lag > max_lag_s:
            return f"lag {lag:g} s exceeds max_lag_s {max_lag_s:g} s"
    return None


def _dns(scope: str, targets: Sequence[Mapping[str, Any]], results: Sequence[ProbeResult],
         decides: Sequence[bool]) -> Verdict:
    """The DNS layer switches the entry path: in ``direct`` mode the scope is a group whose
    targets name its two regions; otherwise the scope is one region, healthy when its own
    entry answers, with a standby when any other region's does."""
    deciding = [r for r, d in zip(results, decides, strict=True) if d]
    regions = next((t.get("regions") for t in targets if t.get("regions")), None)
    if isinstance(regions, Mapping):
        scopes = {str(regions.get("primary")), str(regions.get("standby"))}
        reported = tuple(r for r, d in zip(results, decides, strict=True)
                         if not d and not r.ok and r.scope in scopes)
        return Verdict(_all_ok([r for r in deciding if r.scope == regions["primary"]]),
                       _all_ok([r for r in deciding if r.scope == regions["standby"]]),
                       reported)
    own = [r for r in deciding if r.scope == scope]
    others = [r for r in deciding if r.scope != scope]
    reported = tuple(r for r, d in zip(results, decides, strict=True)
                     if not d and not r.ok and r.scope == scope)
    return Verdict(_all_ok(own), any(r.ok for r in others) if others else None, reported)
