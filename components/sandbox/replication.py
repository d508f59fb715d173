"""DynamoDB global-table replication for the plan-deployed sandbox.

moto ignores a table's ``replicas``: the sandbox creates one independent table per replica
region (``deploy_aws._table``). ``GlobalTableReplicator`` is the stand-in for what global
tables version 2019.11.21 do between those tables, as AWS documents them
(docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html):

- Each replica reads its own table's stream (moto's DynamoDB Streams, which the plan must
  register as ``NEW_AND_OLD_IMAGES``, as AWS requires of every replica) and applies every
  change to each other replica, asynchronously: ``delay_s`` after it was read (AWS: "typically
  within a second"). Puts, updates and deletes all replicate.
- Per item, changes are applied in their stream order (one FIFO per direction).
- Conflicts: last writer wins. "Last" is the later ``ApproximateCreationDateTime`` of the
  write in its own region's stream (ms in moto), ties broken by the greater region name, so
  every replica decides the same way. A local write is always later than what its region
  held when it was made (its version is bumped past it if the clocks say otherwise).
- A replicated write is never replicated again: the replicator remembers each write it made
  (by key and image) and recognises its echo in the target's stream. When such a write
  landed after a newer local write it had not read yet (a real race between regions), the
  newer item is written back, so both replicas converge.
- ``cut(region)``: the region neither sends nor receives; its changes and those meant for it
  wait (``backlog``) and flow on ``heal(region)``, as a global table catches up after a
  regional outage.

It runs with the deployer's credentials (``Deployment.client``), finds global tables in the
deployment's plan inputs (``Created.inputs``), and stops by itself after ``max_run_s``.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from components.sandbox.deploy_model import Deployment
from components.sandbox.replicator import Replicator

TABLE_TYPE = "aws:dynamodb/table:Table"
GLOBAL_TABLES_VERSION = "2019.11.21"
STREAM_VIEW = "NEW_AND_OLD_IMAGES"
#: Records asked for per shard per round (the GetRecords maximum).
READ_LIMIT = 1000
#: Longest wait between rounds once nothing is happening.
IDLE_POLL_MAX_S = 0.5

Version = tuple[int, str]
"""(write time in ms since the epoch, region that took the write)."""
Image = dict[str, Any] | None
"""An item in DynamoDB JSON, or None when the item does not exist (deleted)."""


class ReplicationError(ValueError):
    """A table the plan names as a global table cannot be replicated as AWS would."""


@dataclass(frozen=True)
class GlobalTable:
    name: str
    regions: tuple[str, ...]
    """The table's own region first, then its replicas, as the plan registers them."""
    key_attrs: tuple[str, ...]


def global_tables(d: Deployment) -> list[GlobalTable]:
    """Every table with replicas in the plan, checked as AWS checks a new replica: the
    stream must be on with new and old images."""
    out = []
    for c in d.created:
        replicas = [str(r["regionName"]) for r in c.inputs.get("replicas") or []]
        if c.type != TABLE_TYPE or not replicas:
            continue
        view = c.inputs.get("streamViewType") if c.inputs.get("streamEnabled") else None
        if view != STREAM_VIEW:
            raise ReplicationError(
                f"table {c.inputs.get('name')!r} ({c.name}): global tables need a stream with "
                f"{STREAM_VIEW}; the plan registers "
                f"{'stream_view_type ' + repr(view) if view else 'no stream'}")
        keys = [str(c.inputs["hashKey"])]
        if c.inputs.get("rangeKey"):
            keys.append(str(c.inputs["rangeKey"]))
        out.append(GlobalTable(str(c.inputs["name"]), (c.region, *replicas), tuple(keys)))
    return out


def _canon(image: Image) -> str:
    """An image in a form where equal items compare equal (sets are unordered)."""
    def norm(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (sorted(norm(x) for x in v[k]) if k in ("SS", "NS", "BS") else norm(v[k]))
                    for k in v}
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, bytes):
            return v.hex()
        return v
    return json.dumps(norm(image), sort_keys=True)


@dataclass
class _Change:
    table: str
    key: dict[str, Any]
    origin: str
    version: Version
    image: Image
    due: float
    """monotonic time from which it may be applied (read time + delay)."""


@dataclass
class _Slot:
    """What one replica holds for one item, as its stream says so far."""

    version: Version
    image: Image


@dataclass
class Direction:
    """Replication from ``source`` to ``target`` (all tables)."""

    source: str
    target: str
    queue: deque[_Change] = field(default_factory=deque)
    delivered: int = 0
    last_latency_s: float = 0.0
    max_latency_s: float = 0.0


@dataclass
class Counters:
    read: int = 0
    """Stream records read (local writes and echoes)."""
    applied: int = 0
    """Replicated writes made (one per change per target, plus write-backs)."""
    echoes: int = 0
    """Records recognised as the replicator's own writes and not sent on."""
    superseded: int = 0
    """Changes not applied because the target already held a later version."""
    write_backs: int = 0
    """Newer local items restored after a replicated write raced past them."""
    errors: int = 0
    last_error: str = ""


class _Stream:
    """Reads one table's stream in one region from its start (TRIM_HORIZON). Records wait
    in ``buffer`` until handled, so a failed round loses none."""

    def __init__(self, streams: Any, arn: str) -> None:
        self.streams, self.arn = streams, arn
        self.iterators: dict[str, str | None] = {}
        self.buffer: deque[dict[str, Any]] = deque()
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        for shard in shards:
            self.iterators[shard["ShardId"]] = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    def read(self) -> None:
        for shard, it in sorted(self.iterators.items()):
            if it is None:
                continue  # a closed shard (AWS splits shards; moto keeps one)
            out = self.streams.get_records(ShardIterator=it, Limit=READ_LIMIT)
            self.buffer.extend(out.get("Records") or [])
            self.iterators[shard] = out.get("NextShardIterator")


class GlobalTableReplicator(Replicator):
    """Replicates the deployment's global tables between their replica regions (see the
    module docstring). ``start()``/``stop()`` or use as a context manager."""

    thread_name = "global-table-replicator"
    holds = "replica"
    max_delay_s = 60.0
    idle_poll_max_s = IDLE_POLL_MAX_S

    def __init__(self, deployment: Deployment, delay_s: float = 0.5, poll_s: float = 0.1,
                 max_run_s: float = 3600.0,
                 tables: Iterable[GlobalTable] | None = None) -> None:
        super().__init__(deployment, delay_s, poll_s, max_run_s)
        self.tables = list(global_tables(deployment) if tables is None else tables)
        self.regions = sorted({r for t in self.tables for r in t.regions})
        self.counters = Counters()
        self.directions = {(a, b): Direction(a, b) for t in self.tables
                           for a in t.regions for b in t.regions if a != b}
        self._clients: dict[tuple[str, str], Any] = {}
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._slots: dict[tuple[str, str, str], _Slot] = {}
        self._pending: dict[tuple[str, str, str], deque[tuple[Version, str]]] = {}

    def open(self) -> None:
        """Check every replica's stream and open it at its start (nothing is replicated until
        ``step()`` runs, by the thread or by the caller)."""
        for t in self.tables:
            for region in t.regions:
                desc = self._client("dynamodb", region).describe_table(TableName=t.name)["Table"]
                spec = desc.get("StreamSpecification") or {}
                if not spec.get("StreamEnabled") or spec.get("StreamViewType") != STREAM_VIEW:
                    raise ReplicationError(
                        f"table {t.name} in {region}: the stream is {spec or 'off'}; a global "
                        f"table replica needs StreamEnabled with {STREAM_VIEW}")
                self._streams[(t.name, region)] = _Stream(
                    self._client("dynamodbstreams", region), str(desc["LatestStreamArn"]))

    # -- figures ------------------------------------------------------------------------

    def backlog(self, source: str, target: str) -> int:
        """Changes read from ``source`` and not yet applied in ``target``."""
        with self._lock:
            return len(self.directions[(source, target)].queue)

    def waiting(self, source: str, target: str) -> list[tuple[str, dict[str, Any], Image]]:
        """(table, key, item or None for a delete) of each change from ``source`` that
        ``target`` has not got, oldest first: what is lost if ``source`` never comes back."""
        with self._lock:
            return [(c.table, c.key, c.image) for c in self.directions[(source, target)].queue]

    def lag_s(self, source: str, target: str) -> float:
        """Age of the oldest change from ``source`` that ``target`` has not got (0 if none),
        like CloudWatch's ReplicationLatency while a backlog waits."""
        with self._lock:
            q = self.directions[(source, target)].queue
            return max(0.0, time.time() - q[0].version[0] / 1000) if q else 0.0

    def stats(self) -> dict[str, dict[str, float]]:
        """Per direction ``"SRC->DST"``: backlog, lag_s, delivered, last/max latency."""
        with self._lock:
            return {f"{a}->{b}": {"backlog": len(x.queue), "lag_s": self.lag_s(a, b),
                                  "delivered": x.delivered,
                                  "last_latency_s": round(x.last_latency_s, 3),
                                  "max_latency_s": round(x.max_latency_s, 3)}
                    for (a, b), x in sorted(self.directions.items())}

    # -- the loop -----------------------------------------------------------------------

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self.deployment.client(service, region)
        return self._clients[key]

    def _failed(self, exc: Exception) -> None:
        self.counters.errors += 1
        self.counters.last_error = f"{type(exc).__name__}: {exc}"

    def step(self) -> None:
        """One round: read every stream, then apply what is due."""
        busy = self.read_streams()
        self.deliver_due(busy)

    def read_streams(self) -> bool:
        """Read every stream to its end and handle each record; True if there was one."""
        busy = False
        for t in self.tables:
            for region in t.regions:
                stream = self._streams[(t.name, region)]
                stream.read()
                while stream.buffer:
                    busy = True
                    with self._lock:
                        self._on_record(t, region, stream.buffer[0])
                    stream.buffer.popleft()
        return busy

    def deliver_due(self, busy: bool = False) -> None:
        """Apply every change that is due between regions that are up, in order."""
        now = time.monotonic()
        with self._lock:
            for d in self.directions.values():
                if d.source in self._down or d.target in self._down:
                    continue
                while d.queue and d.queue[0].due <= now:
                    self._deliver(d, d.queue[0])
                    d.queue.popleft()
                    busy = True
            waiting = any(d.queue and d.source not in self._down
                          and d.target not in self._down for d in self.directions.values())
            echoes = any(self._pending.values()) or any(
                s.buffer for s in self._streams.values())
            self._round_done(busy or waiting or echoes)

    def _key(self, t: GlobalTable, item: dict[str, Any]) -> tuple[dict[str, Any], str]:
        key = {a: item[a] for a in t.key_attrs}
        return key, _canon(key)

    def _on_record(self, t: GlobalTable, region: str, rec: dict[str, Any]) -> None:
        self.counters.read += 1
        ddb = rec["dynamodb"]
        key, kid = self._key(t, ddb["Keys"])
        image: Image = ddb.get("NewImage") if rec["eventName"] != "REMOVE" else None
        canon = _canon(image)
        slot_key = (t.name, region, kid)
        prev = self._slots.get(slot_key)
        pending = self._pending.get(slot_key)
        if pending and pending[0][1] == canon:
            mine = pending[0][0]
            if (prev is not None and prev.version > mine
                    and not any(v >= prev.version for v, _ in list(pending)[1:])):
                # Our write landed after a newer local write we had not read: restore it.
                self._write(t, region, key, kid, prev.version, prev.image)
                self.counters.write_backs += 1
            pending.popleft()
            self.counters.echoes += 1
            self._slots[slot_key] = _Slot(mine, image)
            return
        when = ddb["ApproximateCreationDateTime"]
        ms = int(when.timestamp() * 1000) if hasattr(when, "timestamp") else int(float(when)
                                                                                * 1000)
        version: Version = (ms, region)
        if prev is not None and version <= prev.version:
            version = (prev.version[0] + 1, region)
        self._slots[slot_key] = _Slot(version, image)
        due = time.monotonic() + self.delay_s
        for target in t.regions:
            if target != region:
                self.directions[(region, target)].queue.append(
                    _Change(t.name, key, region, version, image, due))

    def _deliver(self, d: Direction, c: _Change) -> None:
        t = next(x for x in self.tables if x.name == c.table)
        kid = _canon(c.key)
        slot = self._slots.get((c.table, d.target, kid))
        pending = self._pending.get((c.table, d.target, kid))
        newest = max(([slot.version] if slot else []) + [v for v, _ in pending or ()],
                     default=None)
        if newest is not None and newest >= c.version:
            self.counters.superseded += 1
        else:
            self._write(t, d.target, c.key, kid, c.version, c.image)
        d.delivered += 1
        d.last_latency_s = max(0.0, time.time() - c.version[0] / 1000)
        d.max_latency_s = max(d.max_latency_s, d.last_latency_s)

    def _write(self, t: GlobalTable, region: str, key: dict[str, Any], kid: str,
               version: Version, image: Image) -> None:
        ddb = self._client("dynamodb", region)
        slot_key = (t.name, region, kid)
        if image is None:
            old = ddb.delete_item(TableName=t.name, Key=key, ReturnValues="ALL_OLD")
            if not old.get("Attributes"):
                # Nothing was there, so the stream shows nothing: record the state now.
                self._slots[slot_key] = _Slot(version, None)
                self.counters.applied += 1
                return
        else:
            ddb.put_item(TableName=t.name, Item=image)
        self._pending.setdefault(slot_key, deque()).append((version, _canon(image)))
        self.counters.applied += 1
