"""Benchmark (not a test): measured RTO over the RTO budget, per layer, on the deployed drill.

Runs the whole drill on the plan-deployed sandbox (``components.sandbox.drill_deployed``:
the stack's plan in moto with IAM enforced, every function from its archive in a fresh
interpreter, the monitors on their schedules, load through the public name) ``BENCH_RUNS``
times (default 1; a run takes about 7 minutes) on ``BENCH_STACK`` (default aws-dev) and
reports, per fault, the median and worst of RTO / budget, where RTO is the simulated time
from injecting the fault to the first successful write served by the standby, and the budget
is the stack's own (``components.budget``).
A ratio under 1 means the layer recovered within its budget. Printed, and written to
``bench/results/failover.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.sandbox.drill_deployed import main as drill  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "1"))
STACK = os.environ.get("BENCH_STACK", "aws-dev")


def one_run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="standby-bench-") as out:
        drill(["--stack", STACK, "--out", out], say=lambda line: None)
        summary: dict[str, Any] = json.loads((Path(out) / "drill.json").read_text())
        return summary


def main() -> int:
    ratios: dict[str, list[float]] = {}
    rtos: dict[str, list[float]] = {}
    layers: dict[str, str] = {}
    budgets: dict[str, float] = {}
    lost_planned, lost_total, started = 0, 0, time.monotonic()
    for i in range(RUNS):
        summary = one_run()
        lost_planned += summary["lost_planned"]
        lost_total += summary["lost_acknowledged_writes"]
        for f in summary["faults"]:
            layers[f["key"]], budgets[f["key"]] = f["layer"], f["budget_s"]
            if f["ratio"] is not None:
                ratios.setdefault(f["key"], []).append(f["ratio"])
                rtos.setdefault(f["key"], []).append(f["rto_s"])
        print(f"run {i + 1}/{RUNS}: " + ", ".join(
            f"{f['key']} {f['rto_s']:.2f} s" if f["rto_s"] is not None else f"{f['key']} -"
            for f in summary["faults"]), flush=True)
    results: dict[str, Any] = {"runs": RUNS, "faults": {}, "lost_acknowledged_writes": lost_total,
                               "lost_on_planned_switchovers": lost_planned,
                               "wall_s": time.monotonic() - started}
    print(f"\nRTO / budget over {RUNS} drill runs (median; worst)")
    print(f"  {'fault':10} {'layer':8} {'median RTO':>10} {'budget':>7} {'ratio':>6} {'worst':>6}")
    for key in layers:
        xs, ts = ratios.get(key, []), rtos.get(key, [])
        entry = {"layer": layers[key], "budget_s": budgets[key], "recovered_runs": len(xs),
                 "median_rto_s": statistics.median(ts) if ts else None,
                 "median_ratio": statistics.median(xs) if xs else None,
                 "worst_ratio": max(xs) if xs else None}
        results["faults"][key] = entry
        if xs:
            print(f"  {key:10} {layers[key]:8} {entry['median_rto_s']:>8.2f} s "
                  f"{budgets[key]:>5g} s {entry['median_ratio']:>6.2f} "
                  f"{entry['worst_ratio']:>6.2f}")
        else:
            print(f"  {key:10} {layers[key]:8} no recovery in any run")
    print(f"lost acknowledged writes: {lost_total} in total, {lost_planned} on planned "
          "switchovers")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "failover.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {out / 'failover.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
