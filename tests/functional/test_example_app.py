"""The example app (``examples/app``) on every engine, through the real wrapper and data
client: DynamoDB on the moto server, SQL on a real PostgreSQL pair.

Regression: the shipped ``aws-dev`` stack is DynamoDB, but the app issued only SQL, so every
order failed; and its ``standby_probe`` answer touched nothing (review.md, "README / CLI
traps"). The wrappers run in-process (``make_handler``), as in ``test_data_path``: Lambda
Invoke is the one hop replaced, by a direct call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from components.runtime.aws.wrapper import make_handler
from components.runtime.data_client import DataClient
from components.runtime.engine import Side
from components.sandbox import world
from components.sandbox.pg import PgPair, PgUnavailable
from tests.conftest import ROOT


def _load_app() -> Any:
    """Import ``examples/app/main.py`` by path, as Lambda loads the handler ``main.handler``
    from the code folder (the folder is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("example_app_main",
                                                  ROOT / "examples" / "app" / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


route = _load_app().route

R1, R2 = world.R1, world.R2
pytestmark = pytest.mark.usefixtures("aws")
WRAPPERS: dict[Side, str] = {"primary": "shop-wrap-use1-primary",
                             "standby": "shop-wrap-use1-standby"}


def client_for(env: dict[str, str]) -> DataClient:
    handlers = {fn: make_handler({**env, "STANDBY_SIDE": side})
                for side, fn in WRAPPERS.items()}

    def invoke(fn: str, req: dict[str, Any]) -> dict[str, Any]:
        return dict(handlers[fn](req, None))

    return DataClient(invoke, WRAPPERS, retry_delay_s=0)


def dynamo_env() -> dict[str, str]:
    for r in (R1, R2):
        world.pointer_table(r)
        world.client("dynamodb", r).create_table(
            TableName="shop-orders", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
    return {"STANDBY_TOPOLOGY": "shop", "STANDBY_SIDE": "primary", "STANDBY_REGION": R1,
            "STANDBY_POINTER_TABLE": "shop-standby-pointers", "STANDBY_POINTER_CACHE_S": "0",
            "STANDBY_DB_ENGINE": "dynamodb", "STANDBY_DATA_REGIONS": json.dumps([R1, R2]),
            "STANDBY_DB_TABLE": "shop-orders"}


def logic_env(engine: str) -> dict[str, str]:
    return {"STANDBY_REGION": R1, "STANDBY_SIDE": "primary", "STANDBY_DB_ENGINE": engine}


def post(order_id: str, item: str) -> dict[str, Any]:
    return {"httpMethod": "POST", "path": "/orders",
            "body": json.dumps({"id": order_id, "item": item})}


def get(order_id: str) -> dict[str, Any]:
    return {"httpMethod": "GET", "path": f"/orders/{order_id}"}


def check_orders(call: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    created = call(post("A-1", "book"))
    assert created["statusCode"] == 201, created
    assert call(post("A-1", "book"))["statusCode"] == 201  # a retry is applied once
    got = call(get("A-1"))
    assert got["statusCode"] == 200, got
    assert json.loads(got["body"])["order"] == {"id": "A-1", "item": "book", "region": R1}
    assert call(get("nope"))["statusCode"] == 404
    assert call({"httpMethod": "POST", "path": "/orders", "body": "[1]"})["statusCode"] == 400


def test_example_app_stores_and_reads_orders_on_dynamodb() -> None:
    data = client_for(dynamo_env())
    check_orders(lambda event: route(event, data, logic_env("dynamodb")))
    items = world.client("dynamodb", R1).scan(TableName="shop-orders")["Items"]
    assert [i["pk"]["S"] for i in items] == ["order#A-1"]


def test_standby_probe_is_a_deep_check_that_fails_without_the_data_path() -> None:
    """It answered {"ok": true} without touching anything, even with the table gone."""
    data = client_for(dynamo_env())
    env = logic_env("dynamodb")
    assert route({"standby_probe": True}, data, env)["ok"] is True
    health = route({"httpMethod": "GET", "path": "/health"}, data, env)
    assert health["statusCode"] == 200
    world.client("dynamodb", R1).delete_table(TableName="shop-orders")
    answer = route({"standby_probe": True}, data, env)
    assert answer["ok"] is False and answer["detail"].startswith("data path: ")
    assert route({"httpMethod": "GET", "path": "/health"}, data, env)["statusCode"] == 503


def test_an_unknown_engine_fails_closed_and_a_missing_one_means_sql() -> None:
    data = client_for(dynamo_env())
    env = {"STANDBY_REGION": R1, "STANDBY_DB_ENGINE": "oracle"}
    answer = route({"standby_probe": True}, data, env)
    assert answer["ok"] is False
    assert "STANDBY_DB_ENGINE: 'oracle'; allowed: dynamodb, postgres, mysql" in answer["detail"]
    reply = route(post("A-2", "x"), data, env)
    assert reply["statusCode"] == 500 and "STANDBY_DB_ENGINE" in reply["body"]
    # Absent means SQL; on this DynamoDB data path the deep probe says so instead of lying.
    answer = route({"standby_probe": True}, data, {"STANDBY_REGION": R1})
    assert answer["ok"] is False and answer["detail"].startswith("data path: BadRequest")


@pytest.fixture
def pg() -> Iterator[PgPair]:
    try:
        pair = PgPair()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    with pair:
        with pair.connect("primary", "app") as c:
            c.execute("CREATE TABLE orders (id varchar(200) PRIMARY KEY, item text, "
                      "region text)")
        yield pair


def test_example_app_stores_and_reads_orders_on_postgres(pg: PgPair) -> None:
    from tests.functional.test_data_path import secrets, wrapper_env

    world.pointer_table(R1)
    world.pointer_table(R2)
    _, app = secrets(pg)
    data = client_for(wrapper_env(pg, app))
    env = logic_env("postgres")
    check_orders(lambda event: route(event, data, env))
    assert route({"standby_probe": True}, data, env)["ok"] is True
    with pg.connect("primary", "app") as c:
        assert c.execute("SELECT id, item FROM orders").fetchall() == [("A-1", "book")]
