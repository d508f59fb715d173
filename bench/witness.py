"""Benchmark (not a test): the witness lease's safety over many random schedules.

Runs ``tests/unit/witness_sim.random_schedule`` (three regions' stores, two sides with
skewed clocks, link cuts and heals, region crashes and recoveries, message loss and
delay, both sides wanting the lease) on the reference ``MemoryStore`` and counts the
ticks at which two sides held a valid write lease. Then it runs the same schedules with
one safeguard removed at a time (``witness_sim.MUTANTS``) to show the checker finds two
writers when they are possible. ``BENCH_SCHEDULES`` sets N (2,000).
Exit status 1 if the real lease shows a violation or a mutant shows none.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.unit.witness_sim import MUTANTS, random_schedule, run  # noqa: E402

SCHEDULES = int(os.environ.get("BENCH_SCHEDULES", "2000"))
FIRST_SEED = int(os.environ.get("BENCH_FIRST_SEED", "0"))


def explore(mutant: str | None) -> tuple[int, int, list[int], float]:
    """(violating ticks, violating schedules, first bad seeds, seconds)."""
    t0 = time.perf_counter()
    ticks, bad = 0, []
    for seed in range(FIRST_SEED, FIRST_SEED + SCHEDULES):
        found = run(random_schedule(seed), mutant).violations()
        ticks += found
        if found:
            bad.append(seed)
    return ticks, len(bad), bad[:5], time.perf_counter() - t0


def main() -> int:
    results: dict[str, dict[str, object]] = {}
    print(f"schedules: {SCHEDULES} (seeds {FIRST_SEED}..{FIRST_SEED + SCHEDULES - 1}), "
          "each 90 s simulated in 0.25 s ticks")
    print(f"{'lease':22} {'two-writer ticks':>16} {'schedules':>10}  first seeds   time")
    for name in (None, *MUTANTS):
        ticks, schedules, seeds, secs = explore(name)
        label = name or "real (all safeguards)"
        print(f"{label:22} {ticks:>16} {schedules:>10}  {seeds!s:12} {secs:5.1f} s")
        results[name or "real"] = {"violating_ticks": ticks, "violating_schedules": schedules,
                                   "first_seeds": seeds, "seconds": round(secs, 1)}
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "witness.json").write_text(json.dumps(
        {"schedules": SCHEDULES, "first_seed": FIRST_SEED, "results": results}, indent=2)
        + "\n")
    real_bad = results["real"]["violating_schedules"] != 0
    blind = [m for m in MUTANTS if results[m]["violating_schedules"] == 0]
    if blind:
        print(f"checker found no violation with mutants {blind}")
    return 1 if real_bad or blind else 0


if __name__ == "__main__":
    raise SystemExit(main())
