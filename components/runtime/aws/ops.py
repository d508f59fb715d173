"""Operations shared by the ``standby status`` / ``standby switch`` CLI: the same store,
switchers and lease as the monitors. The CLI (deploy-time room) resolves names from the
stack; this module only talks to the cloud."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from components.runtime import ops_switch
from components.runtime.aws.clients import Clients
from components.runtime.aws.monitor import build
from components.runtime.aws.state import DynamoStateStore
from components.runtime.config import MonitorConfig, load
from components.runtime.engine import Side
from components.runtime.lease import MAX_CLIENT_SKEW_S
from components.runtime.monitor_core import Outcome
from components.runtime.observe import Log
from components.runtime.status import LayerStatus, layer_status


def status(clients: Clients, state_table: str, state_region: str,
           limit: int = 5) -> list[LayerStatus]:
    return layer_status(DynamoStateStore(clients, state_table, state_region), limit)


def monitor_env(clients: Clients, function: str, region: str) -> dict[str, str]:
    """The deployed monitor's environment: the switch wiring ops reuses."""
    cfg = clients.get("lambda", region).get_function_configuration(FunctionName=function)
    return dict(cfg.get("Environment", {}).get("Variables", {}))


def check_clock(store: DynamoStateStore, clock: Callable[[], float] = time.time,
                max_skew_s: float = MAX_CLIENT_SKEW_S) -> float:
    """The store's ``Date`` header has 1 s resolution, so the measured skew is exact to about
    1 s plus the round trip."""
    return ops_switch.check_clock(store.server_time, "the state table's (DynamoDB's Date "
                                  "header)", clock, max_skew_s, resolution_s=1.0)


def switch(clients: Clients, env: dict[str, str], to: Side, reason: str,
           scopes: list[str] | None = None, force: bool = False,
           log: Log | None = None) -> list[Outcome]:
    """A planned switch of one layer (every scope, or the ones named), under the lease
    (``components.runtime.ops_switch``)."""
    cfg: MonitorConfig = load(env)
    ops_switch.check_request(cfg, reason, scopes)
    check_clock(DynamoStateStore(clients, cfg.state.ref, cfg.state.region))
    monitor = build(cfg, log or Log(stream=sys.stderr, component="ops"), clients)
    try:
        return ops_switch.planned_switch(cfg, monitor, to, reason, scopes, force)
    finally:
        monitor.close()
        monitor.notifier.close()
