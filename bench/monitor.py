"""Benchmark (not a test): monitor switch latency per layer against moto, and engine speed.

For each layer it builds the layer's switch target in a local moto server, fails the
primary, and lets two monitors (quorum 2) decide; it measures the time from the deciding
monitor's probe verdict to the verified switch (lease, decision re-checked under the
lease, intent, target write + progress, read-back, commit), over N runs, and prints the
median and p95. Then it times the pure decision engine.
The moto server runs in this process, so figures are for the protocol and the API round
trips, not for AWS's own propagation (see the budget for those).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.runtime.engine import ScopeState, Settings, Vote, decide  # noqa: E402
from components.sandbox import world as w  # noqa: E402
from components.sandbox.functions import FunctionHost  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
FAST = {"failure_threshold": 1, "interval_s": 1, "timeout_s": 1}


def _reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"),
                           timeout=10).read()


def _layer_world(layer: str, host: FunctionHost) -> tuple[list[dict[str, str]], Any]:
    """Monitors' environments for one layer with its primary already failing; and a cleanup."""
    w.state_table()
    cleanup: Any = None
    if layer in ("gateway", "logic"):
        names = {s: f"shop-{layer}-use1-{s}" for s in ("primary", "standby")}
        for n in names.values():
            host.register(n, lambda e, c: {"ok": True})
        host.fault(names["primary"], "5xx")
        probes = [{"scope": w.R1, "kind": "lambda", "side": s, "function": n}
                  for s, n in names.items()]
        if layer == "gateway":
            switch = [w.rest_stage(w.R1, names["primary"], names["standby"])]
        else:
            table = w.pointer_table(w.R1)
            switch = [{"scope": w.R1, "kind": "pointer", "region": w.R1, "table": table,
                       "key": "wrapper", "values": {"primary": "primary", "standby": "standby"}}]
    elif layer == "data":
        for r in (w.R1, w.R2):
            w.pointer_table(r)
        # The primary region's data table is gone; the standby's answers.
        w.client("dynamodb", w.R2).create_table(
            TableName="shop-data", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        probes = [{"scope": "data", "kind": "dynamodb", "side": s, "region": r,
                   "table": "shop-data"} for s, r in (("primary", w.R1), ("standby", w.R2))]
        switch = [{"scope": "data", "kind": "pointer_all", "key": "data",
                   "tables": [{"region": r, "table": "shop-standby-pointers"}
                              for r in (w.R1, w.R2)],
                   "values": {"primary": w.R1, "standby": w.R2}}]
    else:
        servers = {w.R1: w.HealthServer(), w.R2: w.HealthServer()}
        servers[w.R1].mode = "5xx"
        switch = w.dns_health_targets()
        probes = [{"scope": r, "kind": "http", "url": s.url} for r, s in servers.items()]

        def cleanup() -> None:
            for s in servers.values():
                s.stop()
    envs = [w.env(layer, r, probes, switch, **FAST) for r in (w.R1, w.R2)]
    return envs, cleanup


def switch_latency(moto: str, host: FunctionHost, layer: str) -> list[float]:
    out = []
    for _ in range(RUNS):
        _reset(moto)
        envs, cleanup = _layer_world(layer, host)
        monitors = [w.monitor(e) for e in envs]
        try:
            monitors[0].round()  # first vantage votes
            outcomes = monitors[1].round()  # second vantage completes the quorum and switches
            [done] = [o for o in outcomes if o.switched]
            if not done.verified or done.latency_s is None:
                raise RuntimeError(f"{layer}: switch not verified: {done.detail}")
            out.append(done.latency_s)
        finally:
            for m in monitors:
                m.close()
            if cleanup:
                cleanup()
    return out


def engine_rate(n: int = 200_000) -> float:
    rng = random.Random(7)
    s = Settings(quorum=2, failure_threshold=3)
    votes = [[Vote(v, 100.0, rng.randint(0, 4), rng.randint(0, 4), rng.randint(0, 1),
                   rng.randint(0, 3)) for v in ("a", "b")] for _ in range(1000)]
    states = [ScopeState(), ScopeState(active="standby", last_switch_at=0.0)]
    t0 = time.perf_counter()
    for i in range(n):
        decide(states[i & 1], votes[i % 1000], 100.0, s, "a")
    return n / (time.perf_counter() - t0)


def main() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host_, port = server.get_host_and_port()
    moto = f"http://{host_}:{port}"
    env = {"AWS_ENDPOINT_URL": moto, "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(env)
    host = FunctionHost(fallback=moto)
    os.environ["AWS_ENDPOINT_URL_LAMBDA"] = host.url
    results: dict[str, Any] = {}
    try:
        print(f"probe verdict -> verified switch, against moto ({RUNS} runs per layer)")
        print(f"{'layer':8} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
        for layer in ("dns", "gateway", "logic", "data"):
            xs = sorted(switch_latency(moto, host, layer))
            p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
            results[layer] = {"median_ms": 1000 * statistics.median(xs), "p95_ms": 1000 * p95,
                              "max_ms": 1000 * xs[-1], "runs": len(xs)}
            r = results[layer]
            print(f"{layer:8} {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f} {r['max_ms']:>8.1f}")
        rate = engine_rate()
        results["engine_decisions_per_s"] = rate
        print(f"engine: {rate:,.0f} decisions/s (pure decide(), 2 vantage points)")
    finally:
        host.close()
        server.stop()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "monitor.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
