"""The data path against a real PostgreSQL primary and streaming replica (and moto for the
pointers, the secrets and the monitors' state): wrapper, data client, SQL probe, and the
data monitor's failover and planned switchover, with Jepsen-style checks that every
acknowledged write survives."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from components.runtime.aws.clients import Clients
from components.runtime.aws.data_client import from_env
from components.runtime.aws.probes import rds_sql_probe
from components.runtime.aws.wrapper import make_handler
from components.sandbox import world
from components.sandbox.functions import FunctionHost
from components.sandbox.pg import PgPair, PgUnavailable

R1, R2 = world.R1, world.R2
pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture
def pg() -> Iterator[PgPair]:
    try:
        pair = PgPair()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    with pair:
        with pair.connect("primary", "app") as c:
            c.execute("CREATE TABLE orders (id text PRIMARY KEY, item text, region text)")
        yield pair


def secrets(pg: PgPair) -> tuple[str, str]:
    sm = world.client("secretsmanager", R1)
    admin = sm.create_secret(Name=f"admin-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(
        {"username": "postgres", "password": pg.admin_password}))["ARN"]
    app = sm.create_secret(Name=f"app-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(
        {"username": "app", "password": pg.app_password}))["ARN"]
    return admin, app


def wrapper_env(pg: PgPair, app_secret: str, region: str = R1, side: str = "primary",
                cache_s: float = 0.0) -> dict[str, str]:
    return {"STANDBY_TOPOLOGY": "shop", "STANDBY_SIDE": side, "STANDBY_REGION": region,
            "STANDBY_POINTER_TABLE": "shop-standby-pointers",
            "STANDBY_POINTER_CACHE_S": str(cache_s), "STANDBY_DB_ENGINE": "postgres",
            "STANDBY_DATA_REGIONS": json.dumps([R1, R2]),
            "STANDBY_DB_ENDPOINTS": json.dumps({R1: pg.endpoint("primary"),
                                                R2: pg.endpoint("standby")}),
            "STANDBY_DB_NAME": pg.database, "STANDBY_DB_SECRET_ARN": app_secret}


def rows(pg: PgPair, server: str = "primary", table: str = "orders") -> set[str]:
    with pg.connect(server, "app") as c:
        return {r[0] for r in c.execute(f"SELECT id FROM {table}").fetchall()}


def insert(i: str) -> dict[str, Any]:
    return {"op": "sql", "sql": "INSERT INTO orders (id, item) VALUES (:id, :item)",
            "params": {"id": i, "item": "x"}, "idempotency_key": f"order-{i}"}


def data_monitor_env(pg: PgPair, admin_secret: str, region: str) -> dict[str, str]:
    sql = {"engine": "postgres", "database": pg.database, "secret_arn": admin_secret}
    probes = [{"scope": "data", "kind": "sql", "side": side, "region": r,
               **pg.endpoint(name), **sql}
              for side, r, name in (("primary", R1, "primary"), ("standby", R2, "standby"))]
    switch: list[dict[str, Any]] = [{"scope": "data", "kind": "sql_promote", **sql, "max_lag_s": 5,
               "drain_timeout_s": 10, "sides": {"primary": pg.endpoint("primary"),
                                                "standby": pg.endpoint("standby")}},
              {"scope": "data", "kind": "pointer_all", "key": "data",
               "tables": [{"region": r, "table": "shop-standby-pointers"} for r in (R1, R2)],
               "values": {"primary": R1, "standby": R2}}]
    return world.env("data", region, probes, switch)


def setup_cloud(pg: PgPair) -> tuple[str, str]:
    world.state_table()
    for r in (R1, R2):
        world.pointer_table(r)
    return secrets(pg)


# -- the wrapper ---------------------------------------------------------------------------


def test_wrapper_writes_once_per_idempotency_key_and_reads_back(pg: PgPair) -> None:
    _, app = setup_cloud(pg)
    handle = make_handler(wrapper_env(pg, app))
    first = handle(insert("a1"), None)
    again = handle(insert("a1"), None)
    assert first["ok"] and first["result"] == {"row_count": 1, "replayed": False}
    assert again["ok"] and again["result"] == {"row_count": 1, "replayed": True}
    assert first["served"]["data_region"] == R1
    read = handle({"op": "sql", "sql": "SELECT id, item FROM orders WHERE id = :id",
                   "params": {"id": "a1"}}, None)
    assert read["result"]["rows"] == [["a1", "x"]] and read["result"]["columns"] == ["id", "item"]
    assert handle({"standby_probe": True}, None)["ok"] is True
    handle.wrapper.close()


INJECTIONS = [
    {"op": "sql", "sql": "INSERT INTO orders (id) VALUES ('x'); DROP TABLE orders"},
    {"op": "sql", "sql": "SELECT * FROM orders WHERE id = '' OR 1=1 --"},
    {"op": "sql", "sql": "DELETE FROM orders WHERE id = :id /* and tenant = :t */",
     "params": {"id": "a"}},
    {"op": "sql", "sql": "TRUNCATE orders"},
    {"op": "sql", "sql": "INSERT INTO orders (id) VALUES (:id)", "params": {"id": "z" * 300000}},
    {"op": "sql", "sql": "INSERT INTO orders (id) VALUES (:id)", "params": {"id": ["a", "b"]}},
    {"op": "sql.raw", "sql": "INSERT INTO orders (id) VALUES ('q')"},
    {"op": "sql", "sql": "INSERT INTO nope (id) VALUES (:id)", "params": {"id": "n"},
     "idempotency_key": "bad-table"},
    "INSERT INTO orders (id) VALUES ('raw')",
    {"op": "sql"},
]


@pytest.mark.parametrize("event", INJECTIONS, ids=[f"bad{i}" for i in range(len(INJECTIONS))])
def test_bad_input_gets_a_clear_error_and_writes_nothing(pg: PgPair, event: Any) -> None:
    _, app = setup_cloud(pg)
    handle = make_handler(wrapper_env(pg, app))
    handle(insert("keep"), None)
    before = rows(pg)
    answer = handle(event, None)
    assert answer["ok"] is False
    assert answer["error"]["code"] in ("BadRequest", "ForbiddenStatement", "PayloadTooLarge",
                                       "UnknownOperation")
    assert answer["error"]["message"]
    assert rows(pg) == before == {"keep"}
    with pg.connect("primary", "app") as c:  # the failed idempotent write left no key behind
        keys = {r[0] for r in c.execute("SELECT idem_key FROM standby_idempotency")}
    assert keys == {"order-keep"}
    handle.wrapper.close()


def test_an_injection_in_a_parameter_is_stored_as_plain_data(pg: PgPair) -> None:
    _, app = setup_cloud(pg)
    handle = make_handler(wrapper_env(pg, app))
    evil = "x'); DROP TABLE orders; --"
    assert handle({"op": "sql", "sql": "INSERT INTO orders (id, item) VALUES (:id, :item)",
                   "params": {"id": "e1", "item": evil}}, None)["ok"]
    with pg.connect("primary", "app") as c:
        assert c.execute("SELECT item FROM orders WHERE id = 'e1'").fetchone()[0] == evil
    handle.wrapper.close()


def test_wrapper_refuses_writes_to_the_unpromoted_side(pg: PgPair) -> None:
    _, app = setup_cloud(pg)
    for r in (R1, R2):  # someone points the data at the replica without promoting it
        world.client("dynamodb", r).update_item(
            TableName="shop-standby-pointers", Key={"pointer": {"S": "data"}},
            UpdateExpression="SET active = :v", ExpressionAttributeValues={":v": {"S": R2}})
    handle = make_handler(wrapper_env(pg, app))
    answer = handle(insert("split"), None)
    assert answer["error"]["code"] == "NotPrimary" and answer["error"]["retryable"]
    assert answer["served"]["data_region"] == R2
    assert "split" not in rows(pg, "primary") and "split" not in rows(pg, "standby")
    read = handle({"op": "sql", "sql": "SELECT count(*) FROM orders"}, None)
    assert read["ok"]  # reads from the replica are fine
    handle.wrapper.close()


def test_sql_probe_reports_role_and_lag_on_real_servers(pg: PgPair) -> None:
    admin, _ = setup_cloud(pg)
    probe = rds_sql_probe(Clients())
    base = {"scope": "data", "kind": "sql", "engine": "postgres", "database": pg.database,
            "secret_arn": admin, "region": R1}
    primary = probe({**base, "side": "primary", **pg.endpoint("primary")}, 2.0)
    standby = probe({**base, "side": "standby", **pg.endpoint("standby")}, 2.0)
    assert primary.ok and primary.data["replica"] is False and primary.data["writable"] is True
    assert standby.ok and standby.data["replica"] is True and standby.data["lag_s"] >= 0
    assert standby.data["replicating"] is True and standby.data["writable"] is False
    pg.kill("primary")
    down = probe({**base, "side": "primary", **pg.endpoint("primary")}, 1.0)
    assert not down.ok and "OperationalError" in down.detail


# -- the data client and both wrappers -------------------------------------------------------


def test_client_falls_back_to_the_standby_wrapper_and_applies_a_retry_once(pg: PgPair) -> None:
    _, app = setup_cloud(pg)
    host = FunctionHost()
    handles = []
    try:
        for side in ("primary", "standby"):
            h = make_handler(wrapper_env(pg, app, side=side))
            handles.append(h)
            host.register(f"shop-wrap-ue1-{side}", h)
        env = {"STANDBY_REGION": R1, "STANDBY_POINTER_TABLE": "shop-standby-pointers",
               "STANDBY_POINTER_CACHE_S": "0", "STANDBY_WRAPPER_PRIMARY": "shop-wrap-ue1-primary",
               "STANDBY_WRAPPER_STANDBY": "shop-wrap-ue1-standby"}
        import os

        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = host.url
        try:
            client = from_env(env)
            client.sql("INSERT INTO orders (id) VALUES (:id)", {"id": "c1"},
                       idempotency_key="order-c1")
            assert client.last_served["wrapper_side"] == "primary"
            host.fault("shop-wrap-ue1-primary", "down")
            out = client.sql("INSERT INTO orders (id) VALUES (:id)", {"id": "c1"},
                             idempotency_key="order-c1")
            assert out["replayed"] is True and client.last_served["wrapper_side"] == "standby"
            client.sql("INSERT INTO orders (id) VALUES (:id)", {"id": "c2"})
        finally:
            del os.environ["AWS_ENDPOINT_URL_LAMBDA"]
        assert rows(pg) == {"c1", "c2"}
    finally:
        host.close()
        for h in handles:
            h.wrapper.close()


# -- the data monitor ----------------------------------------------------------------------


class Writers:
    """Jepsen-style: writers record every write the wrapper acknowledged."""

    def __init__(self, handles: list[Any], n: int = 2) -> None:
        self.handles, self.failed = handles, 0
        self.acked: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(n)]

    def __enter__(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def _run(self, i: int) -> None:
        handle = self.handles[i % len(self.handles)]
        for n in range(100000):
            if self._stop.is_set():
                return
            key = f"w{i}-{n}"
            answer = handle(insert(key), None)
            with self._lock:
                if answer["ok"]:
                    self.acked.append(key)
                else:
                    self.failed += 1
            time.sleep(0.005)

    def count(self) -> int:
        with self._lock:
            return len(self.acked)


def wait_for(cond: Any, timeout_s: float = 60.0) -> None:
    # A bound on progress, not a speed check: 50 synchronous writes took over 20 s once
    # on a shared machine at load 40.
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_planned_switchover_drains_and_every_acknowledged_write_survives(pg: PgPair) -> None:
    admin, app = setup_cloud(pg)
    monitor = world.monitor(data_monitor_env(pg, admin, R2))
    handles = [make_handler(wrapper_env(pg, app, cache_s=0.2)) for _ in range(2)]
    try:
        with Writers(handles) as w:
            wait_for(lambda: w.count() >= 50)
            outcome = monitor.switch("data", "standby", "planned test", {}, by="test")
            assert outcome.switched and outcome.verified, outcome.detail
            at_switch = w.count()
            wait_for(lambda: w.count() >= at_switch + 50)
        assert world.pointer(R1, "data")[0] == world.pointer(R2, "data")[0] == R2
        on_new = rows(pg, "standby")
        assert set(w.acked) <= on_new, f"lost: {sorted(set(w.acked) - on_new)[:5]}"
        assert len(w.acked) == len(set(w.acked))
        with pg.connect("primary", "app") as c:  # the old primary is fenced
            assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    finally:
        monitor.close()
        for h in handles:
            h.wrapper.close()


def test_killed_primary_fails_over_by_quorum_and_a_returning_one_is_fenced(pg: PgPair) -> None:
    admin, app = setup_cloud(pg)
    with pg.connect("primary") as c:  # synchronous replication: an ack means the replica has it
        c.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        c.execute("ALTER SYSTEM SET synchronous_commit = 'remote_apply'")
        c.execute("SELECT pg_reload_conf()")
    monitors = [world.monitor(data_monitor_env(pg, admin, r)) for r in (R1, R2)]
    handles = [make_handler(wrapper_env(pg, app, cache_s=0.2)) for _ in range(2)]
    try:
        for m in monitors:
            assert all(o.decision.action == "none" for o in m.round())
        with Writers(handles) as w:
            wait_for(lambda: w.count() >= 50)
            pg.kill("primary")
            killed_at = w.count()
            switched = []
            for _ in range(8):  # bounded: threshold 2, quorum 2 need about 3 rounds
                for m in monitors:
                    switched += [o for o in m.round() if o.switched]
                if switched:
                    break
                # Rounds are interval_s apart, as deployed: a vote written sooner than
                # 0.9 x interval after the last one is the same streak step.
                time.sleep(1.0)
            assert len(switched) == 1 and switched[0].verified
            wait_for(lambda: w.count() >= killed_at + 30)
        assert world.pointer(R1, "data")[0] == R2
        on_new = rows(pg, "standby")
        assert set(w.acked) <= on_new, f"lost: {sorted(set(w.acked) - on_new)[:5]}"
        # The old primary comes back as a writable server: the next round fences it.
        pg.restart("primary")
        with pg.connect("primary", "app") as c:
            assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
        monitors[1].round()
        with pg.connect("primary", "app") as c:
            assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        # Failing back to it is refused until it is rebuilt as a replica.
        out = monitors[1].switch("data", "primary", "too early", {}, by="test")
        assert not out.switched and "not a replica" in out.detail
    finally:
        for m in monitors:
            m.close()
        for h in handles:
            h.wrapper.close()


# -- DynamoDB and S3 engines (moto) ----------------------------------------------------------


def test_wrapper_serves_dynamodb_and_the_bucket_of_the_active_region() -> None:
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
    env = {"STANDBY_TOPOLOGY": "shop", "STANDBY_SIDE": "primary", "STANDBY_REGION": R1,
           "STANDBY_POINTER_TABLE": "shop-standby-pointers", "STANDBY_POINTER_CACHE_S": "0",
           "STANDBY_DB_ENGINE": "dynamodb", "STANDBY_DATA_REGIONS": json.dumps([R1, R2]),
           "STANDBY_DB_TABLE": "shop-orders",
           "STANDBY_BUCKETS": json.dumps({r: f"shop-data-{r}" for r in (R1, R2)})}
    handle = make_handler(env)
    item = {"pk": "order#1", "sk": "v1", "qty": 2, "price": 9.5, "tags": ["a"]}
    put = {"op": "kv.put", "item": item, "idempotency_key": "order-1"}
    assert handle(put, None)["result"] == {"replayed": False}
    assert handle(put, None)["result"] == {"replayed": True}
    got = handle({"op": "kv.get", "key": {"pk": "order#1", "sk": "v1"}}, None)
    assert got["result"]["item"] == item and got["served"]["data_region"] == R1
    missing = handle({"op": "kv.get", "key": {"pk": "nope", "sk": "v1"}}, None)
    assert missing["error"]["code"] == "NotFound"
    bad = handle({"op": "kv.put", "item": {"pk": "no-sort-key"}}, None)
    assert bad["error"]["code"] == "BadRequest"
    sql = handle({"op": "sql", "sql": "SELECT 1"}, None)
    assert sql["error"]["code"] == "BadRequest" and "use kv.get" in sql["error"]["message"]
    assert handle({"op": "object.put", "key": "a/1.txt", "body": "hello"}, None)["ok"]
    obj = handle({"op": "object.get", "key": "a/1.txt"}, None)["result"]
    assert obj["size"] == 5 and obj["body_b64"] == "aGVsbG8="
    listed = handle({"op": "object.list", "prefix": "a/"}, None)["result"]["objects"]
    assert listed == [{"key": "a/1.txt", "size": 5}]
    # The data pointer moves: the next requests are served from the other region.
    for r in (R1, R2):
        world.client("dynamodb", r).update_item(
            TableName="shop-standby-pointers", Key={"pointer": {"S": "data"}},
            UpdateExpression="SET active = :v", ExpressionAttributeValues={":v": {"S": R2}})
    moved = handle({"op": "kv.get", "key": {"pk": "order#1", "sk": "v1"}}, None)
    assert moved["served"]["data_region"] == R2
    assert moved["error"]["code"] == "NotFound"  # moto does not replicate global tables
    assert handle({"op": "object.get", "key": "a/1.txt"}, None)["error"]["code"] == "NotFound"


def test_wrapper_configuration_errors_name_every_problem() -> None:
    from components.runtime.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        make_handler({"STANDBY_SIDE": "left", "STANDBY_DB_ENGINE": "oracle",
                      "STANDBY_POINTER_CACHE_S": "-1", "STANDBY_DATA_REGIONS": "[1,"})
    text = str(err.value)
    for needle in ("STANDBY_TOPOLOGY: missing", "STANDBY_SIDE: 'left'", "STANDBY_DB_ENGINE: "
                   "'oracle'; allowed: postgres, mysql, dynamodb", "STANDBY_POINTER_CACHE_S",
                   "STANDBY_DATA_REGIONS: not valid JSON"):
        assert needle in text
