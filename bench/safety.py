"""Benchmark (not a test): the switch protocol's safety over many random schedules.

Runs ``tests/unit/test_protocol.run_schedule`` (the REAL ``Monitor.round``, a fresh monitor
per invocation, interleaved overlapping and late invocations, crashes at every switch step,
clock skew) for N seeds on the reference ``MemoryStore`` and prints the number of
schedules, the violations by kind, and the time taken. ``BENCH_SCHEDULES`` sets N (10,000).
Exit status 1 if any violation was found.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.runtime.lease import MemoryStore  # noqa: E402
from tests.unit.test_protocol import KINDS, run_schedule  # noqa: E402

SCHEDULES = int(os.environ.get("BENCH_SCHEDULES", "10000"))
FIRST_SEED = int(os.environ.get("BENCH_FIRST_SEED", "0"))


def main() -> int:
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bench-probe")
    total: Counter[str] = Counter()
    bad: list[int] = []
    t0 = time.perf_counter()
    for seed in range(FIRST_SEED, FIRST_SEED + SCHEDULES):
        found = run_schedule(seed, MemoryStore(), pool=pool)
        if found:
            bad.append(seed)
        total += found
    elapsed = time.perf_counter() - t0
    pool.shutdown()
    print(f"schedules: {SCHEDULES} (seeds {FIRST_SEED}..{FIRST_SEED + SCHEDULES - 1})")
    print(f"schedules with a violation: {len(bad)}" + (f" (first seeds: {bad[:10]})"
                                                      if bad else ""))
    print("violations by kind:")
    for kind in KINDS:
        print(f"  {kind:13} {total.get(kind, 0)}")
    print(f"time: {elapsed:.1f} s ({1000 * elapsed / SCHEDULES:.1f} ms per schedule)")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "safety.json").write_text(json.dumps(
        {"schedules": SCHEDULES, "first_seed": FIRST_SEED, "violating_schedules": len(bad),
         "violations": {k: total.get(k, 0) for k in KINDS}, "seconds": round(elapsed, 1)},
        indent=2) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
