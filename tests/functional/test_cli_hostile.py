"""Hostile input to ``standby``: every malformed argument or stack file gets exit 2 and one
``error: <what>; allowed: <what>`` message, never a traceback, and nothing hangs.

Each case here was observed on main (issue 11, "The CLI") to print a traceback, hang, or be
accepted silently. The stack files are written to a temp project; the ``status``/``switch``
cases point boto3 at a closed local port, so nothing leaves 127.0.0.1 even if a check slipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from components.cli import main
from tests.conftest import ROOT

BASE = (ROOT / "stacks" / "Pulumi.aws-dev.yaml").read_text(encoding="utf-8")
COMMANDS = ("plan", "status", "switch")


def _argv(command: str, stack: str, project: Path, *extra: str) -> list[str]:
    argv = [command, "--stack", stack, "--project-dir", str(project)]
    if command == "switch":
        argv += ["--layer", "logic", "--to", "standby", "--reason", "drill"]
    return argv + list(extra)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project like the repository's: Pulumi.yaml, stacks/, and the example app."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"),
                                          encoding="utf-8")
    (tmp_path / "stacks").mkdir()
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # closed: fail fast, locally
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return tmp_path


def _write(project: Path, content: str | bytes, name: str = "hostile") -> str:
    path = project / "stacks" / f"Pulumi.{name}.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return name


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code) if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(result: tuple[int, str, str], *needles: str) -> None:
    code, _, err = result
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    assert "error:" in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def _sub(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return edit


def test_the_unmodified_stack_plans_in_the_temp_project(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The control: the base stack is fine here, so each refusal below is its input's."""
    name = _write(project, BASE, "ok")
    code, out, err = run(capsys, _argv("plan", name, project))
    assert (code, err) == (0, ""), err
    assert "topology shop" in out or "shop" in out


# --- arguments ---------------------------------------------------------------------------

ARG_CASES = [
    ("stack_300_chars", lambda p: ["--stack", "s" * 300], "argument --stack", "allowed: 1-100"),
    ("stack_with_slash", lambda p: ["--stack", "../../etc/passwd"], "argument --stack",
     "allowed:"),
    ("endpoint_not_a_url", lambda p: ["--endpoint-url", "not a url"], "argument --endpoint-url",
     "allowed: an http:// or https:// URL"),
    ("endpoint_port_99999", lambda p: ["--endpoint-url", "http://127.0.0.1:99999"],
     "argument --endpoint-url", "port 1-65535"),
    ("endpoint_ftp", lambda p: ["--endpoint-url", "ftp://127.0.0.1:21"],
     "argument --endpoint-url", "allowed:"),
    ("project_dir_nul", lambda p: ["--project-dir", "a\x00b"], "argument --project-dir",
     "allowed: an existing directory"),
    ("project_dir_missing", lambda p: ["--project-dir", str(p / "nope")],
     "argument --project-dir", "holds Pulumi.yaml"),
]


@pytest.mark.parametrize("command", ("status", "switch"))
@pytest.mark.parametrize(("case", "extra", "where", "allowed"), ARG_CASES,
                         ids=[c[0] for c in ARG_CASES])
def test_bad_argument_exits_2_without_traceback(
        project: Path, capsys: pytest.CaptureFixture[str], command: str, case: str,
        extra: Callable[[Path], list[str]], where: str, allowed: str) -> None:
    name = _write(project, BASE, "ok")
    # argparse keeps the last value of a repeated option, so the hostile one wins.
    assert_refused(run(capsys, _argv(command, name, project, *extra(project))), where, allowed)


def test_long_stack_name_on_plan_exits_2(project: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert_refused(run(capsys, _argv("plan", "s" * 300, project)), "argument --stack",
                   "(300 characters)")


@pytest.mark.parametrize("value", ["", "US-EAST-1", "us east 1", "x" * 300])
def test_switch_region_empty_or_malformed_is_refused(
        project: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    """`--region ""` used to fall back to the control region silently."""
    name = _write(project, BASE, "ok")
    assert_refused(run(capsys, _argv("switch", name, project, "--region", value)),
                   "argument --region", "allowed: a region name like us-east-1")


def test_switch_region_not_in_topology_is_refused(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = _write(project, BASE, "ok")
    assert_refused(run(capsys, _argv("switch", name, project, "--region", "eu-west-1")),
                   "--region: 'eu-west-1'; allowed: us-east-1, us-west-2")


@pytest.mark.parametrize(("flag", "value", "allowed"), [
    ("--limit", "-1", "an integer in 1..1000"),
    ("--reason", "", "1-500 printable characters"),
    ("--reason", "line\nbreak", "1-500 printable characters"),
    ("--scope", "A B", "a scope name"),
])
def test_other_switch_and_status_arguments(project: Path, capsys: pytest.CaptureFixture[str],
                                           flag: str, value: str, allowed: str) -> None:
    name = _write(project, BASE, "ok")
    command = "status" if flag == "--limit" else "switch"
    assert_refused(run(capsys, _argv(command, name, project, flag, value)), allowed)


# --- stack files -------------------------------------------------------------------------

NESTED = "config:\n  standby:topology: " + "[" * 20_000 + "]" * 20_000 + "\n"
STACK_CASES: list[tuple[str, str | bytes | Callable[[str], str], tuple[str, ...]]] = [
    ("stack_file_is_a_list", "- config\n- x\n", ("expected a mapping", "got a list")),
    ("stack_file_not_utf8", BASE.encode("utf-8").replace(b"shop", b"sh\xff\xfep", 1),
     ("not UTF-8", "allowed: UTF-8 text")),
    ("non_string_config_key", "config:\n  1: x\n", ("key '1' is not a string", "quote it")),
    ("non_string_key_in_topology", _sub("        LOG_LEVEL: info", "        1: info"),
     ("key '1' is not a string", "quote it")),
    ("yaml_date", _sub("name: orders", "name: 2024-01-01"),
     ("database.name", "is a date/time; quote it")),
    ("yaml_binary", _sub("        LOG_LEVEL: info", "        LOG_LEVEL: !!binary aGVsbG8="),
     ("logic.env.LOG_LEVEL", "!!binary", "not allowed")),
    ("nested_20000_brackets", NESTED, ("nested more than 32 levels", "allowed: at most 32")),
    ("plaintext_secret", _sub("standby:slackWebhook:\n    secure: v1:ZXhhbXBsZS1ub3QtYS1yZWFsLXNlY3JldA==",  # noqa: E501
                              "standby:slackWebhook: https://hooks.slack.com/services/T/B/x"),
     ("holds a plaintext value", "allowed: a `secure:` value")),
    ("plaintext_secret_inline", _sub("url: {config: slackWebhook}",
                                     "url: https://hooks.slack.com/services/T/B/x"),
     ("alerting.webhooks[0].url", "plaintext secrets are not allowed")),
    # accepted silently on main:
    ("duplicate_key", _sub("    cloud: aws\n", "    cloud: aws\n    cloud: tencent\n"),
     ("config.standby:topology.cloud", "duplicate key")),
    ("secure_123", _sub("secure: v1:ZXhhbXBsZS1ub3QtYS1yZWFsLXNlY3JldA==", "secure: 123"),
     ("config.standby:slackWebhook.secure: 123", "allowed: only `secure: <ciphertext>`")),
    ("env_value_5_mb", _sub("LOG_LEVEL: info", "LOG_LEVEL: " + "x" * 5_000_000),
     ("larger than 1048576 bytes",)),
    ("env_value_over_4_kb", _sub("LOG_LEVEL: info", "LOG_LEVEL: " + "x" * 4_000),
     ("logic.env", "aws allows 4096 bytes in total")),
    ("secure_with_other_keys", _sub("secure: v1:", "other: 1\n    secure: v1:"),
     ("allowed: only `secure: <ciphertext>`",)),
    ("ambiguous_yaml_1_1_boolean", _sub("replication: true", "replication: yes"),
     ("storage.replication", "quote it")),
    ("logic_code_is_the_root", _sub("code: examples/app", "code: /"),
     ("logic.code: '/' is not a folder inside the project",)),
    ("config_not_a_mapping", "config: [1, 2]\n", ("config: expected a mapping",)),
    ("merge_key", _sub("    storage:\n", "    storage:\n      <<: {rtc: true}\n"),
     ("merge keys (<<) are not supported",)),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("case", "content", "needles"), STACK_CASES,
                         ids=[c[0] for c in STACK_CASES])
def test_hostile_stack_file_exits_2_without_traceback(
        project: Path, capsys: pytest.CaptureFixture[str], command: str, case: str,
        content: str | bytes | Callable[[str], str], needles: tuple[str, ...]) -> None:
    text = content(BASE) if callable(content) else content
    name = _write(project, text)
    assert_refused(run(capsys, _argv(command, name, project)), *needles)


def test_hostile_project_file_exits_2(project: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    name = _write(project, BASE, "ok")
    (project / "Pulumi.yaml").write_text("name: [1]\nname: x\n", encoding="utf-8")
    assert_refused(run(capsys, _argv("plan", name, project)), "Pulumi.yaml", "duplicate key")


def test_unexpected_error_is_one_line_and_debug_shows_the_traceback(
        project: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The catch-all: an exception nobody planned for is exit 1 and one line."""
    import components.plan as plan_pkg

    def boom(*_: object) -> None:
        raise RuntimeError("the mock engine broke\nsecond line")

    monkeypatch.setattr(plan_pkg, "make_plan", boom)
    name = _write(project, BASE, "ok")
    code, _, err = run(capsys, _argv("plan", name, project))
    assert code == 1 and "Traceback" not in err
    assert err.strip() == ("standby: error: unexpected RuntimeError: the mock engine broke "
                           "(run again with --debug for the traceback)")
    code, _, err = run(capsys, _argv("plan", name, project, "--debug"))
    assert code == 1 and "Traceback (most recent call last)" in err


# --- billion laughs: bounded by a subprocess timeout ---------------------------------------

LAUGHS = "config:\n  standby:topology:\n    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(  # noqa: E501
    f"    {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
    for i in range(9))


@pytest.mark.parametrize("command", ("plan", "status"))
def test_billion_laughs_is_refused_fast(project: Path, command: str) -> None:
    name = _write(project, LAUGHS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "components.cli", *_argv(command, name, project)],
        capture_output=True, text=True, timeout=60, env=env, cwd=project, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "expands to more than 100000 values" in proc.stderr, proc.stderr
