"""DynamoDB Streams for the migration: reading shards from a checkpointed position, and the
replay rule (every event, in per-shard order, unconditionally; a REMOVE during the backfill
also leaves a tombstone).

Positions are the last *applied* sequence number of each shard, never the last received one:
a runner that dies after reading a page and before writing it reads the page again. Replay is
idempotent (a put of the new image, a delete), so a page delivered twice does no harm.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from components.migrate.adapter import MigrationError

Item = dict[str, Any]  # the low-level AttributeValue map, as boto3's client returns it


def key_of(item: Item, key_names: list[str]) -> str:
    """A stable text form of an item's primary key: tombstones and verify are keyed by it."""
    return json.dumps({k: item[k] for k in key_names}, sort_keys=True, separators=(",", ":"))


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            # String, number and binary sets are unordered: the service may return their
            # members in any order, so a hash must not depend on it.
            out[k] = sorted(v) if k in ("SS", "NS", "BS") else _canonical(v)
        return out
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def item_hash(item: Item) -> str:
    text = json.dumps(_canonical(item), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Page:
    shard: str
    records: list[dict[str, Any]]
    last_seq: str | None  # the last sequence number in this page
    done: bool  # the shard is closed and fully read


def stream_arn(client: Any, table: str) -> tuple[str | None, str | None]:
    """(stream ARN, view type) of a table's enabled stream, or (None, None)."""
    desc = client.describe_table(TableName=table)["Table"]
    spec = desc.get("StreamSpecification") or {}
    if not spec.get("StreamEnabled") or not desc.get("LatestStreamArn"):
        return None, None
    return str(desc["LatestStreamArn"]), str(spec.get("StreamViewType"))


def shards(streams: Any, arn: str, max_pages: int = 1000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    start: str | None = None
    for _ in range(max_pages):
        kw = {"StreamArn": arn} | ({"ExclusiveStartShardId": start} if start else {})
        desc = streams.describe_stream(**kw)["StreamDescription"]
        out += desc.get("Shards") or []
        start = desc.get("LastEvaluatedShardId")
        if not start:
            return out
    raise MigrationError(f"stream {arn} lists more than {max_pages} pages of shards")


def positions_at_start(streams: Any, arn: str) -> dict[str, dict[str, Any]]:
    """Every shard, from its trim horizon: taken before the first scan page, so no change
    made during the scan can be missed. Replaying events older than the scan is harmless:
    they come in order, and the newest one wins."""
    return {s["ShardId"]: {"after": None, "done": False, "parent": s.get("ParentShardId")}
            for s in shards(streams, arn)}


def read(streams: Any, arn: str, positions: dict[str, dict[str, Any]], *,
         page_limit: int = 1000, max_pages: int = 10_000) -> Iterator[Page]:
    """Pages from each shard's position to its current end. A child shard is read only once
    its parent is done, which keeps each item's events in order across a shard split.

    An open shard's end is the first empty page; the caller loops for a drain."""
    for s in shards(streams, arn):
        positions.setdefault(s["ShardId"], {"after": None, "done": False,
                                            "parent": s.get("ParentShardId")})
    pending = [sid for sid, p in positions.items() if not p["done"]]
    served = 0
    progressed = True
    while pending and progressed:
        progressed = False
        for sid in list(pending):
            parent = positions[sid].get("parent")
            if parent in positions and not positions[parent]["done"]:
                continue
            pending.remove(sid)
            progressed = True
            pos = positions[sid]
            kw: dict[str, Any] = {"StreamArn": arn, "ShardId": sid}
            if pos["after"] is None:
                kw["ShardIteratorType"] = "TRIM_HORIZON"
            else:
                kw |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                       "SequenceNumber": pos["after"]}
            try:
                it = streams.get_shard_iterator(**kw).get("ShardIterator")
            except streams.exceptions.TrimmedDataAccessException:
                raise MigrationError(
                    f"the stream of shard {sid} was trimmed past the applied position "
                    f"{pos['after']} (streams keep 24 h): changes are lost; abort and start "
                    "again") from None
            while it is not None:
                served += 1
                if served > max_pages:
                    return
                resp = streams.get_records(ShardIterator=it, Limit=page_limit)
                recs = resp.get("Records") or []
                it = resp.get("NextShardIterator")
                last = recs[-1]["dynamodb"]["SequenceNumber"] if recs else None
                yield Page(sid, recs, last, it is None)
                if not recs:
                    break


class Replayer:
    """Applies stream pages to a table: INSERT and MODIFY put the new image, REMOVE deletes.
    With ``tombstones`` (the backfill is running) a REMOVE also records the key, and a later
    put of the same key clears it."""

    def __init__(self, client: Any, table: str, key_names: list[str],
                 pool: Executor | None = None) -> None:
        self.client, self.table, self.key_names, self.pool = client, table, key_names, pool

    def apply(self, records: list[dict[str, Any]],
              tombstones: dict[str, str] | None) -> int:
        # Events of one key keep their order; different keys are independent, so each key's
        # events run as one sequence and the keys run side by side.
        by_key: dict[str, list[dict[str, Any]]] = {}
        for rec in records:
            event = rec["eventName"]
            if event not in ("INSERT", "MODIFY", "REMOVE"):
                raise MigrationError(f"unknown stream event {event!r}; allowed: INSERT, "
                                     "MODIFY, REMOVE")
            if event != "REMOVE" and "NewImage" not in rec["dynamodb"]:
                raise MigrationError(f"a {event} record without NewImage: the stream view "
                                     "type must be NEW_AND_OLD_IMAGES")
            by_key.setdefault(key_of(rec["dynamodb"]["Keys"], self.key_names), []).append(rec)
        if tombstones is not None:
            for k, recs in by_key.items():
                last = recs[-1]
                if last["eventName"] == "REMOVE":
                    tombstones[k] = last["dynamodb"]["SequenceNumber"]
                else:
                    tombstones.pop(k, None)
        groups = list(by_key.values())
        if self.pool is None or len(groups) < 2:
            for g in groups:
                self._one_key(g)
        else:
            list(self.pool.map(self._one_key, groups))
        return len(records)

    def _one_key(self, recs: list[dict[str, Any]]) -> None:
        for rec in recs:
            d = rec["dynamodb"]
            if rec["eventName"] == "REMOVE":
                self.client.delete_item(TableName=self.table, Key=d["Keys"])
            else:
                self.client.put_item(TableName=self.table, Item=d["NewImage"])


def copy_page(items: list[Item], key_names: list[str], tombstones: dict[str, str],
              put_absent: Callable[[list[Item]], int]) -> tuple[int, int]:
    """The backfill's half of the rule: skip tombstoned keys (replay deleted them after this
    page was read), put the rest only where absent. Returns (written, skipped)."""
    live = [i for i in items if key_of(i, key_names) not in tombstones]
    return put_absent(live), len(items) - len(live)


def drain(streams: Any, arn: str, positions: dict[str, dict[str, Any]],
          apply: Callable[[Page], None], *, empty_rounds: int = 2,
          max_rounds: int = 10_000) -> int:
    """Read and apply until ``empty_rounds`` passes in a row find nothing new. ``apply``
    checkpoints the page (its last sequence number as the applied position) after writing."""
    total, quiet = 0, 0
    for _ in range(max_rounds):
        got = 0
        for page in read(streams, arn, positions):
            apply(page)
            got += len(page.records)
        total += got
        quiet = quiet + 1 if got == 0 else 0
        if quiet >= empty_rounds:
            return total
    raise MigrationError(f"the stream of {arn} did not run dry in {max_rounds} passes; are "
                         "the application's writes stopped?")
