"""The drill's verdict (what makes ``make demo`` exit non-zero) and its orders table. The drill
itself runs in tests/functional/test_drill_deployed.py."""

from __future__ import annotations

from typing import Any

import pytest

from components.sandbox.drill_data import ORDERS_DDL
from components.sandbox.drill_report import applied_twice, verdict
from components.sandbox.pg import PgPair, PgUnavailable, pg_bin


@pytest.fixture
def needs_postgres() -> None:
    try:
        pg_bin()
    except PgUnavailable as exc:
        pytest.skip(str(exc))


def _fault(key: str = "logic", rto_s: float | None = 5.0, budget_s: float = 7.0,
           planned: bool = False, lost: int | None = None) -> dict[str, Any]:
    return {"key": key, "layer": "gateway", "planned": planned, "rto_s": rto_s,
            "budget_s": budget_s, "budget_source": "test", "lost_writes": lost}


def _summary(*faults: dict[str, Any], dupes: list[dict[str, Any]] | None = None
             ) -> dict[str, Any]:
    return {"faults": list(faults), "applied_twice": dupes or []}


def test_verdict_passes_a_clean_drill() -> None:
    clean = _summary(_fault(), _fault("planned", planned=True, lost=0),
                     _fault("database", lost=3), _fault("region", rto_s=7.0))
    # Unplanned loss is reported, not failed; an RTO equal to its budget is within it.
    assert verdict(clean) == []


def test_drill_fails_when_region_rto_exceeds_budget() -> None:
    # Review point 5: 7.09 s against a 7 s budget exited 0.
    failures = verdict(_summary(_fault(), _fault("region", rto_s=7.09, budget_s=7.0)))
    assert failures == ["region: RTO 7.09 s exceeds its budget 7 s (test)"]


def test_drill_fails_when_a_fault_never_recovers() -> None:
    assert verdict(_summary(_fault("database", rto_s=None, budget_s=13.5))) == [
        "database: no recovery (budget 13.5 s)"]


def test_drill_fails_when_a_planned_switchover_loses_an_acknowledged_write() -> None:
    failures = verdict(_summary(_fault("failback", planned=True, lost=1)))
    assert len(failures) == 1 and "failback (planned): 1 acknowledged write(s) lost" in failures[0]


def test_drill_fails_when_a_monitor_fails_over_a_healthy_primary() -> None:
    summary = _summary(_fault())
    summary["unexpected_switches"] = ["gateway@us-east-1 switched us-west-2 at t=105.8 s "
                                      "(token 2)"]
    assert verdict(summary) == [
        "unexpected switch: gateway@us-east-1 switched us-west-2 at t=105.8 s (token 2): a "
        "healthy primary was failed over"]


def test_drill_fails_when_a_request_is_applied_twice() -> None:
    failures = verdict(_summary(_fault(), dupes=[{"request_id": "o-1", "rows": 2}]))
    assert failures == ["1 request(s) applied more than once: o-1 x2"]


@pytest.mark.usefixtures("needs_postgres")
def test_duplicate_request_ids_are_detectable_in_the_drill_table() -> None:
    # Review point 5: with ``id`` as the primary key a second insert was refused, so the
    # duplicate count could never be non-zero. The drill's table keeps a server row id.
    with PgPair() as pg, pg.connect("primary", "app") as c:
        c.execute(ORDERS_DDL["postgres"])
        for order in ("o-1", "o-2", "o-1", "o-3", "o-1", "o-3"):
            c.execute("INSERT INTO orders (id, item, region) VALUES (%s, 'x', 'r')",
                      (order,))
        dupes = applied_twice(c)
        c.execute("DELETE FROM orders WHERE id <> 'o-2'")
        clean = applied_twice(c)
    assert dupes == [{"request_id": "o-1", "rows": 3}, {"request_id": "o-3", "rows": 2}]
    assert clean == []
