"""Tencent side of the wrapper: the data pointer in the SQL state store, the CDB account and
addresses from the DSN secret, and COS objects.

* The pointer is the ``data`` row of the state store (``SqlStateStore.read_pointer``). No row
  means no switch ever committed, so the data is where the deploy put it: the primary region
  (token 0).
* The database account is the DSN secret's ``user``/``password`` (the deploy's least-privilege
  account, ``components/tencent/cdb.py``). The primary's address is in the secret; the DR
  instance has no address output at deploy time, so its address is looked up with
  ``DescribeDBInstances`` on first use (``CdbEndpoints``), and a failed lookup answers
  ``Unavailable`` (retryable) and is tried again on the next request.
* COS ``object.put`` keeps the idempotency keys applied to the object within the window in its
  user metadata (``x-cos-meta-standby-recent``), read with a HEAD first: a late retry of an
  earlier write answers ``replayed`` instead of writing again. COS has no conditional
  overwrite (no If-Match on PUT Object), so two different writers racing on one key are
  last-writer-wins, as with any plain COS client.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from components.runtime import recent_keys
from components.runtime.data_api import DataError, Request
from components.runtime.errors import StoreError, SwitchError
from components.runtime.sql_state import SqlStateStore
from components.runtime.sqldb import Endpoint
from components.runtime.tencent.cdb import address
from components.runtime.tencent.client import TencentApi, TencentApiError

RECENT_META = "x-cos-meta-standby-recent"
PROBE_PREFIX = "_standby-probe/"
COS_MAX_KEYS = 8  # user metadata is limited to 2 KB per object
DSN_DR_KEYS = ("primary_region", "standby_region", "standby_instance_id")


class CdbEndpoints(Mapping[str, Endpoint]):
    """Endpoints by data region: the primary's from the DSN secret, the DR instance's from
    ``DescribeDBInstances`` on first use."""

    def __init__(self, api: TencentApi, dsn: Mapping[str, Any]) -> None:
        self.api = api
        self.database = str(dsn["database"])
        self.primary_region = str(dsn["primary_region"])
        self._known = {self.primary_region: Endpoint("mysql", str(dsn["host"]),
                                                     int(dsn["port"]), self.database)}
        self._dr: tuple[str, str] | None = None
        if dsn.get("standby_instance_id"):
            self._dr = (str(dsn["standby_region"]), str(dsn["standby_instance_id"]))
        self._lock = threading.Lock()

    def __getitem__(self, region: str) -> Endpoint:
        with self._lock:
            if region in self._known:
                return self._known[region]
        if self._dr is None or region != self._dr[0]:
            raise KeyError(region)
        try:
            host, port = address(self.api, *self._dr)
        except (TencentApiError, SwitchError) as exc:
            raise DataError("Unavailable", f"address of CDB instance {self._dr[1]} in "
                            f"{region}: {exc}") from None
        ep = Endpoint("mysql", host, port, self.database)
        with self._lock:
            self._known[region] = ep
        return ep

    def __iter__(self) -> Iterator[str]:
        return iter([self.primary_region, *([self._dr[0]] if self._dr else [])])

    def __len__(self) -> int:
        return 1 + (self._dr is not None)


def _cos_error(exc: Exception, what: str) -> DataError:
    from qcloud_cos.cos_exception import CosServiceError

    if isinstance(exc, CosServiceError):
        code, status = str(exc.get_error_code()), int(exc.get_status_code())
        if code == "NoSuchKey" or (status == 404 and code != "NoSuchBucket"):
            return DataError("NotFound", f"{what}: no such key")
        if code in ("InvalidArgument", "InvalidURI", "KeyTooLong"):
            return DataError("BadRequest", f"{what}: {code}")
        if status >= 500 or code in ("SlowDown", "RequestTimeout"):
            return DataError("Unavailable", f"{what}: {code}")
        return DataError("Internal", f"{what}: {code} (HTTP {status})")
    return DataError("Unavailable", f"{what}: {type(exc).__name__}: {str(exc)[:200]}")


class TencentBackends:
    def __init__(self, api: TencentApi, store: SqlStateStore, dsn: Mapping[str, Any],
                 idempotency_ttl_s: float, now: Callable[[], float] = time.time) -> None:
        self.api = api
        self.store = store
        self.primary_region = str(dsn["primary_region"])
        self._account = (str(dsn["user"]), str(dsn["password"]))
        self.idempotency_ttl_s = idempotency_ttl_s
        self._now = now

    def read_pointer(self, key: str, consistent: bool) -> tuple[str, int]:
        # Every read of the SQL store is a read of its primary: always consistent.
        try:
            value, token = self.store.read_pointer(key)
        except StoreError as exc:
            raise LookupError(f"pointer {key!r}: {exc}") from None
        return (value, token) if value is not None else (self.primary_region, 0)

    def credentials(self) -> tuple[str, str]:
        return self._account

    def kv(self, op: str, region: str, req: Request) -> dict[str, Any]:
        raise DataError("BadRequest", f"op {op}: this topology's database is mysql; use op sql")

    def objects(self, op: str, region: str, bucket: str, req: Request) -> dict[str, Any]:
        from qcloud_cos.cos_exception import CosClientError, CosServiceError

        cos = self.api.cos(region)
        try:
            if op == "object.get":
                out = cos.get_object(Bucket=bucket, Key=req.body["key"])
                body = out["Body"].get_raw_stream().read()
                return {"key": req.body["key"], "body_b64": base64.b64encode(body).decode(),
                        "content_type": out.get("Content-Type"), "size": len(body)}
            if op == "object.put":
                return self._put_object(cos, bucket, req)
            listed = cos.list_objects(Bucket=bucket, Prefix=req.extra["prefix"],
                                      MaxKeys=req.extra["limit"])
            # The monitors' probe objects are theirs, not the application's.
            return {"objects": [{"key": o["Key"], "size": int(o["Size"])}
                                for o in listed.get("Contents") or []
                                if not o["Key"].startswith(PROBE_PREFIX)],
                    "truncated": str(listed.get("IsTruncated")).lower() == "true"}
        except (CosServiceError, CosClientError) as exc:
            raise _cos_error(exc, f"{op} on {bucket} in {region}") from None

    def _put_object(self, cos: Any, bucket: str, req: Request) -> dict[str, Any]:
        from qcloud_cos.cos_exception import CosServiceError

        key, data = req.body["key"], req.data or b""
        digest = recent_keys.content_hash([base64.b64encode(data).decode(),
                                           req.extra["content_type"]])
        try:
            head = {k.lower(): v for k, v in cos.head_object(Bucket=bucket, Key=key).items()}
        except CosServiceError as exc:
            if int(exc.get_status_code()) != 404:
                raise
            head = {}
        try:
            entries = recent_keys.from_plain(json.loads(head.get(RECENT_META, "[]")))
        except ValueError:
            entries = []
        if req.idempotency_key is not None and recent_keys.seen(
                entries, req.idempotency_key, digest, "object.put"):
            return {"key": key, "size": len(data), "replayed": True}
        entries = recent_keys.remember(entries, req.idempotency_key, digest, int(self._now()),
                                       self.idempotency_ttl_s, COS_MAX_KEYS)
        meta = {RECENT_META: json.dumps(recent_keys.to_plain(entries),
                                        separators=(",", ":"))} if entries else {}
        cos.put_object(Bucket=bucket, Key=key, Body=data,
                       ContentType=req.extra["content_type"], Metadata=meta)
        return {"key": key, "size": len(data), "replayed": False}
