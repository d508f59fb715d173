"""Tencent probes: the SCF function invoked synchronously with the health event; a COS
bucket headed, then a small object written and read back."""

from __future__ import annotations

import json
import time
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


def cos_bucket_probe(api: TencentApi, vantage: str) -> Probe:
    """Head the bucket, then write and read back ``_standby-probe/<vantage>``."""

    def probe(target: Mapping[str, Any], timeout_s: float) -> ProbeResult:
        def run() -> tuple[bool, str, dict[str, Any]]:
            cos = api.cos(str(target["region"]))
            bucket = str(target["bucket"])
            cos.head_bucket(Bucket=bucket)
            key = f"{target.get('probe_key', '_standby-probe/')}{vantage}"
            body = f"{time.time():.3f}".encode()
            cos.put_object(Bucket=bucket, Key=key, Body=body)
            got = cos.get_object(Bucket=bucket, Key=key)["Body"].get_raw_stream().read()
            return got == body, "head+put+get ok" if got == body else "read back differs", {}

        return timed(target, run)

    return probe


def tencent_probes(api: TencentApi, vantage: str) -> dict[str, Probe]:
    return {"http": http_probe, "scf_invoke": scf_invoke_probe(api),
            "cos_bucket": cos_bucket_probe(api, vantage)}
