"""The RTO/RPO budget: every figure and its source."""

from __future__ import annotations

from typing import Any

import pytest

from components.budget import Budget, LayerBudget, check_budget, compute_budget
from components.errors import BudgetError
from components.spec import parse_spec
from tests.conftest import minimal_raw


def _layer(budget: Budget, name: str) -> LayerBudget:
    return next(lb for lb in budget.layers if lb.layer == name)


def test_defaults() -> None:
    b = compute_budget(parse_spec(minimal_raw()))
    dns = _layer(b, "dns")
    # Route 53 health checks: 10 s x 3, no record edit, TTL 60.
    assert (dns.detection.seconds, dns.switch.seconds, dns.propagation.seconds) == (30, 0, 60)
    assert "Route 53 health checkers" in dns.detection.source
    gw = _layer(b, "gateway")
    # loop: 10 x 3 + 2 s timeout + one interval for quorum 2; switch 5; no propagation
    assert (gw.detection.seconds, gw.switch.seconds, gw.propagation.seconds) == (42, 5, 0)
    assert gw.rto_s == 47
    logic = _layer(b, "logic")
    assert logic.propagation.seconds == 5 and "pointer_cache_s" in logic.propagation.source
    assert b.ok and b.worst_rto_s == 90


def test_interval_above_scheduler_floor_rounds_up_to_whole_minutes() -> None:
    raw = minimal_raw()
    raw["monitor"] = {"gateway": {"interval_s": 90, "failure_threshold": 2, "quorum": 1}}
    gw = _layer(compute_budget(parse_spec(raw)), "gateway")
    assert gw.detection.seconds == 120 * 2 + 2
    assert "rounded up to the 60 s floor" in gw.detection.source


def test_tencent_has_a_one_second_floor_and_direct_dns() -> None:
    raw = minimal_raw()
    raw.update(cloud="tencent", regions=[{"name": "ap-guangzhou", "role": "primary"},
                                         {"name": "ap-shanghai", "role": "standby"}])
    raw["dns"]["mode"] = "direct"
    raw["monitor"] = {"defaults": {"interval_s": 5, "timeout_s": 1, "quorum": 1}}
    raw["storage"] = {"enabled": False}
    b = compute_budget(parse_spec(raw))
    dns = _layer(b, "dns")
    assert dns.detection.seconds == 5 * 3 + 1
    assert "DNSPod" in dns.switch.source
    assert _layer(b, "data").switch.seconds == 60  # CDB DR switch allowance


def test_switch_allowance_override_and_worst_region() -> None:
    raw = minimal_raw()
    raw["monitor"] = {"gateway": {"switch_allowance_s": 12}}
    raw["overrides"] = {"us-west-2": {"monitor": {"gateway": {"failure_threshold": 6}}}}
    gw = _layer(compute_budget(parse_spec(raw)), "gateway")
    assert gw.switch.seconds == 12 and gw.switch.source == "monitor.gateway.switch_allowance_s"
    assert gw.detection.seconds == 10 * 6 + 2 + 10  # the slower region sets the budget


def test_rpo_figures() -> None:
    raw = minimal_raw()
    raw["storage"] = {"rtc": True}
    raw["targets"]["object_rpo_s"] = 900
    b = compute_budget(parse_spec(raw))
    db, s3 = b.rpo
    assert (db.figure.seconds, db.guaranteed) == (1.0, False)
    assert (s3.figure.seconds, s3.guaranteed) == (900.0, True)
    assert b.ok


def test_sql_rpo_is_the_lag_guard() -> None:
    raw = minimal_raw()
    net = {"vpc_id": "vpc-1", "subnet_ids": ["subnet-a", "subnet-b"]}
    raw["database"] = {"engine": "postgres", "max_lag_s": 20,
                       "network": {"us-east-1": net, "us-west-2": net}}
    with pytest.raises(BudgetError) as info:
        check_budget(parse_spec(raw))
    text = str(info.value)
    assert "database: RPO 20 s (cross-region replica (async) with lag guard) exceeds targets.rpo_s (10 s)" in text  # noqa: E501
    assert "layer" in text and "detection" in text  # the table is in the error
    # RDS promotion takes minutes: a 5-minute RTO cannot hold.
    assert "data: worst-case RTO" in text


def test_impossible_targets_fail_with_the_table() -> None:
    raw = minimal_raw()
    raw["targets"] = {"rto_s": 30, "rpo_s": 0.5, "object_rpo_s": 60}
    with pytest.raises(BudgetError) as info:
        check_budget(parse_spec(raw))
    msg = str(info.value)
    assert "dns: worst-case RTO 90 s exceeds targets.rto_s (30 s)" in msg
    assert "database: RPO 1 s (DynamoDB global table (async)) exceeds targets.rpo_s (0.5 s)" in msg
    assert "storage: RPO is unbounded with S3 replication (best effort)" in msg
    assert "sources:" in msg


def test_as_dict_has_every_source() -> None:
    d: Any = compute_budget(parse_spec(minimal_raw())).as_dict()
    for layer in d["layers"]:
        for part in ("detection", "switch", "propagation"):
            assert layer[part]["source"]
