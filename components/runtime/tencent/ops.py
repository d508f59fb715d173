"""``standby status`` and ``standby switch`` on a Tencent stack, with the operator's signed
credential: the monitors' own SQL state store (found through the DSN secret the monitors
read), their switchers, lease and log. The deployed monitor's environment (SCF
``GetFunction``) supplies the switch wiring, as Lambda's configuration does on AWS."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping

from components.runtime import ops_switch
from components.runtime.config import MonitorConfig, StateRef, load
from components.runtime.engine import Side
from components.runtime.errors import ConfigError
from components.runtime.monitor_core import Outcome
from components.runtime.observe import Log
from components.runtime.status import LayerStatus, layer_status
from components.runtime.tencent.client import TencentApi
from components.runtime.tencent.monitor import build
from components.runtime.tencent.state import state_store

SCF = ("scf", "2018-04-16")


def status(api: TencentApi, ref: StateRef, limit: int = 5) -> list[LayerStatus]:
    return layer_status(state_store(api, ref), limit)


def monitor_env(api: TencentApi, function: str, region: str,
                namespace: str = "default") -> dict[str, str]:
    """The deployed monitor's environment, from SCF GetFunction (API 2018-04-16, doc page
    "GetFunction": ``Environment.Variables`` is a list of ``{"Key", "Value"}``)."""
    out = api.call(*SCF, region, "GetFunction", {"FunctionName": function,
                                                 "Namespace": namespace})
    variables = (out.get("Environment") or {}).get("Variables") or []
    env = {str(v.get("Key")): str(v.get("Value")) for v in variables
           if isinstance(v, Mapping) and v.get("Key")}
    if not env.get("STANDBY_LAYER"):
        raise ConfigError([f"function {namespace}/{function} in {region} has no STANDBY_LAYER "
                           "in its environment; it is not a standby monitor"])
    return env


def switch(api: TencentApi, env: Mapping[str, str], to: Side, reason: str,
           scopes: list[str] | None = None, force: bool = False, log: Log | None = None,
           clock: Callable[[], float] = time.time) -> list[Outcome]:
    """A planned switch of one layer (every scope, or the ones named) under the monitors'
    lease. Refuses a target side that fails its probes unless ``force``, and a machine whose
    clock is off the store's (MySQL ``NOW(6)``, microsecond resolution) by more than the
    lease protocol allows."""
    cfg: MonitorConfig = load(dict(env))
    ops_switch.check_request(cfg, reason, scopes)
    ops_switch.check_clock(state_store(api, cfg.state).server_time,
                           "the state store's (MySQL NOW() of the state database)", clock)
    monitor = build(cfg, env, log or Log(stream=sys.stderr, component="ops"), api)
    try:
        return ops_switch.planned_switch(cfg, monitor, to, reason, scopes, force)
    finally:
        monitor.close()
        monitor.notifier.close()
