"""Invoke a deployed function the way Lambda does: a fresh interpreter per invocation.

What the function's interpreter sees, and nothing more:

- ``sys.path``: the unpacked archive the program registered (the task root), each layer's
  ``python/`` folder, then a folder holding only boto3/botocore (what the Lambda Python
  runtime ships). ``python -I -S`` keeps out the sandbox's own site-packages, the user
  site and ``PYTHONPATH``: a module missing from the package or its layers fails with
  ``Runtime.ImportModuleError``, as in the cloud.
- the environment: the function's registered variables, credentials of the function's own
  role (``sts:AssumeRole`` at the moto server, which enforces IAM), ``AWS_ENDPOINT_URL``,
  the region and Lambda's reserved variables. Proxies point at a closed local port with
  ``NO_PROXY`` for loopback, so a call to a real cloud host fails instead of leaving the
  machine.
- the event on stdin, a context with ``get_remaining_time_in_millis`` and
  ``aws_request_id``; the result comes back as one JSON line on stdout (the function's
  own prints go to stderr, like its CloudWatch log stream).

The runner stops the process at the function's timeout.

Time compression (``compression`` > 1, the scheduler's ``seconds_per_minute`` < 60): a
monitor's scheduled invocation loops for ``STANDBY_LOOP_S`` (50 s on AWS) whatever the
schedule's speed, so at 1 min = 10 s every monitor ran ~5 invocations at once and each
outlived its timeout under the load that made (measured: one scheduled invocation 41 s alone;
at load ~16 all of them timed out at 60 s). ``compressed_env`` scales the monitor's
time-valued settings with the schedule, so an invocation spans the same share of a
(compressed) minute and runs the same number of rounds; the function's kill timeout, the
probe timeout and network time are not scaled. The CLI prints that it does so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore

from components.runtime.config import SETTINGS_RANGES
from components.sandbox.deploy import Deployment, Function
from components.sandbox.package import materialize

#: The Lambda runtime's SDK: the version installed here (boto3 1.x and botocore move in
#: lockstep), so the functions and the sandbox speak the same API models to moto.
RUNTIME_BOTO3 = boto3.__version__
#: Interpreter start-up time allowed on top of the function's timeout.
START_ALLOWANCE_S = 2.0
#: A closed port: any proxied (non-loopback) HTTP request fails at once.
NO_EGRESS_PROXY = "http://127.0.0.1:9"

def compressed_env(env: dict[str, str], compression: float) -> dict[str, str]:
    """``env`` with a monitor's loop, interval and cooldown divided by ``compression`` (a
    copy; unchanged for 1.0 and for functions that are not monitors).

    The interval keeps the run-time's lower bound (``SETTINGS_RANGES``). The probe timeout
    stays as registered: probes are network and cold-start time, which is not compressed
    (a 1 s timeout failed every standby probe whose function and wrapper each start a fresh
    interpreter).
    """
    if compression < 1.0:
        raise ValueError(f"compression: {compression}; allowed: >= 1 (1 = real time)")
    if compression == 1.0 or "STANDBY_LOOP_S" not in env:
        return dict(env)
    out = dict(env)
    out["STANDBY_LOOP_S"] = repr(float(env["STANDBY_LOOP_S"]) / compression)
    settings = json.loads(env.get("STANDBY_SETTINGS") or "{}")
    if not isinstance(settings, dict):
        raise ValueError("STANDBY_SETTINGS: must be a JSON object to compress it")
    if "interval_s" in settings:
        settings["interval_s"] = max(SETTINGS_RANGES["interval_s"][0],
                                     float(settings["interval_s"]) / compression)
    if "cooldown_s" in settings:
        settings["cooldown_s"] = float(settings["cooldown_s"]) / compression
    out["STANDBY_SETTINGS"] = json.dumps(settings)
    return out


_BOOTSTRAP = r"""
import importlib, json, os, sys, time, traceback
started = time.monotonic()
sys.path[:0] = json.loads(sys.argv[1])
req = json.loads(sys.stdin.read())
result_fd = os.dup(1)
os.dup2(2, 1)  # the function's prints are log lines, never the result

class Context:
    def __init__(self):
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = req["arn"]
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.aws_request_id = req["request_id"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = "sandbox/" + req["request_id"]
    def get_remaining_time_in_millis(self):
        return max(0, int((started + req["timeout_s"] - time.monotonic()) * 1000))

def error(kind, message, tb=()):
    return {"errorMessage": message, "errorType": kind, "requestId": req["request_id"],
            "stackTrace": list(tb)}

module_name, _, func_name = os.environ["_HANDLER"].rpartition(".")
answer = None
try:
    module = importlib.import_module(module_name)
except ImportError as exc:
    answer = {"error": error("Runtime.ImportModuleError",
                             "Unable to import module '%s': %s" % (module_name, exc))}
except Exception as exc:
    answer = {"error": error("Runtime.UserCodeSyntaxError" if isinstance(exc, SyntaxError)
                             else type(exc).__name__, str(exc),
                             traceback.format_tb(exc.__traceback__))}
if answer is None:
    func = getattr(module, func_name, None)
    if func is None:
        answer = {"error": error("Runtime.HandlerNotFound",
                                 "Handler '%s' missing on module '%s'"
                                 % (func_name, module_name))}
    else:
        try:
            payload = func(req["event"], Context())
        except Exception as exc:
            answer = {"error": error(type(exc).__name__, str(exc),
                                     traceback.format_tb(exc.__traceback__))}
        else:
            try:
                answer = {"payload": json.loads(json.dumps(payload))}
            except (TypeError, ValueError) as exc:
                answer = {"error": error("Runtime.MarshalError",
                                         "Unable to marshal response: %s" % exc)}
sys.stdout.flush()
os.write(result_fd, (json.dumps(answer) + "\n").encode())
"""


@dataclass
class Invocation:
    function: str
    request_id: str
    payload: Any
    """The handler's result, or Lambda's error document when ``error`` is set."""
    error: str | None
    """``None``, or the error type (``Runtime.ImportModuleError``, ``Sandbox.Timeout``...)."""
    logs: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.error is None


def runtime_dir(cache_root: Path) -> Path:
    """``cache_root/lambda-runtime``: boto3/botocore (and their dependencies) only, built once
    with ``pip install --target``."""
    target = cache_root / f"lambda-runtime-{RUNTIME_BOTO3}"
    if (target / "boto3").is_dir():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / ".lambda-runtime.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other test processes build the same folder
        try:
            if (target / "boto3").is_dir():
                return target
            tmp = Path(tempfile.mkdtemp(dir=cache_root, prefix=".runtime-"))
            try:
                subprocess.run(
                    [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
                     "--disable-pip-version-check", "--target", str(tmp),
                     f"boto3=={RUNTIME_BOTO3}", f"botocore=={botocore.__version__}"],
                    check=True, timeout=300)
                tmp.rename(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


class RoleCredentials:
    """Temporary credentials of each role, from ``sts:AssumeRole`` with the deployer's key."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def get(self, role_arn: str) -> dict[str, str]:
        with self._lock:
            cached = self._cache.get(role_arn)
            if cached and cached[0] > time.monotonic():
                return cached[1]
            sts = self.deployment.client("sts", "us-east-1")
            creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="sandbox-lambda",
                                    DurationSeconds=3600)["Credentials"]
            env = {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
                   "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
                   "AWS_SESSION_TOKEN": creds["SessionToken"]}
            self._cache[role_arn] = (time.monotonic() + 3000, env)
            return env


class LambdaRunner:
    """Runs deployed functions from their archives; one fresh process per invocation."""

    def __init__(self, deployment: Deployment, cache_root: Path,
                 endpoints: dict[str, str] | None = None,
                 runtime_root: Path | None = None, compression: float = 1.0) -> None:
        """``cache_root``: unpacked packages and layers. ``runtime_root``: where the boto3-only
        runtime folder is built once (default: ``cache_root``). ``endpoints``: extra
        ``AWS_ENDPOINT_URL_<SERVICE>`` values, e.g. a local host for Lambda Invoke, since moto
        stores functions but does not run them. ``compression``: how much faster than real
        time the schedules run (``compressed_env``)."""
        if compression < 1.0:
            raise ValueError(f"compression: {compression}; allowed: >= 1 (1 = real time)")
        self.deployment = deployment
        self.compression = compression
        self.cache_root = cache_root.resolve()
        self.endpoints = dict(endpoints or {})
        self.credentials = RoleCredentials(deployment)
        self.runtime = runtime_dir((runtime_root or cache_root).resolve())

    def paths(self, fn: Function) -> list[str]:
        code = materialize(fn.code, self.cache_root / "packages")
        layers = [materialize(layer, self.cache_root / "layers") for layer in fn.layers]
        return [str(code), *(str(p / "python") for p in layers), str(self.runtime)]

    def environment(self, fn: Function, code_dir: str) -> dict[str, str]:
        env = compressed_env(fn.env, self.compression)
        env.update(self.credentials.get(fn.role_arn))
        env.update({
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": code_dir, "LAMBDA_RUNTIME_DIR": str(self.runtime),
            "_HANDLER": fn.handler, "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
            "AWS_REGION": fn.region, "AWS_DEFAULT_REGION": fn.region,
            "AWS_ENDPOINT_URL": self.deployment.moto_url,
            "HTTP_PROXY": NO_EGRESS_PROXY, "HTTPS_PROXY": NO_EGRESS_PROXY,
            "http_proxy": NO_EGRESS_PROXY, "https_proxy": NO_EGRESS_PROXY,
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        })
        for service, url in self.endpoints.items():
            env[f"AWS_ENDPOINT_URL_{service.upper()}"] = url
        return env

    def invoke(self, name: str, event: Any) -> Invocation:
        fn = self.deployment.functions.get(name)
        if fn is None:
            fn = next((f for f in self.deployment.functions.values() if f.arn == name), None)
        if fn is None:
            raise LookupError(f"function {name!r} is not deployed; deployed: "
                              f"{', '.join(sorted(self.deployment.functions))}")
        paths = self.paths(fn)
        request_id = str(uuid.uuid4())
        request = json.dumps({"event": event, "request_id": request_id, "arn": fn.arn,
                              "timeout_s": fn.timeout_s})
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BOOTSTRAP, json.dumps(paths)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.environment(fn, paths[0]), cwd=paths[0])
        try:
            out, err = proc.communicate(request.encode(),
                                        timeout=fn.timeout_s + START_ALLOWANCE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                _, err = proc.communicate(timeout=5)
            return Invocation(name, request_id, {
                "errorMessage": f"Task timed out after {fn.timeout_s:.2f} seconds",
                "errorType": "Sandbox.Timeout", "requestId": request_id},
                "Sandbox.Timeout", (err or b"").decode(errors="replace"),
                time.monotonic() - started)
        duration = time.monotonic() - started
        logs = err.decode(errors="replace")
        lines = out.decode(errors="replace").strip().splitlines()
        if proc.returncode != 0 or not lines:
            return Invocation(name, request_id, {
                "errorMessage": f"process exited with {proc.returncode} before a result",
                "errorType": "Runtime.ExitError", "requestId": request_id},
                "Runtime.ExitError", logs, duration)
        answer = json.loads(lines[-1])
        if "error" in answer:
            return Invocation(name, request_id, answer["error"],
                              str(answer["error"]["errorType"]), logs, duration)
        return Invocation(name, request_id, answer["payload"], None, logs, duration)
