"""The offline plan: the real program under mocks, in every format, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.plan import SECRET_PLACEHOLDER, make_plan
from components.plan.render import FORMATS, render
from tests.conftest import EXAMPLE_STACKS, ROOT


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_plan_groups_every_layer_in_every_region(stack: str) -> None:
    plan = make_plan(stack, ROOT)
    regions = set(plan.spec.all_regions)
    for layer in ("gateway", "logic", "wrapper", "dns"):
        assert {r for (lay, r) in plan.groups if lay == layer} >= regions, layer
    # four monitors (one per layer) in every region, each with something to switch
    assert sorted((w.layer, w.region) for w in plan.wiring) == sorted(
        (layer, r) for layer in ("dns", "gateway", "logic", "data") for r in regions)
    assert all(w.switches for w in plan.wiring)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format(fmt: str) -> None:
    plan = make_plan("aws-dev", ROOT)
    out = render(plan, fmt)
    if fmt == "json":
        doc = json.loads(out)
        assert doc["resource_count"] == plan.resource_count
        assert {w["layer"] for w in doc["wiring"]} == {"dns", "gateway", "logic", "data"}
        assert doc["budget"]["ok"] is True
        assert doc["exports"]["public_url"] == "https://api.example.com"
    elif fmt == "mermaid":
        assert out.startswith("flowchart LR\n")
        assert 'subgraph us_east_1["us-east-1"]' in out and "db_p ==>|replication| db_s" in out
    elif fmt == "markdown":
        for heading in ("### Resources by layer and region", "### Switch wiring",
                        "### RTO/RPO budget", "```mermaid"):
            assert heading in out
        assert "UpdateStage" in out
    else:
        assert "Switch wiring" in out and "RTO/RPO budget" in out
        assert "[us-east-1] UpdateStage" in out  # rich markup must not eat the scope


def test_secrets_are_shown_as_placeholder_never_ciphertext() -> None:
    plan = make_plan("aws-dev", ROOT)
    out = render(plan, "json")
    stack_text = (ROOT / "stacks" / "Pulumi.aws-dev.yaml").read_text()
    cipher = stack_text.split("secure: ")[1].split()[0]
    assert cipher not in out
    versions = [r for regs in plan.groups.values() for r in regs
                if r.type == "aws:secretsmanager/secretVersion:SecretVersion"]
    assert versions and all(v.inputs["secretString"] == SECRET_PLACEHOLDER for v in versions)


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "components", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_json_is_one_document_and_mermaid_is_a_diagram() -> None:
    res = _cli("plan", "--stack", "aws-dev", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["stack"] == "aws-dev"
    res = _cli("plan", "--stack", "aws-dev", "--format", "mermaid")
    assert res.returncode == 0 and res.stdout.startswith("flowchart LR")


def test_cli_bad_value_exits_2_naming_path_and_allowed(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    text = (ROOT / "stacks" / "Pulumi.aws-dev.yaml").read_text()
    text = text.replace("failure_threshold: 3", "failure_threshold: 0")
    (tmp_path / "stacks" / "Pulumi.broken.yaml").write_text(text)
    res = _cli("plan", "--stack", "broken", "--project-dir", str(tmp_path))
    assert res.returncode == 2
    assert "monitor.defaults.failure_threshold: 0 is not in 1..10" in res.stderr
    assert res.stdout == ""


def test_cli_unknown_stack_and_bad_arguments_exit_2() -> None:
    res = _cli("plan", "--stack", "nope")
    assert res.returncode == 2 and "known stacks: aws-dev, aws-nearby" in res.stderr
    res = _cli("plan", "--stack", "aws-dev", "--format", "yaml")
    assert res.returncode == 2 and "invalid choice: 'yaml'" in res.stderr


def test_cli_impossible_targets_exit_2_with_budget_table(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    text = (ROOT / "stacks" / "Pulumi.aws-dev.yaml").read_text().replace("rto_s: 180", "rto_s: 20")
    (tmp_path / "stacks" / "Pulumi.fast.yaml").write_text(text)
    res = _cli("plan", "--stack", "fast", "--project-dir", str(tmp_path))
    assert res.returncode == 2
    assert "worst-case RTO" in res.stderr and "sources:" in res.stderr


def test_logic_env_estimate_covers_every_key_the_program_sets() -> None:
    """The spec's environment-size check counts the program's keys by a list; if the program
    sets a key the list lacks, or a longer value, the 4 KB check would under-count."""
    from components.spec import parse_spec
    from components.spec_facts import (
        LOGIC_PROGRAM_KEYS,
        created_secret_arn_max,
        logic_env_estimate,
    )
    from tests.conftest import minimal_raw, run_raw

    raw = minimal_raw()
    raw["logic"]["env"] = {"APP_MODE": "x" * 300}
    given = "arn:aws:secretsmanager:us-west-2:123456789012:secret:shop/other-AbC123"
    raw["logic"]["secret_env"] = {"API_KEY": {"config": "apiKey"},
                                  "OTHER": {"secret_store": given}}
    spec = parse_spec(raw)
    run = run_raw(raw, secrets={"apiKey": "s3cret"})
    logic = [r for r in run.resources
             if r.urn.split("::")[-2].endswith("LogicLayer$aws:lambda/function:Function")]
    assert len(logic) == 4  # primary and standby in both regions
    sizes = [("API_KEY", created_secret_arn_max(spec.name, "API_KEY")), ("OTHER", len(given))]
    estimate = logic_env_estimate(spec.name, spec.logic.env, sizes)
    for reg in logic:
        env: dict[str, str] = dict(reg.inputs["environment"]["variables"])
        program = set(env) - set(spec.logic.env) - {"API_KEY_SECRET_ARN", "OTHER_SECRET_ARN"}
        assert program <= set(LOGIC_PROGRAM_KEYS), program - set(LOGIC_PROGRAM_KEYS)
        for key in program:
            limit = LOGIC_PROGRAM_KEYS[key]
            if isinstance(limit, int):
                assert len(env[key]) <= limit, (key, env[key])
        actual = len(json.dumps(env, separators=(",", ":")).encode())
        assert actual <= estimate, (actual, estimate)
