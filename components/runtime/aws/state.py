"""The state table on DynamoDB: lease + fencing token, scope state + intent, votes, log.

Items (``pk``, ``sk``):
  ``lease#<layer>``, ``lease``       holder, lease_until, token (the counter; no expiry)
  ``scope#<layer>``, ``<scope>``     active, token, last_switch_at, last_practice_at,
                                     last_alert, intent (JSON) + intent_token (unfinished switch)
  ``vote#<layer>#<scope>``, vantage  streaks, at, expires_at (TTL: votes are ephemeral)
  ``log#<layer>``, ``<at>#<token>#<scope>``   one switch record (JSON), kept

Every read the protocol depends on is strongly consistent, and every write it depends on is
conditional; ``begin`` and ``commit`` are transactions that also check the lease. A failed
condition is ``LeaseLost``/``StaleToken``; any other failure (access denied, throttling, an
unreachable endpoint) is ``StoreError``, so a raw SDK error never escapes a switch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.runtime.aws.clients import Clients, error_code
from components.runtime.engine import Intent, ScopeState, Side, Vote
from components.runtime.errors import LeaseLost, StaleToken, StoreError
from components.runtime.lease import Lease, SwitchRecord

VOTE_TTL_S = 3600
EVIDENCE_MAX = 30_000


def _n(v: float | int) -> dict[str, str]:
    return {"N": repr(v) if isinstance(v, float) else str(v)}


def _num(item: dict[str, Any], key: str) -> float | None:
    v = item.get(key)
    return float(v["N"]) if v and "N" in v else None


@contextmanager
def _store_errors(what: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        raise StoreError(f"state table: {what} failed: {error_code(exc) or exc}") from exc
    except BotoCoreError as exc:
        raise StoreError(f"state table: {what} failed: {type(exc).__name__}: {exc}") from exc


def _cancel_reasons(exc: ClientError) -> list[str | None]:
    return [r.get("Code") for r in exc.response.get("CancellationReasons", [])]


class DynamoStateStore:
    def __init__(self, clients: Clients, table: str, region: str) -> None:
        self.ddb = clients.get("dynamodb", region)
        self.table = table

    def _lease_key(self, layer: str) -> dict[str, Any]:
        return {"pk": {"S": f"lease#{layer}"}, "sk": {"S": "lease"}}

    def _scope_key(self, layer: str, scope: str) -> dict[str, Any]:
        return {"pk": {"S": f"scope#{layer}"}, "sk": {"S": scope}}

    def _lease_check(self, lease: Lease, now: float) -> dict[str, Any]:
        return {"ConditionCheck": {
            "TableName": self.table, "Key": self._lease_key(lease.layer),
            "ConditionExpression": "holder = :h AND #tok = :t AND lease_until > :now",
            "ExpressionAttributeNames": {"#tok": "token"},
            "ExpressionAttributeValues": {":h": {"S": lease.holder}, ":t": _n(lease.token),
                                          ":now": _n(now)},
        }}

    def server_time(self) -> float:
        """The store's clock: the HTTP ``Date`` of a (cheap, strongly consistent) read, in
        epoch seconds, 1 s resolution. The ops CLI bounds its own clock's skew with it."""
        with _store_errors("read the server time"):
            out = self.ddb.get_item(TableName=self.table, ConsistentRead=True,
                                    Key=self._lease_key("clock"))
        date = out.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if not date:
            raise StoreError("state table: the response carries no Date header; cannot "
                             "check this machine's clock")
        return parsedate_to_datetime(date).timestamp()

    # -- lease ----------------------------------------------------------------------------

    def acquire(self, layer: str, holder: str, now: float, ttl_s: float) -> Lease | None:
        try:
            out = self.ddb.update_item(
                TableName=self.table, Key=self._lease_key(layer),
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
            raise StoreError(f"state table: acquire the lease failed: {error_code(exc)}"
                             ) from exc
        except BotoCoreError as exc:
            raise StoreError(f"state table: acquire the lease failed: {exc}") from exc
        attrs = out["Attributes"]
        return Lease(layer, holder, int(attrs["token"]["N"]), float(attrs["lease_until"]["N"]))

    def release(self, lease: Lease) -> None:
        with _store_errors("release the lease"):
            try:
                self.ddb.update_item(
                    TableName=self.table, Key=self._lease_key(lease.layer),
                    UpdateExpression="REMOVE holder SET lease_until = :zero",
                    ConditionExpression="holder = :h AND #tok = :t",
                    ExpressionAttributeNames={"#tok": "token"},
                    ExpressionAttributeValues={":h": {"S": lease.holder},
                                               ":t": _n(lease.token), ":zero": {"N": "0"}},
                )
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise

    # -- scope state ----------------------------------------------------------------------

    def read_scope(self, layer: str, scope: str) -> ScopeState:
        with _store_errors("read the scope"):
            item = self.ddb.get_item(TableName=self.table, ConsistentRead=True,
                                     Key=self._scope_key(layer, scope)).get("Item")
        return self._state(item) if item else ScopeState()

    @staticmethod
    def _state(item: dict[str, Any]) -> ScopeState:
        active = item.get("active", {}).get("S", "primary")
        raw_intent = item.get("intent", {}).get("S")
        intent = None
        if raw_intent:
            doc = json.loads(raw_intent)
            doc["targets"] = tuple(doc["targets"])
            intent = Intent(**doc)
        return ScopeState(
            active="standby" if active == "standby" else "primary",
            token=int(_num(item, "token") or 0),
            last_switch_at=_num(item, "last_switch_at"),
            last_practice_at=_num(item, "last_practice_at"),
            last_alert=item.get("last_alert", {}).get("S"),
            intent=intent,
        )

    def scopes(self, layer: str) -> dict[str, ScopeState]:
        with _store_errors("list the scopes"):
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
        with _store_errors("save alert bookkeeping"):
            self.ddb.update_item(TableName=self.table, Key=self._scope_key(layer, scope),
                                 UpdateExpression=expr.strip(), **kwargs)

    def _transact(self, what: str, lease: Lease, items: list[dict[str, Any]],
                  stale: str) -> None:
        """One transaction whose last item is the lease check: a cancelled lease check is
        ``LeaseLost``, another cancelled condition ``StaleToken``, anything else
        ``StoreError``."""
        with _store_errors(what):
            try:
                self.ddb.transact_write_items(TransactItems=items)
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                reasons = _cancel_reasons(exc)
                if len(reasons) == len(items) and reasons[-1] == "ConditionalCheckFailed":
                    raise LeaseLost(f"lease on {lease.layer} lost (token {lease.token})"
                                    ) from None
                if "ConditionalCheckFailed" in reasons:
                    raise StaleToken(stale) from None
                raise

    def begin(self, lease: Lease, scope: str, expected: Side, intent: Intent,
              now: float) -> None:
        cond = ("(active = :exp AND (attribute_not_exists(#tok) OR #tok < :t)) AND "
                "(attribute_not_exists(intent_token) OR intent_token < :t)")
        if expected == "primary":
            cond = ("(attribute_not_exists(active) OR active = :exp) AND "
                    "(attribute_not_exists(#tok) OR #tok < :t) AND "
                    "(attribute_not_exists(intent_token) OR intent_token < :t)")
        self._transact("record the switch intent", lease, [
            {"Update": {
                "TableName": self.table, "Key": self._scope_key(lease.layer, scope),
                "UpdateExpression": "SET intent = :i, intent_token = :t",
                "ConditionExpression": cond,
                "ExpressionAttributeNames": {"#tok": "token"},
                "ExpressionAttributeValues": {":exp": {"S": expected}, ":t": _n(lease.token),
                                              ":i": {"S": json.dumps(asdict(intent))}},
            }},
            self._lease_check(lease, now),
        ], f"{lease.layer}/{scope}: not {expected} at a token below {lease.token}, or a "
           "newer switch is unfinished")

    def progress(self, lease: Lease, scope: str, step: int) -> None:
        cur = self.read_scope(lease.layer, scope).intent
        if cur is None or cur.token != lease.token:
            raise StaleToken(f"{lease.layer}/{scope}: intent of token {lease.token} replaced "
                             "by a newer holder")
        doc = asdict(cur)
        doc["step"] = step
        with _store_errors("record switch progress"):
            try:
                self.ddb.update_item(
                    TableName=self.table, Key=self._scope_key(lease.layer, scope),
                    UpdateExpression="SET intent = :i",
                    ConditionExpression="intent_token = :t",
                    ExpressionAttributeValues={":i": {"S": json.dumps(doc)},
                                               ":t": _n(lease.token)},
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    raise StaleToken(f"{lease.layer}/{scope}: intent of token {lease.token} "
                                     "replaced by a newer holder") from None
                raise

    def commit(self, lease: Lease, scope: str, expected: Side, state: ScopeState,
               record: SwitchRecord, now: float) -> None:
        cond = ("active = :exp AND #tok < :t AND intent_token = :t")
        if expected == "primary":
            cond = ("(attribute_not_exists(active) OR active = :exp) AND "
                    "(attribute_not_exists(#tok) OR #tok < :t) AND intent_token = :t")
        values: dict[str, Any] = {":exp": {"S": expected}, ":t": _n(lease.token),
                                  ":to": {"S": state.active}}
        update = "SET active = :to, #tok = :t"
        if state.last_switch_at is not None:
            update += ", last_switch_at = :at"
            values[":at"] = _n(state.last_switch_at)
        self._transact("commit the switch", lease, [
            {"Update": {
                "TableName": self.table, "Key": self._scope_key(lease.layer, scope),
                "UpdateExpression": update + " REMOVE last_alert, intent, intent_token",
                "ConditionExpression": cond,
                "ExpressionAttributeNames": {"#tok": "token"},
                "ExpressionAttributeValues": values,
            }},
            {"Put": {"TableName": self.table, "Item": self._log_item(record)}},
            self._lease_check(lease, now),
        ], f"{lease.layer}/{scope}: not {expected} with the intent of token {lease.token} "
           "any more")

    # -- votes and log --------------------------------------------------------------------

    def put_vote(self, layer: str, scope: str, vote: Vote, gap_s: float = 0.0) -> bool:
        with _store_errors("store the vote"):
            try:
                self.ddb.put_item(
                    TableName=self.table, Item={
                        "pk": {"S": f"vote#{layer}#{scope}"}, "sk": {"S": vote.vantage},
                        "at": _n(vote.at), "primary_fail": _n(vote.primary_fail),
                        "primary_ok": _n(vote.primary_ok),
                        "standby_fail": _n(vote.standby_fail),
                        "standby_ok": _n(vote.standby_ok),
                        "expires_at": _n(int(vote.at) + VOTE_TTL_S)},
                    # A duplicate or late step of this vantage is refused, not counted.
                    ConditionExpression="attribute_not_exists(#at) OR #at <= :gate",
                    ExpressionAttributeNames={"#at": "at"},
                    ExpressionAttributeValues={":gate": _n(float(vote.at - gap_s))},
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
        return True

    def votes(self, layer: str, scope: str) -> list[Vote]:
        with _store_errors("read the votes"):
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
        with _store_errors("log the practice switch"):
            self.ddb.put_item(TableName=self.table, Item=self._log_item(record))

    def log(self, layer: str, limit: int = 20) -> list[SwitchRecord]:
        with _store_errors("read the switch log"):
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

