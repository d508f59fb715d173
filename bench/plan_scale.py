"""Benchmark (not a test): mock-run time and resource count for 1, 2, 4 and 8 region groups.

Prints per size the resource count, the median wall time of the mock run, and both as
ratios to the 1-group run measured in this same process, plus time per resource, so
linear growth reads as a flat "ms/resource" column.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.plan.mocks import PlanRun  # noqa: E402
from components.plan.run import StackConfig, run_program  # noqa: E402
from components.program import main  # noqa: E402

# Region pairs that exist on AWS; group i uses pair i (primary, standby) - distinct regions.
PAIRS = [
    ("us-east-1", "us-west-2"), ("eu-west-1", "eu-central-1"), ("ap-southeast-1", "ap-northeast-1"),
    ("sa-east-1", "us-east-2"), ("ca-central-1", "us-west-1"), ("eu-west-2", "eu-north-1"),
    ("ap-south-1", "ap-southeast-2"), ("me-south-1", "af-south-1"),
]
LINES = ["geo:NA", "geo:EU", "geo:AS", "geo:SA", "country:CA", "country:GB", "country:IN",
         "geo:AF"]


def topology(groups: int) -> dict[str, Any]:
    gs = []
    for i in range(groups):
        primary, standby = PAIRS[i]
        lines = [LINES[i]] + (["default"] if i == 0 else [])
        gs.append({"name": f"group{i}", "primary": primary, "standby": standby, "lines": lines})
    if groups == 1:
        gs[0]["lines"] = ["default"]
    return {
        "name": "bench", "cloud": "aws", "groups": gs,
        "dns": {"zone": "example.com"}, "logic": {"code": "examples/app"},
        "targets": {"rto_s": 600, "rpo_s": 10},
    }


def run(groups: int) -> tuple[float, PlanRun]:
    import json

    cfg = StackConfig("standby", f"bench{groups}", ROOT, ROOT / "stacks" / "bench.yaml",
                      {"standby:topology": json.dumps(topology(groups))}, [], {})
    t0 = time.perf_counter()
    result = run_program(cfg, main)
    return time.perf_counter() - t0, result


def main_bench(repeats: int = 3) -> None:
    run(1)  # warm imports and caches so the first size is not penalised
    rows = []
    for groups in (1, 2, 4, 8):
        times, count = [], 0
        for _ in range(repeats):
            seconds, result = run(groups)
            times.append(seconds)
            count = len([r for r in result.resources if r.custom])
        rows.append((groups, count, statistics.median(times)))
    base_count, base_time = rows[0][1], rows[0][2]
    print(f"{'groups':>6} {'resources':>9} {'median s':>9} {'x res':>6} {'x time':>7} {'ms/res':>7}")  # noqa: E501
    for groups, count, seconds in rows:
        print(f"{groups:>6} {count:>9} {seconds:>9.3f} {count / base_count:>6.2f} "
              f"{seconds / base_time:>7.2f} {1000 * seconds / count:>7.2f}")


if __name__ == "__main__":
    main_bench()
