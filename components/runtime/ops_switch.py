"""The planned switch behind ``standby switch``, for any cloud: the adapter's ``ops`` module
opens the store and builds the monitor from the deployed monitor's environment; this module
checks the operator's clock against the store's, probes, refuses a target side that fails
its probes (unless forced) and switches each scope under the monitors' own lease and intent
protocol, holder ``ops:<user>@<host>#<run>``.

It was AWS-only (``runtime.aws.ops``) until the Tencent adapter needed the same procedure;
one copy keeps the two clouds' refusals identical."""

from __future__ import annotations

import time
from collections.abc import Callable

from components.runtime.config import MonitorConfig
from components.runtime.engine import Side, other
from components.runtime.errors import ClockSkew, SwitchError
from components.runtime.lease import MAX_CLIENT_SKEW_S
from components.runtime.monitor_core import Monitor, Outcome, ops_holder
from components.runtime.verdict import assess


def check_clock(server_time: Callable[[], float], store: str,
                clock: Callable[[], float] = time.time,
                max_skew_s: float = MAX_CLIENT_SKEW_S, resolution_s: float = 0.0) -> float:
    """Refuse to switch from a machine whose clock is off: the lease expiry and the cooldown
    the CLI writes are compared with the monitors' clocks. ``server_time`` is the store's
    clock (``store`` names it for the error) with ``resolution_s`` granularity; the
    measurement is exact to that plus the round trip."""
    before = clock()
    server = server_time()
    after = clock()
    skew = (before + after) / 2 - server
    if abs(skew) > max_skew_s + resolution_s + (after - before):
        raise ClockSkew(
            f"this machine's clock is {skew:+.0f} s off {store}; allowed: within "
            f"{max_skew_s:.0f} s. Fix the clock (NTP) and retry; nothing was switched")
    return skew


def check_request(cfg: MonitorConfig, reason: str, scopes: list[str] | None) -> None:
    if not reason.strip():
        raise SwitchError("--reason: required; say why (it goes into the switch log)")
    unknown = sorted(set(scopes or []) - set(cfg.scopes))
    if unknown:
        raise SwitchError(f"--scope: unknown {', '.join(unknown)}; this layer has "
                          f"{', '.join(cfg.scopes)}")


def planned_switch(cfg: MonitorConfig, monitor: Monitor, to: Side, reason: str,
                   scopes: list[str] | None = None, force: bool = False) -> list[Outcome]:
    """Probe once, then switch every scope (or the ones named) to ``to``. A scope whose
    target side fails its probes stops the run before it is switched, unless ``force``."""
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
