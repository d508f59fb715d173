"""``standby migrate``: bad input exits 2 naming what is allowed, before anything connects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.cli import main
from components.migrate import SQLiteStore
from components.sandbox.pg import free_port

SRC = "postgresql://admin:s3cret@127.0.0.1:{port}/orders"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["migrate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def base(tmp_path: Path, port: int = 1) -> list[str]:
    return ["--id", "orders", "--source", SRC.format(port=port),
            "--target", f"postgresql://admin:s3cret@127.0.0.1:{port}/orders2",
            "--state", f"sqlite:///{tmp_path}/s.sqlite"]


@pytest.mark.parametrize("args,match", [
    (["--id", "Bad-Id"], "--id 'Bad-Id'; allowed: 1-40 characters"),
    (["--source", "mysql://u:pw@127.0.0.1/db"], "--source is mysql and --target is postgresql"),
    (["--target", "s3://bucket/prefix"], "s3 migrations are not built yet"),
    (["--source", "mysql://u:pw@127.0.0.1/db?ssl=1"], "a user and no ?options"),
    (["--state", "dynamodb://tbl"], "region= is required"),
    (["--state", "/tmp/s.sqlite"], "allowed: sqlite:///RELATIVE/PATH"),
])
def test_bad_values_exit_2_with_the_allowed_forms(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path, args: list[str],
                                                  match: str) -> None:
    argv = base(tmp_path)
    for i in range(0, len(args), 2):
        argv[argv.index(args[i]) + 1] = args[i + 1]
    code, _, err = run(capsys, "status", *argv)
    assert code == 2 and match in err
    assert "s3cret" not in err and "pw@" not in err


def test_unknown_migration_exits_2_and_stack_is_refused(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    code, _, err = run(capsys, "status", *base(tmp_path))
    assert code == 2 and "no migration 'orders'" in err
    code, _, err = run(capsys, "cutover", *base(tmp_path), "--stack", "aws-dev")
    assert code == 2 and "allowed: --writes-stopped" in err


def test_unreachable_server_is_a_failure_without_the_password(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    code, _, err = run(capsys, "plan", *base(tmp_path, port))
    assert code == 1 and f"cannot connect to the source postgresql://admin@127.0.0.1:{port}/" \
                         "orders" in err
    assert "s3cret" not in err


def test_status_json_is_one_document_with_phase_counts_lag_mismatches(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "s.sqlite").create(
        "orders", "postgresql://admin@127.0.0.1:1/orders",
        "postgresql://admin@127.0.0.1:1/orders2", "postgresql")
    code, out, _ = run(capsys, "status", *base(tmp_path), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["phase"] == "planned" and doc["mismatches"] is None
    assert {"counts", "lag"} <= doc.keys() and "s3cret" not in out
