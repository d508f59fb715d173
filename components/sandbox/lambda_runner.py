"""Invoke a deployed function the way Lambda does: a fresh process per invocation.

Each invocation is a new process forked from the runner's fork server (``zygote.py``), a
``python -I -S`` that has imported only boto3 (what the Lambda runtime ships): no function
code, no client, no credentials. So the function's module is imported anew every time and
its globals never outlive the invocation, while boto3's import (0.36 s idle, 1-2.5 s under
load, paid twice by a standby probe through logic and wrapper) is not paid per invocation;
a cold start on Lambda pays it, a warm one does not. A function whose package or layers
ship their own copy of a runtime module (its own boto3) gets a spawned interpreter instead,
where that copy wins as on Lambda; so does every invocation once the fork server has
stopped ``MAX_ZYGOTE_STARTS`` times, after ``close``, or with ``mode="spawn"``.

Functions with layers fork from a server of their own per layer set, which has also
imported the layers' top-level packages (psycopg, sqlglot: 0.3 s a wrapper invocation
otherwise). A function without those layers never forks from it, so a missing driver still
fails; one whose code ships a package of a layer's name forks from the layerless server.

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
- the event (the bootstrap reads it before the handler runs: from a pipe of its own when
  forked, from stdin when spawned; the handler's stdin is empty), a context with
  ``get_remaining_time_in_millis`` and ``aws_request_id``; the result comes back as one
  JSON line on stdout (the function's own prints go to stderr, like its CloudWatch log
  stream).

The runner stops the process at the function's timeout (a forked one with whatever it
started: its process group).

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
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore

from components.runtime.config import SETTINGS_RANGES
from components.sandbox.deploy import Deployment, Function
from components.sandbox.package import materialize
from components.sandbox.zygote import DRAIN_S, Exit, Zygote, ZygoteUnavailable

log = logging.getLogger(__name__)

#: The Lambda runtime's SDK: the version installed here (boto3 1.x and botocore move in
#: lockstep), so the functions and the sandbox speak the same API models to moto.
RUNTIME_BOTO3 = boto3.__version__
#: Interpreter start-up time allowed on top of the function's timeout.
START_ALLOWANCE_S = 2.0
#: A closed port: any proxied (non-loopback) HTTP request fails at once.
NO_EGRESS_PROXY = "http://127.0.0.1:9"
#: Every function's environment has these; they are the fork server's whole environment.
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC"}
MODES = ("fork", "spawn")
#: Fork server starts per runner (the first and restarts); then invocations spawn.
MAX_ZYGOTE_STARTS = 4
#: Refusals in a row by a live fork server before it is taken for wedged and replaced.
MAX_REFUSALS = 3

def top_level_modules(folder: Path) -> set[str]:
    """The importable top-level packages and modules in ``folder`` (not ``__pycache__``,
    ``*.dist-info``, ``*.libs``)."""
    if not folder.is_dir():
        return set()
    return {p.name.removesuffix(".py") for p in folder.iterdir()
            if not p.name.startswith(("_", ".")) and "." not in p.name.removesuffix(".py")
            and ((p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py")}


def layer_modules(layers: tuple[str, ...]) -> tuple[str, ...]:
    """The top-level packages and modules in layer ``python`` folders (what a fork server
    for those layers imports), in an order that imports a package before its optional
    compiled companion (``psycopg`` before ``psycopg_binary``)."""
    names = set().union(*(top_level_modules(Path(f)) for f in layers))
    return tuple(sorted(names, key=lambda n: (len(n.split("_")), n)))


def _ships(folder: str, modules: Iterable[str]) -> bool:
    """Whether ``folder`` holds a package or module of one of these names."""
    root = Path(folder)
    return any((root / m).exists() or (root / f"{m}.py").exists() for m in modules)


@dataclass(frozen=True)
class _Layout:
    """A function's unpacked paths and the fork server it uses (``None``: spawn)."""

    paths: list[str]
    server: tuple[str, ...] | None
    archives: tuple[Any, ...]  # kept alive, so the ids keying the layout are never reused


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


def bootstrap(req, started):
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
#: A spawned interpreter: paths in argv, the request on stdin.
_SPAWN = _BOOTSTRAP + r"""
_started = time.monotonic()
sys.path[:0] = json.loads(sys.argv[1])
bootstrap(json.loads(sys.stdin.read()), _started)
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
    """Runs deployed functions from their archives; one fresh process per invocation.

    A context manager: ``close`` stops the fork server (invocations after it spawn)."""

    def __init__(self, deployment: Deployment, cache_root: Path,
                 endpoints: dict[str, str] | None = None,
                 runtime_root: Path | None = None, compression: float = 1.0,
                 mode: str = "fork") -> None:
        """``cache_root``: unpacked packages and layers. ``runtime_root``: where the boto3-only
        runtime folder is built once (default: ``cache_root``). ``endpoints``: extra
        ``AWS_ENDPOINT_URL_<SERVICE>`` values, e.g. a local host for Lambda Invoke, since moto
        stores functions but does not run them. ``compression``: how much faster than real
        time the schedules run (``compressed_env``). ``mode``: ``fork`` (from the fork
        server, ``zygote.py``) or ``spawn`` (a new interpreter that imports boto3 itself)."""
        if compression < 1.0:
            raise ValueError(f"compression: {compression}; allowed: >= 1 (1 = real time)")
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r}; allowed: {', '.join(MODES)}")
        if mode == "fork" and not sys.platform.startswith("linux"):
            mode = "spawn"  # the fork server relies on PR_SET_PDEATHSIG and waitid
        self.deployment = deployment
        self.compression = compression
        self.mode = mode
        self.cache_root = cache_root.resolve()
        self.endpoints = dict(endpoints or {})
        self.credentials = RoleCredentials(deployment)
        self.runtime = runtime_dir((runtime_root or cache_root).resolve())
        # What the fork server has imported from the runtime folder: a function that ships
        # its own copy of one of these gets a spawned interpreter, where its copy wins.
        self._runtime_modules = sorted(top_level_modules(self.runtime))
        self._zlock = threading.Lock()
        # One fork server per layer set (the empty one for functions without layers).
        self._zygotes: dict[tuple[str, ...], Zygote] = {}
        self._starts: dict[tuple[str, ...], int] = {}
        self._refusals: dict[tuple[str, ...], int] = {}
        self._closed = False
        self._layouts: dict[tuple[int, ...], _Layout] = {}

    def __enter__(self) -> LambdaRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the fork server, killing any invocation it still runs."""
        with self._zlock:
            self._closed = True
            for z in self._zygotes.values():
                z.close()
            self._zygotes.clear()

    @property
    def zygote_pid(self) -> int | None:
        """The running fork server's pid for functions without layers, if any."""
        z = self._zygotes.get(())
        return z.pid if z is not None and z.alive() else None

    def paths(self, fn: Function) -> list[str]:
        """The function's unpacked code, its layers' ``python`` folders and the runtime."""
        return list(self._layout(fn).paths)

    def _layout(self, fn: Function) -> _Layout:
        """Laid out once per archive object: hashing an archive reads all of it, and a drivers
        layer is megabytes (hashed per invocation it was the drill's largest CPU cost).

        The server: none (spawn) when the code or a layer ships its own copy of a runtime
        module (its copy wins, as on Lambda); the layerless one when the code ships a package
        of a layer's name; else the one for exactly these layers."""
        key = (id(fn.code), *(id(layer) for layer in fn.layers))
        with self._zlock:
            cached = self._layouts.get(key)
        if cached is not None and all(Path(p).is_dir() for p in cached.paths):
            return cached
        code = materialize(fn.code, self.cache_root / "packages")
        layers = tuple(str(materialize(layer, self.cache_root / "layers") / "python")
                       for layer in fn.layers)
        paths = [str(code), *layers, str(self.runtime)]
        server: tuple[str, ...] | None = layers
        if any(_ships(p, self._runtime_modules) for p in paths[:-1]):
            server = None
        elif _ships(paths[0], layer_modules(layers)):
            server = ()
        layout = _Layout(paths, server, (fn.code, *fn.layers))
        with self._zlock:
            self._layouts[key] = layout
        return layout

    def environment(self, fn: Function, code_dir: str) -> dict[str, str]:
        env = compressed_env(fn.env, self.compression)
        env.update(self.credentials.get(fn.role_arn))
        env.update(BASE_ENV)
        env.update({
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
        layout = self._layout(fn)
        paths = layout.paths
        request_id = str(uuid.uuid4())
        request = {"event": event, "request_id": request_id, "arn": fn.arn,
                   "timeout_s": fn.timeout_s}
        env = self.environment(fn, paths[0])
        limit = fn.timeout_s + START_ALLOWANCE_S
        started = time.monotonic()
        done: Exit | None = None
        if layout.server is not None:
            layers = layout.server
            for _ in range(2):  # a dead server is replaced once; nothing ran on it
                zygote = self._fork_server(layers)
                if zygote is None:
                    break
                try:
                    done = zygote.run(paths, env, paths[0], request, limit)
                except ZygoteUnavailable as exc:
                    if self._refused(zygote, str(exc)):
                        continue
                    break  # a live server that refused one (a full backlog): spawn that one
                self._refusals[layers] = 0
                break
        if done is None:
            done = _spawn(paths, env, request, limit)
        return _invocation(name, request_id, fn.timeout_s, done, time.monotonic() - started)

    def _fork_server(self, layers: tuple[str, ...] = ()) -> Zygote | None:
        """The running fork server for ``layers``, started or restarted (at most
        ``MAX_ZYGOTE_STARTS`` times per layer set); ``None`` means spawn."""
        with self._zlock:
            if self.mode != "fork" or self._closed:
                return None
            z = self._zygotes.get(layers)
            if z is not None and z.alive():
                return z
            if z is not None:
                log.warning("lambda fork server %d exited with %s; %s", z.pid,
                            z.proc.returncode, z.log_tail() or "no output")
                z.close()
                del self._zygotes[layers]
            starts = self._starts.get(layers, 0)
            if starts >= MAX_ZYGOTE_STARTS:
                return None
            self._starts[layers] = starts = starts + 1
            if starts == MAX_ZYGOTE_STARTS:
                log.warning("lambda fork server: start %d of %d; later invocations spawn "
                            "interpreters if it stops", starts, MAX_ZYGOTE_STARTS)
            try:
                self._zygotes[layers] = Zygote(self.runtime, _BOOTSTRAP, dict(BASE_ENV),
                                               layers=layers,
                                               layer_modules=layer_modules(layers))
            except (ZygoteUnavailable, OSError) as exc:  # OSError: no process or temp dir
                log.warning("lambda fork server did not start (%s); spawning", exc)
            return self._zygotes.get(layers)

    def _refused(self, zygote: Zygote, reason: str) -> bool:
        """Note a refusal; True when the server was dropped (dead, or wedged: refused
        ``MAX_REFUSALS`` times in a row), so that the next one may be started."""
        with self._zlock:
            refusals = self._refusals.get(zygote.layers, 0)
            if zygote.alive() and refusals + 1 < MAX_REFUSALS:
                self._refusals[zygote.layers] = refusals + 1
                log.warning("lambda fork server %d refused an invocation (%s); spawning it",
                            zygote.pid, reason)
                return False
            if self._zygotes.get(zygote.layers) is not zygote:
                return True  # another invocation already replaced it
            log.warning("lambda fork server %d refused an invocation (%s); replacing it",
                        zygote.pid, reason)
            self._refusals[zygote.layers] = 0
            zygote.close()  # what still runs on a wedged server is killed with it
            del self._zygotes[zygote.layers]
            return True


def _spawn(paths: list[str], env: dict[str, str], request: dict[str, Any],
           limit_s: float) -> Exit:
    """A new ``python -I -S`` that imports everything itself."""
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _SPAWN, json.dumps(paths)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, cwd=paths[0])
    try:
        out, err = proc.communicate(json.dumps(request).encode(), timeout=limit_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = b"", b""
        with contextlib.suppress(subprocess.TimeoutExpired):
            out, err = proc.communicate(timeout=DRAIN_S)
        return Exit(proc.returncode, out or b"", err or b"", timed_out=True)
    return Exit(proc.returncode, out, err, timed_out=False)


def _invocation(name: str, request_id: str, timeout_s: float, done: Exit,
                duration: float) -> Invocation:
    logs = done.err.decode(errors="replace")
    if done.timed_out:
        return Invocation(name, request_id, {
            "errorMessage": f"Task timed out after {timeout_s:.2f} seconds",
            "errorType": "Sandbox.Timeout", "requestId": request_id},
            "Sandbox.Timeout", logs, duration)
    lines = done.out.decode(errors="replace").strip().splitlines()
    if done.returncode is None:
        return Invocation(name, request_id, {
            "errorMessage": "the fork server stopped during the invocation; exit status "
                            "unknown", "errorType": "Runtime.ExitError",
            "requestId": request_id}, "Runtime.ExitError", logs, duration)
    if done.returncode != 0 or not lines:
        return Invocation(name, request_id, {
            "errorMessage": f"process exited with {done.returncode} before a result",
            "errorType": "Runtime.ExitError", "requestId": request_id},
            "Runtime.ExitError", logs, duration)
    answer = json.loads(lines[-1])
    if "error" in answer:
        return Invocation(name, request_id, answer["error"],
                          str(answer["error"]["errorType"]), logs, duration)
    return Invocation(name, request_id, answer["payload"], None, logs, duration)
