"""The Lambda runner's fork server (``components/sandbox/zygote.py``): each invocation is a
fresh process forked from a server that has imported only boto3, and nothing of one
invocation (module globals, environment, credentials, processes) reaches another.

Real things only: a moto server with IAM enforced issues each role's credentials, and the
functions run as forked children of a real ``python -I -S`` server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pulumi
import pytest

from components.sandbox import zygote as zygote_mod
from components.sandbox.deploy import Deployment, Function, trust_for_sandbox
from components.sandbox.deploy_model import DEPLOYER_POLICY, DEPLOYER_USER
from components.sandbox.lambda_runner import (
    BASE_ENV,
    MAX_REFUSALS,
    MAX_ZYGOTE_STARTS,
    RUNTIME_BOTO3,
    LambdaRunner,
)
from components.sandbox.moto_proc import MotoProcess

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
     "Action": "sts:AssumeRole"}]}


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    """A moto server (IAM enforced) with the deployer and two function roles."""
    with MotoProcess() as moto:
        d = Deployment(moto_url=moto.url, stack="runner-test")
        iam: Any = boto3.client("iam", region_name="us-east-1", endpoint_url=moto.url,
                                aws_access_key_id="bootstrap",
                                aws_secret_access_key="bootstrap")
        iam.create_user(UserName=DEPLOYER_USER)
        iam.put_user_policy(UserName=DEPLOYER_USER, PolicyName="deploy-anything",
                            PolicyDocument=json.dumps(DEPLOYER_POLICY))
        key = iam.create_access_key(UserName=DEPLOYER_USER)["AccessKey"]
        d.access_key = (key["AccessKeyId"], key["SecretAccessKey"])
        for role in ("role-a", "role-b"):
            d.ids[role] = d.client("iam", "us-east-1").create_role(
                RoleName=role, AssumeRolePolicyDocument=json.dumps(
                    trust_for_sandbox(LAMBDA_TRUST, d.deployer_arn)))["Role"]["Arn"]
        yield d


@pytest.fixture
def runner(deployment: Deployment, tmp_path: Path) -> Iterator[LambdaRunner]:
    r = LambdaRunner(deployment, tmp_path / "cache", runtime_root=ROOT / ".standby-cache")
    try:
        yield r
    finally:
        zygotes = list(r._zygotes.values())
        r.close()
        for zygote in zygotes:  # no fork server outlives its runner
            assert zygote.proc.poll() is not None
            assert not zygote.workdir.exists()


def deploy(d: Deployment, name: str, source: str, role: str = "role-a",
           env: dict[str, str] | None = None, timeout_s: float = 20,
           files: dict[str, str] | None = None,
           layers: list[Any] | None = None) -> Function:
    assets: dict[str, pulumi.Asset | pulumi.Archive] = {
        "app.py": pulumi.StringAsset(source),
              **{k: pulumi.StringAsset(v) for k, v in (files or {}).items()}}
    fn = Function(name=name, region="us-east-1",
                  arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
                  role_arn=d.ids[role], handler="app.handler", runtime="python3.12",
                  timeout_s=timeout_s, memory_mb=128, env=dict(env or {}),
                  code=pulumi.AssetArchive(assets), layers=list(layers or []))
    d.functions[name] = fn
    return fn


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie counts as gone: it runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def children_of(pid: int) -> dict[int, str]:
    """pid -> state of every process whose parent is ``pid``."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out[int(stat.parent.name)] = fields[0]
    return out


def wait_gone(pid: int, limit_s: float = 10) -> bool:
    for _ in range(int(limit_s / 0.05)):
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


REPORT = """
import os, sys
BOTO3_BEFORE_ME = 'boto3' in sys.modules
def handler(event, context):
    return {'pid': os.getpid(), 'ppid': os.getppid(), 'cwd': os.getcwd(),
            'path': sys.path, 'argv': sys.argv, 'flags': list(sys.flags),
            'env': dict(os.environ), 'boto3_before_me': BOTO3_BEFORE_ME,
            'stdin': sys.stdin.read(), 'remaining': context.get_remaining_time_in_millis(),
            'fds': sorted(os.listdir('/proc/self/fd'))}
"""


def test_boto3_is_imported_before_the_function_not_per_invocation(
    runner: LambdaRunner, deployment: Deployment,
) -> None:
    # Defect (issue 10): every invocation started `python -I -S` and imported boto3 itself
    # (0.36 s idle, 1-2.5 s under load), so a standby probe through logic and wrapper took
    # 1.3-2.6 s against its 2 s timeout. Now the function's process is forked from the
    # runner's fork server, where boto3 is already imported.
    deploy(deployment, "report", REPORT)
    first, second = runner.invoke("report", {}), runner.invoke("report", {})
    assert first.ok and second.ok, (first.payload, first.logs)
    server = runner.zygote_pid
    assert server is not None
    assert first.payload["ppid"] == second.payload["ppid"] == server
    assert first.payload["pid"] != second.payload["pid"] != server
    assert first.payload["boto3_before_me"] is True
    assert second.payload["stdin"] == ""  # the request is not left for the function to read


def test_fork_and_spawn_show_the_function_the_same_interpreter(
    deployment: Deployment, tmp_path: Path,
) -> None:
    fn = deploy(deployment, "report", REPORT)
    seen = {}
    for mode in ("fork", "spawn"):
        with LambdaRunner(deployment, tmp_path / "cache", runtime_root=ROOT / ".standby-cache",
                          mode=mode) as r:
            inv = r.invoke("report", {})
            assert inv.ok, (mode, inv.payload, inv.logs)
            seen[mode] = inv.payload
    fork, spawn = seen["fork"], seen["spawn"]
    assert fork["path"] == spawn["path"]
    assert fork["path"][0] == fork["cwd"]  # the task root first, as on Lambda
    assert fork["argv"] == spawn["argv"] and fork["flags"] == spawn["flags"]
    assert fork["cwd"] == spawn["cwd"]
    assert set(fork["env"]) == set(spawn["env"])
    assert fork["fds"] == spawn["fds"]  # nothing of the server's sockets or pipes
    assert fork["env"]["AWS_LAMBDA_FUNCTION_NAME"] == fn.name
    assert spawn["boto3_before_me"] is False and fork["boto3_before_me"] is True
    assert 0 < fork["remaining"] <= 20_000
    with pytest.raises(ValueError, match=r"mode: 'vfork'; allowed: fork, spawn"):
        LambdaRunner(deployment, tmp_path, runtime_root=ROOT / ".standby-cache",
                     mode="vfork")


def test_exit_runs_atexit_handlers_and_waits_for_threads_as_a_spawned_interpreter(
    deployment: Deployment, tmp_path: Path,
) -> None:
    # A forked child skips the interpreter's module teardown (0.25 s under load); what a
    # function can see of its exit must stay as in a spawned interpreter.
    deploy(deployment, "leaver", """
import atexit, sys, threading, time
def late():
    time.sleep(0.3)
    print('thread done', file=sys.stderr)
def handler(event, context):
    atexit.register(lambda: print('atexit ran', file=sys.stderr))
    threading.Thread(target=late).start()
    print('handler done', file=sys.stderr)
    return 'ok'
""")
    logs = {}
    for mode in ("fork", "spawn"):
        with LambdaRunner(deployment, tmp_path / "cache", runtime_root=ROOT / ".standby-cache",
                          mode=mode) as r:
            inv = r.invoke("leaver", {})
            assert inv.ok and inv.payload == "ok", (mode, inv.payload, inv.logs)
            logs[mode] = inv.logs.split()
    assert logs["fork"] == logs["spawn"] == ["handler", "done", "thread", "done", "atexit", "ran"]


def test_module_globals_never_survive_an_invocation_even_when_concurrent(
    runner: LambdaRunner, deployment: Deployment, tmp_path: Path,
) -> None:
    # Each invocation waits until all of them have started (a barrier of files), so they
    # provably overlap; the fork server would deadlock them if it ran one at a time.
    deploy(deployment, "counter", """
import os, pathlib, time, boto3, json
COUNT = 0
def handler(event, context):
    global COUNT
    COUNT += 1
    seen = getattr(boto3, 'LEFT_BY_AN_EARLIER_INVOCATION', None)
    boto3.LEFT_BY_AN_EARLIER_INVOCATION = context.aws_request_id
    json.LEFT_TOO = True
    barrier = pathlib.Path(event['barrier'])
    (barrier / str(os.getpid())).touch()
    for _ in range(400):
        if len(list(barrier.iterdir())) >= event['n']:
            break
        time.sleep(0.05)
    return {'count': COUNT, 'seen': seen, 'pid': os.getpid(),
            'together': len(list(barrier.iterdir()))}
""")
    n = 6
    results = []
    for round_ in range(2):
        barrier = tmp_path / f"barrier-{round_}"
        barrier.mkdir()
        event = {"barrier": str(barrier), "n": n}
        with ThreadPoolExecutor(n) as pool:
            results += list(pool.map(runner.invoke, ["counter"] * n, [event] * n))
    assert all(inv.ok for inv in results), [inv.payload for inv in results]
    assert [inv.payload["count"] for inv in results] == [1] * 2 * n
    assert [inv.payload["seen"] for inv in results] == [None] * 2 * n
    assert [inv.payload["together"] for inv in results] == [n] * 2 * n
    assert len({inv.payload["pid"] for inv in results}) == 2 * n
    # The server reaped every child: no zombies pile up.
    assert runner.zygote_pid is not None
    assert [s for s in children_of(runner.zygote_pid).values() if s == "Z"] == []


def test_the_sandbox_own_packages_are_not_importable_from_a_forked_function(
    runner: LambdaRunner, deployment: Deployment,
) -> None:
    # pytest, moto, psycopg and the sandbox's own code run in this process and its venv.
    for module in ("pytest", "moto", "psycopg", "components"):
        deploy(deployment, "importer", f"import {module}\n"
                                       "def handler(event, context):\n    return 1\n")
        inv = runner.invoke("importer", {})
        assert inv.error == "Runtime.ImportModuleError", (module, inv.payload)
        assert f"No module named '{module}'" in inv.payload["errorMessage"]
    assert runner.zygote_pid is not None  # these ran forked, not spawned


def test_one_functions_environment_and_credentials_never_reach_another(
    runner: LambdaRunner, deployment: Deployment,
) -> None:
    secret = f"only-for-a-{uuid.uuid4()}"
    deploy(deployment, "fn-a", REPORT, role="role-a", env={"SECRET_A": secret})
    deploy(deployment, "fn-b", REPORT, role="role-b", env={"ONLY_B": "b"})
    creds_a = runner.credentials.get(deployment.ids["role-a"])
    creds_b = runner.credentials.get(deployment.ids["role-b"])
    assert creds_a["AWS_ACCESS_KEY_ID"] != creds_b["AWS_ACCESS_KEY_ID"]
    with ThreadPoolExecutor(6) as pool:
        runs = list(pool.map(lambda name: runner.invoke(name, {}),
                             ["fn-a", "fn-b"] * 3 + ["fn-b"]))
    assert all(inv.ok for inv in runs), [inv.payload for inv in runs]
    for inv in runs:
        env = inv.payload["env"]
        mine, other = (creds_a, creds_b) if inv.function == "fn-a" else (creds_b, creds_a)
        assert env["AWS_ACCESS_KEY_ID"] == mine["AWS_ACCESS_KEY_ID"]
        assert not set(other.values()) & set(env.values())
        assert ("SECRET_A" in env) == (inv.function == "fn-a")
        assert ("ONLY_B" in env) == (inv.function == "fn-b")
    server = runner.zygote_pid
    assert server is not None
    # The server's environment holds no credentials, and the requests never pass through
    # its memory: a later child inherits that memory.
    environ = Path(f"/proc/{server}/environ").read_bytes().split(b"\0")
    assert {e.split(b"=", 1)[0].decode() for e in environ if e} == set(BASE_ENV)
    memory = _memory(server)
    zygote = runner._zygotes.get(())
    assert zygote is not None and zygote.socket_path.encode() in memory
    needles = [secret.encode(), creds_a["AWS_SECRET_ACCESS_KEY"].encode()]
    assert not [n for n in needles if n in memory]


def _memory(pid: int) -> bytes:
    """Every readable private or anonymous mapping of ``pid`` (the heap, the stacks)."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
        for line in maps:
            fields = line.split()
            span, perms = fields[0], fields[1]
            if not perms.startswith("r") or (len(fields) > 5 and fields[5] == "[vvar]"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                continue
    assert chunks, "nothing of the fork server's memory was readable"
    return b"".join(chunks)


def test_a_timeout_kills_the_child_and_what_it_started_and_the_server_keeps_serving(
    runner: LambdaRunner, deployment: Deployment,
) -> None:
    deploy(deployment, "sleeper", """
import os, subprocess, sys, time
def handler(event, context):
    helper = subprocess.Popen(['sleep', '60'])
    print('pids', os.getpid(), helper.pid, file=sys.stderr, flush=True)
    time.sleep(60)
""", timeout_s=4)  # long enough to start the helper on a loaded machine
    deploy(deployment, "report", REPORT)
    server = runner.invoke("report", {}).payload["ppid"]
    inv = runner.invoke("sleeper", {})
    assert inv.error == "Sandbox.Timeout", (inv.payload, inv.logs)
    assert inv.payload["errorMessage"] == "Task timed out after 4.00 seconds"
    pids = [int(p) for p in inv.logs.split("pids", 1)[1].split()[:2]]
    assert all(wait_gone(p) for p in pids), pids
    after = runner.invoke("report", {})
    assert after.ok and after.payload["ppid"] == server == runner.zygote_pid


def test_exit_status_of_the_child_comes_back_as_an_exit_error(
    runner: LambdaRunner, deployment: Deployment,
) -> None:
    for body, code in (("os._exit(3)", 3), ("os.kill(os.getpid(), 9)", -9),
                       ("sys.exit(0)", 0)):
        deploy(deployment, "quitter", f"import os, sys\ndef handler(event, context):\n"
                                      f"    {body}\n")
        inv = runner.invoke("quitter", {})
        assert inv.error == "Runtime.ExitError", (body, inv.payload)
        assert inv.payload["errorMessage"] == f"process exited with {code} before a result"
    assert runner.zygote_pid is not None


def test_a_killed_fork_server_is_replaced_and_its_running_invocation_fails(
    runner: LambdaRunner, deployment: Deployment, tmp_path: Path,
) -> None:
    deploy(deployment, "report", REPORT)
    deploy(deployment, "waiter", """
import os, pathlib, time
def handler(event, context):
    pathlib.Path(event['started']).write_text(str(os.getpid()))
    time.sleep(30)
""")
    first = runner.invoke("report", {}).payload["ppid"]
    assert first == runner.zygote_pid != os.getpid()  # never kill this process
    started = tmp_path / "started"
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(runner.invoke, "waiter", {"started": str(started)})
        for _ in range(400):
            if started.exists() and started.read_text():
                break
            time.sleep(0.05)
        os.kill(first, signal.SIGKILL)
        inv = pending.result(timeout=60)
    assert inv.error == "Runtime.ExitError", inv.payload
    assert "fork server stopped" in inv.payload["errorMessage"]
    assert wait_gone(int(started.read_text()))  # it died with the server
    after = runner.invoke("report", {})
    assert after.ok, (after.payload, after.logs)
    assert after.payload["ppid"] == runner.zygote_pid != first


def test_a_wedged_fork_server_spawns_what_it_refuses_and_is_replaced_after_repeats(
    runner: LambdaRunner, deployment: Deployment, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stopped server still accepts connections (the kernel queues them) but never forks:
    # each refused invocation runs spawned instead, and only repeated refusals replace the
    # server (one refusal may be a full backlog, and replacing kills what runs on it).
    monkeypatch.setattr(zygote_mod, "FORK_TIMEOUT_S", 0.5)
    deploy(deployment, "report", REPORT)
    wedged = runner.invoke("report", {}).payload["ppid"]
    assert wedged == runner.zygote_pid != os.getpid()  # never signal this process
    os.kill(wedged, signal.SIGSTOP)
    try:
        for _ in range(MAX_REFUSALS - 1):
            inv = runner.invoke("report", {})
            assert inv.ok and inv.payload["ppid"] == os.getpid()  # spawned
            assert runner.zygote_pid == wedged
        inv = runner.invoke("report", {})
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(wedged, signal.SIGCONT)
    assert inv.ok and inv.payload["ppid"] == runner.zygote_pid
    assert runner.zygote_pid not in (None, wedged) and wait_gone(wedged)


def test_restarts_are_bounded_then_invocations_spawn(
    runner: LambdaRunner, deployment: Deployment,
) -> None:
    deploy(deployment, "report", REPORT)
    servers = []
    for _ in range(MAX_ZYGOTE_STARTS):
        inv = runner.invoke("report", {})
        assert inv.ok and inv.payload["ppid"] == runner.zygote_pid != os.getpid()
        servers.append(inv.payload["ppid"])
        os.kill(inv.payload["ppid"], signal.SIGKILL)
        assert wait_gone(inv.payload["ppid"])
    assert len(set(servers)) == MAX_ZYGOTE_STARTS
    inv = runner.invoke("report", {})
    assert inv.ok and inv.payload["boto3_before_me"] is False  # a spawned interpreter
    assert runner.zygote_pid is None and inv.payload["ppid"] == os.getpid()


def test_a_fork_server_that_cannot_start_leaves_invocations_to_spawned_interpreters(
    deployment: Deployment, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # A runtime folder whose boto3 is a bare directory: the server's `import botocore`
    # fails, it exits before it is ready, and the function still runs (it needs no SDK).
    broken = tmp_path / f"lambda-runtime-{RUNTIME_BOTO3}"
    (broken / "boto3").mkdir(parents=True)
    deploy(deployment, "plain", "import os\ndef handler(event, context):\n"
                                "    return os.getppid()\n")
    with LambdaRunner(deployment, tmp_path / "cache", runtime_root=tmp_path) as r:
        inv = r.invoke("plain", {})
        assert inv.ok and inv.payload == os.getpid(), (inv.payload, inv.logs)
        assert r.zygote_pid is None
    assert "fork server did not start" in caplog.text
    assert "No module named 'botocore'" in caplog.text


def test_close_stops_the_fork_server_and_later_invocations_spawn(
    deployment: Deployment, tmp_path: Path,
) -> None:
    deploy(deployment, "report", REPORT)
    r = LambdaRunner(deployment, tmp_path, runtime_root=ROOT / ".standby-cache")
    assert r.zygote_pid is None  # started on the first invocation, not before
    server = r.invoke("report", {}).payload["ppid"]
    zygote = r._zygotes.get(())
    assert zygote is not None and server == zygote.pid
    r.close()
    assert zygote.proc.poll() is not None and gone(server)
    assert not zygote.workdir.exists()
    inv = r.invoke("report", {})
    assert inv.ok and inv.payload["ppid"] == os.getpid() and r.zygote_pid is None


def test_a_function_that_ships_its_own_boto3_gets_it(
    runner: LambdaRunner, deployment: Deployment,
) -> None:
    # On Lambda the task root comes before the runtime's boto3; the fork server has its
    # boto3 imported already, so such a function gets a spawned interpreter.
    deploy(deployment, "bundled", "import os, boto3\ndef handler(event, context):\n"
                                  "    return [boto3.__version__, os.getppid()]\n",
           files={"boto3/__init__.py": "__version__ = '0.0-bundled'\n"})
    deploy(deployment, "report", REPORT)
    inv = runner.invoke("bundled", {})
    assert inv.ok, (inv.payload, inv.logs)
    assert inv.payload == ["0.0-bundled", os.getpid()]
    assert runner.invoke("report", {}).payload["ppid"] == runner.zygote_pid


LAYER_PROBE = """import sys
def handler(event, context):
    out = {"preloaded": "layerpkg" in sys.modules}
    try:
        import layerpkg
    except ImportError:
        return dict(out, imported=False)
    layerpkg.COUNTER.append(1)  # module state: must not reach the next invocation
    return dict(out, imported=True, counter=len(layerpkg.COUNTER), file=layerpkg.__file__)
"""


def test_a_layers_packages_are_imported_by_its_own_fork_server_only(
    runner: LambdaRunner, deployment: Deployment,
) -> None:
    # A layer's packages (the drivers) are imported once by a fork server for functions with
    # exactly that layer; a function without the layer still cannot import them, and module
    # state set by one invocation never reaches the next.
    layer = pulumi.AssetArchive({"python/layerpkg/__init__.py": pulumi.StringAsset(
        "import sys\nCOUNTER = []\nIMPORTED_BY = sys.argv[0]\n")})
    deploy(deployment, "with-layer", LAYER_PROBE, layers=[layer])
    deploy(deployment, "no-layer", LAYER_PROBE)
    for _ in range(2):
        with_layer = runner.invoke("with-layer", {})
        assert with_layer.ok, with_layer.logs
        assert with_layer.payload["preloaded"] and with_layer.payload["counter"] == 1
        assert "/layers/" in with_layer.payload["file"]
    without = runner.invoke("no-layer", {})
    assert without.ok and without.payload == {"preloaded": False, "imported": False}
    assert set(runner._zygotes) == {(), (runner.paths(deployment.functions["with-layer"])[1],)}


def test_a_function_shipping_a_layers_package_itself_gets_its_own_copy(
    runner: LambdaRunner, deployment: Deployment,
) -> None:
    # On Lambda the task root comes before /opt/python: the function's copy wins.
    layer = pulumi.AssetArchive({"python/layerpkg/__init__.py": pulumi.StringAsset(
        "COUNTER = []\n")})
    deploy(deployment, "own-copy", LAYER_PROBE, layers=[layer],
           files={"layerpkg/__init__.py": "COUNTER = ['mine']\n"})
    inv = runner.invoke("own-copy", {})
    assert inv.ok, inv.logs
    assert not inv.payload["preloaded"] and inv.payload["counter"] == 2
    assert "/layers/" not in inv.payload["file"]


def test_a_full_backlog_is_waited_for_not_taken_for_a_wedged_server(tmp_path: Path) -> None:
    # Regression (aws-sql drill): a burst of invocations filled the fork server's backlog,
    # connect() failed with EAGAIN, and the runner replaced the live server, killing every
    # invocation it ran. A busy server is now waited for, within the fork timeout.
    import socket
    import threading

    path = str(tmp_path / "s")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(0)
    held = []
    for _ in range(8):  # fill the backlog until a connect is refused with EAGAIN
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(path)
        except BlockingIOError:
            c.close()
            break
        held.append(c)
    else:
        pytest.skip("this kernel never refused a connect on a full unix backlog")
    late = threading.Timer(0.3, lambda: [server.accept() for _ in range(len(held))])
    late.start()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(5)
    try:
        zygote_mod._connect(conn, path, time.monotonic() + 5)  # waits, then connects
        with pytest.raises(BlockingIOError):  # and gives up at its deadline
            other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            other.settimeout(1)
            try:
                zygote_mod._connect(other, path, time.monotonic() + 0.2)
            finally:
                other.close()
    finally:
        late.join()
        conn.close()
        for c in held:
            c.close()
        server.close()
