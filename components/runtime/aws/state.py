"""The state table on DynamoDB: lease + fencing token, scope state, votes, switch log.

Items (``pk``, ``sk``):
  ``lease#<layer>``, ``lease``       holder, lease_until, token (the counter; no expiry)
  ``scope#<layer>``, ``<scope>``     active, token, last_switch_at, last_practice_at, last_alert
  ``vote#<layer>#<scope>``, vantage  streaks, at, expires_at (TTL: votes are ephemeral)
  ``log#<layer>``, ``<at>#<token>#<scope>``   one switch record (JSON), kept

Every read the protocol depends on is strongly consistent, and every write it depends on is
conditional; the commit is one transaction (scope update + log put + lease check).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from components.runtime.aws.clients import Clients, error_code
from components.runtime.engine import ScopeState, Side, Vote
from components.runtime.errors import LeaseLost, StaleToken
from components.runtime.lease import Lease, SwitchRecord

VOTE_TTL_S = 3600
EVIDENCE_MAX = 30_000


def _n(v: float | int) -> dict[str, str]:
    return {"N": repr(v) if isinstance(v, float) else str(v)}


def _num(item: dict[str, Any], key: str) -> float | None:
    v = item.get(key)
    return float(v["N"]) if v and "N" in v else None


class DynamoStateStore:
    def __init__(self, clients: Clients, table: str, region: str) -> None:
        self.ddb = clients.get("dynamodb", region)
        self.table = table

    # -- lease ----------------------------------------------------------------------------

    def acquire(self, layer: str, holder: str, now: float, ttl_s: float) -> Lease | None:
        try:
            out = self.ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"lease#{layer}"}, "sk": {"S": "lease"}},
                UpdateExpression="SET holder = :h, lease_until = :u ADD #tok :one",
                ConditionExpression="attribute_not_exists(holder) OR lease_until < :now "
                                    "OR holder = :h",
                ExpressionAttributeNames={"#tok": "token"},
                ExpressionAttributeValues={":h": {"S": holder}, ":u": _n(now + ttl_s),
                                           ":now": _n(now), ":one": {"N": "1"}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        attrs = out["Attributes"]
        return Lease(layer, holder, int(attrs["token"]["N"]), float(attrs["lease_until"]["N"]))

    def release(self, lease: Lease) -> None:
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"lease#{lease.layer}"}, "sk": {"S": "lease"}},
                UpdateExpression="REMOVE holder SET lease_until = :zero",
                ConditionExpression="holder = :h AND #tok = :t",
                ExpressionAttributeNames={"#tok": "token"},
                ExpressionAttributeValues={":h": {"S": lease.holder}, ":t": _n(lease.token),
                                           ":zero": {"N": "0"}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    # -- scope state ----------------------------------------------------------------------

    def read_scope(self, layer: str, scope: str) -> ScopeState:
        item = self.ddb.get_item(
            TableName=self.table, ConsistentRead=True,
            Key={"pk": {"S": f"scope#{layer}"}, "sk": {"S": scope}},
        ).get("Item")
        return self._state(item) if item else ScopeState()

    @staticmethod
    def _state(item: dict[str, Any]) -> ScopeState:
        active = item.get("active", {}).get("S", "primary")
        return ScopeState(
            active="standby" if active == "standby" else "primary",
            token=int(_num(item, "token") or 0),
            last_switch_at=_num(item, "last_switch_at"),
            last_practice_at=_num(item, "last_practice_at"),
            last_alert=item.get("last_alert", {}).get("S"),
        )

    def scopes(self, layer: str) -> dict[str, ScopeState]:
        out = self.ddb.query(
            TableName=self.table, ConsistentRead=True,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"scope#{layer}"}},
        )
        return {i["sk"]["S"]: self._state(i) for i in out.get("Items", [])}

    def save_scope_meta(self, layer: str, scope: str, state: ScopeState) -> None:
        sets, removes, values = [], [], {}
        for key, val in (("last_practice_at", state.last_practice_at),
                         ("last_alert", state.last_alert)):
            if val is None:
                removes.append(key)
            else:
                sets.append(f"{key} = :{key}")
                values[f":{key}"] = {"S": val} if isinstance(val, str) else _n(val)
        expr = ("SET " + ", ".join(sets) if sets else "") + (
            " REMOVE " + ", ".join(removes) if removes else "")
        kwargs: dict[str, Any] = {}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        self.ddb.update_item(
            TableName=self.table, Key={"pk": {"S": f"scope#{layer}"}, "sk": {"S": scope}},
            UpdateExpression=expr.strip(), **kwargs,
        )

    def commit(self, lease: Lease, scope: str, expected: Side, state: ScopeState,
               record: SwitchRecord, now: float) -> None:
        cond = "(active = :exp AND (attribute_not_exists(#tok) OR #tok < :t))"
        if expected == "primary":
            cond = f"attribute_not_exists(active) OR {cond}"
        values: dict[str, Any] = {":exp": {"S": expected}, ":t": _n(lease.token),
                                  ":to": {"S": state.active},
                                  ":at": _n(state.last_switch_at or now)}
        try:
            self.ddb.transact_write_items(TransactItems=[
                {"Update": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": f"scope#{lease.layer}"}, "sk": {"S": scope}},
                    "UpdateExpression": "SET active = :to, #tok = :t, last_switch_at = :at "
                                        "REMOVE last_alert",
                    "ConditionExpression": cond,
                    "ExpressionAttributeNames": {"#tok": "token"},
                    "ExpressionAttributeValues": values,
                }},
                {"Put": {"TableName": self.table, "Item": self._log_item(record)}},
                {"ConditionCheck": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": f"lease#{lease.layer}"}, "sk": {"S": "lease"}},
                    "ConditionExpression": "holder = :h AND #tok = :t AND lease_until > :now",
                    "ExpressionAttributeNames": {"#tok": "token"},
                    "ExpressionAttributeValues": {":h": {"S": lease.holder},
                                                  ":t": _n(lease.token), ":now": _n(now)},
                }},
            ])
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if len(reasons) > 2 and reasons[2] == "ConditionalCheckFailed":
                raise LeaseLost(f"lease on {lease.layer} lost before commit "
                                f"(token {lease.token})") from None
            raise StaleToken(f"{lease.layer}/{scope}: not {expected} at a token below "
                             f"{lease.token} any more") from None

    # -- votes and log --------------------------------------------------------------------

    def put_vote(self, layer: str, scope: str, vote: Vote) -> None:
        self.ddb.put_item(TableName=self.table, Item={
            "pk": {"S": f"vote#{layer}#{scope}"}, "sk": {"S": vote.vantage},
            "at": _n(vote.at), "primary_fail": _n(vote.primary_fail),
            "primary_ok": _n(vote.primary_ok), "standby_fail": _n(vote.standby_fail),
            "standby_ok": _n(vote.standby_ok), "expires_at": _n(int(vote.at) + VOTE_TTL_S),
        })

    def votes(self, layer: str, scope: str) -> list[Vote]:
        out = self.ddb.query(
            TableName=self.table, ConsistentRead=True,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"vote#{layer}#{scope}"}},
        )
        return [Vote(i["sk"]["S"], float(i["at"]["N"]), int(i["primary_fail"]["N"]),
                     int(i["primary_ok"]["N"]), int(i["standby_fail"]["N"]),
                     int(i["standby_ok"]["N"])) for i in out.get("Items", [])]

    @staticmethod
    def _log_item(r: SwitchRecord) -> dict[str, Any]:
        doc = r.as_dict()
        evidence = json.dumps(doc.pop("evidence"), default=str)
        if len(evidence) > EVIDENCE_MAX:
            evidence = json.dumps({"truncated": evidence[:EVIDENCE_MAX]})
        return {
            "pk": {"S": f"log#{r.layer}"},
            "sk": {"S": f"{r.at:017.3f}#{r.token:010d}#{r.scope}"},
            "record": {"S": json.dumps(doc, default=str)},
            "evidence": {"S": evidence},
        }

    def record(self, record: SwitchRecord) -> None:
        self.ddb.put_item(TableName=self.table, Item=self._log_item(record))

    def log(self, layer: str, limit: int = 20) -> list[SwitchRecord]:
        out = self.ddb.query(
            TableName=self.table, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"log#{layer}"}},
            ScanIndexForward=False, Limit=limit,
        )
        records = []
        for i in out.get("Items", []):
            doc = json.loads(i["record"]["S"])
            doc["evidence"] = json.loads(i.get("evidence", {}).get("S", "{}"))
            records.append(SwitchRecord(**doc))
        return records
