"""One region's copy of the witness lease on DynamoDB (``quorum_lease.LeaseStore``).

The item lives in that region's state table (a plain table, never a global table, whose
replicas could each accept a write): ``pk = witness#<key>``, ``sk = lease``, attributes
``epoch``, ``holder``, ``lease_until``. ``write`` is one conditional ``PutItem`` whose
condition is ``quorum_lease.may_write`` spelled in DynamoDB's expression language;
``release`` one conditional ``UpdateItem``; ``read`` a strongly consistent ``GetItem``.
IAM: ``dynamodb:GetItem``, ``dynamodb:PutItem``, ``dynamodb:UpdateItem`` on the table
(``components/aws/iam_actions.py``, unit ``aws/quorum_state.py``/``DynamoLeaseStore``).
A failed condition is ``False``; any other failure ``StoreError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.runtime.aws.clients import Clients, error_code
from components.runtime.engine import Side
from components.runtime.errors import StoreError
from components.runtime.quorum_lease import LeaseRecord

_NAMES = {"#e": "epoch", "#h": "holder", "#u": "lease_until"}

#: ``may_write``: never written; the same side extending (never shortening) its lease,
#: possibly at a higher epoch; or the other side's lease, at a lower epoch, ended
#: ``skew`` ago on the writer's clock.
WRITE_CONDITION = ("attribute_not_exists(pk) OR attribute_not_exists(#h) "
                   "OR (#h = :h AND #e <= :e AND #u <= :u) "
                   "OR (#h <> :h AND #e < :e AND #u <= :expired)")


def _n(v: float | int) -> dict[str, str]:
    return {"N": repr(v) if isinstance(v, float) else str(v)}


class DynamoLeaseStore:
    def __init__(self, clients: Clients, table: str, region: str,
                 name: str | None = None) -> None:
        self.ddb = clients.get("dynamodb", region)
        self.table = table
        self.name = name or region

    def _key(self, key: str) -> dict[str, Any]:
        return {"pk": {"S": f"witness#{key}"}, "sk": {"S": "lease"}}

    def _fail(self, what: str, exc: Exception) -> StoreError:
        code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        return StoreError(f"witness lease in {self.name} ({self.table}): {what} failed: "
                          f"{code}")

    def read(self, key: str) -> LeaseRecord:
        try:
            item = self.ddb.get_item(TableName=self.table, Key=self._key(key),
                                     ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("read", exc) from exc
        if not item or "holder" not in item:
            return LeaseRecord()
        holder: Side = "standby" if item["holder"]["S"] == "standby" else "primary"
        return LeaseRecord(int(item["epoch"]["N"]), holder, float(item["lease_until"]["N"]))

    @contextmanager
    def _condition(self, what: str, applied: list[bool]) -> Iterator[None]:
        try:
            yield
            applied.append(True)
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise self._fail(what, exc) from exc
            applied.append(False)
        except BotoCoreError as exc:
            raise self._fail(what, exc) from exc

    def write(self, key: str, new: LeaseRecord, now: float, skew_s: float) -> bool:
        if new.holder is None:
            raise ValueError("a lease record is written with its holder")
        applied: list[bool] = []
        with self._condition("write", applied):
            self.ddb.put_item(
                TableName=self.table, ConditionExpression=WRITE_CONDITION,
                Item={**self._key(key), "epoch": _n(new.epoch), "holder": {"S": new.holder},
                      "lease_until": _n(float(new.until))},
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={":h": {"S": new.holder}, ":e": _n(new.epoch),
                                           ":u": _n(float(new.until)),
                                           ":expired": _n(float(now - skew_s))})
        return applied[0]

    def release(self, key: str, epoch: int, holder: Side, now: float) -> bool:
        applied: list[bool] = []
        with self._condition("release", applied):
            self.ddb.update_item(
                TableName=self.table, Key=self._key(key), UpdateExpression="SET #u = :now",
                ConditionExpression="#e = :e AND #h = :h AND #u > :now",
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={":h": {"S": holder}, ":e": _n(epoch),
                                           ":now": _n(float(now))})
        return applied[0]
