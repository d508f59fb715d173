"""``python -m components.sandbox --stack NAME``: deploy, report, exit codes."""

from __future__ import annotations

import copy
from pathlib import Path

from components.plan.run import read_stack, run_program
from components.program import main as program
from components.sandbox.__main__ import main
from components.sandbox.deploy import deploy_run
from components.sandbox.moto_proc import MotoProcess

ROOT = Path(__file__).resolve().parents[2]


def test_cli_deploys_the_plan_and_says_how_the_sandbox_differs() -> None:
    lines: list[str] = []
    assert main(["--stack", "aws-dev", "--project-dir", str(ROOT)], say=lines.append) == 0
    text = "\n".join(lines)
    assert "(IAM enforced)" in lines[0]
    rows = [line.split() for line in lines if line.startswith("  lambda:Function")]
    assert {r[2] for r in rows} >= {"shop-monitor-data-us-east-1-fn",
                                   "shop-wrapper-us-west-2-standby"}
    assert all(r[3].startswith("arn:aws:lambda:") for r in rows)
    diff = lines.index("How this sandbox differs from AWS:")
    section = "\n".join(lines[diff:])
    for topic in ("IAM:", "Lambda:", "API Gateway:", "Route 53:", "Time compression: none"):
        assert topic in section
    assert "deploy FAILED" not in text


def test_cli_refuses_an_unknown_stack_with_exit_2() -> None:
    lines: list[str] = []
    assert main(["--stack", "nope", "--project-dir", str(ROOT)], say=lines.append) == 2
    assert "known stacks: aws-dev" in lines[-1]


def test_a_resource_moto_refuses_fails_the_deploy_and_is_named() -> None:
    run = run_program(read_stack("aws-dev", ROOT), program)
    table = next(r for r in run.mocks.resources if r.type == "aws:dynamodb/table:Table"
                 and r.inputs.get("name") == "shop-orders")
    table.inputs = copy.deepcopy(table.inputs)
    table.inputs["attributes"] = [{"name": "pk", "type": "Q"}]  # not S, N or B
    with MotoProcess() as moto:
        d = deploy_run(run, moto.url, "aws-dev")
    assert not d.ok
    failed = [s for s in d.skipped if s.reason.startswith("failed")]
    assert [(s.type, s.name) for s in failed] == [("aws:dynamodb/table:Table", table.name)]
    assert "ValidationException" in failed[0].reason, failed[0].reason
