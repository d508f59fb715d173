"""Replication in the plan-deployed sandbox: the aws-dev plan deployed into a moto server
(IAM enforced), ``GlobalTableReplicator`` between the ``shop-orders`` replicas,
``BucketReplicator`` along the buckets' replication rules, and the CLI wiring (``--outage``
cuts the region in the replicators and the proxy; the proxy itself: test_sandbox_outage.py).

Before these stand-ins the sandbox held one independent table per replica region: a write
in us-east-1 never reached us-west-2, so no drill could count lost or duplicated writes."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from components.plan.run import read_stack, run_program
from components.program import main
from components.sandbox.__main__ import _outage, differences
from components.sandbox.__main__ import main as cli_main
from components.sandbox.deploy import Deployment, deploy_run
from components.sandbox.deploy_model import Created
from components.sandbox.moto_proc import MotoProcess
from components.sandbox.outage import RegionOutageProxy
from components.sandbox.replication import (
    GlobalTable,
    GlobalTableReplicator,
    ReplicationError,
    global_tables,
)
from components.sandbox.replication_s3 import BucketReplicator, replication_rules

ROOT = Path(__file__).resolve().parents[2]
TABLE = "shop-orders"
EAST, WEST = "us-east-1", "us-west-2"
WAIT_S = 20.0


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    run = run_program(read_stack("aws-dev", ROOT), main)
    with MotoProcess() as moto:
        yield deploy_run(run, moto.url, "aws-dev")


@pytest.fixture(scope="module")
def rep(deployment: Deployment) -> Iterator[GlobalTableReplicator]:
    # One replicator for the module, as the sandbox runs one per deployment: it reads each
    # stream from its start, so a second one would replay the first one's writes.
    with GlobalTableReplicator(deployment, delay_s=0.2, poll_s=0.05, max_run_s=600) as r:
        yield r


def key(name: str) -> dict[str, Any]:
    return {"pk": {"S": name}, "sk": {"S": "order"}}


def get(d: Deployment, region: str, name: str) -> dict[str, Any] | None:
    item = d.client("dynamodb", region).get_item(TableName=TABLE, Key=key(name),
                                                 ConsistentRead=True).get("Item")
    return dict(item) if item else None


def put(d: Deployment, region: str, name: str, **attrs: str) -> None:
    d.client("dynamodb", region).put_item(
        TableName=TABLE, Item={**key(name), **{k: {"S": v} for k, v in attrs.items()}})


def settle(rep: GlobalTableReplicator) -> None:
    assert rep.wait_idle(WAIT_S), (rep.stats(), rep.counters)


def until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {WAIT_S} s: {what}")


def stream_records(d: Deployment, region: str, name: str) -> list[dict[str, Any]]:
    """Every record of the table's stream in ``region`` for one item, from the start."""
    ddb, streams = d.client("dynamodb", region), d.client("dynamodbstreams", region)
    arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    out = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for _ in range(1000):
            page = streams.get_records(ShardIterator=it, Limit=1000)
            out += [r for r in page["Records"] if r["dynamodb"]["Keys"] == key(name)]
            it = page.get("NextShardIterator")
            if not page["Records"] or not it:
                break
    return out


# -- discovery ----------------------------------------------------------------------------

def test_global_tables_come_from_the_plan_inputs(deployment: Deployment) -> None:
    tables = global_tables(deployment)
    assert tables == [GlobalTable(TABLE, (EAST, WEST), ("pk", "sk"))]
    # The pointer and state tables are regional tables in the plan: not replicated.
    assert all(t.name == TABLE for t in tables)


def test_a_global_table_without_new_and_old_images_is_refused() -> None:
    d = Deployment(moto_url="http://127.0.0.1:1", stack="x")
    d.created.append(Created("aws:dynamodb/table:Table", "t", EAST, "t", {
        "name": "t", "hashKey": "pk", "replicas": [{"regionName": WEST}],
        "streamEnabled": True, "streamViewType": "NEW_IMAGE"}))
    with pytest.raises(ReplicationError, match=r"table 't' \(t\): global tables need a stream "
                                                r"with NEW_AND_OLD_IMAGES; the plan registers "
                                                r"stream_view_type 'NEW_IMAGE'"):
        global_tables(d)
    d.created[0].inputs["streamEnabled"] = False
    with pytest.raises(ReplicationError, match="the plan registers no stream"):
        global_tables(d)


def test_bad_settings_and_unknown_regions_are_refused(
    deployment: Deployment, rep: GlobalTableReplicator,
) -> None:
    with pytest.raises(ValueError, match=r"delay_s: -1; allowed: 0..60 seconds"):
        GlobalTableReplicator(deployment, delay_s=-1)
    with pytest.raises(ValueError, match=r"region 'eu-north-1' holds no replica; replica "
                                         r"regions: us-east-1, us-west-2"):
        rep.cut("eu-north-1")
    assert rep.down == set()


# -- replication --------------------------------------------------------------------------

def test_put_in_us_east_1_appears_in_us_west_2(
    deployment: Deployment, rep: GlobalTableReplicator,
) -> None:
    assert get(deployment, WEST, "put-1") is None
    put(deployment, EAST, "put-1", state="new")
    until(lambda: get(deployment, WEST, "put-1") is not None, "the put reached us-west-2")
    assert get(deployment, WEST, "put-1") == get(deployment, EAST, "put-1")
    assert get(deployment, WEST, "put-1")["state"] == {"S": "new"}  # type: ignore[index]
    stats = rep.stats()[f"{EAST}->{WEST}"]
    assert stats["delivered"] >= 1 and stats["max_latency_s"] > 0


def test_update_and_delete_replicate_in_both_directions(
    deployment: Deployment, rep: GlobalTableReplicator,
) -> None:
    put(deployment, WEST, "upd-1", state="new")
    settle(rep)
    deployment.client("dynamodb", WEST).update_item(
        TableName=TABLE, Key=key("upd-1"), UpdateExpression="SET #s = :s, paid = :p",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": {"S": "paid"}, ":p": {"S": "yes"}})
    until(lambda: (get(deployment, EAST, "upd-1") or {}).get("state") == {"S": "paid"},
          "the update reached us-east-1")
    assert get(deployment, EAST, "upd-1") == get(deployment, WEST, "upd-1")
    deployment.client("dynamodb", EAST).delete_item(TableName=TABLE, Key=key("upd-1"))
    until(lambda: get(deployment, WEST, "upd-1") is None, "the delete reached us-west-2")
    settle(rep)
    assert get(deployment, EAST, "upd-1") is None


def test_a_replicated_write_is_applied_once_per_replica_and_never_echoes_back(
    deployment: Deployment, rep: GlobalTableReplicator,
) -> None:
    before = rep.counters.echoes
    put(deployment, EAST, "echo-1", v="1")
    put(deployment, EAST, "echo-1", v="2")
    settle(rep)
    east = stream_records(deployment, EAST, "echo-1")
    west = stream_records(deployment, WEST, "echo-1")
    # Two writes in us-east-1, each applied exactly once in us-west-2; an echo would have
    # come back to us-east-1 as a third and fourth record (and on, forever).
    assert [r["eventName"] for r in east] == ["INSERT", "MODIFY"]
    assert [r["eventName"] for r in west] == ["INSERT", "MODIFY"]
    assert [r["dynamodb"]["NewImage"]["v"] for r in west] == [{"S": "1"}, {"S": "2"}]
    assert rep.counters.echoes - before == 2
    settle(rep)
    assert len(stream_records(deployment, EAST, "echo-1")) == 2


def test_the_later_write_wins_a_conflict_whichever_region_took_it(
    deployment: Deployment, rep: GlobalTableReplicator,
) -> None:
    # "Later" is the write's time in its own region's stream, not when it arrived: each
    # region takes one write while us-west-2 is cut off, then both changes meet.
    for name, first, second in (("lww-1", EAST, WEST), ("lww-2", WEST, EAST)):
        rep.cut(WEST)
        try:
            put(deployment, first, name, by=first)
            time.sleep(0.01)  # moto stamps stream records in ms
            put(deployment, second, name, by=second)
            until(lambda: rep.backlog(EAST, WEST) >= 1 and rep.backlog(WEST, EAST) >= 1,
                  "both writes read while us-west-2 is cut")
            assert (get(deployment, EAST, name) or {})["by"] != (
                get(deployment, WEST, name) or {})["by"]
        finally:
            rep.heal(WEST)
        settle(rep)
        assert get(deployment, EAST, name) == get(deployment, WEST, name)
        assert get(deployment, EAST, name)["by"] == {"S": second}  # type: ignore[index]


def test_concurrent_writes_to_one_key_in_both_regions_converge(
    deployment: Deployment, rep: GlobalTableReplicator,
) -> None:
    errors: list[BaseException] = []

    def writer(region: str) -> None:
        try:
            ddb = deployment.client("dynamodb", region)
            for n in range(25):
                ddb.put_item(TableName=TABLE, Item={**key("race-1"), "by": {"S": region},
                                                    "n": {"N": str(n)}})
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(r,)) for r in (EAST, WEST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    settle(rep)
    east, west = get(deployment, EAST, "race-1"), get(deployment, WEST, "race-1")
    assert east == west and east is not None
    assert east["n"] == {"N": "24"}  # each region's last write is its 25th


def test_a_replicated_write_that_overtakes_a_newer_local_write_is_undone(
    deployment: Deployment,
) -> None:
    # The race a stream-reading replicator has: it applies us-east-1's older write to
    # us-west-2 after us-west-2 took a newer write that it had not read yet. Without the
    # write-back, us-east-1 ends with the newer item and us-west-2 with the older: they
    # never converge. Driven round by round on a table of its own, so the order is exact.
    name = "race-orders"
    for region in (EAST, WEST):
        deployment.client("dynamodb", region).create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    r = GlobalTableReplicator(deployment, delay_s=0.0,
                              tables=[GlobalTable(name, (EAST, WEST), ("pk",))])
    r.open()
    east, west = deployment.client("dynamodb", EAST), deployment.client("dynamodb", WEST)
    item = {"pk": {"S": "k"}}
    east.put_item(TableName=name, Item={**item, "by": {"S": "east-older"}})
    assert r.read_streams()
    time.sleep(0.01)  # moto stamps stream records in ms
    west.put_item(TableName=name, Item={**item, "by": {"S": "west-newer"}})
    r.deliver_due()  # the older write lands on top of the newer one it has not read
    assert west.get_item(TableName=name, Key=item)["Item"]["by"] == {"S": "east-older"}
    for _ in range(10):
        r.step()
    assert r.counters.write_backs == 1
    assert east.get_item(TableName=name, Key=item)["Item"]["by"] == {"S": "west-newer"}
    assert west.get_item(TableName=name, Key=item)["Item"]["by"] == {"S": "west-newer"}
    assert not any(r.backlog(a, b) for a, b in ((EAST, WEST), (WEST, EAST)))


def test_cut_stops_replication_and_heal_lets_the_backlog_flow(
    deployment: Deployment, rep: GlobalTableReplicator,
) -> None:
    rep.cut(EAST)
    try:
        put(deployment, EAST, "cut-1", state="during-outage")
        put(deployment, WEST, "cut-2", state="during-outage")
        until(lambda: rep.backlog(EAST, WEST) == 1 and rep.backlog(WEST, EAST) == 1,
              "both writes waiting")
        time.sleep(rep.delay_s + 5 * rep.poll_s)  # due long ago: still held by the cut
        assert get(deployment, WEST, "cut-1") is None
        assert get(deployment, EAST, "cut-2") is None
        assert rep.lag_s(EAST, WEST) >= rep.delay_s
        assert rep.waiting(EAST, WEST) == [(TABLE, key("cut-1"), {
            **key("cut-1"), "state": {"S": "during-outage"}})]
        assert rep.stats()[f"{EAST}->{WEST}"]["backlog"] == 1
    finally:
        rep.heal(EAST)
    settle(rep)
    assert get(deployment, WEST, "cut-1") == get(deployment, EAST, "cut-1") is not None
    assert get(deployment, EAST, "cut-2") == get(deployment, WEST, "cut-2") is not None
    assert rep.backlog(EAST, WEST) == rep.backlog(WEST, EAST) == 0
    assert rep.lag_s(EAST, WEST) == 0.0


# -- S3 replication -----------------------------------------------------------------------

def _buckets(d: Deployment) -> dict[str, str]:
    return {c.region: c.cloud_id for c in d.created if c.type == "aws:s3/bucket:Bucket"}


@pytest.fixture(scope="module")
def s3rep(deployment: Deployment) -> Iterator[BucketReplicator]:
    with BucketReplicator(deployment, delay_s=0.2, poll_s=0.05, max_run_s=600) as r:
        yield r


def versions(d: Deployment, region: str, name: str) -> tuple[list[str], list[str]]:
    """(version ids, delete marker ids) of one key, newest first."""
    out = d.client("s3", region).list_object_versions(Bucket=_buckets(d)[region], Prefix=name)
    return ([v["VersionId"] for v in out.get("Versions") or [] if v["Key"] == name],
            [m["VersionId"] for m in out.get("DeleteMarkers") or [] if m["Key"] == name])


def test_bucket_replication_rules_come_from_the_plan(deployment: Deployment) -> None:
    b = _buckets(deployment)
    rules = {(r.source, r.target): r for r in replication_rules(deployment)}
    assert set(rules) == {(b[EAST], b[WEST]), (b[WEST], b[EAST])}
    east = rules[(b[EAST], b[WEST])]
    assert (east.source_region, east.target_region, east.prefix) == (EAST, WEST, "")
    # moto reports DeleteMarkerReplication Disabled whatever was put: the plan's word counts.
    assert east.delete_markers and east.storage_class == "STANDARD"


def test_a_new_object_is_copied_to_the_other_bucket_once_and_not_back(
    deployment: Deployment, s3rep: BucketReplicator,
) -> None:
    b = _buckets(deployment)
    deployment.client("s3", EAST).put_object(Bucket=b[EAST], Key="s3-obj-1", Body=b"v1",
                                             ContentType="text/plain",
                                             Metadata={"order": "42"})
    assert s3rep.wait_idle(WAIT_S), s3rep.stats()
    got = deployment.client("s3", WEST).get_object(Bucket=b[WEST], Key="s3-obj-1")
    assert got["Body"].read() == b"v1"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"order": "42"}
    # One version on each side: the replica in us-west-2 was not replicated back.
    assert len(versions(deployment, EAST, "s3-obj-1")[0]) == 1
    assert len(versions(deployment, WEST, "s3-obj-1")[0]) == 1
    deployment.client("s3", EAST).put_object(Bucket=b[EAST], Key="s3-obj-1", Body=b"v2")
    assert s3rep.wait_idle(WAIT_S), s3rep.stats()
    got = deployment.client("s3", WEST).get_object(Bucket=b[WEST], Key="s3-obj-1")
    assert got["Body"].read() == b"v2"
    assert len(versions(deployment, WEST, "s3-obj-1")[0]) == 2


def test_a_delete_marker_replicates_and_a_version_delete_does_not(
    deployment: Deployment, s3rep: BucketReplicator,
) -> None:
    b = _buckets(deployment)
    west = deployment.client("s3", WEST)
    west.put_object(Bucket=b[WEST], Key="s3-del-1", Body=b"x")
    west.put_object(Bucket=b[WEST], Key="s3-del-2", Body=b"y")
    assert s3rep.wait_idle(WAIT_S), s3rep.stats()
    east = deployment.client("s3", EAST)
    west.delete_object(Bucket=b[WEST], Key="s3-del-1")  # a delete marker
    only = versions(deployment, WEST, "s3-del-2")[0][0]
    west.delete_object(Bucket=b[WEST], Key="s3-del-2", VersionId=only)  # a version delete
    assert s3rep.wait_idle(WAIT_S), s3rep.stats()
    with pytest.raises(ClientError) as gone:
        east.get_object(Bucket=b[EAST], Key="s3-del-1")
    assert gone.value.response["Error"]["Code"] == "NoSuchKey"
    assert len(versions(deployment, EAST, "s3-del-1")[1]) == 1
    assert east.get_object(Bucket=b[EAST], Key="s3-del-2")["Body"].read() == b"y"


def test_a_cut_bucket_region_holds_its_copies_until_heal(
    deployment: Deployment, s3rep: BucketReplicator,
) -> None:
    b = _buckets(deployment)
    s3rep.cut(WEST)
    try:
        deployment.client("s3", EAST).put_object(Bucket=b[EAST], Key="s3-cut-1", Body=b"z")
        until(lambda: s3rep.backlog(b[EAST], b[WEST]) == 1, "the copy waiting")
        time.sleep(s3rep.delay_s + 5 * s3rep.poll_s)
        assert versions(deployment, WEST, "s3-cut-1") == ([], [])
    finally:
        s3rep.heal(WEST)
    assert s3rep.wait_idle(WAIT_S), s3rep.stats()
    assert len(versions(deployment, WEST, "s3-cut-1")[0]) == 1
    with pytest.raises(ValueError, match=r"region 'eu-north-1' holds no replicated bucket"):
        s3rep.cut("eu-north-1")


# -- the CLI wiring -----------------------------------------------------------------------

def test_differences_say_what_the_stand_ins_do_instead_of_no_replication(
    deployment: Deployment,
) -> None:
    text = "\n".join(differences(deployment, 60.0))
    assert "no replication" not in text and "nothing copied" not in text
    assert "last writer wins by the write's stream time" in text
    assert "S3 replication: moto stores the configuration and copies nothing; the sandbox's" \
        in text
    assert "ConnectionClosedError" in text and "EndpointConnectionError" in text


def test_cli_outage_cuts_the_region_in_the_proxy_and_both_replicators_for_its_window(
    deployment: Deployment, rep: GlobalTableReplicator, s3rep: BucketReplicator,
) -> None:
    lines: list[str] = []
    # 6 simulated minutes of 0.5 s: a 3 s window, long enough to look inside it.
    args = argparse.Namespace(outage=EAST, outage_at=0.0, outage_minutes=6.0,
                              outage_mode="reset", seconds_per_minute=0.5)
    with (RegionOutageProxy(deployment.moto_url) as proxy,
          _outage(args, proxy, [rep, s3rep], lines.append)):
        until(lambda: f"[outage] {EAST} down (reset)" in lines, "the outage began")
        assert proxy.faults == {(EAST, None): "reset"}
        assert rep.down == {EAST} and EAST in s3rep.down
        until(lambda: f"[outage] {EAST} healed" in lines, "the outage ended")
        assert proxy.faults == {} and rep.down == set() and not s3rep.down
    args.outage = f"{WEST}:dynamodb"
    with (RegionOutageProxy(deployment.moto_url) as proxy,
          _outage(args, proxy, [rep, s3rep], lines.append)):
        until(lambda: f"[outage] {WEST}:dynamodb down (reset)" in lines, "began")
        assert rep.down == {WEST} and not s3rep.down  # S3 is not cut for a DynamoDB fault
        until(lambda: f"[outage] {WEST}:dynamodb healed" in lines, "ended")
    assert rep.down == set()


def test_cli_refuses_a_bad_outage_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["--stack", "aws-dev", "--project-dir", str(ROOT), "--outage", "US_EAST"])
    assert exit_.value.code == 2
    assert "--outage: region 'US_EAST': not a region name" in capsys.readouterr().err
