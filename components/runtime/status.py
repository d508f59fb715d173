"""What ``standby status`` shows, read from any state store: per layer, each scope's active
side, token and unfinished switch, and the last switch records. The cloud adapters open the
store (``components.runtime.aws.ops``, ``components.runtime.tencent.ops``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.runtime.config import LAYERS
from components.runtime.lease import StateStore


@dataclass
class LayerStatus:
    layer: str
    scopes: dict[str, dict[str, Any]]
    log: list[dict[str, Any]]


def layer_status(store: StateStore, limit: int = 5) -> list[LayerStatus]:
    out = []
    for layer in LAYERS:
        scopes = {s: {"active": st.active, "token": st.token,
                      "last_switch_at": st.last_switch_at,
                      "unfinished": ({"to": st.intent.to, "token": st.intent.token,
                                      "by": st.intent.holder, "step": st.intent.step,
                                      "of": len(st.intent.targets)} if st.intent else None)}
                  for s, st in sorted(store.scopes(layer).items())}
        log = [{"at": r.at, "scope": r.scope, "from": r.from_side, "to": r.to_side,
                "by": r.by, "token": r.token, "reason": r.reason, "practice": r.practice,
                "verified": r.verified} for r in store.log(layer, limit)]
        out.append(LayerStatus(layer, scopes, log))
    return out
