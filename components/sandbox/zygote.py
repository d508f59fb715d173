"""A fork server ("zygote") for the Lambda runner: fresh function processes without paying
boto3's import per invocation.

The server is ``python -I -S`` with ``sys.path`` = the boto3-only runtime folder and the
standard library. It imports boto3/botocore and the standard modules the bootstrap uses,
and nothing else: no function code, no client, no credentials. Its own environment holds
only ``PATH``, ``LANG`` and ``TZ``.

Per invocation the runner connects to the server's unix socket (in a 0700 temp dir) and
sends three file descriptors: the read end of a request pipe and the write ends of the
stdout and stderr pipes. The server forks and answers ``pid N``; when the child ends it
answers ``exit CODE`` (``Popen.returncode`` semantics: ``-9`` for SIGKILL). The request
(the function's paths, environment, task root and event) travels on the request pipe
straight to the child, so the server never holds one function's credentials in memory
that a later child would inherit. The child:

- dies with the server (``PR_SET_PDEATHSIG``) and leads its own process group, so a kill
  takes whatever it started too;
- reads the request, replaces its environment with the function's, changes into the task
  root, puts the function's paths before the standard library, points fds 0/1/2 at
  ``/dev/null`` and the two pipes;
- runs the same bootstrap as a spawned interpreter and ends as one does (atexit handlers,
  non-daemon threads, exit code).

The function's module is imported in the child, never in the server, so module globals die
with the child. Children share the server's ``str`` hash seed (a Lambda warm environment
does too); ``random`` is reseeded at fork by CPython.

The server handles only accepts, forks, kills and reaps in one thread: invocations run in
parallel, only forks are serialized. A byte ``K`` from the runner on the connection, or the
connection closing, kills the child's process group; so does the child's own exit (what it
left behind does not outlive the invocation). The server stops, killing its children, when
its stdin (a pipe from the runner) closes: on ``Zygote.close`` or when the runner dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Time allowed for the server to import boto3 and listen (1-2.5 s seen under load).
START_TIMEOUT_S = 60.0
#: Time allowed for connect + fork + the ``pid`` answer; longer means the server is wedged.
FORK_TIMEOUT_S = 10.0
#: After a kill, or after the child's exit, how long its pipes may take to close.
DRAIN_S = 5.0

#: The services whose botocore data the server parses before it serves (what the run time
#: calls; another service is parsed by the first child that needs it, as before).
PRELOAD_SERVICES = ("apigateway", "apigatewayv2", "cloudwatch", "dynamodb", "dynamodbstreams",
                    "kms", "lambda", "rds", "route53", "s3", "secretsmanager", "sns", "sts")

_SERVER = r"""
import contextlib, ctypes, gc, importlib, json, os, selectors, signal, socket, sys, time
STDLIB_PATH = list(sys.path)
# Set by the interpreter at start (PEP 538 locale coercion when LANG names a locale this
# machine lacks): a spawned function interpreter would set it too.
COERCED_CTYPE = os.environ.get("LC_CTYPE")
sys.path.insert(0, sys.argv[2])
import boto3, botocore.session  # the Lambda runtime's SDK: the import paid once, here
import botocore.loaders

# botocore parses its JSON data files (service models, endpoint rules, partitions, retry
# rules) and lists its data folders again for every new session: in a fresh child that is
# most of the first client's cost (0.4-0.5 s under load), and the probes of a round start
# dozens of children. The server parses them once; a child's loaders read the parsed,
# read-only data from here (botocore already shares one parse between the clients of a
# session). Only the SDK's own
# files are shared: the function's code, clients, credentials and module state never are.
_SHARED_DATA = {}
_load_data_with_path = botocore.loaders.Loader.load_data_with_path


def _shared_load(self, name):
    key = (tuple(self.search_paths), name)
    got = _SHARED_DATA.get(key)
    if got is None:
        got = _SHARED_DATA[key] = _load_data_with_path(self, name)
    return got


_list_available_services = botocore.loaders.Loader.list_available_services


def _shared_list(self, type_name):
    key = (tuple(self.search_paths), type_name)
    got = _SHARED_DATA.get(("list",) + key)
    if got is None:
        got = _SHARED_DATA[("list",) + key] = tuple(_list_available_services(self, type_name))
    return list(got)


botocore.loaders.Loader.load_data_with_path = _shared_load
botocore.loaders.Loader.list_available_services = _shared_list
_loader = botocore.session.get_session().get_component("data_loader")
for _name in ("endpoints", "partitions", "_retry", "sdk-default-configuration"):
    with contextlib.suppress(Exception):
        _loader.load_data(_name)
for _service in PRELOAD_SERVICES:
    for _kind in ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2"):
        with contextlib.suppress(Exception):
            _loader.load_service_model(_service, _kind)
del _loader
# botocore imports some of its modules on the first client: one throwaway client, with dummy
# keys and no endpoint call, pays those imports here. It is gone before the first fork.
with contextlib.suppress(Exception):
    boto3.session.Session().client("sts", region_name="us-east-1", aws_access_key_id="x",
                                    aws_secret_access_key="x")

# A server for functions with layers also imports the layers' top-level packages (database
# drivers, the SQL parser): third-party library code a Lambda cold start imports from
# /opt/python, imported once here with the same paths the children get. Only functions with
# exactly these layers fork from this server, so a function without them still fails to
# import them. A package that does not import on its own is left to the child.
LAYER_PATHS, LAYER_MODULES = json.loads(sys.argv[3]) if len(sys.argv) > 3 else ([], [])
sys.path[0:0] = LAYER_PATHS
for _module in LAYER_MODULES:
    try:
        importlib.import_module(_module)
    except Exception:
        for _name in [n for n in sys.modules if n == _module or n.startswith(_module + ".")]:
            del sys.modules[_name]  # no half-imported package is handed to a child
del sys.path[0:len(LAYER_PATHS)]

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _kill_group(pid):
    # The pid is unreaped (running or a zombie) whenever this runs, so neither the pid nor
    # the group id can belong to anyone else yet.
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def serve(path):
    # Returns only in a forked child, with its three fds; the server itself exits here.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1024)  # a round's probes and the load arrive in bursts
    listener.setblocking(False)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(wake_r, selectors.EVENT_READ, "reap")
    sel.register(0, selectors.EVENT_READ, "runner")
    children = {}  # pid -> connection (None once the runner hung up)
    pending = set()  # connections whose request has not arrived yet
    me = os.getpid()
    os.write(1, b"ready %d\n" % me)

    def reap():
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            _kill_group(info.si_pid)  # before the reap: the group id is still ours
            _, status = os.waitpid(info.si_pid, 0)
            conn = children.pop(info.si_pid, None)
            if conn is not None:
                sel.unregister(conn)
                try:
                    conn.sendall(b"exit %d\n" % os.waitstatus_to_exitcode(status))
                except OSError:
                    pass
                conn.close()

    while True:
        for key, _ in sel.select():
            what = key.data
            if what == "reap":
                try:
                    while os.read(wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                reap()
            elif what == "runner":
                if os.read(0, 4096):
                    continue
                for pid in list(children):
                    _kill_group(pid)
                for pid in list(children):
                    try:
                        os.waitpid(pid, 0)
                    except ChildProcessError:
                        pass
                listener.close()
                os._exit(0)
            elif what == "accept":
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                # Read only when readable: a slow runner thread never holds up other forks.
                conn.settimeout(1)
                pending.add(conn)
                sel.register(conn, selectors.EVENT_READ, "request")
            elif what == "request":
                conn = key.fileobj
                pending.discard(conn)
                sel.unregister(conn)
                try:
                    msg, fds, flags, _ = socket.recv_fds(conn, 1, 3)
                except OSError:
                    msg, fds, flags = b"", [], 0
                if msg != b"F" or len(fds) != 3 or flags & socket.MSG_CTRUNC:
                    for fd in fds:
                        os.close(fd)
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    sel.close()
                    listener.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    for other in [*children.values(), *pending, conn]:
                        if other is not None:
                            other.close()
                    return me, fds
                with contextlib.suppress(OSError):
                    os.setpgid(pid, pid)  # also done by the child: whichever runs first
                for fd in fds:
                    os.close(fd)
                try:
                    conn.sendall(b"pid %d\n" % pid)
                except OSError:
                    _kill_group(pid)
                    conn.close()
                    children[pid] = None
                    continue
                children[pid] = conn
                sel.register(conn, selectors.EVENT_READ, pid)
            else:
                pid, conn = what, key.fileobj
                try:
                    data = conn.recv(64)
                except (BlockingIOError, TimeoutError):
                    continue
                except OSError:
                    data = b""
                if not data or b"K" in data:
                    _kill_group(pid)
                if not data:  # the runner gave up on it: nobody to report to
                    sel.unregister(conn)
                    conn.close()
                    children[pid] = None


def child(server_pid, fds):
    in_fd, out_fd, err_fd = fds
    # An invocation never outlives the server that reports its exit.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server_pid:
        os._exit(1)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    chunks = []
    while True:
        chunk = os.read(in_fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(in_fd)
    if not chunks:  # the runner gave up before it sent the request
        os._exit(1)
    job = json.loads(b"".join(chunks))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(out_fd)
    os.close(err_fd)
    os.environ.clear()
    os.environ.update(job["env"])
    if COERCED_CTYPE and not {"LC_ALL", "LC_CTYPE"} & set(job["env"]):
        os.environ["LC_CTYPE"] = COERCED_CTYPE
    time.tzset()
    os.chdir(job["cwd"])
    sys.path[:] = job["paths"] + STDLIB_PATH
    sys.argv[:] = ["-c", json.dumps(job["paths"])]
    importlib.invalidate_caches()
    return job["request"]


def finish(code):
    # What interpreter exit does that a function can see (non-daemon threads joined, atexit
    # handlers, flushed streams), without tearing down the server's modules: that touched
    # every inherited object and took 0.25 s a child under load.
    if "threading" in sys.modules:
        getattr(sys.modules["threading"], "_shutdown", lambda: None)()
    import atexit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


gc.freeze()  # children share these pages: their collections never visit (so copy) them
_server_pid, _fds = serve(sys.argv[1])
_started = time.monotonic()
try:
    bootstrap(child(_server_pid, _fds), _started)
except SystemExit as exc:  # as the interpreter maps it to an exit status
    if exc.code is None or isinstance(exc.code, int):
        finish(exc.code or 0)
    print(exc.code, file=sys.stderr)
    finish(1)
except BaseException:
    sys.excepthook(*sys.exc_info())
    finish(1)
finish(0)
"""


class ZygoteUnavailable(Exception):
    """The fork server could not take an invocation; nothing of the function ran."""


@dataclass
class Exit:
    returncode: int | None
    """The child's exit code; ``None`` when the server stopped before it reported one."""
    out: bytes
    err: bytes
    timed_out: bool


def _stop(proc: subprocess.Popen[bytes], workdir: Path) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the server kills its children and exits
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()
    shutil.rmtree(workdir, ignore_errors=True)


def _connect(conn: socket.socket, path: str, deadline: float) -> None:
    """Connect to the server; a full backlog (``EAGAIN`` on a unix socket) is a busy server,
    not a wedged one: wait for it rather than replace it (replacing kills what it runs)."""
    pause = 0.005
    while True:
        try:
            conn.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


class Zygote:
    """One fork server process; ``run`` forks a child for one invocation."""

    def __init__(self, runtime: Path, bootstrap: str, env: dict[str, str],
                 start_timeout_s: float = START_TIMEOUT_S,
                 layers: tuple[str, ...] = (), layer_modules: tuple[str, ...] = ()) -> None:
        """``bootstrap``: Python source defining ``bootstrap(request, started)``, run in
        each child. ``env``: the server's whole environment (no credentials). ``layers``:
        layer ``python`` folders whose top-level packages ``layer_modules`` the server
        imports before it serves (only functions with exactly these layers may use it)."""
        self.layers = tuple(layers)
        # A short path: unix socket paths are limited to ~107 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix="lambda-zygote-"))
        self.socket_path = str(self.workdir / "sock")
        self.log_path = self.workdir / "server.log"
        code = bootstrap + f"PRELOAD_SERVICES = {PRELOAD_SERVICES!r}\n" + _SERVER
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", code, self.socket_path, str(runtime),
                 json.dumps([list(layers), list(layer_modules)])],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                cwd=self.workdir, start_new_session=True)  # Ctrl-C is the runner's to handle
        self._finalizer = weakref.finalize(self, _stop, self.proc, self.workdir)
        try:
            self._wait_ready(start_timeout_s)
        except ZygoteUnavailable:
            self.close()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.proc.stdout is not None
        line = b""
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise ZygoteUnavailable(f"fork server not ready after {timeout_s:g} s")
                chunk = os.read(self.proc.stdout.fileno(), 64)
                if not chunk:
                    raise ZygoteUnavailable(
                        f"fork server exited with {self.proc.wait(timeout=5)} before it was "
                        f"ready: {self.log_tail()}")
                line += chunk
        if line != f"ready {self.proc.pid}\n".encode():
            raise ZygoteUnavailable(f"fork server said {line!r}, expected 'ready PID'")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, limit: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-limit:].decode(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        self._finalizer()

    def run(self, paths: list[str], env: dict[str, str], cwd: str, request: dict[str, Any],
            timeout_s: float) -> Exit:
        """Fork a child that runs the bootstrap on ``request``; kill it after ``timeout_s``.

        Raises ``ZygoteUnavailable`` only when no child got the request."""
        body = json.dumps({"paths": paths, "env": env, "cwd": cwd,
                           "request": request}).encode()
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mine = [in_w, out_r, err_r]
        started = time.monotonic()
        try:
            conn.settimeout(FORK_TIMEOUT_S)
            _connect(conn, self.socket_path, started + FORK_TIMEOUT_S)
            socket.send_fds(conn, [b"F"], [in_r, out_w, err_w])
            pid, rest = self._read_pid(conn, started + FORK_TIMEOUT_S)
        except BaseException as exc:
            conn.close()
            for fd in mine:
                os.close(fd)
            if isinstance(exc, OSError | ValueError):
                raise ZygoteUnavailable(f"fork server {self.pid}: {exc}") from exc
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        return self._follow(pid, conn, rest, body, in_w, out_r, err_r, started + timeout_s)

    @staticmethod
    def _read_pid(conn: socket.socket, deadline: float) -> tuple[int, bytes]:
        """The forked child's pid, and what the server said after it."""
        line = b""
        while b"\n" not in line:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = conn.recv(64)
            if not chunk:
                raise ValueError("connection closed before the fork")
            line += chunk
        first, _, rest = line.partition(b"\n")
        word, _, value = first.decode().partition(" ")
        if word != "pid" or not value.isdigit():
            raise ValueError(f"unexpected answer {line!r}")
        return int(value), rest

    @staticmethod
    def _follow(pid: int, conn: socket.socket, answered: bytes, body: bytes, in_w: int,
                out_r: int, err_r: int, deadline: float) -> Exit:
        out, err, answers = bytearray(), bytearray(), bytearray(answered)
        returncode: int | None = None
        reported = timed_out = False
        stop_at: float | None = None  # set once the child is gone or killed
        sent = 0
        os.set_blocking(in_w, False)
        conn.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(in_w, selectors.EVENT_WRITE, "in")
        sel.register(out_r, selectors.EVENT_READ, out)
        sel.register(err_r, selectors.EVENT_READ, err)
        sel.register(conn, selectors.EVENT_READ, "conn")
        streams = 2

        def drop(fileobj: Any) -> None:
            sel.unregister(fileobj)
            if isinstance(fileobj, int):
                os.close(fileobj)
            else:
                fileobj.close()

        try:
            while streams or not reported:
                now = time.monotonic()
                if stop_at is None and now >= deadline:
                    timed_out = True
                    stop_at = now + DRAIN_S
                    try:
                        conn.send(b"K")
                    except OSError:  # the server is gone; the group id still holds the pid
                        # while its pipes are open (a pid is not reused while its group lives)
                        if streams:
                            with contextlib.suppress(ProcessLookupError, PermissionError):
                                os.killpg(pid, signal.SIGKILL)
                if stop_at is not None and now >= stop_at:
                    break
                limit = (stop_at if stop_at is not None else deadline) - now
                for key, _ in sel.select(max(0.0, limit)):
                    if key.data == "in":
                        try:
                            sent += os.write(in_w, body[sent:sent + (1 << 16)])
                        except BrokenPipeError:
                            sent = len(body)
                        if sent >= len(body):
                            drop(in_w)
                    elif key.data == "conn":
                        try:
                            chunk = conn.recv(256)
                        except BlockingIOError:
                            continue
                        except OSError:
                            chunk = b""
                        answers += chunk
                        if b"\n" in answers:
                            word, _, value = bytes(answers).decode().partition(" ")
                            if word == "exit":
                                returncode = int(value)
                        if not chunk or returncode is not None:
                            reported = True
                            drop(conn)
                            if stop_at is None:
                                stop_at = time.monotonic() + DRAIN_S
                    else:
                        chunk = os.read(key.fd, 1 << 16)
                        if chunk:
                            key.data.extend(chunk)
                        else:
                            streams -= 1
                            drop(key.fd)
        finally:
            for key in list(sel.get_map().values()):
                drop(key.fileobj)
            sel.close()
        return Exit(returncode, bytes(out), bytes(err), timed_out)
