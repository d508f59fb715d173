"""The SCF monitor function's handler: thin glue over config, the Tencent adapters and the
unchanged core.

Events: an SCF timer event ``{"Type": "Timer", "TriggerName", "Time", "Message"}`` (one
loop of ``STANDBY_LOOP_S``), or a manual run ``{"source": "manual", "layer": <layer>,
"rounds": N}`` (1..100). Anything else is refused with ``EventError`` before any probe or
switch; a bad environment raises ``ConfigError`` naming every problem.

The environment is the one the Tencent deploy emits, read by the core ``config.load``: the
store is ``STANDBY_STATE_STORE=mysql`` with ``STANDBY_STATE_DSN_SECRET`` and
``STANDBY_STATE_REGION`` (``state.py`` opens it); webhooks are ``{"kind", "secret_name",
"region"}`` whose URLs are SSM secrets; ``STANDBY_ALERT_EMAILS`` go out through SES
(``alerts.py``).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from components.runtime import config as config_mod
from components.runtime.config import MonitorConfig
from components.runtime.errors import ConfigError, EventError
from components.runtime.monitor_core import (
    Monitor,
    default_limit_s,
    run_invocation,
)
from components.runtime.notify import Notifier
from components.runtime.observe import Log
from components.runtime.tencent.alerts import tencent_channels
from components.runtime.tencent.client import TencentApi
from components.runtime.tencent.probes import tencent_probes
from components.runtime.tencent.state import state_store
from components.runtime.tencent.switchers import tencent_switchers

TIMER_KEYS = {"Type", "TriggerName", "Time", "Message"}
MANUAL_KEYS = {"source", "layer", "rounds"}


def check_event(event: Any, layer: str) -> int | None:
    """Validate the event; returns the requested number of rounds (manual runs) or None."""
    if not isinstance(event, Mapping):
        raise EventError(f"event: expected a JSON object, got {type(event).__name__}")
    if event.get("Type") == "Timer":
        unknown = sorted(set(event) - TIMER_KEYS)
        if unknown:
            raise EventError(f"timer event: unknown key(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(sorted(TIMER_KEYS))}")
        return None
    unknown = sorted(set(event) - MANUAL_KEYS)
    if unknown or event.get("source") != "manual":
        raise EventError("event: expected an SCF timer event {\"Type\": \"Timer\", ...} or "
                         "{\"source\": \"manual\", \"layer\", \"rounds\"}; got keys "
                         f"{sorted(event)}")
    if "layer" in event and event["layer"] != layer:
        raise EventError(f"event.layer: {event['layer']!r} but this is the {layer} monitor")
    rounds = event.get("rounds")
    if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int)
                               or not 1 <= rounds <= 100):
        raise EventError(f"event.rounds: {rounds!r} is not an integer in 1..100")
    return rounds


def build(cfg: MonitorConfig, env: Mapping[str, str], log: Log,
          api: TencentApi | None = None, *, invocation: str | None = None,
          clock: Callable[[], float] | None = None) -> Monitor:
    api = api or TencentApi.from_env(env)
    store = state_store(api, cfg.state)
    extra: dict[str, Any] = {"invocation": invocation or uuid.uuid4().hex}
    if clock is not None:
        extra["clock"] = clock
    channels = tencent_channels(api, cfg, env)
    return Monitor(config=cfg, store=store, switchers=tencent_switchers(api, store),
                   probes=tencent_probes(api, cfg.region), notifier=Notifier(channels, log),
                   log=log, **extra)


def handler(event: Any, context: Any = None, env: Mapping[str, str] | None = None,
            clock: Callable[[], float] | None = None) -> dict[str, Any]:
    """One SCF invocation. SCF passes ``context`` as a dict (``request_id``,
    ``time_limit_in_ms``); ``env`` and ``clock`` are for local runs and tests."""
    started = time.monotonic()
    e = dict(os.environ if env is None else env)
    log = Log(component="monitor")
    ctx = context if isinstance(context, Mapping) else {}
    try:
        cfg = config_mod.load(e)
        log.context.update(layer=cfg.layer, region=cfg.region, topology=cfg.topology)
        rounds = check_event(event, cfg.layer)
        # The store's DSN and the alert senders are checked here too: a monitor that could
        # not record a switch or report it probes nothing.
        monitor = build(cfg, e, log, invocation=ctx.get("request_id"), clock=clock)
    except (ConfigError, EventError) as exc:
        log.error("refused: nothing probed or switched", error=str(exc))
        raise
    limit_s = (float(ctx["time_limit_in_ms"]) / 1000.0 if ctx.get("time_limit_in_ms")
               else default_limit_s(cfg, rounds))
    return run_invocation(monitor, rounds, limit_s, started, log)
