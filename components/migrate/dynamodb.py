"""DynamoDB -> DynamoDB: the stream is read from before the first scan page, the backfill
only puts absent items, and replay applies every stream event unconditionally.

The rule (issue 14, after gh-ost): capture checkpoints each shard's position before the scan;
the backfill is a consistent parallel scan whose items are written with
``attribute_not_exists(<hash key>)``, so it never overwrites what replay wrote; replay puts
the new image or deletes, in per-shard order. A REMOVE replayed while the backfill runs also
leaves a tombstone in the state store so that a scan page read before the delete cannot put
the item back. Once the backfill is done the tombstones are swept, and cutover requires none.

DynamoDB has no server-side replication into another table, so the runner does the replay:
in the backfill between pages, in catch-up, and in ``lag`` (the runner's idle hook in verify
and reverse-sync). Rollback replays the target's stream back into the source.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from components.migrate.adapter import Check, Context, MigrationError, PreflightFailed, VerifyResult
from components.migrate.dynamodb_stream import (
    Item,
    Page,
    Replayer,
    copy_page,
    drain,
    item_hash,
    key_of,
    positions_at_start,
    read,
    stream_arn,
)
from components.migrate.phases import Phase
from components.migrate.state import Chunk
from components.migrate.urls import Endpoint

_REVERSE = (Phase.CUTOVER, Phase.REVERSE_SYNC, Phase.ROLLBACK, Phase.FINALIZE)


class DynamoDBAdapter:
    engine = "dynamodb"

    def __init__(self, mid: str, source: Endpoint, target: Endpoint, *, segments: int = 4,
                 page_items: int = 200, workers: int = 8, rechecks: int = 3,
                 clients: dict[str, tuple[Any, Any]] | None = None) -> None:
        if not 1 <= segments <= 1000:
            raise MigrationError(f"segments={segments}; allowed: 1..1000")
        self.mid, self.source, self.target = mid, source, target
        self.segments, self.page_items, self.workers = segments, page_items, workers
        self.rechecks = rechecks
        self._clients = clients or {}
        self._pool = ThreadPoolExecutor(max_workers=workers)

    def _c(self, side: str) -> tuple[Any, Any]:
        """(dynamodb, dynamodbstreams) clients of a side."""
        if side not in self._clients:
            import boto3

            ep = self.source if side == "source" else self.target
            kw = {"region_name": ep.region, "endpoint_url": ep.endpoint_url}
            self._clients[side] = (boto3.client("dynamodb", **kw),
                                   boto3.client("dynamodbstreams", **kw))
        return self._clients[side]

    def _table(self, side: str) -> str:
        return self.source.database if side == "source" else self.target.database

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._clients.clear()

    # -- plan and preflight ------------------------------------------------------------------

    def _describe(self, side: str) -> dict[str, Any] | None:
        db, _ = self._c(side)
        try:
            return dict(db.describe_table(TableName=self._table(side))["Table"])
        except db.exceptions.ResourceNotFoundException:
            return None

    def _count(self, side: str, limit: int = 1) -> int:
        db, _ = self._c(side)
        resp = db.scan(TableName=self._table(side), Select="COUNT", Limit=limit,
                       ConsistentRead=True)
        return int(resp["Count"])

    def _checks(self) -> tuple[list[Check], dict[str, Any] | None, list[str]]:
        checks: list[Check] = []
        desc = {side: self._describe(side) for side in ("source", "target")}
        for side, d in desc.items():
            name = self._table(side)
            checks.append(Check(f"{side} table", d is not None,
                                f"{name} exists" if d else f"{name} does not exist; create "
                                "it with the same key schema and a NEW_AND_OLD_IMAGES stream"))
        src, tgt = desc["source"], desc["target"]
        if src is None or tgt is None:
            return checks, src, []
        for side, d, why in (("source", src, "replay of changes made during the copy"),
                             ("target", tgt, "rollback: reverse replay after cutover")):
            spec = d.get("StreamSpecification") or {}
            view = spec.get("StreamViewType") if spec.get("StreamEnabled") else None
            ok = view == "NEW_AND_OLD_IMAGES"
            checks.append(Check(f"{side} stream", ok,
                                "NEW_AND_OLD_IMAGES" if ok else
                                f"the stream is {view or 'off'}; {why} needs "
                                "StreamViewType NEW_AND_OLD_IMAGES (KEYS_ONLY and NEW_IMAGE "
                                "are refused)"))
        ks = sorted((k["AttributeName"], k["KeyType"]) for k in src["KeySchema"])
        kt = sorted((k["AttributeName"], k["KeyType"]) for k in tgt["KeySchema"])
        types_s = {a["AttributeName"]: a["AttributeType"] for a in src["AttributeDefinitions"]}
        types_t = {a["AttributeName"]: a["AttributeType"] for a in tgt["AttributeDefinitions"]}
        same = ks == kt and all(types_s.get(n) == types_t.get(n) for n, _ in ks)
        checks.append(Check("key schema", same, f"{ks}" if same else
                            f"source key {ks} {types_s} differs from target key {kt} "
                            f"{types_t}; allowed: the same key names, roles and types"))
        key_names = [k["AttributeName"] for k in sorted(src["KeySchema"],
                                                        key=lambda k: k["KeyType"])]
        return checks, src, key_names

    def plan(self) -> dict[str, Any]:
        checks, src, key_names = self._checks()
        target_items = None
        if all(c.ok for c in checks):
            target_items = self._count("target")
            checks.append(Check("target empty", target_items == 0,
                                "empty" if target_items == 0 else
                                f"{self.target.database} holds items (at least "
                                f"{target_items}); the copy never overwrites them: empty it"))
        rows = int((src or {}).get("ItemCount") or 0)
        size = int((src or {}).get("TableSizeBytes") or 0)
        return {
            "engine": self.engine, "ok": all(c.ok for c in checks),
            "checks": [vars(c) for c in checks],
            "tables": [{"table": self.source.database, "rows_estimate": rows, "bytes": size,
                        "key": key_names}] if src else [],
            "sequences": [],
            "estimate": {"rows": rows, "bytes": size, "copy_seconds": round(rows / 500, 1),
                         "basis": "ItemCount (updated by DynamoDB about every 6 h) at ~500 "
                                  "items/s per runner"},
            "rollback": ["before cutover: abort; the source is only read, never written",
                         "after cutover: rollback --writes-stopped replays the target's "
                         "stream into the source, verifies both ways, then the source is "
                         "the data again"],
        }

    def preflight(self, ctx: Context) -> None:
        checks, src, key_names = self._checks()
        if all(c.ok for c in checks):
            n = self._count("target")
            checks.append(Check("target empty", n == 0, "empty" if n == 0 else
                                f"{self.target.database} is not empty; allowed: an empty "
                                "target (the copy never overwrites)"))
        if not all(c.ok for c in checks):
            raise PreflightFailed(checks)
        assert src is not None
        ctx.save(key_names=key_names, hash_key=next(k["AttributeName"] for k in src["KeySchema"]
                                                    if k["KeyType"] == "HASH"),
                 checks=[vars(c) for c in checks], rows_estimate=int(src.get("ItemCount") or 0))

    # -- capture, replay, backfill -----------------------------------------------------------

    def capture(self, ctx: Context) -> None:
        if ctx.data.get("capture"):
            return  # taken before a crash: its positions are the ones the copy relies on
        _, streams = self._c("source")
        arn, _ = stream_arn(self._c("source")[0], self.source.database)
        if arn is None:
            raise MigrationError(f"{self.source.database} has no stream; allowed: a "
                                 "NEW_AND_OLD_IMAGES stream")
        ctx.save(capture={"stream": arn, "shards": positions_at_start(streams, arn),
                          "at": time.time()}, tombstones={}, applied_events=0)

    def _direction(self, ctx: Context) -> tuple[str, str, str]:
        """(reading side, writing side, checkpoint key) of the live replication."""
        if ctx.phase in _REVERSE:
            return "target", "source", "reverse"
        return "source", "target", "capture"

    def _replay(self, ctx: Context, *, until_dry: bool = False,
                max_pages: int = 10_000) -> int:
        frm, to, key = self._direction(ctx)
        cap = ctx.data.get(key)
        if not cap:
            return 0
        _, streams = self._c(frm)
        positions = {sid: dict(p) for sid, p in cap["shards"].items()}
        tombstoning = ctx.phase == Phase.BACKFILL
        replayer = Replayer(self._c(to)[0], self._table(to), ctx.data["key_names"],
                            self._pool)
        applied = int(ctx.data.get("applied_events") or 0)

        def apply(page: Page) -> None:
            nonlocal applied
            stones = dict(ctx.data.get("tombstones") or {}) if tombstoning else None
            applied += replayer.apply(page.records, stones)
            pos = positions[page.shard]
            if page.last_seq is not None:
                pos["after"] = page.last_seq
            pos["done"] = pos["done"] or page.done
            if not page.records and not page.done:
                return
            # One checkpoint after the writes: the applied position and the tombstones move
            # together, so a crash in between re-applies the page (idempotent).
            extra = {"tombstones": stones} if stones is not None else {}
            ctx.save(**{key: {**cap, "shards": positions}}, applied_events=applied, **extra)

        if until_dry:
            return drain(streams, cap["stream"], positions, apply)
        n = 0
        for page in read(streams, cap["stream"], positions, max_pages=max_pages):
            apply(page)
            n += len(page.records)
        return n

    def _scan_page(self, side: str, segment: int, total: int,
                   start: dict[str, Any] | None) -> tuple[list[Item], dict[str, Any] | None]:
        db, _ = self._c(side)
        kw: dict[str, Any] = {"TableName": self._table(side), "ConsistentRead": True,
                              "Segment": segment, "TotalSegments": total,
                              "Limit": self.page_items}
        if start:
            kw["ExclusiveStartKey"] = start
        resp = db.scan(**kw)
        return list(resp.get("Items") or []), resp.get("LastEvaluatedKey")

    def _put_absent(self, item: Item, hash_key: str) -> int:
        db, _ = self._c("target")
        try:
            db.put_item(TableName=self.target.database, Item=item,
                        ConditionExpression="attribute_not_exists(#k)",
                        ExpressionAttributeNames={"#k": hash_key})
            return 1
        except db.exceptions.ConditionalCheckFailedException:
            return 0  # replay already wrote a newer image: the copy never overwrites

    def backfill(self, ctx: Context) -> None:
        bf = dict(ctx.data.get("backfill") or {})
        if not bf:
            bf = {"segments": self.segments, "cursors": [None] * self.segments, "rows": 0,
                  "written": 0, "skipped_tombstoned": 0}
            ctx.save(backfill=bf)
        total = int(bf["segments"])
        key_names, hash_key = ctx.data["key_names"], ctx.data["hash_key"]
        estimate = int(ctx.data.get("rows_estimate") or 0)
        started, first = time.monotonic(), int(bf["rows"])
        pool = self._pool
        while any(c != "done" for c in bf["cursors"]):
            for seg in range(total):
                cursor = bf["cursors"][seg]
                if cursor == "done":
                    continue
                # Replay first: every REMOVE seen so far is a tombstone before this
                # page's puts, and a resumed runner catches up before copying again.
                # A few pages only, so a busy stream cannot starve the copy.
                self._replay(ctx, max_pages=4)
                items, nxt = self._scan_page("source", seg, total, cursor)
                written, skipped = copy_page(
                    items, key_names, ctx.data.get("tombstones") or {},
                    lambda live: sum(pool.map(lambda i: self._put_absent(i, hash_key),
                                              live)))
                cursors = list(bf["cursors"])
                cursors[seg] = nxt if nxt else "done"
                bf = {**bf, "cursors": cursors, "rows": bf["rows"] + len(items),
                      "written": bf["written"] + written,
                      "skipped_tombstoned": bf["skipped_tombstoned"] + skipped}
                ctx.save(backfill=bf)
                rate = (bf["rows"] - first) / max(time.monotonic() - started, 1e-3)
                ctx.tick(rows_source=estimate, rows_target=bf["rows"],
                         rate_rows_s=round(rate), tables=1, tables_ready=0,
                         eta_s=round((estimate - bf["rows"]) / rate, 1)
                         if rate > 0 and estimate > bf["rows"] else None,
                         tombstones=len(ctx.data.get("tombstones") or {}), throttle=None)
        # No conditional put is left to resurrect anything: deletes are plain from here on.
        swept = len(ctx.data.get("tombstones") or {})
        ctx.save(tombstones={}, backfill={**bf, "tombstones_swept": swept})
        ctx.tick(rows_target=bf["rows"], tables_ready=1, tombstones=0)

    def catch_up(self, ctx: Context) -> None:
        ctx.tick(**self.lag(ctx, max_pages=200))

    def lag(self, ctx: Context, max_pages: int = 20) -> dict[str, Any]:
        """Also the runner's idle hook: one bounded replay pass of the live direction."""
        ended = ctx.phase in (Phase.ROLLED_BACK, Phase.FINALIZED, Phase.ABORTED)
        n = 0 if ended else self._replay(ctx, max_pages=max_pages)
        _, _, key = self._direction(ctx)
        cap = ctx.data.get(key) or {}
        applied = ",".join(f"{sid[-8:]}:{p['after']}" for sid, p in
                           sorted((cap.get("shards") or {}).items()))
        return {"lag_bytes": None, "lag_events": n, "applied": applied or None,
                "applied_events": ctx.data.get("applied_events")}

    # -- verify ------------------------------------------------------------------------------

    def _hashes(self, side: str, key_names: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for seg in range(self.segments):
            cursor: dict[str, Any] | None = None
            for _ in range(10_000_000):
                items, cursor = self._scan_page(side, seg, self.segments, cursor)
                out.update((key_of(i, key_names), item_hash(i)) for i in items)
                if not cursor:
                    break
        return out

    def _get(self, side: str, key: dict[str, Any]) -> str | None:
        db, _ = self._c(side)
        item = db.get_item(TableName=self._table(side), Key=key,
                           ConsistentRead=True).get("Item")
        return None if item is None else item_hash(item)

    def verify(self, ctx: Context, exact: bool) -> VerifyResult:
        import json

        started = time.monotonic()
        key_names = ctx.data["key_names"]
        src, tgt = self._hashes("source", key_names), self._hashes("target", key_names)
        differ = sorted(k for k in src.keys() | tgt.keys() if src.get(k) != tgt.get(k))
        rechecks = 0
        # Under a live writer a key can differ only because its change is still in the
        # stream: replay, then compare those keys again. With writes stopped (exact), the
        # drain already ran and any difference is real.
        for _ in range(0 if exact else self.rechecks):
            if not differ:
                break
            self._replay(ctx)
            rechecks += len(differ)
            differ = [k for k in differ
                      if self._get("source", json.loads(k)) != self._get("target",
                                                                         json.loads(k))]
        table = self.source.database
        chunk = Chunk(table, 0, "", "", len(src), len(tgt),
                      item_hash({"keys": sorted(src.items())}),
                      item_hash({"keys": sorted(tgt.items())}),
                      "mismatch" if differ else ("rechecked" if rechecks else "match"))
        return VerifyResult(
            tables={table: {"rows_source": len(src), "rows_target": len(tgt),
                            "mismatches": len(differ)}},
            chunks=[chunk], mismatches=len(differ), rechecks=rechecks, exact=exact,
            seconds=time.monotonic() - started, keys=list(differ[:20]))

    # -- cutover, rollback, the end ----------------------------------------------------------

    def freeze(self, ctx: Context, deadline: float) -> None:
        self._replay(ctx, until_dry=True)
        stones = len(ctx.data.get("tombstones") or {})
        if stones:
            raise MigrationError(f"{stones} tombstones remain; cutover requires 0 (is the "
                                 "backfill finished?)")
        if time.monotonic() > deadline:
            raise MigrationError("draining the source stream overran max_freeze_s")
        ctx.save(freeze={"at": time.time()})

    def cutover(self, ctx: Context) -> None:
        if ctx.data.get("reverse"):
            return
        # Writes are still stopped: everything in the target's stream so far is our own
        # replay, so the reverse direction starts after it. Read to the end without applying.
        _, streams = self._c("target")
        arn, _ = stream_arn(self._c("target")[0], self.target.database)
        if arn is None:
            raise MigrationError(f"{self.target.database} has no stream: rollback would be "
                                 "impossible; allowed: a NEW_AND_OLD_IMAGES stream")
        positions = positions_at_start(streams, arn)

        def skip(page: Page) -> None:
            pos = positions[page.shard]
            if page.last_seq is not None:
                pos["after"] = page.last_seq
            pos["done"] = pos["done"] or page.done

        drain(streams, arn, positions, skip, empty_rounds=1)
        ctx.save(reverse={"stream": arn, "shards": positions, "at": time.time()})

    def rollback(self, ctx: Context, deadline: float) -> VerifyResult | None:
        self._replay(ctx, until_dry=True)
        result = self.verify(ctx, exact=True)
        ctx.put_chunks(result.chunks)
        ctx.save(verify={**result.summary(), "at": time.time(), "phase": ctx.phase.value})
        return result if result.mismatches else None

    def finalize(self, ctx: Context) -> None:
        ctx.save(finalized={"at": time.time(), "note": "the streams are the tables' own; "
                            "nothing was created to drop"})

    def abort(self, ctx: Context) -> None:
        # The source was only read. The target keeps the partial copy: it was empty at
        # preflight, so emptying it is the operator's call before a new start.
        ctx.save(tombstones={}, aborted={"at": time.time(), "target": "keeps the partial "
                                         "copy; empty it before starting again"})
