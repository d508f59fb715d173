"""Verdicts decide by probe role, per component: the store a layer switches decides, its
dependencies alert, the entry path decides only in the DNS layer."""

from __future__ import annotations

from typing import Any

import components.runtime.aws  # noqa: F401  registers the AWS kinds, as a handler does
from components.runtime.probes import ProbeResult
from components.runtime.registry import ProbeKind, Registry, SwitchKind
from components.runtime.verdict import assess, assess_scope

RDS = {"scope": "data", "kind": "rds_promote", "region": "us-west-2", "instance_id": "db-r",
       "max_lag_s": 5}
POINTER_ALL = {"scope": "data", "kind": "pointer_all", "key": "data", "tables": [],
               "values": {"primary": "us-east-1", "standby": "us-west-2"}}
PRIMARY_DB: dict[str, Any] = {"replica": False, "replicating": False, "writable": True,
                              "lag_s": 0.0}
REPLICA_DB: dict[str, Any] = {"replica": True, "replicating": True, "writable": False,
                              "lag_s": 0.5}


def sql(side: str, *, ok: bool = True, **data: Any) -> ProbeResult:
    base = PRIMARY_DB if side == "primary" else REPLICA_DB
    return ProbeResult("data", "sql", ok, 3.0, "SELECT 1 ok" if ok else "timed out", side,
                       {**base, **data} if ok else {})


def bucket(side: str, ok: bool) -> ProbeResult:
    return ProbeResult("data", "bucket", ok, 4.0, "head+put+get ok" if ok else "SlowDown", side)


def test_bucket_fault_never_fails_the_database_verdict() -> None:
    # review #5: this exact round returned (False, True) and promoted the replica one-way.
    results = [sql("primary"), sql("standby"), bucket("primary", False), bucket("standby", True)]
    assert assess("data", "data", [RDS, POINTER_ALL], results) == (True, True)
    verdict = assess_scope("data", "data", [RDS, POINTER_ALL], results)
    assert [(r.kind, r.side) for r in verdict.reported] == [("bucket", "primary")]


def test_bucket_faults_on_both_sides_are_reported_and_decide_nothing() -> None:
    results = [sql("primary", ok=False), sql("standby"), bucket("primary", False),
               bucket("standby", False)]
    verdict = assess_scope("data", "data", [RDS, POINTER_ALL], results)
    # The database decides alone: primary down, standby fit, whatever the buckets say.
    assert verdict.pair == (False, True)
    assert {r.side for r in verdict.reported} == {"primary", "standby"}


def test_dynamodb_store_decides_the_data_scope_and_its_bucket_does_not() -> None:
    def table(side: str, ok: bool) -> ProbeResult:
        return ProbeResult("data", "dynamodb", ok, 2.0, "table ACTIVE" if ok else "boom", side)

    results = [table("primary", True), table("standby", True), bucket("primary", False)]
    assert assess("data", "data", [POINTER_ALL], results) == (True, True)
    results = [table("primary", False), table("standby", True), bucket("standby", False)]
    assert assess("data", "data", [POINTER_ALL], results) == (False, True)


def test_fenced_primary_answering_select_1_is_not_healthy() -> None:
    # review "Run-time protocol": a crash between fence and promote left the primary
    # read-only, and SELECT 1 kept it "healthy", so nothing ever switched.
    results = [sql("primary", writable=False), sql("standby")]
    verdict = assess_scope("data", "data", [RDS, POINTER_ALL], results)
    assert verdict.pair == (False, True)
    assert any("does not accept writes" in n for n in verdict.notes)


def test_broken_replication_reading_lag_zero_is_not_promotable() -> None:
    # review: the PostgreSQL lag guard read 0 on broken replication.
    results = [sql("primary", ok=False), sql("standby", replicating=False, lag_s=0.0,
                                             applied_all_received=False)]
    verdict = assess_scope("data", "data", [RDS, POINTER_ALL], results)
    assert verdict.pair == (False, False)
    assert any("replication running" in n for n in verdict.notes)


def test_replica_of_a_dead_primary_that_applied_all_it_received_is_promotable() -> None:
    # issue 11: after the MariaDB primary was killed the replica showed
    # Seconds_Behind_Master NULL (lag unknown) and failover never happened. A replica whose
    # replication stopped but that has applied everything it received is as current as it
    # can be; the rest is the unplanned loss the switch reports.
    stopped: dict[str, Any] = {"replicating": False, "lag_s": None, "received_age_s": 4.0}
    dead = sql("primary", ok=False)
    caught_up = sql("standby", applied_all_received=True, **stopped)
    assert assess("data", "data", [RDS], [dead, caught_up]) == (False, True)
    behind = sql("standby", applied_all_received=False, **stopped)
    assert assess("data", "data", [RDS], [dead, behind]) == (False, False)
    # a server that is not a replica at all is never "caught up"
    stray = sql("standby", replica=False, applied_all_received=True, **stopped)
    assert assess("data", "data", [RDS], [dead, stray]) == (False, False)


def test_lag_guard_refuses_unknown_or_excessive_lag_and_accepts_a_fresh_replica() -> None:
    down = sql("primary", ok=False)
    assert assess("data", "data", [RDS], [down, sql("standby", lag_s=None)]) == (False, False)
    assert assess("data", "data", [RDS], [down, sql("standby", lag_s=30.0)]) == (False, False)
    assert assess("data", "data", [RDS], [down, sql("standby", lag_s=5.0)]) == (False, True)
    # a probe that reports no replication facts at all cannot prove it is fit
    bare = ProbeResult("data", "sql", True, 3.0, "SELECT 1 ok", "standby", {})
    assert assess("data", "data", [RDS], [down, bare]) == (False, False)
    # no lag-guarded target in the scope (a DynamoDB data layer): no guard
    assert assess("data", "data", [POINTER_ALL], [down, bare]) == (False, True)


def test_after_failover_the_primary_is_judged_as_the_replica_and_the_standby_as_writer() -> None:
    results = [sql("primary", **REPLICA_DB), sql("standby", **PRIMARY_DB)]
    assert assess_scope("data", "data", [RDS], results, active="standby").pair == (True, True)
    # the old primary came back writable on its own: not fit for failback
    diverged = [sql("primary", **PRIMARY_DB), sql("standby", **PRIMARY_DB)]
    assert assess_scope("data", "data", [RDS], diverged, active="standby").pair == (False, True)
    # the active standby stopped accepting writes
    stuck = [sql("primary", **REPLICA_DB), sql("standby", **{**PRIMARY_DB, "writable": False})]
    assert assess_scope("data", "data", [RDS], stuck, active="standby").pair == (True, False)


def test_without_the_committed_side_the_writer_is_taken_as_active() -> None:
    # A planned failback (`standby switch --to primary`) checks the primary with the plain
    # ``assess``: the primary is then a replica, fit when it replicates within max_lag_s.
    results = [sql("primary", **REPLICA_DB), sql("standby", **PRIMARY_DB)]
    assert assess("data", "data", [RDS], results) == (True, True)
    lagging = [sql("primary", **{**REPLICA_DB, "lag_s": 60.0}), sql("standby", **PRIMARY_DB)]
    assert assess("data", "data", [RDS], lagging) == (False, True)
    # no side says it is the single writer: the primary is taken as active
    both = [sql("primary", **PRIMARY_DB), sql("standby", **PRIMARY_DB)]
    assert assess("data", "data", [RDS], both) == (True, False)


def test_gateway_entry_probe_is_reported_but_the_logic_functions_decide() -> None:
    # review: the gateway layer's HTTP probe was silently ignored.
    results = [ProbeResult("us-east-1", "http", False, 900.0, "status 502", None),
               ProbeResult("us-east-1", "lambda", True, 20.0, "invoke ok", "primary"),
               ProbeResult("us-east-1", "lambda", False, 20.0, "function error", "standby"),
               ProbeResult("us-west-2", "lambda", False, 20.0, "other scope", "primary")]
    verdict = assess_scope("gateway", "us-east-1", [], results)
    assert verdict.pair == (True, False)
    assert [r.kind for r in verdict.reported] == ["http"]


def test_dns_entry_probes_decide_per_region_and_per_group() -> None:
    results = [ProbeResult("us-east-1", "http", False, 900.0, "status 503", None),
               ProbeResult("us-west-2", "http", True, 30.0, "status 200", None)]
    assert assess("dns", "us-east-1", [], results) == (False, True)
    assert assess("dns", "us-west-2", [], results) == (True, False)
    group = [{"scope": "main", "kind": "route53_record",
              "regions": {"primary": "us-east-1", "standby": "us-west-2"}}]
    assert assess("dns", "main", group, results) == (False, True)
    assert assess("dns", "main", group, []) == (None, None)


def test_unregistered_kind_is_reported_and_never_decides() -> None:
    results = [sql("primary"), sql("standby"),
               ProbeResult("data", "mystery", False, 1.0, "?", "primary")]
    verdict = assess_scope("data", "data", [RDS], results)
    assert verdict.pair == (True, True)
    assert [r.kind for r in verdict.reported] == ["mystery"]


def test_another_clouds_kinds_need_no_core_change() -> None:
    # A new adapter only registers its kinds; the same core verdict reads their roles.
    reg = Registry()
    reg.add_probe(ProbeKind("cdb", "backend", ("scope", "side"), component="database"))
    reg.add_probe(ProbeKind("cos", "dependency", ("scope", "side")))
    reg.add_switch(SwitchKind("cdb_promote", ("scope", "max_lag_s"), component="database",
                              lag_guard=True))
    target = {"scope": "data", "kind": "cdb_promote", "max_lag_s": 2}
    results = [ProbeResult("data", "cdb", False, 1.0, "down", "primary"),
               ProbeResult("data", "cdb", True, 1.0, "ok", "standby",
                           {"replicating": True, "lag_s": 3.0}),
               ProbeResult("data", "cos", False, 1.0, "down", "standby")]
    verdict = assess_scope("data", "data", [target], results, registry=reg)
    assert verdict.pair == (False, False)  # lag 3 s > 2 s; the cos fault is only reported
    assert [r.kind for r in verdict.reported] == ["cos"]
    ok = [*results[:1], ProbeResult("data", "cdb", True, 1.0, "ok", "standby",
                                    {"replicating": True, "lag_s": 1.0}), results[2]]
    assert assess_scope("data", "data", [target], ok, registry=reg).pair == (False, True)
