"""AWS side of the wrapper: the pointer table, Secrets Manager, DynamoDB and S3."""

from __future__ import annotations

import base64
import decimal
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from components.runtime.aws.clients import Clients, db_credentials, error_code
from components.runtime.data_api import DataError, Request

if TYPE_CHECKING:
    from components.runtime.wrapper import WrapperConfig

#: The wrapper answers within its own timeout: fail fast, retry once.
WRAPPER_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=4,
                               retries={"max_attempts": 2, "mode": "standard"})
IDEM_ATTR = "_standby_idem"
_SER, _DES = TypeSerializer(), TypeDeserializer()
_UNAVAILABLE = {"ProvisionedThroughputExceededException", "ThrottlingException",
                "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable",
                "SlowDown", "InternalError"}


def _to_ddb(value: Any) -> dict[str, Any]:
    # Numbers travel as Decimal (DynamoDB's number type), never as binary floats.
    converted = json.loads(json.dumps(value), parse_float=decimal.Decimal)
    return {k: _SER.serialize(v) for k, v in converted.items()}


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

    return {k: plain(_DES.deserialize(v)) for k, v in item.items() if k != IDEM_ATTR}


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
    def __init__(self, cfg: WrapperConfig, clients: Clients | None = None) -> None:
        self.cfg = cfg
        self.clients = clients or Clients(config=WRAPPER_CLIENT_CONFIG)

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
                item = ddb.get_item(TableName=table, Key=_to_ddb(req.body["key"]),
                                    ConsistentRead=True).get("Item")
                if item is None:
                    raise DataError("NotFound", "kv.get: no item with this key")
                return {"item": _from_ddb(item)}
            if op == "kv.delete":
                ddb.delete_item(TableName=table, Key=_to_ddb(req.body["key"]))
                return {"deleted": True}
            item = _to_ddb(req.body["item"])
            if req.idempotency_key is None:
                ddb.put_item(TableName=table, Item=item)
                return {"replayed": False}
            item[IDEM_ATTR] = {"S": req.idempotency_key}
            try:
                ddb.put_item(TableName=table, Item=item,
                             ConditionExpression="attribute_not_exists(#i) OR #i <> :k",
                             ExpressionAttributeNames={"#i": IDEM_ATTR},
                             ExpressionAttributeValues={":k": {"S": req.idempotency_key}})
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return {"replayed": True}  # this exact write was applied before
                raise
            return {"replayed": False}
        except DataError:
            raise
        except (ClientError, BotoCoreError) as exc:
            raise _map(exc, f"{op} on {table} in {region}") from None

    def objects(self, op: str, region: str, bucket: str, req: Request) -> dict[str, Any]:
        s3 = self.clients.get("s3", region)
        try:
            if op == "object.get":
                out = s3.get_object(Bucket=bucket, Key=req.body["key"])
                body = out["Body"].read()
                return {"key": req.body["key"], "body_b64": base64.b64encode(body).decode(),
                        "content_type": out.get("ContentType"), "size": len(body)}
            if op == "object.put":
                meta = {"standby-idempotency-key": req.idempotency_key} if req.idempotency_key else {}  # noqa: E501
                s3.put_object(Bucket=bucket, Key=req.body["key"], Body=req.data,
                              ContentType=req.extra["content_type"], Metadata=meta)
                return {"key": req.body["key"], "size": len(req.data or b"")}
            out = s3.list_objects_v2(Bucket=bucket, Prefix=req.extra["prefix"],
                                     MaxKeys=req.extra["limit"])
            return {"objects": [{"key": o["Key"], "size": o["Size"]}
                                for o in out.get("Contents", [])
                                if not o["Key"].startswith("_standby-probe/")],
                    "truncated": bool(out.get("IsTruncated"))}
        except (ClientError, BotoCoreError) as exc:
            raise _map(exc, f"{op} on {bucket} in {region}") from None
