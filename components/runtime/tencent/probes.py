"""Tencent probes: the SCF function invoked synchronously with the health event."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from components.runtime.probes import Probe, ProbeResult, http_probe, timed
from components.runtime.tencent.client import TencentApi

HEALTH_EVENT = {"standby_probe": True}


def scf_invoke_probe(api: TencentApi) -> Probe:
    """SCF ``Invoke`` (RequestResponse) with ``{"standby_probe": true}``: healthy when the
    call succeeds, the function raised nothing (``ErrMsg`` empty) and its answer does not
    say ``"ok": false``."""

    def probe(target: Mapping[str, Any], timeout_s: float) -> ProbeResult:
        def run() -> tuple[bool, str, dict[str, Any]]:
            out = api.call("scf", "2018-04-16", str(target["region"]), "Invoke", {
                "FunctionName": str(target["function"]),
                "Namespace": str(target["namespace"]),
                "InvocationType": "RequestResponse",
                "ClientContext": json.dumps(HEALTH_EVENT)})
            result = out.get("Result") or {}
            if result.get("ErrMsg"):
                return False, f"function error: {str(result['ErrMsg'])[:200]}", {}
            try:
                answer = json.loads(result.get("RetMsg") or "{}")
            except ValueError:
                answer = {}
            if isinstance(answer, dict) and answer.get("ok") is False:
                return False, f"unhealthy: {answer.get('detail', '')}"[:200], {}
            return True, "invoke ok", {}

        return timed(target, run)

    return probe


def tencent_probes(api: TencentApi) -> dict[str, Probe]:
    return {"http": http_probe, "scf_invoke": scf_invoke_probe(api)}
