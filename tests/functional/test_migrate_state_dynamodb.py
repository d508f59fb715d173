"""The migration state store on DynamoDB (moto in server mode, over HTTP on 127.0.0.1):
the same lease, fencing and transition rules as SQLite, and a whole model migration with a
runner killed at each step."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest

from components.migrate import Migration, Phase, StateError, TransitionError, open_store
from components.migrate.state import Chunk, Fenced, LeaseHeld
from components.migrate.state_dynamodb import DynamoDBStore
from tests.unit.migrate_model import CRASH_POINTS, Clock, Model, ModelAdapter, drive


def client(endpoint: str) -> Any:
    return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)


@pytest.fixture
def table(aws: str) -> str:
    client(aws).create_table(
        TableName="mig-state", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}])
    return "mig-state"


def test_lease_fencing_and_transitions(aws: str, table: str) -> None:
    clock = Clock()
    s = DynamoDBStore(table, client(aws), clock=clock)
    s.create("m1", "src", "dst", "postgresql")
    a = s.acquire("m1", "a", 10)
    with pytest.raises(LeaseHeld, match="run by a"):
        s.acquire("m1", "b", 10)
    s.save("m1", a.token, phase=Phase.PREFLIGHT, data={"x": 1})
    with pytest.raises(TransitionError, match="allowed from preflight: abort, capture"):
        s.save("m1", a.token, phase=Phase.CUTOVER, data={"half": True})
    clock.now += 11
    b = s.acquire("m1", "b", 10)
    assert b.token == a.token + 1
    with pytest.raises(Fenced):
        s.save("m1", a.token, data={"stale": True})
    rec = s.get("m1")
    assert rec is not None and rec.data == {"x": 1} and rec.phase == Phase.PREFLIGHT
    assert [(h["from"], h["to"], h["token"]) for h in s.history("m1")] == [
        ("planned", "preflight", a.token)]
    with pytest.raises(StateError, match="already exists"):
        s.create("m1", "src", "other", "postgresql")


def test_only_one_of_many_racing_runners_gets_the_lease(aws: str, table: str) -> None:
    DynamoDBStore(table, client(aws)).create("m1", "src", "dst", "postgresql")
    won: list[str] = []
    barrier = threading.Barrier(6)

    def race(name: str) -> None:
        store = DynamoDBStore(table, client(aws))
        barrier.wait(timeout=10)
        try:
            store.acquire("m1", name, 10)
            won.append(name)
        except LeaseHeld:
            pass

    threads = [threading.Thread(target=race, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(won) == 1


def test_chunks_and_requests(aws: str, table: str) -> None:
    s = DynamoDBStore(table, client(aws))
    s.create("m1", "src", "dst", "postgresql")
    tok = s.acquire("m1", "a", 10).token
    chunks = [Chunk("public.t", i, "null", "null", i, i, "h", "h", "match") for i in range(60)]
    s.put_chunks("m1", tok, chunks)
    s.put_chunks("m1", tok, chunks[:30])  # replaces, not appends
    assert s.chunks("m1") == chunks[:30]
    rid = s.request("m1", "pause", {})
    with pytest.raises(StateError, match="pending request 'pause'"):
        s.request("m1", "abort", {})
    s.save("m1", tok, paused=True, clear_request=rid)
    rec = s.get("m1")
    assert rec is not None and rec.request is None and rec.paused


def test_missing_table_and_url_forms(aws: str, table: str) -> None:
    with pytest.raises(StateError, match="does not exist; allowed: a table with a string"):
        open_store(f"dynamodb://nope?region=us-east-1&endpoint_url={aws}")
    store = open_store(f"dynamodb://{table}?region=us-east-1&endpoint_url={aws}")
    assert store.create("m1", "s", "t", "postgresql").phase == Phase.PLANNED


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_model_migration_with_a_killed_runner_resumes_on_dynamodb(
        aws: str, table: str, point: str) -> None:
    clock = Clock()
    store = DynamoDBStore(table, client(aws), clock=clock)
    model = Model()
    model.crash_at = point
    expected: dict[int, int] = {}
    mig = drive(lambda: Migration("m", ModelAdapter(model), store, source_shown="s",
                                   target_shown="t", lease_s=5, poll_s=0),
                 clock, model, expected, "rolled-back")
    assert model.db["source"] == expected and model.artifacts == set()
    assert mig.status()["phase"] == "rolled-back"
    tokens = [h["token"] for h in store.history("m")]
    assert tokens == sorted(tokens) and len(set(tokens)) >= 2
