"""AWS probes: Lambda invoke health, DynamoDB table, S3 bucket head + put/get, SQL on RDS."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from components.runtime import sqldb
from components.runtime.aws.clients import Clients, db_credentials, region_of_arn
from components.runtime.probes import Probe, ProbeResult, http_probe, sql_probe, timed

HEALTH_EVENT = {"standby_probe": True}


def lambda_probe(clients: Clients, default_region: str) -> Probe:
    """Invoke the function with ``{"standby_probe": true}``: healthy when the invoke
    succeeds, the function raised nothing, and its answer does not say ``"ok": false``."""

    def probe(target: Mapping[str, Any], timeout_s: float) -> ProbeResult:
        def run() -> tuple[bool, str, dict[str, Any]]:
            fn = str(target["function"])
            out = clients.get("lambda", region_of_arn(fn, default_region)).invoke(
                FunctionName=fn, Payload=json.dumps(HEALTH_EVENT).encode())
            body = out["Payload"].read(65536)
            if out.get("FunctionError"):
                return False, f"function error: {body[:200].decode(errors='replace')}", {}
            if out.get("StatusCode") != 200:
                return False, f"invoke status {out.get('StatusCode')}", {}
            try:
                answer = json.loads(body or b"{}")
            except ValueError:
                answer = {}
            if isinstance(answer, dict) and answer.get("ok") is False:
                return False, f"unhealthy: {answer.get('detail', '')}"[:200], {}
            return True, "invoke ok", {}

        return timed(target, run)

    return probe


def dynamodb_probe(clients: Clients) -> Probe:
    def probe(target: Mapping[str, Any], timeout_s: float) -> ProbeResult:
        def run() -> tuple[bool, str, dict[str, Any]]:
            table = clients.get("dynamodb", target["region"]).describe_table(
                TableName=target["table"])["Table"]
            status = table.get("TableStatus")
            return status == "ACTIVE", f"table {status}", {}

        return timed(target, run)

    return probe


def bucket_probe(clients: Clients, vantage: str) -> Probe:
    """Head the bucket, then write and read back a small object under the probe prefix."""

    def probe(target: Mapping[str, Any], timeout_s: float) -> ProbeResult:
        def run() -> tuple[bool, str, dict[str, Any]]:
            s3 = clients.get("s3", target["region"])
            s3.head_bucket(Bucket=target["bucket"])
            key = f"{target.get('probe_key', '_standby-probe/')}{vantage}"
            body = f"{time.time():.3f}".encode()
            s3.put_object(Bucket=target["bucket"], Key=key, Body=body)
            got = s3.get_object(Bucket=target["bucket"], Key=key)["Body"].read()
            return got == body, "head+put+get ok" if got == body else "read back differs", {}

        return timed(target, run)

    return probe


def rds_sql_probe(clients: Clients) -> Probe:
    """``SELECT 1`` and replica lag, with credentials from the RDS-managed secret."""

    def connect(target: Mapping[str, Any], timeout_s: float) -> Any:
        user, password = db_credentials(clients, str(target.get("secret_arn", "")),
                                        str(target.get("region")))
        return connect_sql(target, user, password, timeout_s)

    def probe(target: Mapping[str, Any], timeout_s: float) -> ProbeResult:
        return sql_probe(target, timeout_s, connect)

    return probe


def connect_sql(target: Mapping[str, Any], user: str, password: str, timeout_s: float) -> Any:
    """A DB-API connection with the engine's driver (psycopg 3 or PyMySQL)."""
    ep = sqldb.Endpoint.parse(str(target["engine"]),
                              {"host": target["host"], "port": target.get("port")},
                              str(target["database"]))
    return sqldb.connect(ep, user, password, timeout_s)


def aws_probes(clients: Clients, vantage: str) -> dict[str, Probe]:
    return {
        "http": http_probe,
        "lambda": lambda_probe(clients, vantage),
        "dynamodb": dynamodb_probe(clients),
        "bucket": bucket_probe(clients, vantage),
        "sql": rds_sql_probe(clients),
    }
