"""``witness: {region, lease_ttl_s, clock_skew_s}``: parsed strictly, and shown in the
budget as the data layer's added promotion time."""

from __future__ import annotations

from typing import Any

import pytest

from components.budget import compute_budget
from components.errors import SpecError
from components.runtime.quorum_lease import RENEWS_PER_TTL
from components.spec import parse_spec
from components.spec_checks import WITNESS_RENEWS_PER_TTL
from tests.conftest import example_raw, minimal_raw


def _raw(witness: Any, **extra: Any) -> dict[str, Any]:
    raw = minimal_raw()
    raw["targets"] = {"rto_s": 900, "rpo_s": 60}
    raw["witness"] = witness
    raw.update(extra)
    return raw


def _problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return [(p.path, p.reason) for p in info.value.problems]


def test_witness_defaults_and_values() -> None:
    w = parse_spec(_raw({"region": "eu-west-1"})).witness
    assert w is not None and (w.region, w.lease_ttl_s, w.clock_skew_s) == ("eu-west-1", 30, 1)
    assert parse_spec(minimal_raw()).witness is None


@pytest.mark.parametrize("witness,path,needle", [
    ({"region": "us-east-1"}, "witness.region", "holds the database already; allowed: a "
     "third region, not 'us-east-1' or 'us-west-2'"),
    ({"region": "us-west-2"}, "witness.region", "holds the database already"),
    ({"region": "mars"}, "witness.region", "is not a aws region name like us-east-1"),
    ({"region": "eu-west-1", "lease_ttl_s": 6, "clock_skew_s": 2}, "witness.clock_skew_s",
     "must be less than lease_ttl_s / 3 (2)"),
    ({"region": "eu-west-1", "lease_ttl_s": 1}, "witness.lease_ttl_s", "is not in 3..600"),
    ({"region": "eu-west-1", "clock_skew_s": -1}, "witness.clock_skew_s", "is not in 0..60"),
    ({"region": "eu-west-1", "lease_ttl_s": "30"}, "witness.lease_ttl_s", "not a number"),
    ({"region": "eu-west-1", "ttl": 30}, "witness", "unknown key 'ttl'; allowed: region, "
     "lease_ttl_s, clock_skew_s"),
    ({"lease_ttl_s": 30}, "witness.region", ""),
])
def test_bad_witness_names_path_value_and_what_is_allowed(witness: Any, path: str,
                                                          needle: str) -> None:
    problems = _problems(_raw(witness))
    assert any(p == path and needle in r for p, r in problems), problems


def test_witness_checked_against_the_database_regions_not_the_first_group() -> None:
    raw = _raw({"region": "eu-west-1"}, database={"primary_region": "us-west-2",
                                                  "standby_region": "us-east-1"})
    assert parse_spec(raw).witness is not None


def test_witness_region_on_tencent_uses_tencent_names() -> None:
    raw = example_raw("tencent-dev")
    raw["witness"] = {"region": "us-east-1"}
    problems = _problems(raw)
    assert any(p == "witness.region" and "is not a tencent region name" in r
               for p, r in problems), problems
    raw["witness"] = {"region": "ap-beijing"}
    w = parse_spec(raw).witness
    assert w is not None and w.region == "ap-beijing"


def test_spec_and_lease_agree_on_the_renewal_rate() -> None:
    assert WITNESS_RENEWS_PER_TTL == RENEWS_PER_TTL


def test_budget_adds_the_lease_wait_to_the_data_switch_only() -> None:
    plain = compute_budget(parse_spec(_raw(None)))
    witness = compute_budget(parse_spec(_raw({"region": "eu-west-1", "lease_ttl_s": 30,
                                              "clock_skew_s": 2})))
    for before, after in zip(plain.layers, witness.layers, strict=True):
        added = (after.switch.seconds or 0) - (before.switch.seconds or 0)
        assert added == (34 if before.layer == "data" else 0), before.layer
    data = next(lb for lb in witness.layers if lb.layer == "data")
    assert "witness.lease_ttl_s 30 s" in data.switch.source
    assert "witness.clock_skew_s (2 s)" in data.switch.source
    assert "+ 34 s witness lease" in witness.table()


def test_budget_with_witness_can_miss_the_target() -> None:
    raw = _raw({"region": "eu-west-1", "lease_ttl_s": 600, "clock_skew_s": 10})
    raw["targets"] = {"rto_s": 300, "rpo_s": 60}
    assert any(v.startswith("data:") for v in compute_budget(parse_spec(raw)).violations)
