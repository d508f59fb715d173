"""AWS side of the wrapper: the pointer table, Secrets Manager, DynamoDB and S3.

A put (``kv.put``, ``object.put``) reads what it replaces first and writes only if that did
not change in between (a version number on the item, the ETag on the object), carrying the
idempotency keys applied to the item or object within the window (``recent_keys``): a late
retry of an earlier write answers ``replayed`` instead of overwriting a newer one.
"""

from __future__ import annotations

import base64
import decimal
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from components.runtime import recent_keys
from components.runtime.aws.clients import Clients, db_credentials, error_code
from components.runtime.data_api import KV_KEY, RESERVED_PREFIX, DataError, Request

if TYPE_CHECKING:
    from components.runtime.wrapper import WrapperConfig

#: The wrapper answers within its own timeout: fail fast, retry once.
WRAPPER_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=4,
                               retries={"max_attempts": 2, "mode": "standard"})
IDEM_ATTR = "_standby_idem"  # recent idempotency keys (``recent_keys``), a list of maps
VERSION_ATTR = "_standby_ver"  # bumped by every put: the condition of the next one
RECENT_META = "standby-recent"  # S3 user metadata: recent keys as compact JSON
S3_MAX_KEYS = 8  # user metadata is limited to 2 KB
PUT_ATTEMPTS = 4
_SER, _DES = TypeSerializer(), TypeDeserializer()
_UNAVAILABLE = {"ProvisionedThroughputExceededException", "ThrottlingException",
                "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable",
                "SlowDown", "InternalError"}


def _to_ddb(value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` was checked by ``data_api.kv_value``: numbers are already ``Decimal``
    within DynamoDB's range and precision."""
    return {k: _SER.serialize(v) for k, v in value.items()}


def _from_ddb(item: Mapping[str, Any]) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, decimal.Decimal):
            return int(v) if v == v.to_integral_value() else float(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, set)):
            return [plain(x) for x in v]
        if isinstance(v, (bytes, bytearray)):
            return base64.b64encode(bytes(v)).decode()
        return v

    return {k: plain(_DES.deserialize(v)) for k, v in item.items()
            if not k.startswith(RESERVED_PREFIX)}


def _map(exc: Exception, what: str) -> DataError:
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in ("ValidationException", "InvalidArgument", "InvalidObjectName"):
            return DataError("BadRequest", f"{what}: {code}: {exc.response['Error'].get('Message', '')}"[:400])  # noqa: E501
        if code in ("NoSuchKey", "404", "NotFound"):
            return DataError("NotFound", f"{what}: no such key")
        if code in _UNAVAILABLE:
            return DataError("Unavailable", f"{what}: {code}")
        return DataError("Internal", f"{what}: {code}")
    return DataError("Unavailable", f"{what}: {type(exc).__name__}: {str(exc)[:200]}")


class AwsBackends:
    def __init__(self, cfg: WrapperConfig, clients: Clients | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clients = clients or Clients(config=WRAPPER_CLIENT_CONFIG)
        self._now = now

    def read_pointer(self, key: str, consistent: bool) -> tuple[str, int]:
        item = self.clients.get("dynamodb", self.cfg.region).get_item(
            TableName=self.cfg.pointer_table, Key={"pointer": {"S": key}},
            ConsistentRead=consistent).get("Item")
        if not item:
            raise LookupError(f"pointer {key!r} missing from {self.cfg.pointer_table}")
        return item["active"]["S"], int(item.get("token", {}).get("N", "0"))

    def credentials(self) -> tuple[str, str]:
        try:
            return db_credentials(self.clients, str(self.cfg.db_secret_arn), self.cfg.region)
        except LookupError as exc:
            raise DataError("Unavailable", str(exc)) from None

    def kv(self, op: str, region: str, req: Request) -> dict[str, Any]:
        ddb = self.clients.get("dynamodb", region)
        table = str(self.cfg.db_table)
        try:
            if op == "kv.get":
                item = ddb.get_item(TableName=table, Key=_to_ddb(req.extra["key"]),
                                    ConsistentRead=True).get("Item")
                if item is None:
                    raise DataError("NotFound", "kv.get: no item with this key")
                return {"item": _from_ddb(item)}
            if op == "kv.delete":
                ddb.delete_item(TableName=table, Key=_to_ddb(req.extra["key"]))
                return {"deleted": True}
            return self._put_item(ddb, table, req)
        except DataError:
            raise
        except (ClientError, BotoCoreError) as exc:
            raise _map(exc, f"{op} on {table} in {region}") from None

    def _put_item(self, ddb: Any, table: str, req: Request) -> dict[str, Any]:
        item: dict[str, Any] = req.extra["item"]
        key = {k: item[k] for k in KV_KEY}
        digest = recent_keys.content_hash(item)
        for _ in range(PUT_ATTEMPTS):
            old = ddb.get_item(TableName=table, Key=_to_ddb(key), ConsistentRead=True,
                               ProjectionExpression="#i, #v",
                               ExpressionAttributeNames={"#i": IDEM_ATTR, "#v": VERSION_ATTR},
                               ).get("Item")
            plain = {k: _DES.deserialize(v) for k, v in (old or {}).items()}
            entries = recent_keys.from_plain(plain.get(IDEM_ATTR))
            if req.idempotency_key is not None and recent_keys.seen(
                    entries, req.idempotency_key, digest, "kv.put"):
                return {"replayed": True}
            entries = recent_keys.remember(entries, req.idempotency_key, digest,
                                           int(self._now()), self.cfg.idempotency_ttl_s)
            version = plain.get(VERSION_ATTR)
            new = dict(item)
            new[VERSION_ATTR] = decimal.Decimal(int(version or 0) + 1)
            if entries:
                new[IDEM_ATTR] = recent_keys.to_plain(entries)
            cond: dict[str, Any]
            if old is None:
                cond = {"ConditionExpression": "attribute_not_exists(#k)",
                        "ExpressionAttributeNames": {"#k": KV_KEY[0]}}
            elif version is None:
                cond = {"ConditionExpression": "attribute_exists(#k) AND attribute_not_exists(#v)",
                        "ExpressionAttributeNames": {"#k": KV_KEY[0], "#v": VERSION_ATTR}}
            else:
                cond = {"ConditionExpression": "#v = :v",
                        "ExpressionAttributeNames": {"#v": VERSION_ATTR},
                        "ExpressionAttributeValues": {":v": _SER.serialize(version)}}
            try:
                ddb.put_item(TableName=table, Item=_to_ddb(new), **cond)
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    continue  # another write landed in between: look again
                raise
            return {"replayed": False}
        raise DataError("Aborted", f"kv.put: the item changed {PUT_ATTEMPTS} times while this "
                        "write ran; resend")

    def objects(self, op: str, region: str, bucket: str, req: Request) -> dict[str, Any]:
        s3 = self.clients.get("s3", region)
        try:
            if op == "object.get":
                out = s3.get_object(Bucket=bucket, Key=req.body["key"])
                body = out["Body"].read()
                return {"key": req.body["key"], "body_b64": base64.b64encode(body).decode(),
                        "content_type": out.get("ContentType"), "size": len(body)}
            if op == "object.put":
                return self._put_object(s3, bucket, req)
            out = s3.list_objects_v2(Bucket=bucket, Prefix=req.extra["prefix"],
                                     MaxKeys=req.extra["limit"])
            return {"objects": [{"key": o["Key"], "size": o["Size"]}
                                for o in out.get("Contents", [])
                                if not o["Key"].startswith("_standby-probe/")],
                    "truncated": bool(out.get("IsTruncated"))}
        except DataError:
            raise
        except (ClientError, BotoCoreError) as exc:
            raise _map(exc, f"{op} on {bucket} in {region}") from None

    def _put_object(self, s3: Any, bucket: str, req: Request) -> dict[str, Any]:
        key, data = req.body["key"], req.data or b""
        digest = recent_keys.content_hash([base64.b64encode(data).decode(),
                                           req.extra["content_type"]])
        for _ in range(PUT_ATTEMPTS):
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    raise
                head = None
            meta = (head or {}).get("Metadata") or {}
            try:
                entries = recent_keys.from_plain(json.loads(meta.get(RECENT_META, "[]")))
            except ValueError:
                entries = []
            if req.idempotency_key is not None and recent_keys.seen(
                    entries, req.idempotency_key, digest, "object.put"):
                return {"key": key, "size": len(data), "replayed": True}
            entries = recent_keys.remember(entries, req.idempotency_key, digest,
                                           int(self._now()), self.cfg.idempotency_ttl_s,
                                           S3_MAX_KEYS)
            new_meta = {RECENT_META: json.dumps(recent_keys.to_plain(entries),
                                                separators=(",", ":"))} if entries else {}
            # Written only over exactly what was read (S3 conditional writes).
            cond = {"IfMatch": head["ETag"]} if head else {"IfNoneMatch": "*"}
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=data,
                              ContentType=req.extra["content_type"], Metadata=new_meta, **cond)
            except ClientError as exc:
                if error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    continue
                raise
            return {"key": key, "size": len(data), "replayed": False}
        raise DataError("Aborted", f"object.put: the object changed {PUT_ATTEMPTS} times while "
                        "this write ran; resend")
