"""Property tests of the DynamoDB rule over per-key interleavings (Ghostferry's copy->update->
log, update->copy->log, update->log->copy, plus deletes and duplicated delivery, with shards
read in any relative order).

The engine's own code runs here: ``Replayer`` (replay and tombstones) and ``copy_page`` (skip
tombstoned, put only if absent). What is modelled in memory is only what they talk to:
``FakeTable`` stands in for a DynamoDB table and implements the two documented behaviours the
rule relies on (PutItem replaces the whole item; ``attribute_not_exists`` on the hash key
fails when an item with that key exists: DynamoDB Developer Guide, "Condition expressions"),
and the stream is a per-shard list where each key always maps to one shard (per-item order
holds within a shard: DynamoDB Streams Developer Guide, "Reading and processing a stream").
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from components.migrate.dynamodb_stream import Replayer, copy_page, key_of

KEYS = 5
SHARDS = 2
PAGES = [[0, 1], [2, 3], [4]]  # the scan's pages, by key
NAMES = ["pk"]


class ConditionFailed(Exception):
    pass


class FakeTable:
    """In-memory stand-in for one DynamoDB table (see the module docstring)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def put_item(self, TableName: str, Item: dict[str, Any],
                 ConditionExpression: str | None = None, **_: Any) -> None:
        k = key_of(Item, NAMES)
        if ConditionExpression is not None:
            assert ConditionExpression == "attribute_not_exists(#k)"
            if k in self.items:
                raise ConditionFailed(k)
        self.items[k] = dict(Item)

    def delete_item(self, TableName: str, Key: dict[str, Any]) -> None:
        self.items.pop(key_of(Key, NAMES), None)


def img(k: int, v: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{k}"}, "v": {"N": str(v)}}


class World:
    """The source (its items and its stream), the target, and one migration's copy state."""

    def __init__(self, seed_keys: list[int], tombstones: bool = True) -> None:
        self.src: dict[int, int] = {k: 0 for k in seed_keys}
        self.log: list[list[dict[str, Any]]] = [[] for _ in range(SHARDS)]
        self.pos = [0] * SHARDS  # applied position per shard: captured before any page read
        self.tgt = FakeTable()
        self.replay = Replayer(self.tgt, "dst", NAMES)
        self.stones: dict[str, str] = {}
        self.use_tombstones = tombstones
        self.read: dict[int, list[dict[str, Any]]] = {}
        self.put: set[int] = set()
        self.version = 0
        self.seq = 0

    @property
    def backfilling(self) -> bool:
        return len(self.put) < len(PAGES)

    def write(self, k: int, delete: bool) -> None:
        self.version += 1
        self.seq += 1
        old = self.src.get(k)
        d: dict[str, Any] = {"Keys": {"pk": {"S": f"k{k}"}}, "SequenceNumber": str(self.seq)}
        if delete:
            if old is None:
                return
            del self.src[k]
            rec = {"eventName": "REMOVE", "dynamodb": d | {"OldImage": img(k, old)}}
        else:
            self.src[k] = self.version
            rec = {"eventName": "INSERT" if old is None else "MODIFY",
                   "dynamodb": d | {"NewImage": img(k, self.version)}}
        self.log[k % SHARDS].append(rec)

    def read_page(self, p: int) -> None:
        if p not in self.read:  # a consistent read of the page's keys, now
            self.read[p] = [img(k, self.src[k]) for k in PAGES[p] if k in self.src]

    def put_page(self, p: int) -> None:
        if p not in self.read or p in self.put:
            return

        def put_absent(items: list[dict[str, Any]]) -> int:
            n = 0
            for i in items:
                try:
                    self.tgt.put_item(TableName="dst", Item=i,
                                      ConditionExpression="attribute_not_exists(#k)")
                    n += 1
                except ConditionFailed:
                    pass
            return n

        copy_page(self.read[p], NAMES, self.stones, put_absent)
        self.put.add(p)
        if not self.backfilling:
            self.stones.clear()  # the sweep: no conditional put is left

    def deliver(self, shard: int, n: int) -> None:
        recs = self.log[shard][self.pos[shard]:self.pos[shard] + n]
        stones = self.stones if self.backfilling and self.use_tombstones else None
        self.replay.apply(recs, stones)
        self.pos[shard] += len(recs)

    def redeliver(self, shard: int, back: int) -> None:
        """At-least-once: the checkpoint lags what was applied, so a suffix comes again."""
        self.pos[shard] = max(0, self.pos[shard] - back)

    def finish(self) -> None:
        for p in range(len(PAGES)):
            self.read_page(p)
            self.put_page(p)
        for s in range(SHARDS):
            self.deliver(s, len(self.log[s]))

    def target_view(self) -> dict[int, int]:
        return {int(i["pk"]["S"][1:]): int(i["v"]["N"]) for i in self.tgt.items.values()}


key = st.integers(0, KEYS - 1)
action = st.one_of(
    st.tuples(st.just("write"), key, st.booleans()),
    st.tuples(st.just("read"), st.integers(0, len(PAGES) - 1)),
    st.tuples(st.just("put"), st.integers(0, len(PAGES) - 1)),
    st.tuples(st.just("deliver"), st.integers(0, SHARDS - 1), st.integers(1, 3)),
    st.tuples(st.just("redeliver"), st.integers(0, SHARDS - 1), st.integers(1, 4)),
)
scenario = st.tuples(st.lists(key, max_size=KEYS, unique=True),
                     st.lists(action, max_size=40))


def run(scn: tuple[list[int], list[tuple[Any, ...]]], tombstones: bool = True) -> World:
    seed_keys, actions = scn
    w = World(seed_keys, tombstones)
    for a in actions:
        if a[0] == "write":
            w.write(a[1], a[2])
        elif a[0] == "read":
            w.read_page(a[1])
        elif a[0] == "put":
            w.put_page(a[1])
        elif a[0] == "deliver":
            w.deliver(a[1], a[2])
        else:
            w.redeliver(a[1], a[2])
    w.finish()
    return w


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario)
def test_no_lost_write_no_resurrected_delete_no_stale_overwrite(
        scn: tuple[list[int], list[tuple[Any, ...]]]) -> None:
    w = run(scn)
    # Equal item by item: a lost write would leave an older version or a missing key, a
    # resurrected delete an extra key, a stale overwrite an older version.
    assert w.target_view() == w.src
    assert w.stones == {}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(key, st.booleans()), max_size=30))
def test_duplicated_delivery_of_a_whole_shard_is_harmless(writes: list[tuple[int, bool]]) -> None:
    w = World(list(range(KEYS)))
    for k, delete in writes:
        w.write(k, delete)
    w.finish()
    for s in range(SHARDS):  # a restarted reader that never checkpointed: everything again
        w.redeliver(s, len(w.log[s]))
    w.finish()
    assert w.target_view() == w.src


def test_the_model_finds_a_resurrected_delete_when_tombstones_are_off() -> None:
    """The property is not vacuous: without tombstones, hypothesis finds the interleaving
    read page -> delete -> replay REMOVE -> put page, which brings the item back."""
    bad = find(scenario, lambda scn: run(scn, tombstones=False).target_view()
               != run(scn, tombstones=False).src,
               settings=settings(max_examples=5000, deadline=None,
                                 suppress_health_check=list(HealthCheck)))
    w = run(bad, tombstones=False)
    assert set(w.target_view()) - set(w.src)  # an extra key: the resurrected one
