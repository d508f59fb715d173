"""Benchmark (not a test): per-invocation latency of the sandbox's Lambda runner, spawn vs fork.

Two functions run from their archives with their role's credentials (a moto server with IAM
enforced issues them): one returns at once, one creates a boto3 client. Each is invoked
BENCH_RUNS times per mode, the two modes alternating so both see the same machine load:

- spawn: a new ``python -I -S`` per invocation, which imports boto3 itself;
- fork: a child of the runner's fork server, which has imported boto3 once.

Prints p50 and p95 of the time ``LambdaRunner.invoke`` takes, per function and mode, and
the spawn/fork ratio. Figures include unpacking nothing (the packages are unpacked before
the first timed run) and no network call.
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

import boto3  # noqa: E402
import pulumi  # noqa: E402

from components.sandbox.deploy import Deployment, Function, trust_for_sandbox  # noqa: E402
from components.sandbox.deploy_model import DEPLOYER_POLICY, DEPLOYER_USER  # noqa: E402
from components.sandbox.lambda_runner import LambdaRunner  # noqa: E402
from components.sandbox.moto_proc import MotoProcess  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
FUNCTIONS = {
    "trivial": "def handler(event, context):\n    return 1\n",
    "boto3 client": "import boto3\ndef handler(event, context):\n"
                    "    boto3.client('dynamodb')\n    return 1\n",
}
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
     "Action": "sts:AssumeRole"}]}


def deployment(moto_url: str) -> Deployment:
    d = Deployment(moto_url=moto_url, stack="bench")
    iam: Any = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url,
                            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName=DEPLOYER_USER)
    iam.put_user_policy(UserName=DEPLOYER_USER, PolicyName="deploy-anything",
                        PolicyDocument=json.dumps(DEPLOYER_POLICY))
    key = iam.create_access_key(UserName=DEPLOYER_USER)["AccessKey"]
    d.access_key = (key["AccessKeyId"], key["SecretAccessKey"])
    role = d.client("iam", "us-east-1").create_role(
        RoleName="bench-fn", AssumeRolePolicyDocument=json.dumps(
            trust_for_sandbox(TRUST, d.deployer_arn)))["Role"]["Arn"]
    for name, source in FUNCTIONS.items():
        d.functions[name] = Function(
            name=name, region="us-east-1",
            arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name.replace(' ', '-')}",
            role_arn=role, handler="app.handler", runtime="python3.12", timeout_s=30,
            memory_mb=128, env={},
            code=pulumi.AssetArchive({"app.py": pulumi.StringAsset(source)}), layers=[])
    return d


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    with MotoProcess() as moto, tempfile.TemporaryDirectory() as cache:
        d = deployment(moto.url)
        runners = {mode: LambdaRunner(d, Path(cache), runtime_root=ROOT / ".standby-cache",
                                      mode=mode) for mode in ("spawn", "fork")}
        try:
            times: dict[tuple[str, str], list[float]] = {}
            for runner in runners.values():  # unpack, assume the role, start the server
                for name in FUNCTIONS:
                    inv = runner.invoke(name, {})
                    if not inv.ok:
                        print(f"{name} ({runner.mode}) failed: {inv.payload}\n{inv.logs}")
                        return 1
            for _ in range(RUNS):
                for name in FUNCTIONS:
                    for mode, runner in runners.items():
                        t0 = time.perf_counter()
                        inv = runner.invoke(name, {})
                        took = time.perf_counter() - t0
                        if not inv.ok:
                            print(f"{name} ({mode}) failed: {inv.payload}")
                            return 1
                        times.setdefault((name, mode), []).append(took)
        finally:
            for runner in runners.values():
                runner.close()
    print(f"LambdaRunner.invoke latency, {RUNS} runs each, modes alternating "
          f"(load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs)")
    print(f"{'function':<14} {'mode':<6} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name in FUNCTIONS:
        for mode in runners:
            t = times[(name, mode)]
            print(f"{name:<14} {mode:<6} {pct(t, 0.5) * 1000:8.1f} {pct(t, 0.95) * 1000:8.1f} "
                  f"{statistics.fmean(t) * 1000:8.1f}")
        spawn, fork = times[(name, "spawn")], times[(name, "fork")]
        print(f"{name:<14} spawn/fork: p50 {pct(spawn, 0.5) / pct(fork, 0.5):.1f}x, "
              f"p95 {pct(spawn, 0.95) / pct(fork, 0.95):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
