"""The monitor's configuration, read from the environment the deploy-time side sets.

Every problem is collected and reported at once (``ConfigError``), naming the variable, the
bad value and what is allowed. A monitor with a bad configuration switches nothing.

Probe and switch kinds, with the keys each needs, and state store kinds come from the
registry (``components.runtime.registry``): the cloud adapter the handler imports registers
its kinds, so this module names none of them.

The state store is ``STANDBY_STATE_STORE`` (a registered store kind) plus that kind's
reference variable and ``STANDBY_STATE_REGION``; without ``STANDBY_STATE_STORE`` the kind is
the one registered store whose reference variable is set (the AWS deploy emits only
``STANDBY_STATE_TABLE``). A webhook's URL is a secret named either by ``secret_arn`` (the
region is in the ARN) or by ``secret_name`` with ``region``, or, for local runs, an
environment variable (``url_env``). Both are kept as references (``StateRef``,
``SecretRef``) that the adapter interprets.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from components.runtime import probes as _core_probes  # noqa: F401  registers http, sql
from components.runtime.engine import Settings
from components.runtime.errors import ConfigError
from components.runtime.registry import REGISTRY, Registry

LAYERS = ("dns", "gateway", "logic", "data")
WEBHOOK_KINDS = ("wecom", "dingtalk", "slack")
WEBHOOK_KEYS = {"kind", "secret_arn", "secret_name", "region", "url_env"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
SETTINGS_RANGES: dict[str, tuple[float, float]] = {
    "interval_s": (1, 300), "timeout_s": (0.1, 30), "failure_threshold": (1, 10),
    "recovery_threshold": (1, 20), "cooldown_s": (0, 86400), "quorum": (1, 5),
}


@dataclass(frozen=True)
class SecretRef:
    """A secret as the deploy names it. ``region`` is None when ``ref`` carries it (an
    ARN); the adapter that reads the secret interprets ``ref``."""

    ref: str
    region: str | None = None


@dataclass(frozen=True)
class StateRef:
    """The state, lease and pointer store: a registered store kind, its reference (a table
    name, the name of the secret holding a DSN), its region and the kind's optional
    variables that are set (by variable name)."""

    store: str
    ref: str
    region: str
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Webhook:
    kind: str
    secret: SecretRef | None = None
    url_env: str | None = None
    """Name of an environment variable holding the URL (local runs)."""


@dataclass(frozen=True)
class MonitorConfig:
    topology: str
    layer: str
    region: str
    settings: Settings
    probes: list[dict[str, Any]]
    switch: list[dict[str, Any]]
    state: StateRef
    alert_topic: str | None = None
    webhooks: list[Webhook] = field(default_factory=list)
    loop_s: float = 0.0
    metric_namespace: str = "Standby"
    emails: list[str] = field(default_factory=list)
    """Addresses to mail an alert to (where the adapter has a mail channel)."""
    sms: list[str] = field(default_factory=list)
    """E.164 numbers to text an alert to (where the adapter has an SMS channel)."""

    @property
    def scopes(self) -> list[str]:
        return list(dict.fromkeys(str(t["scope"]) for t in self.switch))

    @property
    def state_table(self) -> str:
        """The store's reference under the name the DynamoDB store (and its callers) use."""
        return self.state.ref

    @property
    def state_region(self) -> str:
        return self.state.region


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


def _state(env: Mapping[str, str], registry: Registry, problems: list[str]) -> StateRef | None:
    stores = registry.state_stores()
    listing = (", ".join(f"{k.name} (with {k.ref_env})" for _, k in sorted(stores.items()))
               or "none registered (a cloud adapter registers its store when imported)")
    name = env.get("STANDBY_STATE_STORE")
    if not env.get("STANDBY_STATE_REGION"):
        problems.append("STANDBY_STATE_REGION: missing")
    if name is None:
        found = [k for k in stores.values() if env.get(k.ref_env)]
        if len(found) != 1:
            what = ("none of their references is set" if not found else
                    f"{', '.join(sorted(k.ref_env for k in found))} are all set")
            problems.append(f"STANDBY_STATE_STORE: missing and {what}; allowed: {listing}")
            return None
        kind = found[0]
    elif name not in stores:
        problems.append(f"STANDBY_STATE_STORE: {name!r}; allowed: {listing}")
        return None
    else:
        kind = stores[name]
    ref = env.get(kind.ref_env)
    if not ref:
        problems.append(f"{kind.ref_env}: missing (the {kind.name} state store's reference)")
        return None
    options = {k: env[k] for k in kind.option_envs if env.get(k)}
    return StateRef(kind.name, ref, env.get("STANDBY_STATE_REGION", ""), options)


def _webhooks(env: Mapping[str, str], problems: list[str]) -> list[Webhook]:
    if not env.get("STANDBY_WEBHOOKS"):
        return []
    raw = _json(env, "STANDBY_WEBHOOKS", problems)
    if not isinstance(raw, list):
        if raw is not None:
            problems.append("STANDBY_WEBHOOKS: must be a JSON list")
        return []
    hooks: list[Webhook] = []
    for i, h in enumerate(raw):
        where = f"STANDBY_WEBHOOKS[{i}]"
        if not isinstance(h, dict) or h.get("kind") not in WEBHOOK_KINDS:
            kind = h.get("kind") if isinstance(h, dict) else h
            problems.append(f"{where}.kind: {kind!r}; allowed: {', '.join(WEBHOOK_KINDS)}")
            continue
        unknown = sorted(set(h) - WEBHOOK_KEYS)
        given = [k for k in ("secret_arn", "secret_name", "url_env") if h.get(k)]
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                            f"{', '.join(sorted(WEBHOOK_KEYS))}")
        elif len(given) != 1:
            problems.append(f"{where}: needs exactly one of secret_arn, secret_name (with "
                            f"region) or url_env; got {', '.join(given) or 'none'}")
        elif given == ["secret_name"] and not h.get("region"):
            problems.append(f"{where}: secret_name needs the secret's region")
        elif given == ["url_env"]:
            hooks.append(Webhook(h["kind"], url_env=str(h["url_env"])))
        else:
            ref = str(h[given[0]])
            region = str(h["region"]) if given == ["secret_name"] else None
            hooks.append(Webhook(h["kind"], SecretRef(ref, region)))
    return hooks


def _addresses(env: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str,
               problems: list[str]) -> list[str]:
    if not env.get(name):
        return []
    raw = _json(env, name, problems)
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        if raw is not None:
            problems.append(f"{name}: must be a JSON list of strings")
        return []
    bad = [v for v in raw if not pattern.match(v)]
    if bad:
        problems.append(f"{name}: {', '.join(map(repr, bad))} not {what}")
        return []
    return list(raw)


def load(env: Mapping[str, str] | None = None, registry: Registry = REGISTRY) -> MonitorConfig:
    """Read and check the whole contract; raises ``ConfigError`` listing every problem.

    Kinds are checked against ``registry``: the process-wide one holds whatever the imported
    adapters registered.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    for name in ("STANDBY_TOPOLOGY", "STANDBY_LAYER", "STANDBY_REGION"):
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
    state = _state(env, registry, problems)
    hooks = _webhooks(env, problems)
    emails = _addresses(env, "STANDBY_ALERT_EMAILS", EMAIL, "an email address", problems)
    sms = _addresses(env, "STANDBY_ALERT_SMS", PHONE, "an E.164 number (+8613800000000)",
                     problems)
    loop_s = env_number(env, "STANDBY_LOOP_S", 0.0, 0, 900, problems)
    if problems or state is None:
        raise ConfigError(problems)
    return MonitorConfig(
        topology=env["STANDBY_TOPOLOGY"], layer=layer, region=env["STANDBY_REGION"],
        settings=settings, probes=probes, switch=switch, state=state,
        alert_topic=env.get("STANDBY_ALERT_TOPIC") or None, webhooks=hooks, loop_s=loop_s,
        metric_namespace=env.get("STANDBY_METRIC_NAMESPACE", "Standby"), emails=emails,
        sms=sms,
    )
