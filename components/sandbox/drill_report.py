"""The drill's results: samples, one report per fault, budgets, and the printed summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from components.sandbox.drill_world import (
    DNS_CHECK,
    DRAIN_TIMEOUT_S,
    DRILL_SETTINGS,
    POINTER_CACHE_S,
)


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


def budgets() -> dict[str, tuple[float, str]]:
    """The drill's RTO budget per layer, with the same model as ``components.budget``
    (detection + switch + propagation) over the drill's (compressed) settings."""
    s = DRILL_SETTINGS
    detect = s["failure_threshold"] * s["interval_s"] + s["timeout_s"] + s["interval_s"]
    d_src = (f"{s['failure_threshold']} x {s['interval_s']} s + {s['timeout_s']} s timeout "
             f"+ {s['interval_s']} s for quorum {s['quorum']}")
    dns_detect = DNS_CHECK["interval_s"] * DNS_CHECK["failure_threshold"]
    return {
        "gateway": (detect + 5.0, f"detection {detect:g} s ({d_src}) + switch 5 s + "
                                  "propagation 0 s"),
        "logic": (detect + 2.0 + POINTER_CACHE_S,
                  f"detection {detect:g} s + switch 2 s + pointer cache {POINTER_CACHE_S:g} s"),
        "data": (detect + DRAIN_TIMEOUT_S + POINTER_CACHE_S,
                 f"detection {detect:g} s + switch {DRAIN_TIMEOUT_S:g} s (drain timeout) + "
                 f"pointer cache {POINTER_CACHE_S:g} s"),
        "dns": (dns_detect + DNS_CHECK["ttl_s"],
                f"health checks {DNS_CHECK['failure_threshold']:g} x "
                f"{DNS_CHECK['interval_s']:g} s + TTL {DNS_CHECK['ttl_s']:g} s"),
    }


TITLES = {
    "logic": "the logic function returns 5xx (us-east-1 primary)",
    "wrapper": "the wrapper goes down (us-east-1 primary)",
    "planned": "planned database switchover to us-west-2 (drain, then switch)",
    "failback": "planned failback to us-east-1 (drain, then switch)",
    "database": "the primary database is killed (SIGKILL, us-east-1)",
    "region": "the whole primary region goes down (us-east-1)",
}


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
        f"{summary['lost_planned']}), duplicate rows {summary['duplicate_rows']}")
    say(f"alerts sent: {len(summary['alerts'])}; drill took {summary['duration_s']:.1f} s")
