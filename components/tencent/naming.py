"""SCF names: 2-60 letters, digits, '-' or '_', first a letter, last a letter or digit
(SCF CreateFunction, FunctionName)."""

from __future__ import annotations

import re

from components.naming import region_short

SCF_NAME_MAX = 60
_SCF_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]")


def scf_name(*parts: str) -> str:
    """``scf_name("shop", "wrap", "p", "ap-guangzhou")`` -> ``shop-wrap-p-aguangzhou``."""
    *head, region = parts
    name = "-".join([*head, region_short(region)])
    if len(name) > SCF_NAME_MAX or not _SCF_NAME.fullmatch(name):
        raise ValueError(f"SCF function name {name!r} is {len(name)} characters or has a "
                         f"character SCF refuses; allowed: {SCF_NAME_MAX} letters, digits, '-' "
                         "or '_'. Shorten the topology `name`.")
    return name


def state_dsn_secret(topology: str) -> str:
    """The SSM secret (in the control region) holding the state store's DSN; the monitors,
    the wrappers and ``standby status`` find the store through it."""
    return f"{topology}-standby-state-dsn"


def monitor_name(topology: str, layer: str, region: str) -> str:
    """The monitor function of ``layer`` in ``region`` (``standby switch`` reads its env)."""
    return scf_name(topology, "mon", layer, region)
