"""Idle HA overhead: the arithmetic checked against figures computed here from the spec."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest

from components.cost import (
    ARC_CLUSTER_USD_PER_HOUR,
    HOURS_PER_MONTH,
    PRICES,
    IdleCost,
    idle_overhead,
    invocations_per_month,
    monitor_loads,
)
from components.plan import Plan, make_plan
from components.plan.render import render
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def aws_dev() -> Plan:
    return make_plan("aws-dev", ROOT)


def _usd(cost: IdleCost, item: str) -> float:
    [line] = [x for x in cost.lines if x.item == item]
    assert line.usd is not None, item
    return line.usd


def test_aws_dev_idle_cost_matches_arithmetic_from_the_spec(aws_dev: Plan) -> None:
    spec = aws_dev.spec
    m = spec.monitor.for_layer("dns")  # aws-dev: one setting for every layer and region
    assert all(spec.for_region(r).monitor.for_layer(lay) == m
               for r in spec.all_regions for lay in ("dns", "gateway", "logic", "data"))
    regions = len(spec.all_regions)
    monitors = 4 * regions                      # one per layer and region
    runs = HOURS_PER_MONTH * 60                 # EventBridge rate(1 minute)
    # Rounds every interval_s while one more fits in the 50 s loop with its timeout.
    rounds = len([k for k in range(100) if k * m.interval_s + m.timeout_s <= 50])
    seconds = (rounds - 1) * m.interval_s + m.timeout_s
    assert (rounds, seconds) == (5, 42)
    gb_s = monitors * runs * (256 / 1024) * seconds
    # Scopes: dns, gateway and logic one per region; data one.
    scope_rounds = 2 * runs * rounds * (3 * regions + 1)
    expected = {
        "monitor invocations": monitors * runs / 1e6 * 0.20,
        "monitor compute": gb_s * 0.0000166667,
        "state store reads": scope_rounds * 2 / 1e6 * 0.125,
        "state store writes": scope_rounds * 1 / 1e6 * 0.625,
        # endpoint check per region, plus its force-metric and calculated checks
        "Route 53 health checks": 3 * regions * 0.50,
        # HTTPS, 10 s interval (monitor.dns.interval_s), latency measurement
        "Route 53 optional features": 3 * regions * 1.00,
        # an errors alarm per monitor and a force alarm per region
        "CloudWatch alarms": (monitors + regions) * 0.10,
        "CloudWatch custom metrics": (3 * monitors + regions) * 0.30,
        # each DNS monitor (one per region) publishes every region's force metric per round
        "DNS force-metric heartbeats": regions * regions * rounds * runs / 1000 * 0.01,
        "CloudWatch dashboard": 3.00,
        # one Slack webhook secret per region
        "Secrets Manager secrets": len(spec.alerting.webhooks) * regions * 0.40,
        "KMS keys": regions * 1.00,
    }
    cost = idle_overhead(aws_dev)
    assert {x.item for x in cost.lines} == set(expected)
    for item, usd in expected.items():
        assert _usd(cost, item) == pytest.approx(usd, rel=1e-9), item
    assert cost.known_usd == pytest.approx(sum(expected.values()), rel=1e-9)
    assert cost.unknown == []
    assert 90 < cost.known_usd < 100  # $96.43 with the prices of this version
    assert cost.arc_usd == ARC_CLUSTER_USD_PER_HOUR * 730 == 1825


def test_sql_replica_adds_its_instance_hours() -> None:
    cost = idle_overhead(make_plan("aws-sql", ROOT))
    [line] = [x for x in cost.lines if x.item.startswith("RDS replica")]
    assert line.quantity == HOURS_PER_MONTH
    assert line.usd == pytest.approx(730 * 0.065)
    assert "us-west-2" in line.basis


def test_tencent_unknown_prices_make_the_total_a_lower_bound() -> None:
    cost = idle_overhead(make_plan("tencent-dev", ROOT))
    assert "CDB DR instance" in cost.unknown and "state store (CDB instance)" in cost.unknown
    # 8 monitors firing every 10 s exceed the basic package: usage is not priced offline
    [inv] = [x for x in cost.lines if x.item == "monitor invocations"]
    assert inv.quantity == 8 * 6 * 60 * HOURS_PER_MONTH and inv.usd is None
    table = cost.table()
    assert "at least $1.86/month" in table
    assert "no ratio: the total is a lower bound" in table
    assert cost.as_dict()["lower_bound"] is True


@pytest.mark.parametrize(("schedule", "per_month"), [
    ("rate(1 minute)", 43_800), ("rate(5 minutes)", 8_760),
    ("*/10 * * * * * *", 262_800), ("*/7 * * * * * *", 9 * 43_800),  # 0,7,..,56: 9 a minute
    ("0 */2 * * * * *", 21_900)])
def test_invocations_follow_the_deployed_schedule(schedule: str, per_month: float) -> None:
    assert invocations_per_month(schedule) == pytest.approx(per_month)


def test_unknown_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="not one this package deploys"):
        invocations_per_month("cron(0 12 * * ? *)")


def test_every_price_names_its_source_and_date() -> None:
    for key, price in PRICES.items():
        assert price.source.startswith("https://"), key
        text = price.text()
        if price.usd is None:
            assert text.startswith("unknown: "), key
        else:
            assert price.as_of and price.as_of != "-", key
            assert ("stored copy" in text) == price.verified, key
            assert ("not verified offline" in text) != price.verified, key


def test_plan_shows_idle_overhead_in_text_markdown_and_json(aws_dev: Plan) -> None:
    doc = json.loads(render(aws_dev, "json"))
    assert math.isclose(doc["idle_cost"]["known_usd_per_month"],
                        round(idle_overhead(aws_dev).known_usd, 4))
    assert doc["idle_cost"]["arc_cluster_usd_per_month"] == 1825
    assert "Idle HA overhead per month" in render(aws_dev, "text")
    assert "### Idle HA overhead per month" in render(aws_dev, "markdown")


def test_a_monitor_outside_the_region_pair_runs_on_the_defaults(aws_dev: Plan) -> None:
    """A witness monitor in a third region (another branch adds it) must be counted, not
    crash the plan: it has no per-region settings, so the defaults apply."""
    plan = copy.copy(aws_dev)
    base = aws_dev.wiring[0]
    plan.wiring = [*aws_dev.wiring, dataclasses.replace(base, layer="witness",
                                                        region="eu-west-1")]
    loads = monitor_loads(plan)
    assert len(loads) == len(aws_dev.wiring) + 1
    extra = loads[-1]
    assert (extra.layer, extra.region) == ("witness", "eu-west-1")
    assert extra.seconds_each == 42 and extra.rounds_each == 5  # monitor.defaults: 10 s, 2 s


def test_tencent_state_store_is_compared_with_tdsql_c_serverless_at_its_floor() -> None:
    cost = idle_overhead(make_plan("tencent-dev", ROOT))
    [cmp] = cost.comparisons
    # 0.25 CCU x 730 h x 3600 s x $0.00001397 + 1 GB x 730 h x $0.00072 (1098/51974)
    assert cmp.usd == pytest.approx(0.25 * 730 * 3600 * 0.00001397 + 730 * 0.00072)
    assert cmp.prices == ("tdsqlc_ccu", "tdsqlc_storage")
    # a comparison is never part of the deployed total, nor an "unknown" in it
    assert cost.known_usd == pytest.approx(1.86)
    assert all("TDSQL-C" not in item for item in cost.unknown)
    table = cost.table()
    assert "compare: the state store on TDSQL-C Serverless instead of CDB: $9.70/month" in table
    assert "DescribeDBPrice (Region ap-shanghai" in table
    assert "tdsqlc_ccu: $1.397e-05 per CCU-second" in table
    doc = cost.as_dict()
    assert doc["comparisons"][0]["usd_per_month"] == pytest.approx(cmp.usd, abs=1e-4)
    assert "tdsqlc_storage" in doc["prices"]
