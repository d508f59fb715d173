"""S3 replication for the plan-deployed sandbox.

moto stores a bucket's replication configuration and copies nothing (it even reports
``DeleteMarkerReplication`` as Disabled when it was put Enabled). ``BucketReplicator`` is the
stand-in for what S3 Replication does with the rules the plan registers
(``aws:s3/bucketReplicationConfig``), as AWS documents it
(docs.aws.amazon.com/AmazonS3/latest/userguide/replication-what-is-isnot-replicated.html):

- Every new object version in the source bucket whose key matches an enabled rule's prefix
  is copied to the rule's destination bucket (body, content type, user metadata; the rule's
  storage class), asynchronously: ``delay_s`` after it was seen. All versions are new here:
  the configuration is created with the buckets, before any object.
- A delete marker (a delete without a version id) is replicated when the rule enables
  ``delete_marker_replication``; a delete of a specific version is never replicated.
- Replicas are not replicated again, so two buckets replicating to each other do not loop:
  the replicator remembers each version it wrote.
- Versions of one key reach the destination in the order they were made.
- ``cut(region)``: buckets in the region neither send nor receive until ``heal(region)``.

Not modelled: tag filters, Replication Time Control's 15-minute SLA (changes arrive after
``delay_s``), replica modification sync, KMS-encrypted objects, replication status headers.
It runs with the deployer's credentials and stops by itself after ``max_run_s``.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from components.sandbox.deploy_model import Deployment
from components.sandbox.replicator import Replicator

CONFIG_TYPE = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
#: Versions listed per source bucket per round (one ListObjectVersions page).
LIST_LIMIT = 1000
MAX_PAGES = 100
#: Longest wait between rounds once nothing is happening.
IDLE_POLL_MAX_S = 1.0


class S3ReplicationError(ValueError):
    """A replication rule the stand-in cannot apply as S3 would."""


@dataclass(frozen=True)
class Rule:
    source: str
    source_region: str
    target: str
    target_region: str
    prefix: str
    priority: int
    storage_class: str
    delete_markers: bool


def replication_rules(d: Deployment) -> list[Rule]:
    """The enabled rules of every replication configuration in the plan, highest priority
    first."""
    regions = {c.cloud_id: c.region for c in d.created
               if c.type in ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")}
    rules = []
    for c in d.created:
        if c.type != CONFIG_TYPE:
            continue
        for r in c.inputs.get("rules") or []:
            if r.get("status") != "Enabled":
                continue
            flt = r.get("filter") or {}
            if flt.get("tag") or (flt.get("and") or {}).get("tags"):
                raise S3ReplicationError(f"rule {r.get('id')!r} of {c.inputs['bucket']}: tag "
                                         "filters are not modelled; allowed: prefix filters")
            prefix = str(flt.get("prefix") or (flt.get("and") or {}).get("prefix")
                         or r.get("prefix") or "")
            target = str(r["destination"]["bucket"]).removeprefix("arn:aws:s3:::")
            if target not in regions:
                raise S3ReplicationError(f"rule {r.get('id')!r} of {c.inputs['bucket']}: "
                                         f"destination bucket {target!r} was not deployed")
            rules.append(Rule(
                source=str(c.inputs["bucket"]), source_region=c.region, target=target,
                target_region=regions[target], prefix=prefix,
                priority=int(float(r.get("priority") or 0)),
                storage_class=str(r["destination"].get("storageClass") or "STANDARD"),
                delete_markers=(r.get("deleteMarkerReplication") or {}).get("status")
                == "Enabled"))
    return sorted(rules, key=lambda x: -x.priority)


@dataclass
class _Copy:
    rule: Rule
    key: str
    version_id: str
    delete_marker: bool
    seen_at: float
    due: float


@dataclass
class _Route:
    queue: deque[_Copy] = field(default_factory=deque)
    delivered: int = 0
    max_latency_s: float = 0.0


class BucketReplicator(Replicator):
    """Copies new object versions along the plan's replication rules (module docstring)."""

    thread_name = "bucket-replicator"
    holds = "replicated bucket"
    max_delay_s = 900.0
    idle_poll_max_s = IDLE_POLL_MAX_S

    def __init__(self, deployment: Deployment, delay_s: float = 0.5, poll_s: float = 0.2,
                 max_run_s: float = 3600.0) -> None:
        super().__init__(deployment, delay_s, poll_s, max_run_s)
        self.rules = replication_rules(deployment)
        self.regions = sorted({r.source_region for r in self.rules}
                              | {r.target_region for r in self.rules})
        self.routes = {(r.source, r.target): _Route() for r in self.rules}
        self.replicas = 0
        self.errors = 0
        self.last_error = ""
        self._seen: dict[str, set[str]] = {r.source: set() for r in self.rules}
        self._mine: set[tuple[str, str]] = set()
        self._clients: dict[str, Any] = {}

    def backlog(self, source: str, target: str) -> int:
        with self._lock:
            return len(self.routes[(source, target)].queue)

    def stats(self) -> dict[str, dict[str, float]]:
        with self._lock:
            now = time.monotonic()
            return {f"{a}->{b}": {"backlog": len(r.queue), "delivered": r.delivered,
                                  "lag_s": round(now - r.queue[0].seen_at, 3) if r.queue else 0.0,
                                  "max_latency_s": round(r.max_latency_s, 3)}
                    for (a, b), r in sorted(self.routes.items())}

    def _client(self, region: str) -> Any:
        if region not in self._clients:
            self._clients[region] = self.deployment.client("s3", region)
        return self._clients[region]

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def step(self) -> None:
        busy = False
        for source in sorted(self._seen):
            busy |= self._scan(source)
        now = time.monotonic()
        with self._lock:
            for route in self.routes.values():
                while route.queue and route.queue[0].due <= now:
                    c = route.queue[0]
                    if {c.rule.source_region, c.rule.target_region} & self._down:
                        break
                    self._copy(c)
                    route.queue.popleft()
                    route.delivered += 1
                    route.max_latency_s = max(route.max_latency_s, now - c.seen_at)
                    busy = True
            waiting = any(r.queue and not ({r.queue[0].rule.source_region,
                                            r.queue[0].rule.target_region} & self._down)
                          for r in self.routes.values())
            self._round_done(busy or waiting)

    def _scan(self, source: str) -> bool:
        rules = [r for r in self.rules if r.source == source]
        s3 = self._client(rules[0].source_region)
        found: list[tuple[dict[str, Any], bool]] = []
        page_from: dict[str, str] = {}
        for _ in range(MAX_PAGES):
            page = s3.list_object_versions(Bucket=source, MaxKeys=LIST_LIMIT, **page_from)
            found += [(v, False) for v in page.get("Versions") or []]
            found += [(m, True) for m in page.get("DeleteMarkers") or []]
            if not page.get("IsTruncated"):
                break
            page_from = {"KeyMarker": page["NextKeyMarker"],
                      "VersionIdMarker": page["NextVersionIdMarker"]}
        # Oldest first. LastModified has 1 s resolution, and a key's versions are listed
        # newest first, so within a second the latest goes last and listing order decides.
        order = sorted(range(len(found)), key=lambda i: (
            found[i][0]["LastModified"], bool(found[i][0].get("IsLatest")), -i))
        found = [found[i] for i in order]
        new = False
        with self._lock:
            for v, marker in found:
                vid = str(v["VersionId"])
                if vid in self._seen[source]:
                    continue
                self._seen[source].add(vid)
                new = True
                if (source, vid) in self._mine:
                    continue  # a replica: S3 does not replicate it again
                rule = next((r for r in rules if str(v["Key"]).startswith(r.prefix)), None)
                if rule is None or (marker and not rule.delete_markers):
                    continue
                now = time.monotonic()
                self.routes[(rule.source, rule.target)].queue.append(
                    _Copy(rule, str(v["Key"]), vid, marker, now, now + self.delay_s))
        return new

    def _copy(self, c: _Copy) -> None:
        dst = self._client(c.rule.target_region)
        if c.delete_marker:
            out = dst.delete_object(Bucket=c.rule.target, Key=c.key)
        else:
            obj = self._client(c.rule.source_region).get_object(
                Bucket=c.rule.source, Key=c.key, VersionId=c.version_id)
            out = dst.put_object(Bucket=c.rule.target, Key=c.key, Body=obj["Body"].read(),
                                 ContentType=obj.get("ContentType") or "binary/octet-stream",
                                 Metadata=obj.get("Metadata") or {},
                                 StorageClass=c.rule.storage_class)
        if out.get("VersionId"):
            self._mine.add((c.rule.target, str(out["VersionId"])))
        self.replicas += 1
