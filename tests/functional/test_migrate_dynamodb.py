"""DynamoDB -> DynamoDB migration against a moto server (over HTTP on 127.0.0.1), with its
DynamoDB Streams API (DescribeStream, GetShardIterator, GetRecords): a concurrent writer
during backfill and catch-up, cutover, rollback, a killed runner, abort, preflight refusals."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from components.migrate import Migration, Phase, PreflightFailed, TransitionError, open_migration
from components.migrate.dynamodb_stream import item_hash, key_of
from tests.conftest import ROOT

REGION = "us-east-1"


def db(endpoint: str) -> Any:
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)


def make_table(endpoint: str, name: str, view: str | None = "NEW_AND_OLD_IMAGES",
               sort_key: bool = True) -> None:
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "pk", "AttributeType": "S"}]
    if sort_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "sk", "AttributeType": "N"})
    kw: dict[str, Any] = {}
    if view is not None:
        kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    db(endpoint).create_table(TableName=name, KeySchema=keys, AttributeDefinitions=attrs,
                              BillingMode="PAY_PER_REQUEST", **kw)


def url(endpoint: str, table: str) -> str:
    return f"dynamodb://{table}?region={REGION}&endpoint_url={endpoint}"


def item(i: int, v: int) -> dict[str, Any]:
    return {"pk": {"S": f"u{i % 37}"}, "sk": {"N": str(i)}, "v": {"N": str(v)},
            "tags": {"SS": [f"t{v % 3}", "x"]}, "note": {"S": "n" * (i % 50)}}


def seed(endpoint: str, table: str, n: int) -> None:
    c = db(endpoint)
    for i in range(n):
        c.put_item(TableName=table, Item=item(i, 0))


def contents(endpoint: str, table: str) -> dict[str, str]:
    c, start = db(endpoint), None
    out: dict[str, str] = {}
    for _ in range(10_000):
        kw: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        if start:
            kw["ExclusiveStartKey"] = start
        resp = c.scan(**kw)
        out.update((key_of(i, ["pk", "sk"]), item_hash(i)) for i in resp["Items"])
        start = resp.get("LastEvaluatedKey")
        if not start:
            break
    return out


class Writer(threading.Thread):
    """The application: puts, updates and deletes on the source until stopped; deletes
    include items it re-creates later, so a resurrected or lost delete shows."""

    def __init__(self, endpoint: str, table: str, n: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.c, self.table, self.n = db(endpoint), table, n
        self.rnd = random.Random(seed)
        self.halt = threading.Event()
        self.errors: list[str] = []
        self.ops = 0

    def run(self) -> None:
        while not self.halt.is_set() and self.ops < 100_000:
            i = self.rnd.randrange(self.n + 40)
            op = self.rnd.random()
            key = {"pk": {"S": f"u{i % 37}"}, "sk": {"N": str(i)}}
            try:
                if op < 0.4:
                    self.c.put_item(TableName=self.table, Item=item(i, self.ops + 1))
                elif op < 0.7:
                    self.c.update_item(TableName=self.table, Key=key,
                                       UpdateExpression="SET v = :v",
                                       ExpressionAttributeValues={":v": {"N": str(self.ops)}})
                else:
                    self.c.delete_item(TableName=self.table, Key=key)
            except Exception as exc:
                self.errors.append(repr(exc))
            self.ops += 1
            time.sleep(0.01)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)


def open_m(endpoint: str, tmp: Path, create: bool = True, **adapter: Any) -> Migration:
    return open_migration("orders", url(endpoint, "src"), url(endpoint, "dst"),
                          f"sqlite:///{tmp / 'state.sqlite'}", create=create, lease_s=3,
                          poll_s=0.05, adapter_options={"page_items": 25, **adapter})


@pytest.fixture
def tables(aws: str) -> str:
    make_table(aws, "src")
    make_table(aws, "dst")
    return aws


def test_moto_serves_the_stream_of_a_table(tables: str) -> None:
    """The premise of these tests: GetShardIterator and GetRecords return the table's changes
    with both images (moto's DynamoDB Streams)."""
    c = db(tables)
    c.put_item(TableName="src", Item=item(1, 1))
    c.delete_item(TableName="src", Key={"pk": {"S": "u1"}, "sk": {"N": "1"}})
    arn = c.describe_table(TableName="src")["Table"]["LatestStreamArn"]
    s = boto3.client("dynamodbstreams", region_name=REGION, endpoint_url=tables)
    shard = s.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = s.get_shard_iterator(StreamArn=arn, ShardId=shard,
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    recs = s.get_records(ShardIterator=it)["Records"]
    assert [r["eventName"] for r in recs] == ["INSERT", "REMOVE"]
    assert recs[1]["dynamodb"]["OldImage"]["v"] == {"N": "1"}


def test_migration_under_a_concurrent_writer_cuts_over_with_no_mismatch(
        tables: str, tmp_path: Path) -> None:
    seed(tables, "src", 300)
    m = open_m(tables, tmp_path)
    w = Writer(tables, "src", 300, seed=1)
    w.start()
    try:
        rec = m.run(until=Phase.VERIFY, max_s=240)
        assert rec.phase == Phase.VERIFY
        time.sleep(0.5)  # catch-up under the writer: the runner replays while it waits
        m.run(until=Phase.VERIFY, max_s=60)
    finally:
        w.stop()
    assert w.errors == [] and w.ops > 50
    bf = m.store.get("orders").data["backfill"]  # type: ignore[union-attr]
    assert bf["rows"] >= 200 and bf["cursors"] == ["done"] * 4
    doc = m.cutover(writes_stopped=True, max_freeze_s=60)
    assert doc["phase"] == "reverse-sync" and doc["mismatches"] == 0
    assert contents(tables, "src") == contents(tables, "dst")
    assert m.store.get("orders").data["tombstones"] == {}  # type: ignore[union-attr]

    # After cutover the application writes the target; rollback carries those writes back.
    c = db(tables)
    c.put_item(TableName="dst", Item=item(9999, 7))
    c.delete_item(TableName="dst", Key={"pk": {"S": "u1"}, "sk": {"N": "1"}})
    m.run(max_s=0.5)  # the runner replays the target's stream into the source
    doc = m.rollback(writes_stopped=True, max_freeze_s=60)
    assert doc["phase"] == "rolled-back"
    src = contents(tables, "src")
    assert src == contents(tables, "dst")
    assert src[key_of(item(9999, 7), ["pk", "sk"])] == item_hash(item(9999, 7))
    assert key_of({"pk": {"S": "u1"}, "sk": {"N": "1"}}, ["pk", "sk"]) not in src


def test_remove_replayed_between_scan_and_put_is_not_resurrected(
        tables: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan page read before a delete must not put the item back when replay has already
    applied the REMOVE: the tombstone in the state store makes the copy skip the key, and
    the tombstones are swept when the backfill ends."""
    seed(tables, "src", 60)
    m = open_m(tables, tmp_path, segments=1)
    r = m._acquire()
    for _ in range(3):  # planned -> preflight -> capture -> backfill
        m._once(r)
    assert r.rec.phase == Phase.BACKFILL
    ad: Any = m.adapter
    real_scan = ad._scan_page
    victims: list[dict[str, Any]] = []

    def slow_page(*args: Any) -> Any:
        items, nxt = real_scan(*args)
        if items and not victims:
            # The page is in hand; the application deletes one of its items and replay
            # applies that REMOVE before the page's puts (a slow page, or a second runner
            # thread): the stale copy must lose.
            victims.append({"pk": items[0]["pk"], "sk": items[0]["sk"]})
            db(tables).delete_item(TableName="src", Key=victims[0])
            ad._replay(r)
        return items, nxt

    monkeypatch.setattr(ad, "_scan_page", slow_page)
    ad.backfill(r)
    assert victims and "Item" not in db(tables).get_item(TableName="dst", Key=victims[0])
    assert r.rec.data["tombstones"] == {}
    assert r.rec.data["backfill"]["skipped_tombstoned"] == 1
    assert r.rec.data["backfill"]["tombstones_swept"] == 1
    assert contents(tables, "src") == contents(tables, "dst")
    m.store.release("orders", m.holder, r.token)


def phase_in(state: Path, mid: str) -> tuple[str | None, int]:
    try:
        with sqlite3.connect(state, timeout=5) as con:
            row = con.execute("SELECT phase, data FROM migrations WHERE id = ?",
                              (mid,)).fetchone()
    except sqlite3.Error:
        return None, 0
    if row is None:
        return None, 0
    return str(row[0]), int((json.loads(row[1]).get("backfill") or {}).get("rows") or 0)


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "components", "migrate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_killed_runner_mid_backfill_resumes_and_cuts_over(tables: str, tmp_path: Path) -> None:
    seed(tables, "src", 400)
    state = tmp_path / "state.sqlite"
    base = ["--id", "orders", "--source", url(tables, "src"), "--target", url(tables, "dst"),
            "--state", f"sqlite:///{state}"]
    w = Writer(tables, "src", 400, seed=2)
    w.start()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "components", "migrate", "start", *base,
                                 "--lease-s", "2", "--poll-s", "0.1"], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while phase_in(state, "orders")[1] < 100 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        phase, rows = phase_in(state, "orders")
        assert phase == "backfill" and 0 < rows < 400, (phase, rows)
        out = cli("start", *base, "--until", "verify", "--lease-s", "2", "--poll-s", "0.1",
                  "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["phase"] == "verify"
    finally:
        w.stop()
    assert w.errors == []
    out = cli("cutover", *base, "--writes-stopped", "--max-freeze-s", "60", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["phase"] == "reverse-sync" and doc["mismatches"] == 0
    assert contents(tables, "src") == contents(tables, "dst")
    hist = open_m(tables, tmp_path, create=False).store.history("orders")
    assert len({h["token"] for h in hist}) >= 2  # the killed runner and its successor


def test_abort_before_cutover_leaves_the_source_as_it_was(tables: str, tmp_path: Path) -> None:
    seed(tables, "src", 80)
    before = contents(tables, "src")
    spec = db(tables).describe_table(TableName="src")["Table"]["StreamSpecification"]
    m = open_m(tables, tmp_path)
    m.run(until=Phase.BACKFILL, max_s=60)
    m.step()  # the whole backfill: copied, then abandoned
    assert m.store.get("orders").phase == Phase.CATCH_UP  # type: ignore[union-attr]
    doc = m.abort()
    assert doc["phase"] == "aborted"
    assert contents(tables, "src") == before
    assert db(tables).describe_table(TableName="src")["Table"]["StreamSpecification"] == spec
    with pytest.raises(TransitionError, match="the phase is aborted"):
        m.cutover(writes_stopped=True)


@pytest.mark.parametrize("view", [None, "KEYS_ONLY", "NEW_IMAGE"])
def test_preflight_refuses_a_stream_without_both_images(aws: str, tmp_path: Path,
                                                        view: str | None) -> None:
    make_table(aws, "src", view=view)
    make_table(aws, "dst")
    m = open_m(aws, tmp_path)
    with pytest.raises(PreflightFailed, match=f"source stream: the stream is {view or 'off'}"):
        m.run(max_s=30)
    out = cli("plan", "--id", "orders", "--source", url(aws, "src"), "--target",
              url(aws, "dst"), "--json")
    assert out.returncode == 1
    bad = [c["name"] for c in json.loads(out.stdout)["checks"] if not c["ok"]]
    assert bad == ["source stream"]


def test_preflight_refuses_other_keys_and_a_full_target(aws: str, tmp_path: Path) -> None:
    make_table(aws, "src")
    make_table(aws, "dst", sort_key=False)
    make_table(aws, "full")
    seed(aws, "full", 1)
    out = cli("plan", "--id", "orders", "--source", url(aws, "src"), "--target",
              url(aws, "dst"), "--json")
    assert out.returncode == 1
    assert [c["name"] for c in json.loads(out.stdout)["checks"] if not c["ok"]] == [
        "key schema"]
    out = cli("plan", "--id", "orders", "--source", url(aws, "src"), "--target",
              url(aws, "full"), "--json")
    assert out.returncode == 1
    assert [c["name"] for c in json.loads(out.stdout)["checks"] if not c["ok"]] == [
        "target empty"]


def test_bad_dynamodb_url_names_the_allowed_form(tmp_path: Path) -> None:
    out = cli("plan", "--id", "orders", "--source", "dynamodb://src", "--target",
              "dynamodb://dst?region=us-east-1")
    assert out.returncode == 2
    assert "region= is required" in out.stderr and "dynamodb://TABLE?region=" in out.stderr


def test_dynamodb_urls_parse_and_the_same_table_is_refused() -> None:
    from components.migrate import UrlError, make_adapter
    from components.migrate.urls import endpoint

    ep = endpoint("dynamodb://orders-old?region=eu-west-1&endpoint_url=http://127.0.0.1:9")
    assert (ep.kind, ep.database, ep.region, ep.endpoint_url, ep.port) == (
        "dynamodb", "orders-old", "eu-west-1", "http://127.0.0.1:9", 9)
    assert endpoint("dynamodb://t01?region=us-east-1").host == "dynamodb.us-east-1.amazonaws.com"
    with pytest.raises(UrlError, match="same database"):
        make_adapter("m", "dynamodb://t01?region=us-east-1", "dynamodb://t01?region=us-east-1")
    with pytest.raises(UrlError, match="one engine"):
        make_adapter("m", "dynamodb://t01?region=us-east-1", "postgresql://u:p@h/db")
    with pytest.raises(UrlError, match=r"only region and endpoint_url; allowed: dynamodb://"):
        endpoint("dynamodb://t01?region=us-east-1&consistent=no", "--target")
