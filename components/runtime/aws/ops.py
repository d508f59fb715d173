"""Operations shared by the ``standby status`` / ``standby switch`` CLI: the same store,
switchers and lease as the monitors. The CLI (deploy-time room) resolves names from the
stack; this module only talks to the cloud."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from components.runtime.aws.clients import Clients
from components.runtime.aws.monitor import build
from components.runtime.aws.state import DynamoStateStore
from components.runtime.config import MonitorConfig, load
from components.runtime.engine import Side, other
from components.runtime.errors import ClockSkew, SwitchError
from components.runtime.lease import MAX_CLIENT_SKEW_S
from components.runtime.monitor_core import Outcome, ops_holder
from components.runtime.observe import Log
from components.runtime.status import LayerStatus, layer_status
from components.runtime.verdict import assess


def status(clients: Clients, state_table: str, state_region: str,
           limit: int = 5) -> list[LayerStatus]:
    return layer_status(DynamoStateStore(clients, state_table, state_region), limit)


def monitor_env(clients: Clients, function: str, region: str) -> dict[str, str]:
    """The deployed monitor's environment: the switch wiring ops reuses."""
    cfg = clients.get("lambda", region).get_function_configuration(FunctionName=function)
    return dict(cfg.get("Environment", {}).get("Variables", {}))


def check_clock(store: DynamoStateStore, clock: Callable[[], float] = time.time,
                max_skew_s: float = MAX_CLIENT_SKEW_S) -> float:
    """Refuse to switch from a machine whose clock is off: the lease expiry and the cooldown
    this CLI writes are compared with the monitors' clocks. The store's ``Date`` header has
    1 s resolution, so the measured skew is exact to about 1 s plus the round trip."""
    before = clock()
    server = store.server_time()
    after = clock()
    skew = (before + after) / 2 - server
    if abs(skew) > max_skew_s + 1.0 + (after - before):
        raise ClockSkew(
            f"this machine's clock is {skew:+.0f} s off the state table's (DynamoDB's Date "
            f"header); allowed: within {max_skew_s:.0f} s. Fix the clock (NTP) and retry; "
            "nothing was switched")
    return skew


def switch(clients: Clients, env: dict[str, str], to: Side, reason: str,
           scopes: list[str] | None = None, force: bool = False,
           log: Log | None = None) -> list[Outcome]:
    """A planned switch of one layer (every scope, or the ones named), under the lease.

    Refuses to switch to a side the probes see unhealthy unless ``force``, and refuses to
    run from a machine whose clock is more than ``MAX_CLIENT_SKEW_S`` off the store's.
    """
    cfg: MonitorConfig = load(env)
    if not reason.strip():
        raise SwitchError("--reason: required; say why (it goes into the switch log)")
    unknown = sorted(set(scopes or []) - set(cfg.scopes))
    if unknown:
        raise SwitchError(f"--scope: unknown {', '.join(unknown)}; this layer has "
                          f"{', '.join(cfg.scopes)}")
    check_clock(DynamoStateStore(clients, cfg.state.ref, cfg.state.region))
    monitor = build(cfg, log or Log(stream=sys.stderr, component="ops"), clients)
    try:
        results = monitor.probe()
        outcomes = []
        for scope in scopes or cfg.scopes:
            targets = [t for t in cfg.switch if str(t["scope"]) == scope]
            primary_ok, standby_ok = assess(cfg.layer, scope, targets, results)
            healthy = primary_ok if to == "primary" else standby_ok
            if healthy is False and not force:
                raise SwitchError(f"{cfg.layer}/{scope}: the {to} side fails its probes; "
                                  "not switching to it (use --force to override)")
            evidence = {"probes": [r.brief() for r in results], "ops": True}
            outcomes.append(monitor.switch(scope, to, reason, evidence, expected=other(to),
                                           by=ops_holder()))
        monitor.notifier.drain(5.0)
        return outcomes
    finally:
        monitor.close()
        monitor.notifier.close()
