"""Probe and switch kinds, registered by whoever implements them.

The core (configuration checks, verdicts) decides by what a kind *is*, never by its name:

* a probe kind has a **role**:

  - ``backend``: the thing the layer switches (the database of the data layer, the logic
    function of the gateway layer). Its failures decide a switch.
  - ``dependency``: something the side needs but a switch cannot fix (the bucket next to the
    database). Its failures are reported so the monitor can alert; they never promote
    anything, because a one-way database promotion for an object-store hiccup loses more
    than it saves.
  - ``entry``: the public entry path (the gateway's health URL). It decides only where the
    layer switches the entry path itself (DNS); elsewhere it is reported.

* a state store kind names the variable that references the store (``STANDBY_STATE_TABLE``
  for a DynamoDB table, ``STANDBY_STATE_DSN_SECRET`` for a SQL store's DSN secret); the
  monitor's configuration names the store by kind and reference, the adapter opens it.

* a switch kind names the keys its target needs, optionally the **component** it switches
  (``database``), and whether it has a **lag guard**: its target carries ``max_lag_s`` and
  the side it would make active must be replicating with a known lag within it.

Cloud-neutral kinds register where they are implemented (``components.runtime.probes``); a
cloud adapter registers its own when imported. Adding a cloud therefore adds a module and
touches no core file. The environment contract is unchanged: a target names its ``kind``;
its role comes from here, never from the environment.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

Role = Literal["backend", "dependency", "entry"]
ROLES: tuple[Role, ...] = get_args(Role)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class UnknownKind(LookupError):
    """A kind no loaded module registered; the message names the kinds that are."""


@dataclass(frozen=True)
class ProbeKind:
    name: str
    role: Role
    required: tuple[str, ...]
    """Keys every target of this kind must carry (``scope`` always)."""
    component: str | None = None
    """What the probe measures (``database``); a lag guard reads the probes of its
    component."""


@dataclass(frozen=True)
class SwitchKind:
    name: str
    required: tuple[str, ...]
    component: str | None = None
    """What the switch moves (``database``); needed for a lag guard."""
    lag_guard: bool = False
    """The target's ``max_lag_s`` bounds the replication lag of the side made active."""


@dataclass(frozen=True)
class StateStoreKind:
    """A state, lease and pointer store an adapter can open. ``ref_env`` is the variable
    naming the store (a table, the secret holding a DSN); ``option_envs`` are optional
    variables the adapter reads with it. The core only checks that they are there: what the
    reference means is the adapter's business."""

    name: str
    ref_env: str
    option_envs: tuple[str, ...] = ()


K = TypeVar("K", ProbeKind, SwitchKind, StateStoreKind)


_ENV = re.compile(r"^STANDBY_[A-Z0-9_]{1,60}$")


def _check(kind: ProbeKind | SwitchKind | StateStoreKind) -> None:
    what = f"{type(kind).__name__} {kind.name!r}"
    if not isinstance(kind.name, str) or not _NAME.match(kind.name):
        raise ValueError(f"{what}: the name must match {_NAME.pattern}")
    if isinstance(kind, StateStoreKind):
        for env in (kind.ref_env, *kind.option_envs):
            if not isinstance(env, str) or not _ENV.match(env):
                raise ValueError(f"{what}: variable {env!r} must match {_ENV.pattern}")
        return
    if "scope" not in kind.required:
        raise ValueError(f"{what}: required keys must include 'scope' (every target has one)")
    if isinstance(kind, ProbeKind) and kind.role not in ROLES:
        raise ValueError(f"{what}: role {kind.role!r}; allowed: {', '.join(ROLES)}")
    if isinstance(kind, SwitchKind) and kind.lag_guard:
        if not kind.component:
            raise ValueError(f"{what}: a lag guard needs the component whose lag it reads")
        if "max_lag_s" not in kind.required:
            raise ValueError(f"{what}: a lag guard needs 'max_lag_s' among the required keys")


class Registry:
    """Kinds by name. Registering the same definition twice is harmless (modules may be
    imported again); a different definition under a taken name is refused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._probes: dict[str, ProbeKind] = {}
        self._switches: dict[str, SwitchKind] = {}
        self._stores: dict[str, StateStoreKind] = {}

    def add_probe(self, kind: ProbeKind) -> ProbeKind:
        return self._add(self._probes, kind)

    def add_switch(self, kind: SwitchKind) -> SwitchKind:
        return self._add(self._switches, kind)

    def add_state_store(self, kind: StateStoreKind) -> StateStoreKind:
        return self._add(self._stores, kind)

    def _add(self, table: dict[str, K], kind: K) -> K:
        _check(kind)
        with self._lock:
            known = table.get(kind.name)
            if known is not None and known != kind:
                raise ValueError(f"{type(kind).__name__} {kind.name!r} is already registered "
                                 f"as {known}; refusing {kind}")
            table[kind.name] = kind
        return kind

    def probe(self, name: object) -> ProbeKind:
        return self._get(self._probes, "probe", name)

    def switch(self, name: object) -> SwitchKind:
        return self._get(self._switches, "switch", name)

    @staticmethod
    def _get(table: dict[str, K], what: str, name: object) -> K:
        if isinstance(name, str) and name in table:
            return table[name]
        raise UnknownKind(f"unknown {what} kind {name!r}; {allowed(table)}")

    def probes(self) -> dict[str, ProbeKind]:
        with self._lock:
            return dict(self._probes)

    def switches(self) -> dict[str, SwitchKind]:
        with self._lock:
            return dict(self._switches)

    def state_stores(self) -> dict[str, StateStoreKind]:
        with self._lock:
            return dict(self._stores)


def allowed(table: dict[str, K]) -> str:
    if not table:
        return "no kinds are registered (a cloud adapter registers its kinds when imported)"
    return f"allowed: {', '.join(sorted(table))}"


REGISTRY = Registry()
"""The process-wide registry that ``config.load`` and the verdicts read."""

register_probe = REGISTRY.add_probe
register_switch = REGISTRY.add_switch
register_state_store = REGISTRY.add_state_store
