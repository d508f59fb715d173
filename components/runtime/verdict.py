"""Verdicts: the health of a scope's primary and standby side from one round's probe
results. Pure; the monitor core calls ``assess`` once per scope per round."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.runtime.probes import ProbeResult


def assess(
    layer: str,
    scope: str,
    targets: Sequence[Mapping[str, Any]],
    results: Sequence[ProbeResult],
) -> tuple[bool | None, bool | None]:
    """Primary and standby health of one scope from this round's probe results."""

    def all_ok(rs: list[ProbeResult]) -> bool | None:
        return all(r.ok for r in rs) if rs else None

    if layer in ("gateway", "logic"):
        mine = [r for r in results if r.scope == scope and r.kind == "lambda"]
        return (all_ok([r for r in mine if r.side == "primary"]),
                all_ok([r for r in mine if r.side == "standby"]))
    if layer == "data":
        max_lag = next((float(t["max_lag_s"]) for t in targets
                        if t["kind"] in ("rds_promote", "sql_promote")),
                       None)
        prim = [r for r in results if r.side == "primary"]
        stby = [r for r in results if r.side == "standby"]
        standby_ok = all_ok(stby)
        if standby_ok and max_lag is not None:
            lags = [r.data.get("lag_s") for r in stby if r.kind == "sql"]
            if any(lag is None or lag > max_lag for lag in lags):
                standby_ok = False  # too far behind to promote within the RPO budget
        return all_ok(prim), standby_ok
    # dns
    http = [r for r in results if r.kind == "http"]
    regions = next((t.get("regions") for t in targets if t.get("regions")), None)
    if isinstance(regions, Mapping):  # direct mode: scope is a group
        return (all_ok([r for r in http if r.scope == regions["primary"]]),
                all_ok([r for r in http if r.scope == regions["standby"]]))
    own = [r for r in http if r.scope == scope]
    others = [r for r in http if r.scope != scope]
    return all_ok(own), (any(r.ok for r in others) if others else None)
