"""The migration state store on a DynamoDB table (``--state dynamodb://TABLE?region=...``).

The same contract as the SQLite store, with DynamoDB's conditional writes: every change of
the migration item is a compare-and-set on its ``version`` (and, for a runner, on its
fencing ``token``), so a runner that lost its lease cannot write, and two writers never
lose each other's update. The table has a string partition key ``pk`` (the migration id)
and a string sort key ``sk``: ``migration`` (the record), ``history#<seq>`` (one item per
phase change, written in the same transaction as the change) and ``chunk#<table>#<n>``
(the last verify's chunks). The table is made by the deployment (or by the caller); this
module never creates it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from components.migrate.phases import Phase, check_transition
from components.migrate.state import Chunk, Fenced, LeaseHeld, Record, StateError

_MAIN = "migration"
_RETRIES = 20


def _s(v: str) -> dict[str, str]:
    return {"S": v}


def _n(v: float) -> dict[str, str]:
    return {"N": repr(v) if isinstance(v, float) else str(v)}


class DynamoDBStore:
    def __init__(self, table: str, client: Any, clock: Any = time.time) -> None:
        self.table, self.db, self._clock = table, client, clock
        try:
            desc = client.describe_table(TableName=table)["Table"]
        except client.exceptions.ResourceNotFoundException:
            raise StateError(f"state table {table!r} does not exist; allowed: a table with a "
                             "string partition key 'pk' and a string sort key 'sk'") from None
        keys = {k["AttributeName"]: k["KeyType"] for k in desc["KeySchema"]}
        if keys != {"pk": "HASH", "sk": "RANGE"}:
            raise StateError(f"state table {table!r} has the key {keys}; allowed: partition "
                             "key 'pk' and sort key 'sk' (both strings)")

    def now(self) -> float:
        return float(self._clock())

    # -- reading ---------------------------------------------------------------------------

    def _item(self, mid: str) -> dict[str, Any] | None:
        out = self.db.get_item(TableName=self.table, Key={"pk": _s(mid), "sk": _s(_MAIN)},
                               ConsistentRead=True)
        item: dict[str, Any] | None = out.get("Item")
        return item

    @staticmethod
    def _record(item: dict[str, Any]) -> Record:
        return Record(
            id=item["pk"]["S"], source=item["source"]["S"], target=item["target"]["S"],
            engine=item["engine"]["S"], phase=Phase(item["phase"]["S"]),
            paused=bool(item["paused"]["BOOL"]), token=int(item["token"]["N"]),
            holder=item["holder"]["S"] if "holder" in item else None,
            lease_until=float(item["lease_until"]["N"]),
            request=json.loads(item["request"]["S"]) if "request" in item else None,
            data=json.loads(item["data"]["S"]), updated=float(item["updated"]["N"]))

    def _must(self, mid: str) -> tuple[Record, int]:
        item = self._item(mid)
        if item is None:
            raise StateError(f"no migration {mid!r} in state table {self.table}; create it "
                             "with `standby migrate start`")
        return self._record(item), int(item["version"]["N"])

    def get(self, mid: str) -> Record | None:
        item = self._item(mid)
        return None if item is None else self._record(item)

    # -- the compare-and-set ---------------------------------------------------------------

    def _cas(self, mid: str, version: int, sets: dict[str, dict[str, Any]],
             removes: tuple[str, ...] = (), extra: list[dict[str, Any]] | None = None) -> bool:
        """Write ``sets`` if the item is still at ``version``; False if someone got there
        first. ``extra``: more transaction items (history) that commit with it or not."""
        names = {f"#a{i}": k for i, k in enumerate([*sets, *removes, "version"])}
        rev = {v: k for k, v in names.items()}
        expr = "SET " + ", ".join(f"{rev[k]} = :v{i}" for i, k in enumerate(sets))
        expr += f", {rev['version']} = :next"
        if removes:
            expr += " REMOVE " + ", ".join(rev[k] for k in removes)
        values = {f":v{i}": v for i, v in enumerate(sets.values())}
        values |= {":next": _n(version + 1), ":seen": _n(version)}
        update = {"TableName": self.table, "Key": {"pk": _s(mid), "sk": _s(_MAIN)},
                  "UpdateExpression": expr, "ConditionExpression": f"{rev['version']} = :seen",
                  "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}
        try:
            if extra:
                self.db.transact_write_items(TransactItems=[{"Update": update}, *extra])
            else:
                self.db.update_item(**update)
            return True
        except (self.db.exceptions.ConditionalCheckFailedException,
                self.db.exceptions.TransactionCanceledException):
            return False

    # -- the contract ----------------------------------------------------------------------

    def create(self, mid: str, source: str, target: str, engine: str) -> Record:
        now = self._clock()
        item = {"pk": _s(mid), "sk": _s(_MAIN), "source": _s(source), "target": _s(target),
                "engine": _s(engine), "phase": _s(Phase.PLANNED.value), "paused": {"BOOL": False},
                "token": _n(0), "lease_until": _n(0), "data": _s("{}"), "updated": _n(now),
                "version": _n(0)}
        try:
            self.db.put_item(TableName=self.table, Item=item,
                             ConditionExpression="attribute_not_exists(pk)")
        except self.db.exceptions.ConditionalCheckFailedException:
            rec, _ = self._must(mid)
            if (rec.source, rec.target) != (source, target):
                raise StateError(f"migration {mid!r} already exists with source {rec.source} "
                                 f"and target {rec.target}; use another --id or the same "
                                 "endpoints") from None
            return rec
        return self._must(mid)[0]

    def acquire(self, mid: str, holder: str, lease_s: float) -> Record:
        for _ in range(_RETRIES):
            rec, version = self._must(mid)
            now = self._clock()
            if rec.holder not in (None, holder) and rec.lease_until > now:
                raise LeaseHeld(f"migration {mid!r} is run by {rec.holder} (lease for another "
                                f"{rec.lease_until - now:.1f} s)")
            if self._cas(mid, version, {"token": _n(rec.token + 1), "holder": _s(holder),
                                        "lease_until": _n(now + lease_s), "updated": _n(now)}):
                return self._must(mid)[0]
        raise LeaseHeld(f"migration {mid!r}: the lease is contended; try again")

    def _fenced(self, mid: str, token: int, holder: str | None = None) -> tuple[Record, int]:
        rec, version = self._must(mid)
        if rec.token != token or rec.holder is None or (holder and rec.holder != holder):
            raise Fenced(f"migration {mid!r}: token {token} was superseded by {rec.token} "
                         f"(holder {rec.holder}); this runner must stop")
        return rec, version

    def renew(self, mid: str, holder: str, token: int, lease_s: float) -> None:
        for _ in range(_RETRIES):
            _, version = self._fenced(mid, token, holder)
            now = self._clock()
            if self._cas(mid, version, {"lease_until": _n(now + lease_s), "updated": _n(now)}):
                return
        raise Fenced(f"migration {mid!r}: could not renew the lease")

    def release(self, mid: str, holder: str, token: int) -> None:
        for _ in range(_RETRIES):
            rec, version = self._must(mid)
            if rec.token != token or rec.holder != holder:
                return
            if self._cas(mid, version, {"lease_until": _n(0)}, removes=("holder",)):
                return

    def save(self, mid: str, token: int, *, phase: Phase | None = None,
             paused: bool | None = None, data: dict[str, Any] | None = None,
             clear_request: str | None = None) -> Record:
        for _ in range(_RETRIES):
            rec, version = self._fenced(mid, token)
            now = self._clock()
            sets: dict[str, dict[str, Any]] = {"updated": _n(now)}
            extra: list[dict[str, Any]] = []
            if phase is not None and phase != rec.phase:
                check_transition(rec.phase, phase)
                sets["phase"] = _s(phase.value)
                extra.append({"Put": {
                    "TableName": self.table, "ConditionExpression": "attribute_not_exists(pk)",
                    "Item": {"pk": _s(mid), "sk": _s(f"history#{version + 1:012d}"),
                             "at": _n(now), "from": _s(rec.phase.value),
                             "to": _s(phase.value), "token": _n(token)}}})
            if paused is not None:
                sets["paused"] = {"BOOL": paused}
            if data:
                sets["data"] = _s(json.dumps({**rec.data, **data}, default=str))
            removes: tuple[str, ...] = ()
            if clear_request is not None and rec.request is not None \
                    and rec.request.get("rid") == clear_request:
                removes = ("request",)
            if self._cas(mid, version, sets, removes, extra):
                return self._must(mid)[0]
        raise StateError(f"migration {mid!r}: the record is contended; try again")

    def put_chunks(self, mid: str, token: int, chunks: list[Chunk]) -> None:
        """The last verify's chunks. Not one transaction (there may be thousands): the token
        is checked before and after, so a runner that lost its lease stops with Fenced; its
        chunks are a report, never an input to a decision."""
        self._fenced(mid, token)
        old = self._query(mid, "chunk#")
        with self._batch() as batch:
            for item in old:
                batch.append({"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}})
            for c in chunks:
                batch.append({"PutRequest": {"Item": {
                    "pk": _s(mid), "sk": _s(f"chunk#{c.table}#{c.index:08d}"),
                    "chunk": _s(json.dumps(c.__dict__))}}})
        self._fenced(mid, token)

    def chunks(self, mid: str) -> list[Chunk]:
        return [Chunk(**json.loads(i["chunk"]["S"])) for i in self._query(mid, "chunk#")]

    def request(self, mid: str, command: str, args: dict[str, Any]) -> str:
        rid = os.urandom(8).hex()
        for _ in range(_RETRIES):
            rec, version = self._must(mid)
            if rec.request is not None:
                raise StateError(f"migration {mid!r} already has a pending request "
                                 f"{rec.request.get('command')!r}; wait for it")
            body = json.dumps({"rid": rid, "command": command, "args": args})
            if self._cas(mid, version, {"request": _s(body)}):
                return rid
        raise StateError(f"migration {mid!r}: the record is contended; try again")

    def history(self, mid: str) -> list[dict[str, Any]]:
        return [{"at": float(i["at"]["N"]), "from": i["from"]["S"], "to": i["to"]["S"],
                 "token": int(i["token"]["N"])} for i in self._query(mid, "history#")]

    # -- plumbing --------------------------------------------------------------------------

    def _query(self, mid: str, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":p": _s(mid), ":s": _s(prefix)}}
        for _ in range(10_000):  # pages; bounded
            out = self.db.query(**kwargs)
            items += out.get("Items", [])
            if "LastEvaluatedKey" not in out:
                break
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        return items

    def _batch(self) -> _Batch:
        return _Batch(self.db, self.table)


class _Batch:
    """BatchWriteItem in groups of 25 (the AWS limit), retrying unprocessed items."""

    def __init__(self, db: Any, table: str) -> None:
        self.db, self.table = db, table
        self.items: list[dict[str, Any]] = []

    def append(self, req: dict[str, Any]) -> None:
        self.items.append(req)

    def __enter__(self) -> _Batch:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return
        for i in range(0, len(self.items), 25):
            todo = {self.table: self.items[i:i + 25]}
            for attempt in range(8):
                left = self.db.batch_write_item(RequestItems=todo).get("UnprocessedItems")
                if not left:
                    break
                todo = left
                time.sleep(0.05 * 2 ** attempt)
            else:
                raise StateError(f"state table {self.table}: batch write not processed")
