"""The drill on the plan-deployed sandbox (``make demo``): the world comes from the stack's
plan, never wired by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.budget import compute_budget
from components.plan.run import read_stack, run_program
from components.sandbox.deploy_model import Deployment
from components.sandbox.drill_deployed import default_faults, fault_conflict, main
from components.sandbox.drill_deployed_world import _health_checks, stack_spec

ROOT = Path(__file__).resolve().parents[2]


def _plan(stack: str) -> Deployment:
    from components.program import main as program

    run = run_program(read_stack(stack, ROOT), program)
    return Deployment(moto_url="http://127.0.0.1:9", stack=stack,
                      registrations=list(run.resources))


def test_route53_standin_reads_the_deployed_health_checks_not_drill_constants() -> None:
    checks = _health_checks(_plan("aws-dev"))
    assert sorted(checks) == ["us-east-1", "us-west-2"]
    spec = stack_spec("aws-dev", ROOT)
    for region, c in checks.items():
        assert c["alarm"] == f"shop-ForceFailover-{region}"
        assert c["insufficient"] == "LastKnownStatus"
        assert c["endpoint"]["request_interval"] == spec.monitor.defaults.interval_s
        assert c["endpoint"]["failure_threshold"] == spec.monitor.defaults.failure_threshold
        assert c["endpoint"]["resource_path"] == "/live/health"


def test_default_faults_follow_the_stacks_engine() -> None:
    assert default_faults("dynamodb") == ("logic", "wrapper", "planned", "region")
    # One RDS promotion per run: rds_promote is one way.
    assert default_faults("postgres") == ("logic", "wrapper", "database", "region")
    assert fault_conflict("postgres", ("planned", "database")) is not None
    assert fault_conflict("postgres", ("planned", "region")) is None
    assert fault_conflict("dynamodb", ("database",)) is not None


def test_database_fault_on_a_dynamodb_stack_is_refused_before_anything_starts(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--stack", "aws-dev", "--faults", "logic,database"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "database needs a SQL stack" in err and "allowed here: logic, wrapper" in err


def test_unknown_stack_is_exit_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    assert main(["--stack", "no-such-stack"], say=lines.append) == 2
    assert "no-such-stack" in lines[0]


@pytest.mark.timeout(600)  # a deploy, 1.5 simulated minutes of warm-up, the fault, the restore
def test_logic_fault_on_the_deployed_aws_dev_plan_is_switched_by_its_scheduled_monitors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    lines: list[str] = []
    code = main(["--stack", "aws-dev", "--faults", "logic", "--out", str(tmp_path)],
                say=lines.append)
    out = "\n".join(lines)
    summary = json.loads((tmp_path / "drill.json").read_text())
    (fault,) = summary["faults"]
    assert fault["key"] == "logic" and fault["layer"] == "gateway"
    # The budget is the stack's own (components.budget), in simulated seconds; whether the
    # RTO fits it is a timing figure the drill reports (exit 1), not a test assertion.
    budget = {lb.layer: lb for lb in compute_budget(stack_spec("aws-dev", ROOT)).layers}
    assert fault["budget_s"] == budget["gateway"].rto_s, fault
    assert fault["rto_s"] is not None, out
    assert fault["rto_s"] == pytest.approx(fault["rto_real_s"] * 2.0)
    failures = [line for line in lines if line.startswith("DRILL FAILED")]
    # Budget overruns and, on a machine too busy for 2 s probes, a healthy primary failed
    # over are what the drill reports; any other failure is a defect.
    assert all("exceeds its budget" in line or "unexpected switch" in line
               for line in failures), out
    assert code == (1 if failures else 0)
    # Recovery came from the deployed monitors, invoked by their schedules: the gateway's
    # stage switch or the DNS layer's force (whichever reached quorum first).
    assert summary["scheduled_invocations"] > 0
    assert any(e["monitor"].split("@")[0] in ("gateway", "dns") and e["scope"] == "us-east-1"
               and e["what"].startswith("switched") for e in summary["events"]) or any(
        a["answer"] == "us-west-2" for a in summary["route53_answers"]), summary["events"]
    assert summary["lost_acknowledged_writes"] == 0, summary["lost_examples"]
