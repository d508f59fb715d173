"""Resource names shared by deploy time, the CLI and the run time (no cloud SDK imports)."""

from __future__ import annotations


def fn_name(*parts: str) -> str:
    """Lambda function names are at most 64 characters: fail early with a clear message."""
    name = "-".join(parts)
    if len(name) > 64:
        raise ValueError(
            f"function name {name!r} is {len(name)} characters; AWS allows 64. "
            "Shorten the topology `name`."
        )
    return name


def region_short(region: str) -> str:
    """us-east-1 -> use1: keeps generated names under AWS length limits."""
    parts = region.split("-")
    return "".join(p[0] for p in parts[:-1]) + parts[-1]


def monitor_function(topology: str, layer: str, region: str) -> str:
    return fn_name(topology, "mon", layer, region_short(region))


def state_table(topology: str) -> str:
    return f"{topology}-standby-state"


def pointer_table(topology: str) -> str:
    return f"{topology}-standby-pointers"
