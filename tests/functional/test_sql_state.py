"""``SqlStateStore`` on a real MariaDB 10.11 (``components.sandbox.mariadb``): the same
store-level protocol checks as the DynamoDB store (tests/functional/test_runtime_aws.py), the
engine's random-schedule property over it (tests/unit/test_protocol.py), and what only a
SQL store can get wrong: concurrent acquirers racing on real row locks, and driver errors
surfacing as ``StoreError``. Never skipped: ``.ci/run`` installs MariaDB."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.runtime.engine import Intent, ScopeState, Vote
from components.runtime.errors import LeaseLost, StaleToken, StoreError
from components.runtime.lease import Lease, SwitchRecord
from components.runtime.sql_state import SqlStateStore, mysql_connect
from components.sandbox.mariadb import ADMIN, MariaPair
from components.sandbox.pg import free_port
from tests.unit.test_protocol import POOL, run_schedule

PREFIXES = itertools.count()


@pytest.fixture(scope="module")
def maria() -> Iterator[MariaPair]:
    with MariaPair() as pair:
        yield pair


def new_store(m: MariaPair) -> SqlStateStore:
    """A store on fresh tables (a new prefix), so tests never see each other's rows."""
    port = m.servers["primary"].port
    return SqlStateStore(mysql_connect("127.0.0.1", port, ADMIN, m.admin_password, m.database),
                         prefix=f"t{next(PREFIXES)}_")


def test_state_store_protocol_on_mariadb(maria: MariaPair) -> None:
    store = new_store(maria)
    a = store.acquire("data", "us-east-1#inv-a", 100, 60)
    assert a is not None and a.token == 1
    assert store.acquire("data", "us-west-2#inv-c", 110, 60) is None  # held
    intent_a = Intent(1, "standby", "primary", a.holder, ("pointer:x",), 0, 100, "why")
    store.begin(a, "data", "primary", intent_a, 101)
    b = store.acquire("data", "us-west-2#inv-c", 161, 60)  # expired: taken over
    assert b is not None and b.token == 2
    rec = SwitchRecord("data", "data", 161, a.holder, "primary", "standby", 1, "why",
                       evidence={"probes": [{"ok": False}]})
    with pytest.raises(LeaseLost):
        store.commit(a, "data", "primary", ScopeState(active="standby", last_switch_at=161),
                     rec, 162)
    assert store.read_scope("data", "data").intent == intent_a
    store.begin(b, "data", "primary", Intent(2, "standby", "primary", b.holder, ("pointer:x",),
                                             0, 161, "resume"), 161)
    store.progress(b, "data", 1)
    assert store.read_scope("data", "data").intent.step == 1  # type: ignore[union-attr]
    with pytest.raises(StaleToken):  # the old holder's intent is gone
        store.progress(a, "data", 1)
    store.commit(b, "data", "primary", ScopeState(active="standby", last_switch_at=161),
                 SwitchRecord("data", "data", 161, b.holder, "primary", "standby", 2, "why",
                              evidence={"probes": [{"ok": True}]}), 162)
    assert store.read_scope("data", "data") == ScopeState("standby", 2, 161.0)
    assert store.scopes("data") == {"data": ScopeState("standby", 2, 161.0)}
    store.release(b)
    c = store.acquire("data", "us-east-1#inv-d", 170, 60)
    assert c is not None and c.token == 3
    with pytest.raises(StaleToken):  # not primary any more
        store.begin(c, "data", "primary", Intent(3, "standby", "primary", c.holder, (), 0,
                                                 170, "x"), 171)
    [logged] = store.log("data")
    assert (logged.by, logged.token, logged.reason) == (b.holder, 2, "why")
    assert logged.evidence == {"probes": [{"ok": True}]}
    assert store.put_vote("data", "data", Vote("us-east-1", 170, primary_fail=3, standby_ok=2),
                          gap_s=9)
    assert store.votes("data", "data") == [Vote("us-east-1", 170.0, 3, 0, 0, 2)]
    assert not store.put_vote("data", "data", Vote("us-east-1", 175, primary_fail=4), gap_s=9)
    assert not store.put_vote("data", "data", Vote("us-east-1", 160, primary_fail=9), gap_s=9)
    assert store.put_vote("data", "data", Vote("us-east-1", 180, primary_fail=4), gap_s=9)
    assert store.votes("data", "data") == [Vote("us-east-1", 180.0, 4)]


def test_meta_bookkeeping_never_moves_the_active_side(maria: MariaPair) -> None:
    store = new_store(maria)
    store.save_scope_meta("dns", "r1", ScopeState(active="standby", token=9,
                                                  last_practice_at=5.0, last_alert="no quorum"))
    assert store.read_scope("dns", "r1") == ScopeState(last_practice_at=5.0,
                                                       last_alert="no quorum")
    store.save_scope_meta("dns", "r1", ScopeState())
    assert store.read_scope("dns", "r1") == ScopeState()


def test_practice_records_are_logged_newest_first_and_limited(maria: MariaPair) -> None:
    store = new_store(maria)
    for i in range(3):
        store.record(SwitchRecord("logic", "r1", 10.0 + i, "h", "primary", "standby", 0,
                                  f"practice {i}", practice=True))
    assert [r.reason for r in store.log("logic", limit=2)] == ["practice 2", "practice 1"]
    assert store.log("other") == []


def test_racing_acquirers_get_exactly_one_lease_and_unique_tokens(maria: MariaPair) -> None:
    """Eight threads, each its own connection, acquire the same free lease at once: the row
    lock lets exactly one win; then, after expiry, every taker gets a fresh token."""
    store = new_store(maria)
    first = store.acquire("data", "h-first", 0, 60)
    assert first is not None
    store.release(first)  # the lease row exists and is free: the race is on that row
    start = threading.Barrier(8)
    won: list[Lease] = []
    guard = threading.Lock()

    def contend(i: int) -> None:
        start.wait(timeout=30)
        lease = store.acquire("data", f"h{i}", 100, 60)
        if lease is not None:
            with guard:
                won.append(lease)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(won) == 1 and won[0].token == 2
    tokens = [store.acquire("data", f"late{i}", 200 + 100 * i, 60) for i in range(3)]
    assert [t.token for t in tokens if t] == [3, 4, 5]


def test_release_by_a_stale_holder_leaves_the_new_lease(maria: MariaPair) -> None:
    store = new_store(maria)
    a = store.acquire("logic", "a", 0, 10)
    b = store.acquire("logic", "b", 20, 10)  # a's lease expired
    assert a is not None and b is not None
    store.release(a)
    assert store.acquire("logic", "c", 21, 10) is None  # still b's


def test_store_failure_is_a_store_error_not_a_driver_error(maria: MariaPair) -> None:
    port = maria.servers["primary"].port
    wrong = SqlStateStore(mysql_connect("127.0.0.1", port, ADMIN, "not-the-password",
                                        maria.database))
    with pytest.raises(StoreError, match="cannot connect"):
        wrong.acquire("data", "h", 0, 60)
    closed = SqlStateStore(mysql_connect("127.0.0.1", free_port(), ADMIN, "x", "x", 1.0))
    with pytest.raises(StoreError, match="state database"):
        closed.put_vote("data", "data", Vote("r", 1))
    store = new_store(maria)
    store.create_tables()
    lease = Lease("data", "h", 1, 60)
    with pytest.raises(LeaseLost):  # a condition, not a failure: no lease row for "h"
        store.commit(lease, "data", "primary", ScopeState(active="standby"),
                     SwitchRecord("data", "data", 0, "h", "primary", "standby", 1, "x"), 1)


def test_bad_table_prefix_is_refused_with_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"must match"):
        SqlStateStore(lambda: None, prefix="x`; DROP TABLE y; --")


def test_store_reports_its_clock(maria: MariaPair) -> None:
    # The server runs on this machine: a misread unit or zone would be hours off.
    assert abs(new_store(maria).server_time() - time.time()) < 60


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_protocol_is_safe_over_random_schedules_mariadb(maria: MariaPair, seed: int) -> None:
    assert run_schedule(seed, new_store(maria), steps=12, pool=POOL) == Counter()


def test_commit_needs_this_leases_intent(maria: MariaPair) -> None:
    store = new_store(maria)
    a = store.acquire("data", "a", 100, 60)
    assert a is not None
    rec = SwitchRecord("data", "data", 100, "a", "primary", "standby", a.token, "x")
    with pytest.raises(StaleToken):  # no intent recorded: nothing to commit
        store.commit(a, "data", "primary", ScopeState(active="standby"), rec, 101)
    store.begin(a, "data", "primary", Intent(a.token, "standby", "primary", "a", ("t",)), 101)
    b = store.acquire("data", "b", 200, 60)  # a's lease expired; b records its own intent
    assert b is not None
    store.begin(b, "data", "primary", Intent(b.token, "primary", "primary", "b", ("t",)), 201)
    store.release(b)
    a2 = store.acquire("data", "a", 202, 60)  # a holds the lease again, with a new token
    assert a2 is not None
    with pytest.raises(StaleToken):  # the intent is b's, not a2's
        store.commit(a2, "data", "primary", ScopeState(active="standby"), rec, 203)
    assert store.read_scope("data", "data").active == "primary" and store.log("data") == []
