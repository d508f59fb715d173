"""``standby status`` on a Tencent stack: the monitors' own SQL state store, found through
the same DSN secret the monitors read (with the operator's credential)."""

from __future__ import annotations

from components.runtime.config import StateRef
from components.runtime.status import LayerStatus, layer_status
from components.runtime.tencent.client import TencentApi
from components.runtime.tencent.state import state_store


def status(api: TencentApi, ref: StateRef, limit: int = 5) -> list[LayerStatus]:
    return layer_status(state_store(api, ref), limit)
