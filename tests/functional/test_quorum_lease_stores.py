"""The witness lease's store adapters on real stores: DynamoDB (``DynamoLeaseStore``, a
moto server over HTTP) and MySQL (``SqlLeaseStore``, a real MariaDB 10.11). Each must
decide every conditional write exactly as the reference (``quorum_lease.may_write``),
fail as ``StoreError``, and carry the simulated world's schedules (three regions' stores,
partitions, skew, loss, delay) with never two sides holding a valid write lease."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator

import boto3
import pytest

from components.runtime.aws.clients import Clients
from components.runtime.aws.quorum_state import DynamoLeaseStore
from components.runtime.engine import Side
from components.runtime.errors import StoreError
from components.runtime.quorum_lease import LeaseRecord, LeaseStore, QuorumLease, may_write
from components.runtime.sql_quorum_state import SqlLeaseStore
from components.runtime.sql_state import mysql_connect
from components.sandbox.mariadb import ADMIN, MariaPair
from components.sandbox.pg import free_port
from tests.unit.witness_sim import random_schedule, run

REGION_OF = {"primary": "us-east-1", "standby": "us-west-2", "witness": "eu-west-1"}
NAMES = itertools.count()

SIDES: tuple[Side, ...] = ("primary", "standby")
CASES = [
    (LeaseRecord(5, h_cur, 100.0), LeaseRecord(5 + de, h_new, 100.0 + du), 102.0 + dn)
    for h_cur in SIDES for h_new in SIDES for de in (-1, 0, 1) for du in (-1.0, 0.0, 1.0)
    for dn in (-0.5, 0.0, 0.5)
]
SKEW = 2.0


def _conformance(make: Callable[[], LeaseStore]) -> None:
    store = make()
    disagree = []
    for i, (cur, new, now) in enumerate(CASES):
        key = f"case{i}"
        assert store.read(key) == LeaseRecord()
        assert store.write(key, cur, 0.0, SKEW)  # a never-written record takes anything
        applied = store.write(key, new, now, SKEW)
        want = may_write(cur, new, now, SKEW)
        if applied != want or store.read(key) != (new if want else cur):
            disagree.append((cur, new, now, applied, want))
    assert not disagree, disagree[:5]
    # release: only the holder of that epoch, only shortening
    assert store.write("rel", LeaseRecord(1, "primary", 100.0), 0.0, SKEW)
    assert not store.release("rel", 1, "standby", 90.0)
    assert not store.release("rel", 2, "primary", 90.0)
    assert not store.release("rel", 1, "primary", 100.0)
    assert store.release("rel", 1, "primary", 90.0)
    assert store.read("rel") == LeaseRecord(1, "primary", 90.0)


def _schedules(make_store: Callable[[str], LeaseStore]) -> None:
    for seed in (3, 17):
        sch = dataclasses.replace(random_schedule(seed), duration=20.0)
        trace = run(sch, make_store=make_store)
        assert trace.violations() == 0
        assert any(v for _, v in trace.valid), "no side ever held the lease: nothing tested"


# --- DynamoDB (moto server) ----------------------------------------------------------------


def _table(region: str) -> str:
    name = f"state-{next(NAMES)}"
    boto3.client("dynamodb", region_name=region).create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}])
    return name


@pytest.mark.usefixtures("aws")
def test_dynamodb_lease_store_decides_as_the_reference() -> None:
    _conformance(lambda: DynamoLeaseStore(Clients(), _table("eu-west-1"), "eu-west-1"))


@pytest.mark.usefixtures("aws")
def test_dynamodb_lease_quorum_over_three_regions() -> None:
    clients = Clients()

    def make(region: str) -> LeaseStore:
        return DynamoLeaseStore(clients, _table(REGION_OF[region]), REGION_OF[region],
                                name=region)
    stores = [make(r) for r in REGION_OF]
    p = QuorumLease(stores, "primary", ttl_s=9, skew_s=1)
    s = QuorumLease(stores, "standby", ttl_s=9, skew_s=1)
    assert p.promote(0.0).ok and not s.promote(5.0).ok
    assert p.renew(3.0).ok and not s.promote(12.9).ok  # lease ends 12.0, + skew 1
    assert s.promote(13.0).ok and not p.renew(14.0).ok and s.write_allowed(13.0)
    _schedules(make)


def test_dynamodb_unreachable_is_a_store_error() -> None:
    store = DynamoLeaseStore(Clients(endpoint_url=f"http://127.0.0.1:{free_port()}"),
                             "state", "eu-west-1")
    with pytest.raises(StoreError, match="witness lease in eu-west-1"):
        store.write("data", LeaseRecord(1, "primary", 10.0), 0.0, 1.0)


# --- MySQL (MariaDB 10.11) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def maria() -> Iterator[MariaPair]:
    with MariaPair() as pair:
        yield pair


def _sql(m: MariaPair, name: str) -> SqlLeaseStore:
    port = m.servers["primary"].port
    return SqlLeaseStore(mysql_connect("127.0.0.1", port, ADMIN, m.admin_password,
                                       m.database), name, prefix=f"w{next(NAMES)}_")


def test_mysql_lease_store_decides_as_the_reference(maria: MariaPair) -> None:
    _conformance(lambda: _sql(maria, "witness"))


def test_mysql_lease_quorum_schedules(maria: MariaPair) -> None:
    _schedules(lambda region: _sql(maria, region))


def test_mysql_unreachable_and_bad_prefix(maria: MariaPair) -> None:
    closed = SqlLeaseStore(mysql_connect("127.0.0.1", free_port(), ADMIN, "x", "x", 1.0),
                           "witness")
    with pytest.raises(StoreError, match="witness lease in witness"):
        closed.read("data")
    with pytest.raises(ValueError, match="must match"):
        SqlLeaseStore(mysql_connect("127.0.0.1", 1, ADMIN, "x", "x"), "w", prefix="Bad-")
