"""The drill's results: samples, one report per fault, budgets, and the printed summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Sample:
    t: float
    ok: bool
    status: int
    order: str
    region: str | None = None
    logic_side: str | None = None
    wrapper_side: str | None = None
    data_region: str | None = None
    detail: str | None = None  # a failed request's answer (first 200 characters)


@dataclass
class FaultReport:
    key: str
    title: str
    layer: str
    planned: bool
    injected: float
    budget_s: float
    budget_source: str
    detected: float | None = None
    detected_how: str = ""
    switched: float | None = None
    switched_how: str = ""
    first_standby: float | None = None
    failed_requests: int = 0
    lost_writes: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rto_s(self) -> float | None:
        return None if self.first_standby is None else self.first_standby - self.injected

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rto_s"] = self.rto_s
        out["ratio"] = None if self.rto_s is None else self.rto_s / self.budget_s
        return out


def applied_twice(conn: Any) -> list[dict[str, Any]]:
    """Request ids stored more than once in the drill's ``orders`` (``ORDERS_DDL``)."""
    rows = conn.execute("SELECT id, count(*) FROM orders GROUP BY id HAVING count(*) > 1 "
                        "ORDER BY id").fetchall()
    return [{"request_id": r[0], "rows": int(r[1])} for r in rows]


def verdict(summary: dict[str, Any]) -> list[str]:
    """Why the drill failed, one line per reason (empty: it passed).

    A fault fails when nothing recovered or its RTO is strictly over its budget; a planned
    switchover fails when it lost an acknowledged write; any request id stored more than
    once is a write applied twice; any switch no fault asked for (``unexpected_switches``)
    failed over a healthy primary.
    """
    failures: list[str] = []
    for f in summary["faults"]:
        name = f["key"] + (" (planned)" if f["planned"] else "")
        if f["rto_s"] is None:
            failures.append(f"{name}: no recovery (budget {f['budget_s']:g} s)")
        elif f["rto_s"] > f["budget_s"]:
            failures.append(f"{name}: RTO {f['rto_s']:.2f} s exceeds its budget "
                            f"{f['budget_s']:g} s ({f['budget_source']})")
        if f["planned"] and f["lost_writes"]:
            failures.append(f"{name}: {f['lost_writes']} acknowledged write(s) lost in a "
                            "planned switchover (allowed: 0)")
    for line in summary.get("unexpected_switches", []):
        failures.append(f"unexpected switch: {line}: a healthy primary was failed over")
    dupes = summary["applied_twice"]
    if dupes:
        shown = ", ".join(f"{d['request_id']} x{d['rows']}" for d in dupes[:5])
        failures.append(f"{len(dupes)} request(s) applied more than once: {shown}")
    return failures


def print_summary(summary: dict[str, Any], say: Callable[[str], None] = print) -> None:
    say("\nsummary")
    rows = [("fault", "layer", "RTO", "budget", "ratio", "failed req", "lost writes")]
    for f in summary["faults"]:
        rto = "-" if f["rto_s"] is None else f"{f['rto_s']:.2f} s"
        ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}"
        lost = "-" if f["lost_writes"] is None else str(f["lost_writes"])
        rows.append((f["key"] + (" (planned)" if f["planned"] else ""), f["layer"], rto,
                     f"{f['budget_s']:g} s", ratio, str(f["failed_requests"]), lost))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        say("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    say(f"\nrequests {summary['requests']}, acknowledged writes "
        f"{summary['acknowledged_writes']}, lost acknowledged writes "
        f"{summary['lost_acknowledged_writes']} (planned switchovers: "
        f"{summary['lost_planned']}), requests applied twice {len(summary['applied_twice'])}")
    say(f"alerts sent: {len(summary['alerts'])}; drill took {summary['duration_s']:.1f} s")
