"""The wrapper on DynamoDB and S3 (moto server): values DynamoDB cannot store are refused
before any SDK call, internal attributes are reserved, a late retry never overwrites a newer
write, and a wrapper that cannot read its data pointer fails closed. Each test is named after
the defect of issue 11 it covers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.runtime.aws.data import AwsBackends
from components.runtime.aws.wrapper import make_handler
from components.runtime.wrapper import Wrapper, WrapperHandler, load_config
from components.sandbox import world

R1, R2 = world.R1, world.R2
pytestmark = pytest.mark.usefixtures("aws")


def cloud() -> dict[str, str]:
    for r in (R1, R2):
        world.pointer_table(r)
        world.client("dynamodb", r).create_table(
            TableName="shop-orders", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        kwargs = {} if r == R1 else {"CreateBucketConfiguration": {"LocationConstraint": r}}
        world.client("s3", r).create_bucket(Bucket=f"shop-data-{r}", **kwargs)
    return {"STANDBY_TOPOLOGY": "shop", "STANDBY_SIDE": "primary", "STANDBY_REGION": R1,
            "STANDBY_POINTER_TABLE": "shop-standby-pointers", "STANDBY_POINTER_CACHE_S": "0",
            "STANDBY_DB_ENGINE": "dynamodb", "STANDBY_DATA_REGIONS": json.dumps([R1, R2]),
            "STANDBY_DB_TABLE": "shop-orders",
            "STANDBY_BUCKETS": json.dumps({r: f"shop-data-{r}" for r in (R1, R2)})}


@pytest.fixture
def handle() -> WrapperHandler:
    return make_handler(cloud())


def stored(pk: str, sk: str = "v1") -> dict[str, Any] | None:
    item = world.client("dynamodb", R1).get_item(
        TableName="shop-orders", Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
    return None if item is None else dict(item)


def refused(answer: dict[str, Any], needle: str) -> None:
    assert answer["ok"] is False, answer
    assert answer["error"]["code"] == "BadRequest", answer
    assert needle in answer["error"]["message"], answer["error"]["message"]


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"m": value}
    return value


BAD_ITEMS = [
    ("number_over_dynamodb_magnitude_1e300", {"n": 1e300}, "magnitude"),
    ("number_under_dynamodb_magnitude_1e-200", {"n": 1e-200}, "magnitude"),
    ("number_with_39_significant_digits", {"n": 10**38 + 1}, "significant digits"),
    ("infinity", {"n": float("inf")}, "finite"),
    ("nan_nested_in_a_map", {"m": {"x": [1, float("nan")]}}, "finite"),
    ("map_nested_900_deep", {"m": nested(900)}, "nested more than 32"),
    ("lone_surrogate_in_a_value", {"s": "a\ud800b"}, "lone surrogate"),
    ("lone_surrogate_in_an_attribute_name", {"a\udc00": "x"}, "lone surrogate"),
    ("internal_idempotency_attribute", {"_standby_idem": [{"k": "K9", "h": "x", "t": 0}]},
     "reserved"),
    ("internal_version_attribute", {"_standby_ver": 99}, "reserved"),
]


@pytest.mark.parametrize("extra,needle", [(e, n) for _, e, n in BAD_ITEMS],
                         ids=[name for name, _, _ in BAD_ITEMS])
def test_kv_value_dynamodb_cannot_store_is_refused_not_a_crash(
        handle: WrapperHandler, extra: dict[str, Any], needle: str) -> None:
    answer = handle({"op": "kv.put", "item": {"pk": "p1", "sk": "v1", **extra},
                     "idempotency_key": "k1"}, None)
    refused(answer, needle)
    assert answer["error"]["retryable"] is False
    assert stored("p1") is None


def test_lone_surrogate_in_a_key_or_body_is_refused_not_a_crash(handle: WrapperHandler) -> None:
    refused(handle({"op": "kv.get", "key": {"pk": "a\ud800", "sk": "v1"}}, None),
            "lone surrogate")
    refused(handle({"op": "object.put", "key": "k.txt", "body": "x\udfff"}, None),
            "lone surrogate")


@pytest.mark.parametrize("body_b64", [None, True, 1234, ["YQ=="]])
def test_body_b64_that_is_not_a_string_is_refused_not_stringified(
        handle: WrapperHandler, body_b64: Any) -> None:
    refused(handle({"op": "object.put", "key": "b.bin", "body_b64": body_b64}, None),
            "must be a base64 string")
    listed = world.client("s3", R1).list_objects_v2(Bucket=f"shop-data-{R1}")
    assert listed.get("KeyCount", 0) == 0


def test_ten_to_the_fortieth_is_a_valid_dynamodb_number_and_round_trips(
        handle: WrapperHandler) -> None:
    item = {"pk": "big", "sk": "v1", "n": 10**40, "tiny": 1.5e-100, "f": 0.1,
            "deep": nested(30)}
    assert handle({"op": "kv.put", "item": item}, None)["ok"]
    got = handle({"op": "kv.get", "key": {"pk": "big", "sk": "v1"}}, None)["result"]["item"]
    assert got == item


def test_late_retry_of_an_earlier_put_does_not_overwrite_a_newer_write(
        handle: WrapperHandler) -> None:
    paid = {"op": "kv.put", "item": {"pk": "order#1", "sk": "v1", "state": "paid"},
            "idempotency_key": "K1"}
    refunded = {"op": "kv.put", "item": {"pk": "order#1", "sk": "v1", "state": "refunded"},
                "idempotency_key": "K2"}
    assert handle(paid, None)["result"] == {"replayed": False}
    assert handle(refunded, None)["result"] == {"replayed": False}
    # A's client timed out and resends K1 (maybe to the other wrapper): a replay, not a write.
    assert handle(paid, None)["result"] == {"replayed": True}
    got = handle({"op": "kv.get", "key": {"pk": "order#1", "sk": "v1"}}, None)["result"]
    assert got["item"]["state"] == "refunded"
    # An unkeyed write in between keeps the remembered keys.
    handle({"op": "kv.put", "item": {"pk": "order#1", "sk": "v1", "state": "shipped"}}, None)
    assert handle(paid, None)["result"] == {"replayed": True}
    assert handle({"op": "kv.get", "key": {"pk": "order#1", "sk": "v1"}},
                  None)["result"]["item"]["state"] == "shipped"


def test_kv_idempotency_key_reused_for_other_content_is_conflict(handle: WrapperHandler) -> None:
    assert handle({"op": "kv.put", "item": {"pk": "o2", "sk": "v1", "n": 1},
                   "idempotency_key": "K"}, None)["ok"]
    answer = handle({"op": "kv.put", "item": {"pk": "o2", "sk": "v1", "n": 2},
                     "idempotency_key": "K"}, None)
    assert answer["error"]["code"] == "Conflict"
    got = handle({"op": "kv.get", "key": {"pk": "o2", "sk": "v1"}}, None)["result"]["item"]
    assert got == {"pk": "o2", "sk": "v1", "n": 1}


def test_late_retry_of_an_object_put_does_not_overwrite_a_newer_object(
        handle: WrapperHandler) -> None:
    first = {"op": "object.put", "key": "doc.txt", "body": "v1", "idempotency_key": "D1"}
    second = {"op": "object.put", "key": "doc.txt", "body": "v2", "idempotency_key": "D2"}
    assert handle(first, None)["result"]["replayed"] is False
    assert handle(second, None)["result"]["replayed"] is False
    assert handle(first, None)["result"]["replayed"] is True
    body = world.client("s3", R1).get_object(Bucket=f"shop-data-{R1}", Key="doc.txt")["Body"]
    assert body.read() == b"v2"
    clash = handle({**first, "body": "other"}, None)
    assert clash["error"]["code"] == "Conflict"


# -- fail closed -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_wrapper_that_cannot_read_its_pointer_refuses_writes_after_the_cache_ttl() -> None:
    env = {**cloud(), "STANDBY_POINTER_CACHE_S": "5", "STANDBY_POINTER_MAX_STALE_S": "30",
           "STANDBY_DB_ENGINE": "postgres", "STANDBY_DB_ENDPOINTS": json.dumps(
               {R1: "127.0.0.1:1", R2: "127.0.0.1:1"}),
           "STANDBY_DB_NAME": "shop", "STANDBY_DB_SECRET_ARN": "unused"}
    cfg = load_config(env)
    clock = Clock()
    wrapper = Wrapper(cfg, AwsBackends(cfg), clock=clock)
    assert wrapper.health()["ok"]
    world.client("dynamodb", R1).delete_table(TableName="shop-standby-pointers")
    clock.t += 6  # past the cache TTL: the pointer cannot be re-read
    write = wrapper.handle({"op": "sql", "sql": "INSERT INTO t (a) VALUES (:a)",
                            "params": {"a": 1}})
    assert write["error"]["code"] == "Unavailable" and write["error"]["retryable"] is True
    assert "writes are refused" in write["error"]["message"]
    assert write["served"]["data_region"] is None  # nothing was sent to a database
    assert wrapper.health()["ok"] is False
    # A read within the bounded staleness goes on to the database the cached pointer names
    # (here none listens: the answer is about the database, not the pointer).
    read = wrapper.handle({"op": "sql", "sql": "SELECT a FROM t"})
    assert read["served"]["data_region"] == R1 and "pointer" not in read["error"]["message"]
    clock.t += 30  # past the bounded staleness: reads are refused too
    late = wrapper.handle({"op": "sql", "sql": "SELECT a FROM t"})
    assert late["error"]["code"] == "Unavailable" and "reads are refused" in \
        late["error"]["message"]
    wrapper.close()


def test_dynamodb_write_reads_the_pointer_strongly_consistent_every_time(
        handle: WrapperHandler) -> None:
    assert handle({"op": "kv.put", "item": {"pk": "a", "sk": "v1"}}, None)["ok"]
    for r in (R1, R2):
        world.client("dynamodb", r).update_item(
            TableName="shop-standby-pointers", Key={"pointer": {"S": "data"}},
            UpdateExpression="SET active = :v", ExpressionAttributeValues={":v": {"S": R2}})
    moved = handle({"op": "kv.put", "item": {"pk": "b", "sk": "v1"}}, None)
    assert moved["served"]["data_region"] == R2
    assert stored("b") is None
