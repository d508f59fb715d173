"""The migration engine without an engine: state store (lease, fencing token, conditional
writes) on a real SQLite file, the phase machine, and a property test of the runner over a
model of two databases (a dict each, a change log and fences) with crashes anywhere."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.migrate import Migration, MigrationError, Phase, TransitionError
from components.migrate.adapter import Context, Overrun, VerifyResult
from components.migrate.phases import BEFORE_CUTOVER, TERMINAL, check_transition, successors
from components.migrate.state import Fenced, LeaseHeld, SQLiteStore, StateError
from components.migrate.urls import (
    DynamoState,
    UrlError,
    endpoint,
    migration_id,
    state_path,
    state_url,
)
from tests.unit.migrate_model import CRASH_POINTS, Clock, Crash, Model, ModelAdapter, drive


def store_at(tmp_path: Path, clock: Clock | None = None) -> SQLiteStore:
    return SQLiteStore(tmp_path / "state.sqlite", clock=clock or Clock())


# -- state store -------------------------------------------------------------------------------


def test_second_runner_is_refused_while_the_lease_is_live(tmp_path: Path) -> None:
    clock = Clock()
    s = store_at(tmp_path, clock)
    s.create("m1", "src", "dst", "postgresql")
    a = s.acquire("m1", "a", 10)
    with pytest.raises(LeaseHeld, match="run by a"):
        s.acquire("m1", "b", 10)
    clock.now += 11
    b = s.acquire("m1", "b", 10)
    assert b.token == a.token + 1


def test_stale_runner_cannot_write_after_takeover(tmp_path: Path) -> None:
    clock = Clock()
    s = store_at(tmp_path, clock)
    s.create("m1", "src", "dst", "postgresql")
    a = s.acquire("m1", "a", 10)
    clock.now += 11
    s.acquire("m1", "b", 10)
    with pytest.raises(Fenced):
        s.save("m1", a.token, phase=Phase.PREFLIGHT, data={"x": 1})
    with pytest.raises(Fenced):
        s.renew("m1", "a", a.token, 10)
    rec = s.get("m1")
    assert rec is not None and rec.phase == Phase.PLANNED and "x" not in rec.data


def test_illegal_transition_changes_nothing(tmp_path: Path) -> None:
    s = store_at(tmp_path)
    s.create("m1", "src", "dst", "postgresql")
    a = s.acquire("m1", "a", 10)
    with pytest.raises(TransitionError, match="allowed from planned: abort, preflight"):
        s.save("m1", a.token, phase=Phase.CUTOVER, data={"half": True})
    rec = s.get("m1")
    assert rec is not None and rec.phase == Phase.PLANNED and "half" not in rec.data
    assert s.history("m1") == []


def test_only_one_of_many_racing_runners_gets_the_lease(tmp_path: Path) -> None:
    s = store_at(tmp_path)
    s.create("m1", "src", "dst", "postgresql")
    won: list[str] = []
    barrier = threading.Barrier(8)

    def race(name: str) -> None:
        barrier.wait(timeout=10)
        try:
            SQLiteStore(tmp_path / "state.sqlite", clock=Clock()).acquire("m1", name, 10)
            won.append(name)
        except LeaseHeld:
            pass

    threads = [threading.Thread(target=race, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(won) == 1


def test_existing_id_with_other_endpoints_is_refused(tmp_path: Path) -> None:
    s = store_at(tmp_path)
    s.create("m1", "src", "dst", "postgresql")
    with pytest.raises(StateError, match="already exists"):
        s.create("m1", "src", "other", "postgresql")


def test_one_pending_request_at_a_time(tmp_path: Path) -> None:
    s = store_at(tmp_path)
    s.create("m1", "src", "dst", "postgresql")
    s.request("m1", "pause", {})
    with pytest.raises(StateError, match="pending request 'pause'"):
        s.request("m1", "abort", {})


# -- URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("url,match", [
    ("s3://bucket/prefix", "not built yet; allowed now: postgresql://"),
    ("ftp://h/db", "unknown scheme 'ftp'"),
    ("postgresql://h:99999/db", "port"),
    ("postgresql://h:5432/", "a host and a database are required"),
    ("localhost/db", "is not a URL"),
])
def test_bad_endpoint_urls_name_the_allowed_forms(url: str, match: str) -> None:
    with pytest.raises(UrlError, match=match):
        endpoint(url)


def test_password_never_in_the_shown_url() -> None:
    ep = endpoint("postgresql://admin:s3cret@127.0.0.1:5433/orders")
    assert ep.shown == "postgresql://admin@127.0.0.1:5433/orders"
    with pytest.raises(UrlError) as exc:
        endpoint("postgresql://admin:s3cret@127.0.0.1:0/")
    assert "s3cret" not in str(exc.value)


def test_state_and_id_forms(tmp_path: Path) -> None:
    assert state_path("sqlite:///x/s.db", tmp_path) == tmp_path / "x" / "s.db"
    assert state_path("sqlite:////abs/s.db") == Path("/abs/s.db")
    with pytest.raises(UrlError, match="a DynamoDB table, not a file"):
        state_path("dynamodb://t?region=us-east-1")
    assert state_url("dynamodb://mig-state?region=us-east-1&endpoint_url=http://127.0.0.1:9"
                     ) == DynamoState("mig-state", "us-east-1", "http://127.0.0.1:9")
    for bad, match in (("dynamodb://t?region=us-east-1", "a table name"),
                       ("dynamodb://tbl", "region= is required"),
                       ("dynamodb://tbl?region=us-east-1&x=1", "only region and endpoint_url"),
                       ("dynamodb://tbl?region=us-east-1&endpoint_url=ftp://h",
                        "endpoint_url must be")):
        with pytest.raises(UrlError, match=match):
            state_url(bad)
    with pytest.raises(UrlError, match="allowed: sqlite:///"):
        state_path("/tmp/x.db")
    assert migration_id("orders_1") == "orders_1"
    with pytest.raises(UrlError, match="lowercase letter"):
        migration_id("Orders; DROP")


# -- phase machine -----------------------------------------------------------------------------


def test_every_phase_reaches_an_end_and_ends_have_no_successor() -> None:
    for phase in Phase:
        seen, todo = set(), [phase]
        while todo:
            p = todo.pop()
            if p not in seen:
                seen.add(p)
                todo += successors(p)
        assert seen & TERMINAL, phase
    assert all(not successors(p) for p in TERMINAL)


def test_abort_only_before_cutover_and_rollback_only_after() -> None:
    for phase in Phase:
        assert (Phase.ABORT in successors(phase)) == (phase in BEFORE_CUTOVER)
        assert (Phase.ROLLBACK in successors(phase)) == (phase == Phase.REVERSE_SYNC)
    with pytest.raises(TransitionError, match="allowed from reverse-sync: finalize, rollback"):
        check_transition(Phase.REVERSE_SYNC, Phase.ABORT)


# -- the runner over a model of two databases --------------------------------------------------


ACTIONS = st.one_of(
    st.tuples(st.just("write"), st.integers(0, 5), st.one_of(st.none(), st.integers(0, 99))),
    st.tuples(st.sampled_from(["step", "step", "step", "cutover", "rollback", "finalize",
                               "abort", "pause", "resume", "verify"]), st.none(), st.none()),
    st.tuples(st.just("crash"), st.sampled_from(CRASH_POINTS), st.none()),
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ACTIONS, max_size=40))
def test_any_interleaving_of_commands_writes_and_crashes_keeps_the_invariants(
        tmp_path_factory: pytest.TempPathFactory, actions: list[tuple[Any, Any, Any]]) -> None:
    """No two writable sides once capture began; a write the app saw succeed is never lost
    (the live side always equals every acknowledged write in order); abort leaves the source
    with no artifact; the recorded history is a path of the phase graph."""
    clock = Clock()
    store = SQLiteStore(tmp_path_factory.mktemp("m") / "s.sqlite", clock=clock)
    model = Model()
    expected: dict[int, int] = {}

    def runner() -> Migration:
        return Migration("m", ModelAdapter(model), store, source_shown="s", target_shown="t",
                         lease_s=5, poll_s=0)

    mig = runner()
    for kind, a, b in actions:
        phase = mig.status()["phase"]
        live = "target" if phase in ("cutover", "reverse-sync", "finalize", "finalized") \
            else "source"
        try:
            if kind == "write":
                if model.write(live, a, b):
                    expected.pop(a, None) if b is None else expected.__setitem__(a, b)
            elif kind == "crash":
                model.crash_at = a
            elif kind == "step":
                mig.step()
            elif kind in ("cutover", "rollback"):
                mig.command(kind, writes_stopped=True, wait_s=0)
            else:
                mig.command(kind, wait_s=0)
        except Crash:
            clock.now += 10  # the dead runner's lease expires; a new process takes over
            mig = runner()
        except (MigrationError, TransitionError):
            pass
        phase = mig.status()["phase"]
        if phase in ("backfill", "catch-up", "verify", "freeze", "cutover", "reverse-sync",
                     "rollback", "finalize", "finalized", "rolled-back"):
            assert model.fenced["source"] or model.fenced["target"], phase
        if phase in ("reverse-sync", "finalized"):  # the target is the one writable side
            assert model.db["target"] == expected
            assert model.fenced["source"] and not model.fenced["target"]
        if phase in {p.value for p in BEFORE_CUTOVER} | {"rolled-back"}:
            assert not model.fenced["source"]
        if phase in ("rolled-back",) or phase in {p.value for p in BEFORE_CUTOVER}:
            assert model.db["source"] == expected
        if phase == "aborted":
            assert model.artifacts == set() and not model.fenced["source"]
    hist = store.history("m")
    for h in hist:
        assert Phase(h["to"]) in successors(Phase(h["from"]))
    tokens = [h["token"] for h in hist]
    assert tokens == sorted(tokens)


def test_freeze_found_by_a_new_runner_unfreezes_without_fencing_the_source(
        tmp_path: Path) -> None:
    """A runner killed during the cutover's drain leaves FREEZE; the next runner must not
    carry the cutover on (its budget is gone): back to verify, the source still writable."""
    clock = Clock()
    store = store_at(tmp_path, clock)
    model = Model()
    mig = Migration("m", ModelAdapter(model), store, source_shown="s", target_shown="t",
                    lease_s=5, poll_s=0)
    for _ in range(6):
        mig.step()
    assert mig.status()["phase"] == "verify"
    model.crash_at = "freeze"
    with pytest.raises(Crash):
        mig.cutover(writes_stopped=True)
    assert mig.status()["phase"] == "freeze"
    clock.now += 10
    Migration("m", ModelAdapter(model), store, source_shown="s", target_shown="t",
              lease_s=5, poll_s=0).step()
    doc = mig.status()
    assert doc["phase"] == "verify" and not model.fenced["source"]
    assert "cut over again" in doc["last_cutover"]["detail"]


def test_cutover_without_writes_stopped_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    model = Model()
    mig = Migration("m", ModelAdapter(model), store, source_shown="s", target_shown="t",
                    lease_s=5, poll_s=0)
    for _ in range(6):
        mig.step()
    with pytest.raises(MigrationError, match="--writes-stopped"):
        mig.cutover(writes_stopped=False)
    assert mig.status()["phase"] == "verify" and not model.fenced["source"]


def test_command_reaches_a_live_runner_through_the_store(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    model = Model()
    mig = Migration("m", ModelAdapter(model), store, source_shown="s", target_shown="t",
                    lease_s=5, poll_s=0.01)
    for _ in range(6):
        mig.step()
    ready = threading.Event()
    result: dict[str, Any] = {}

    def live() -> None:
        ready.set()
        result["rec"] = mig.run(max_s=20)

    t = threading.Thread(target=live)
    t.start()
    ready.wait(5)
    other = Migration("m", ModelAdapter(model), store, source_shown="s", target_shown="t",
                      lease_s=5, create=False)
    for _ in range(200):  # until the runner holds the lease: the command must be relayed
        if other.status()["runner"]:
            break
        threading.Event().wait(0.01)
    doc = other.abort()
    t.join(timeout=30)
    assert doc["phase"] == "aborted" and result["rec"].phase == Phase.ABORTED
    assert other.status()["last_request"]["command"] == "abort"


@pytest.mark.parametrize("end", ["finalized", "rolled-back"])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_runner_killed_at_each_step_resumes_without_loss(tmp_path: Path, point: str,
                                                          end: str) -> None:
    clock = Clock()
    store = store_at(tmp_path, clock)
    model = Model()
    model.crash_at = point
    expected: dict[int, int] = {}
    mig = drive(lambda: Migration("m", ModelAdapter(model), store, source_shown="s",
                                   target_shown="t", lease_s=5, poll_s=0),
                 clock, model, expected, end)
    side = "target" if end == "finalized" else "source"
    assert model.db[side] == expected
    assert not model.fenced[side] and model.fenced["source" if side == "target" else "target"]
    assert model.artifacts == set()
    assert mig.status()["phase"] == end


def test_runner_does_not_idle_on_a_verify_that_found_mismatches(tmp_path: Path) -> None:
    """A `verify` command that found a difference left the phase at verify; the runner used
    to idle there for ever (never ready for cutover) instead of catching up and verifying
    again once the difference was gone."""
    store = store_at(tmp_path)
    model = Model()
    mig = Migration("m", ModelAdapter(model), store, source_shown="s", target_shown="t",
                    lease_s=5, poll_s=0)
    for _ in range(6):
        mig.step()
    model.db["target"][99] = 1  # a rogue row on the target
    assert mig.verify()["mismatches"] == 1
    del model.db["target"][99]  # repaired
    rec = mig.run(until=Phase.VERIFY, max_s=10)
    assert rec.phase == Phase.VERIFY and rec.data["verify"]["mismatches"] == 0
    assert [h["to"] for h in store.history("m")][-2:] == ["catch-up", "verify"]


class OverrunningRollback(ModelAdapter):
    def rollback(self, ctx: Context, deadline: float) -> VerifyResult | None:
        self.m.fenced["target"] = True
        self.m.fenced["target"] = False  # the drain overran: the target is writable again
        raise Overrun("drain overran")


def test_rollback_overrun_goes_back_to_reverse_sync(tmp_path: Path) -> None:
    """An overrun rollback used to stay in phase rollback, so the next runner retried it
    without the caller stopping writes again."""
    store = store_at(tmp_path)
    model = Model()
    mig = Migration("m", OverrunningRollback(model), store, source_shown="s",
                    target_shown="t", lease_s=5, poll_s=0)
    for _ in range(6):
        mig.step()
    mig.cutover(writes_stopped=True)
    with pytest.raises(MigrationError, match="rollback refused: drain overran"):
        mig.rollback(writes_stopped=True)
    assert mig.status()["phase"] == "reverse-sync" and not model.fenced["target"]


def test_migrate_package_imports_without_pulumi() -> None:
    """The engine is deploy- and run-time neutral: no module of it may need pulumi."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys\n"
            "sys.modules['pulumi'] = None\n"
            "sys.modules['pulumi_aws'] = None\n"
            "import components.migrate, pkgutil, importlib\n"
            "for m in pkgutil.walk_packages(components.migrate.__path__, 'components.migrate.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(len(list(pkgutil.walk_packages(components.migrate.__path__))))\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) >= 9
