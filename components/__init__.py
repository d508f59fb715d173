"""Active-standby serverless topologies as Pulumi components.

Deploy-time names are loaded lazily (PEP 562) so that ``components.runtime`` — the code
zipped into the cloud functions — can be imported without ``pulumi`` installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.budget import Budget, compute_budget
    from components.spec import TopologySpec, parse_spec
    from components.topology import ActiveStandbyTopology

__all__ = ["ActiveStandbyTopology", "Budget", "TopologySpec", "compute_budget", "parse_spec"]

_WHERE = {
    "ActiveStandbyTopology": "components.topology",
    "TopologySpec": "components.spec",
    "parse_spec": "components.spec",
    "Budget": "components.budget",
    "compute_budget": "components.budget",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'components' has no attribute {name!r}")
