"""Tencent probes: the SCF function invoked synchronously with the health event; a COS
bucket headed, then a small object written and read back; a CDB instance found by id and
probed with the core SQL probe."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from components.runtime import sqldb
from components.runtime.probes import Probe, ProbeResult, http_probe, sql_probe, timed
from components.runtime.tencent.cdb import address
from components.runtime.tencent.client import TencentApi
from components.runtime.tencent.state import read_dsn

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


def cdb_sql_probe(api: TencentApi) -> Probe:
    """The core SQL probe (``SELECT 1``, read-only flag, replication and lag) on the CDB
    instance ``instance_id``: its address from ``DescribeDBInstances``, the account from the
    DSN secret ``secret_name`` in ``secret_region`` (read once per probe object: a rotated
    password is picked up by the next invocation)."""
    accounts: dict[tuple[str, str], tuple[str, str]] = {}

    def connect(target: Mapping[str, Any], timeout_s: float) -> Any:
        key = (str(target["secret_region"]), str(target["secret_name"]))
        if key not in accounts:
            dsn = read_dsn(api, *key)
            accounts[key] = (str(dsn["user"]), str(dsn["password"]))
        host, port = address(api, str(target["region"]), str(target["instance_id"]))
        ep = sqldb.Endpoint.parse(str(target["engine"]), {"host": host, "port": port},
                                  str(target["database"]))
        return sqldb.connect(ep, *accounts[key], timeout_s)

    def probe(target: Mapping[str, Any], timeout_s: float) -> ProbeResult:
        return sql_probe(target, timeout_s, connect)

    return probe


def tencent_probes(api: TencentApi, vantage: str) -> dict[str, Probe]:
    return {"http": http_probe, "scf_invoke": scf_invoke_probe(api),
            "cos_bucket": cos_bucket_probe(api, vantage), "cdb_sql": cdb_sql_probe(api)}
