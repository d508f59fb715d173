"""The monitor's configuration, read from the environment the deploy-time side sets.

Every problem is collected and reported at once (``ConfigError``), naming the variable, the
bad value and what is allowed. A monitor with a bad configuration switches nothing.

Probe and switch kinds, with the keys each needs, come from the registry
(``components.runtime.registry``): the cloud adapter the handler imports registers its kinds,
so this module names none of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from components.runtime import probes as _core_probes  # noqa: F401  registers http, sql
from components.runtime.engine import Settings
from components.runtime.errors import ConfigError
from components.runtime.registry import REGISTRY, Registry

LAYERS = ("dns", "gateway", "logic", "data")
WEBHOOK_KINDS = ("wecom", "dingtalk", "slack")
SETTINGS_RANGES: dict[str, tuple[float, float]] = {
    "interval_s": (1, 300), "timeout_s": (0.1, 30), "failure_threshold": (1, 10),
    "recovery_threshold": (1, 20), "cooldown_s": (0, 86400), "quorum": (1, 5),
}


@dataclass(frozen=True)
class Webhook:
    kind: str
    secret_arn: str | None = None
    url_env: str | None = None
    """Name of an environment variable holding the URL (local runs, other clouds)."""


@dataclass(frozen=True)
class MonitorConfig:
    topology: str
    layer: str
    region: str
    settings: Settings
    probes: list[dict[str, Any]]
    switch: list[dict[str, Any]]
    state_table: str
    state_region: str
    alert_topic: str | None = None
    webhooks: list[Webhook] = field(default_factory=list)
    loop_s: float = 0.0
    metric_namespace: str = "Standby"

    @property
    def scopes(self) -> list[str]:
        return list(dict.fromkeys(str(t["scope"]) for t in self.switch))


def _json(env: Mapping[str, str], name: str, problems: list[str]) -> Any:
    raw = env.get(name)
    if raw is None:
        problems.append(f"{name}: missing")
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        problems.append(f"{name}: not valid JSON ({exc.msg} at {exc.pos})")
        return None


def _settings(raw: Any, problems: list[str]) -> Settings:
    name = "STANDBY_SETTINGS"
    if not isinstance(raw, dict):
        if raw is not None:
            problems.append(f"{name}: must be a JSON object")
        return Settings()
    values: dict[str, Any] = {}
    for key, (lo, hi) in SETTINGS_RANGES.items():
        v = raw.get(key)
        if v is None:
            problems.append(f"{name}.{key}: missing; allowed {lo:g}..{hi:g}")
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            problems.append(f"{name}.{key}: {v!r} is not in {lo:g}..{hi:g}")
        else:
            values[key] = v
    failback = raw.get("failback", "manual")
    if failback not in ("auto", "manual"):
        problems.append(f"{name}.failback: {failback!r}; allowed: auto, manual")
    practice = raw.get("practice", False)
    if not isinstance(practice, bool):
        problems.append(f"{name}.practice: {practice!r}; allowed: true, false")
    try:
        return Settings(**values, failback=failback, practice=bool(practice))
    except TypeError:
        return Settings()


def _entries(raw: Any, name: str, kinds: Mapping[str, tuple[str, ...]], problems: list[str],
             check: Callable[[dict[str, Any]], str | None] | None = None,
             allow_empty: bool = False) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        if raw is not None:
            problems.append(f"{name}: must be a JSON list")
        return []
    if not raw and not allow_empty:
        problems.append(f"{name}: empty; a monitor needs at least one entry")
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            problems.append(f"{name}[{i}]: must be an object")
            continue
        kind = entry.get("kind")
        if not isinstance(kind, str) or kind not in kinds:
            known = (f"allowed: {', '.join(sorted(kinds))}" if kinds else
                     "no kinds are registered (a cloud adapter registers its kinds when "
                     "imported)")
            problems.append(f"{name}[{i}].kind: {kind!r}; {known}")
            continue
        missing = [k for k in kinds[kind] if k not in entry]
        if missing:
            problems.append(f"{name}[{i}] ({kind}): missing {', '.join(missing)}")
            continue
        values = entry.get("values")
        if values is not None and (not isinstance(values, dict)
                                   or set(values) != {"primary", "standby"}):
            problems.append(f"{name}[{i}].values: must name exactly primary and standby")
            continue
        sides = entry.get("sides")
        if sides is not None and (not isinstance(sides, dict)
                                  or set(sides) != {"primary", "standby"}):
            problems.append(f"{name}[{i}].sides: must name exactly primary and standby")
            continue
        if entry.get("side") not in (None, "primary", "standby"):
            problems.append(f"{name}[{i}].side: {entry['side']!r}; allowed: primary, standby")
            continue
        problem = check(entry) if check is not None else None
        if problem:
            problems.append(f"{name}[{i}]{problem}")
            continue
        out.append(entry)
    return out


def _lag_guard(registry: Registry) -> Callable[[dict[str, Any]], str | None]:
    """A lag-guarded target's ``max_lag_s`` must be a number of seconds: the verdict compares
    the replica's lag with it every round, and a string there would fail mid-round."""

    def check(target: dict[str, Any]) -> str | None:
        if not registry.switch(target["kind"]).lag_guard:
            return None
        lag = target.get("max_lag_s")
        if isinstance(lag, bool) or not isinstance(lag, (int, float)) or not 0 <= lag <= 86400:
            return f".max_lag_s ({target['kind']}): {lag!r}; allowed: a number in 0..86400"
        return None

    return check


def env_number(env: Mapping[str, str], name: str, default: float, lo: float, hi: float,
               problems: list[str]) -> float:
    """A number in ``lo..hi`` from the environment (``default`` when unset); a bad value is
    added to ``problems`` and ``default`` is returned."""
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
        if lo <= value <= hi:
            return value
    except ValueError:
        pass
    problems.append(f"{name}: {raw!r} is not a number in {lo:g}..{hi:g}")
    return default


def load(env: Mapping[str, str] | None = None, registry: Registry = REGISTRY) -> MonitorConfig:
    """Read and check the whole contract; raises ``ConfigError`` listing every problem.

    Kinds are checked against ``registry``: the process-wide one holds whatever the imported
    adapters registered.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    required = ("STANDBY_TOPOLOGY", "STANDBY_LAYER", "STANDBY_REGION", "STANDBY_STATE_TABLE",
                "STANDBY_STATE_REGION")
    for name in required:
        if not env.get(name):
            problems.append(f"{name}: missing")
    layer = env.get("STANDBY_LAYER", "")
    if layer and layer not in LAYERS:
        problems.append(f"STANDBY_LAYER: {layer!r}; allowed: {', '.join(LAYERS)}")
    settings = _settings(_json(env, "STANDBY_SETTINGS", problems), problems)
    probe_kinds = {n: k.required for n, k in registry.probes().items()}
    switch_kinds = {n: k.required for n, k in registry.switches().items()}
    probes = _entries(_json(env, "STANDBY_PROBES", problems), "STANDBY_PROBES", probe_kinds,
                      problems)
    switch = _entries(_json(env, "STANDBY_SWITCH", problems), "STANDBY_SWITCH", switch_kinds,
                      problems, check=_lag_guard(registry))
    hooks: list[Webhook] = []
    raw_hooks = _json(env, "STANDBY_WEBHOOKS", []) if env.get("STANDBY_WEBHOOKS") else []
    if not isinstance(raw_hooks, list):
        problems.append("STANDBY_WEBHOOKS: must be a JSON list")
        raw_hooks = []
    for i, h in enumerate(raw_hooks):
        if not isinstance(h, dict) or h.get("kind") not in WEBHOOK_KINDS:
            problems.append(f"STANDBY_WEBHOOKS[{i}].kind: allowed: {', '.join(WEBHOOK_KINDS)}")
        elif not (h.get("secret_arn") or h.get("url_env")):
            problems.append(f"STANDBY_WEBHOOKS[{i}]: needs secret_arn or url_env")
        else:
            hooks.append(Webhook(h["kind"], h.get("secret_arn"), h.get("url_env")))
    loop_s = env_number(env, "STANDBY_LOOP_S", 0.0, 0, 900, problems)
    if problems:
        raise ConfigError(problems)
    return MonitorConfig(
        topology=env["STANDBY_TOPOLOGY"], layer=layer, region=env["STANDBY_REGION"],
        settings=settings, probes=probes, switch=switch,
        state_table=env["STANDBY_STATE_TABLE"], state_region=env["STANDBY_STATE_REGION"],
        alert_topic=env.get("STANDBY_ALERT_TOPIC") or None, webhooks=hooks, loop_s=loop_s,
        metric_namespace=env.get("STANDBY_METRIC_NAMESPACE", "Standby"),
    )
