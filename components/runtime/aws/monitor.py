"""The monitor function's handler: thin glue over config, AWS adapters and the core.

Event (EventBridge target input): ``{"source": "schedule" | "manual", "layer": <layer>}``,
optionally ``"rounds": N`` (1..100) for a manual run of exactly N rounds, one interval
apart (faster rounds would not detect anything faster: a vantage's streak advances at most
once per interval, whoever invokes it). Anything else is
refused with ``EventError`` before any probe or switch; a bad environment raises
``ConfigError``. Both are logged as one JSON line naming every problem.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from components.runtime import config as config_mod
from components.runtime.aws.alerts import aws_channels
from components.runtime.aws.clients import Clients
from components.runtime.aws.probes import aws_probes
from components.runtime.aws.state import DynamoStateStore
from components.runtime.aws.switchers import aws_switchers
from components.runtime.config import MonitorConfig
from components.runtime.errors import ConfigError, EventError
from components.runtime.monitor_core import (
    Monitor,
    default_limit_s,
    run_invocation,
)
from components.runtime.notify import Notifier
from components.runtime.observe import Log

EVENT_KEYS = {"source", "layer", "rounds"}
SOURCES = ("schedule", "manual")


def check_event(event: Any, layer: str) -> int | None:
    """Validate the event; returns the requested number of rounds (manual runs) or None."""
    if not isinstance(event, Mapping):
        raise EventError(f"event: expected a JSON object, got {type(event).__name__}")
    unknown = sorted(set(event) - EVENT_KEYS)
    if unknown:
        raise EventError(f"event: unknown key(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(sorted(EVENT_KEYS))}")
    if event.get("source") not in SOURCES:
        raise EventError(f"event.source: {event.get('source')!r}; allowed: {', '.join(SOURCES)}")
    if "layer" in event and event["layer"] != layer:
        raise EventError(f"event.layer: {event['layer']!r} but this is the {layer} monitor")
    rounds = event.get("rounds")
    if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int)
                               or not 1 <= rounds <= 100):
        raise EventError(f"event.rounds: {rounds!r} is not an integer in 1..100")
    return rounds


def build(cfg: MonitorConfig, log: Log, clients: Clients | None = None, *,
          invocation: str | None = None, clock: Callable[[], float] | None = None) -> Monitor:
    """The monitor of one invocation; ``invocation`` names it in the lease (the Lambda
    request id; a fresh uuid when not given)."""
    clients = clients or Clients()
    extra: dict[str, Any] = {}
    if invocation:
        extra["invocation"] = invocation
    if clock is not None:
        extra["clock"] = clock
    return Monitor(
        config=cfg,
        store=DynamoStateStore(clients, cfg.state.ref, cfg.state.region),
        switchers=aws_switchers(clients),
        probes=aws_probes(clients, cfg.region),
        notifier=Notifier(aws_channels(clients, cfg.alert_topic, cfg.webhooks), log),
        log=log,
        **extra,
    )


def handler(event: Any, context: Any = None, env: Mapping[str, str] | None = None,
            clock: Callable[[], float] | None = None) -> dict[str, Any]:
    """One invocation. ``env`` and ``clock`` are for local runs and tests (the environment
    and ``time.time`` on Lambda)."""
    started = time.monotonic()
    log = Log(component="monitor")
    try:
        cfg = config_mod.load(env)
        log.context.update(layer=cfg.layer, region=cfg.region, topology=cfg.topology)
        if cfg.state.store != "dynamodb":
            # Another adapter's store kind (registered in the same process) is not one this
            # handler can open.
            raise ConfigError([f"STANDBY_STATE_STORE: {cfg.state.store!r}; allowed on AWS: "
                               "dynamodb (STANDBY_STATE_TABLE)"])
        rounds = check_event(event, cfg.layer)
    except (ConfigError, EventError) as exc:
        log.error("refused: nothing probed or switched", error=str(exc))
        raise
    limit_s = (context.get_remaining_time_in_millis() / 1000.0 if context is not None
               else default_limit_s(cfg, rounds))
    monitor = build(cfg, log, invocation=getattr(context, "aws_request_id", None),
                    clock=clock)
    return run_invocation(monitor, rounds, limit_s, started, log)
