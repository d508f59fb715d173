"""``make demo``: a complete local failover drill, no cloud account needed.

Two regions (us-east-1 primary, us-west-2 standby) on one machine:

* moto server: API Gateway stages, DynamoDB (pointers, the monitors' state and lease),
  CloudWatch metrics and alarms, SNS, Secrets Manager (the database credentials);
* the package's real handlers hosted in-process behind the Lambda Invoke API: the example
  logic function (``examples/app``) and the wrapper, primary and standby, in each region;
* a gateway per region and Route 53 failover answers (``components.sandbox.edge``);
* a real PostgreSQL primary with a streaming replica (``components.sandbox.pg``);
* the real monitors of every layer in both regions, one probe round per second;
* a load generator writing unique orders through the public name the whole time.

Faults, one at a time, each healed before the next: the logic function returns 5xx; the
wrapper goes down; a planned database switchover and failback (drain first); the primary
database is killed; the whole primary region goes down. For each: the timeline (injected,
detected, switched, first success on the standby), the RTO beside the budget, the failed
requests; at the end, the acknowledged writes that are missing from the final primary and
the request ids stored more than once. The exit status is 1 when a fault did not recover or
took longer than its budget, a planned switchover lost an acknowledged write, or a write was
applied twice (``drill_report.verdict``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from components.sandbox.drill_faults import FaultSteps
from components.sandbox.drill_load import LoadGen
from components.sandbox.drill_report import (
    TITLES,
    FaultReport,
    Sample,
    applied_twice,
    budgets,
    print_summary,
    verdict,
)
from components.sandbox.drill_world import (
    DNS_CHECK,
    DRAIN_TIMEOUT_S,
    DRILL_SETTINGS,
    FAULTS,
    POINTER_CACHE_S,
    ROOT,
    MonitorLoop,
)

__all__ = ["DNS_CHECK", "DRAIN_TIMEOUT_S", "DRILL_SETTINGS", "FAULTS", "POINTER_CACHE_S", "ROOT",
           "Drill", "FaultReport", "LoadGen", "MonitorLoop", "Sample", "budgets", "main",
           "print_summary", "verdict"]


class Drill(FaultSteps):
    """The drill: its world (``drill_world``), load (``drill_load``), faults
    (``drill_faults``) and report (``drill_report``); this module is the CLI."""

    def run(self, faults: tuple[str, ...] = FAULTS) -> dict[str, Any]:
        for loop in self.monitors.values():
            loop.start()
        self.load = LoadGen(self.resolve, DNS_CHECK["ttl_s"]).start()
        self.stack.callback(self.load.stop)
        self.t0 = time.time()
        self._settle(2.0)
        steps = {"logic": self._fault_logic, "wrapper": self._fault_wrapper,
                 "planned": self._planned, "database": self._fault_database,
                 "region": self._fault_region}
        for i, key in enumerate(faults, 1):
            self.say(f"\nfault {i}/{len(faults)}: {TITLES[key]}")
            steps[key]()
        self._settle(1.0)
        self.load.stop()
        return self._summary()

    def _summary(self) -> dict[str, Any]:
        from components.sandbox.chart import write_html

        acked = self.load.acked()
        final = "standby" if self._data_region() == self.R2 else "primary"
        with self.pg.connect(final, "app") as c:
            present = {row[0] for row in c.execute("SELECT id FROM orders").fetchall()}
            dupes = applied_twice(c)
        lost = sorted(set(acked) - present)
        summary = {
            "started_at": self.t0, "duration_s": time.time() - self.t0,
            "requests": len(self.load.samples), "acknowledged_writes": len(acked),
            "lost_acknowledged_writes": len(lost), "lost_examples": lost[:10],
            "applied_twice": dupes,
            "lost_planned": sum(r.lost_writes or 0 for r in self.reports if r.planned),
            "faults": [r.as_dict() for r in self.reports],
            "alerts": [{"t": t - self.t0, "title": title} for t, title in self.alerts],
            "events": [{"t": e[0] - self.t0, "monitor": e[1], "scope": e[2], "what": e[3]}
                       for e in self.events],
        }
        (self.out_dir / "drill.json").write_text(json.dumps(summary, indent=2))
        write_html(self.out_dir / "drill.html", self.load.samples, self.reports, self.t0)
        return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m components.sandbox.drill",
                                description="Local failover drill (make demo).")
    p.add_argument("--out", type=Path, default=Path(".drill"),
                   help="folder for drill.json, drill.html and the logs (default .drill)")
    p.add_argument("--faults", default=",".join(FAULTS),
                   help=f"comma-separated, in order; allowed: {', '.join(FAULTS)}")
    args = p.parse_args(argv)
    faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
    bad = [f for f in faults if f not in FAULTS]
    if bad or not faults:
        p.error(f"--faults: {', '.join(bad) or 'empty'}; allowed: {', '.join(FAULTS)}")
    started = time.monotonic()
    print("local failover drill: us-east-1 (primary) and us-west-2 (standby); PostgreSQL "
          "primary + streaming replica; moto for the AWS control plane")
    drill = Drill(args.out)
    try:
        from components.sandbox.pg import ensure_postgres

        ensure_postgres(print)
        drill.setup()
        print(f"sandbox up in {time.monotonic() - started:.1f} s: 2 gateways, 8 functions, "
              f"8 monitors (4 layers x 2 regions), load generator writing through the "
              "public name")
        summary = drill.run(faults)
    finally:
        drill.close()
    print_summary(summary)
    print(f"chart: {args.out / 'drill.html'}   data: {args.out / 'drill.json'}")
    failures = verdict(summary)
    for line in failures:
        print(f"DRILL FAILED: {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
