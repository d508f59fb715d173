"""``standby status`` and ``standby switch`` against a moto server (``--endpoint-url``), with
the wrapper functions hosted by the sandbox function host in front of moto."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import pytest

from components.cli import main
from components.naming import monitor_function
from components.sandbox import world as w
from components.sandbox.functions import FunctionHost

WRAP = "arn:aws:lambda:us-east-1:123456789012:function:shop-wrap-use1-{}"


@pytest.fixture
def deployed(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionHost]:
    """What `pulumi up` of aws-dev leaves for the logic layer: state and pointer tables, the
    wrappers, and the logic monitor in the control region with its environment."""
    w.state_table()
    table = w.pointer_table(w.R1)
    host = FunctionHost(fallback=aws)
    for side in ("primary", "standby"):
        host.register(WRAP.format(side), lambda event, ctx: {"ok": True})
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", host.url)
    probes = [{"scope": w.R1, "kind": "lambda", "side": s, "function": WRAP.format(s)}
              for s in ("primary", "standby")]
    switch = [{"scope": w.R1, "kind": "pointer", "region": w.R1, "table": table,
               "key": "wrapper", "values": {"primary": "primary", "standby": "standby"}}]
    role = w.client("iam").create_role(
        RoleName="mon", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17",
                                                             "Statement": []}))["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(e, c): return {}\n")
    w.client("lambda", w.R2).create_function(
        FunctionName=monitor_function("shop", "logic", w.R2), Runtime="python3.12", Role=role,
        Handler="components.runtime.aws.monitor.handler", Code={"ZipFile": buf.getvalue()},
        Environment={"Variables": w.env("logic", w.R2, probes, switch)})
    yield host
    host.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: usage error
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_status_then_planned_switch_then_refused_failback(
    deployed: FunctionHost, aws: str, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "status", "--stack", "aws-dev", "--endpoint-url", aws)
    assert code == 0 and "logic    primary (no switch recorded)" in out

    code, out, err = run(capsys, "switch", "--stack", "aws-dev", "--layer", "logic", "--to",
                         "standby", "--reason", "planned maintenance", "--endpoint-url", aws)
    assert code == 0, err
    assert "logic/us-east-1: switched to standby (verified) token 1" in out
    assert w.pointer(w.R1, "wrapper") == ("standby", 1)

    code, out, _ = run(capsys, "status", "--stack", "aws-dev", "--endpoint-url", aws,
                       "--format", "json")
    [logic] = [x for x in json.loads(out) if x["layer"] == "logic"]
    assert logic["scopes"]["us-east-1"]["active"] == "standby"
    [rec] = logic["log"]
    assert rec["reason"] == "planned maintenance" and rec["by"].startswith("ops:")

    # The primary is failing: a failback to it is refused, and nothing changes.
    deployed.fault(WRAP.format("primary"), "5xx")
    code, _, err = run(capsys, "switch", "--stack", "aws-dev", "--layer", "logic", "--to",
                       "primary", "--reason", "failback", "--endpoint-url", aws)
    assert code == 1 and "the primary side fails its probes" in err
    assert w.pointer(w.R1, "wrapper") == ("standby", 1)


def test_switching_to_the_active_side_changes_nothing(
    deployed: FunctionHost, aws: str, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "switch", "--stack", "aws-dev", "--layer", "logic", "--to",
                       "primary", "--reason", "noop", "--endpoint-url", aws)
    assert code == 0 and "already primary" in out
    assert w.pointer(w.R1, "wrapper") == ("primary", 0)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--layer", "cache", "--to", "standby", "--reason", "x"], 2, "invalid choice: 'cache'"),
        (["--layer", "logic", "--to", "standby"], 2, "--reason"),
        (["--layer", "logic", "--to", "standby", "--reason", "x", "--region", "eu-west-9"], 2,
         "--region: 'eu-west-9'; allowed: us-east-1, us-west-2"),
        (["--layer", "logic", "--to", "standby", "--reason", "x", "--scope", "mars"], 1,
         "--scope: unknown mars; this layer has us-east-1"),
        (["--layer", "dns", "--to", "standby", "--reason", "x"], 1, "is the stack deployed"),
        (["--layer", "logic", "--to", "standby", "--reason", "  "], 2,
         "argument --reason: '  '; allowed: 1-500 printable characters"),
    ],
)
def test_bad_switch_input_is_refused_with_a_clear_message(
    deployed: FunctionHost, aws: str, capsys: pytest.CaptureFixture[str], argv: list[str],
    code: int, message: str,
) -> None:
    got, _, err = run(capsys, "switch", "--stack", "aws-dev", "--endpoint-url", aws, *argv)
    assert got == code and message in err
    assert w.pointer(w.R1, "wrapper") == ("primary", 0)


def test_cli_refuses_to_switch_with_a_skewed_clock(deployed: FunctionHost, aws: str) -> None:
    # Before: the CLI wrote lease expiry and last_switch_at in its own clock; a laptop 90 s
    # ahead could take a live monitor's lease mid-switch.
    import time

    from components.runtime.aws.clients import Clients
    from components.runtime.aws.ops import check_clock
    from components.runtime.aws.state import DynamoStateStore
    from components.runtime.errors import ClockSkew

    store = DynamoStateStore(Clients(), "shop-standby-state", w.R2)
    check_clock(store)  # this machine is the moto server's: within the bound
    with pytest.raises(ClockSkew, match=r"\+(89|9[0-3]) s off the state table.s"):
        check_clock(store, clock=lambda: time.time() + 90)
    with pytest.raises(ClockSkew, match="allowed: within 5 s"):
        check_clock(store, clock=lambda: time.time() - 30)
    assert w.pointer(w.R1, "wrapper") == ("primary", 0)
