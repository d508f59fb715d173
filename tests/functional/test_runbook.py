"""``standby runbook``: every shipped stack, every printed command parsed by the real CLI
parser, staleness after a spec or drill change, and clear errors for bad inputs.

Each test works on a copy of the project (stack files, Pulumi.yaml; the example app linked)
in a temp dir, so a ``.drill/`` left in the checkout by ``make demo`` cannot change a result
and the stack files can be edited.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shlex
import shutil
import time
from pathlib import Path

import pytest

from components.cli import _parser, main
from components.dr import procedures
from components.plan import make_plan
from tests.conftest import ROOT

STACKS = ("aws-dev", "aws-nearby", "aws-sql", "tencent-dev", "tencent-nearby")
SECTIONS = ("1. Objectives", "2. Scope and topology", "3. Risk register",
            "4. Roles and contacts", "5. Alert routes", "6. Decision tree",
            "7. Procedures per layer", "8. Return to normal and re-protect", "9. Evidence",
            "10. Exercise programme")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copytree(ROOT / "stacks", root / "stacks")
    (root / "examples").symlink_to(ROOT / "examples")
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_runbook(capsys: pytest.CaptureFixture[str], project: Path, stack: str,
                  fmt: str = "md", *extra: str) -> tuple[Path, str]:
    out = project / f"runbook-{stack}.{fmt}"
    code, stdout, err = run(capsys, "runbook", "--stack", stack, "--format", fmt, "--out",
                            str(out), "--project-dir", str(project), *extra)
    assert code == 0, err
    assert f"wrote {out}" in stdout
    return out, out.read_text()


def printed_commands(text: str, fmt: str) -> list[str]:
    if fmt == "html":
        blocks = [html.unescape(b) for b in re.findall(r"<pre><code[^>]*>(.*?)</code></pre>",
                                                       text, re.S)]
    else:
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    return [line for b in blocks for line in b.splitlines() if line.startswith("standby ")]


@pytest.mark.parametrize("stack", STACKS)
def test_every_printed_command_parses_with_the_real_cli(
        capsys: pytest.CaptureFixture[str], project: Path, stack: str) -> None:
    _, md = write_runbook(capsys, project, stack, "md")
    _, page = write_runbook(capsys, project, stack, "html")
    commands = printed_commands(md, "md")
    assert commands == printed_commands(page, "html")  # both renderings print the same
    parser = _parser()
    for line in commands:
        argv = shlex.split(line)[1:]
        parser.parse_args(argv)  # SystemExit (and a failed test) if the CLI refuses it
        assert argv[argv.index("--stack") + 1] == stack if "--stack" in argv else True
    if stack.startswith("aws"):
        switches = [c for c in commands if c.startswith("standby switch ")]
        # Each switch goes to a monitor that can switch its scope: the CLI reads the wiring
        # of the control region's monitor unless --region names another.
        plan = make_plan(stack, project)
        wired = {(w.layer, w.region): {str(t["scope"]) for t in w.switches}
                 for w in plan.wiring}
        for line in switches:
            a = parser.parse_args(shlex.split(line)[1:])
            region = a.region or plan.spec.data_standby_region
            assert set(a.scope) <= wired[(a.layer, region)], line
        # ... and every scope of every layer has its command (nearby groups included)
        printed = {(a.layer, x) for a in (parser.parse_args(shlex.split(c)[1:])
                                          for c in switches) for x in a.scope}
        assert printed == {(lay, x) for (lay, _), xs in wired.items() for x in xs}
        # per layer: one per scope, forced, another region's wiring, back
        assert len(switches) >= 4 * 4
        assert any("--force" in c and "--layer data" in c for c in switches)
        assert any(c.startswith("standby status ") for c in commands)
    else:
        # status/switch cannot reach a Tencent stack: none is printed as if it could
        assert not [c for c in commands if c.split()[1] in ("status", "switch")]
        assert "the procedures name the API each manual step calls" in md
    for section in SECTIONS:
        assert f"## {section}" in md and f"<h2>{section}</h2>" in page


def test_aws_dev_runbook_content(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    _, md = write_runbook(capsys, project, "aws-dev")
    # objectives: the budget per layer against the target
    assert "| dns | public DNS answer -> standby region | 42 s | 90 s | 30 s | 162 s | 180 s " \
           "| yes |" in md
    # contacts from dr.contacts, the approver, the alert routes from the plan's outputs
    assert "Dana Ortiz: dana@example.com, +14155550101" in md
    assert "needs the yes of the `incident_commander`" in md
    assert "SNS topic `shop-standby-alerts` (us-west-2)" in md
    assert "URL from config key `slackWebhook`" in md
    # region loss: quorum 2 of 2 cannot fail over without the lost region's vote
    assert "region `us-east-1` lost" in md and "only 1 remains" in md
    # the decision tree with the data-loss gate routed to the approver
    tree = md.split("## 6. Decision tree")[1].split("```mermaid\n")[1].split("```")[0]
    assert tree.startswith("flowchart TD\n")
    assert "DATA-LOSS GATE" in tree and "incident_commander accepts" in tree
    assert "--force" in tree
    # expected output is the CLI's own status format
    assert "data     data             active=standby  token=1" in md
    assert "No drill result found" in md


def test_sql_data_switch_is_marked_irreversible(capsys: pytest.CaptureFixture[str],
                                                project: Path) -> None:
    _, md = write_runbook(capsys, project, "aws-sql")
    data = md.split("### 7.4 data")[1]
    assert "| NO |" in data.split("\n\n")[1]
    assert "promoting the replica in `us-west-2` ends replication" in data
    assert "Back (§8)" not in data.split("## 8.")[0]
    assert "--layer data --to primary" not in md  # no way back is printed as if there were
    assert "replica lag at most database.max_lag_s (5 s)" in md


def test_check_is_fresh_then_stale_after_a_spec_change(
        capsys: pytest.CaptureFixture[str], project: Path) -> None:
    path, _ = write_runbook(capsys, project, "aws-dev")
    code, out, _ = run(capsys, "runbook", "--check", str(path), "--project-dir", str(project))
    assert code == 0 and out.startswith(f"fresh: {path}")
    stack = project / "stacks" / "Pulumi.aws-dev.yaml"
    # a comment changes the file, not the topology: still fresh
    stack.write_text(stack.read_text() + "# a comment\n")
    assert run(capsys, "runbook", "--check", str(path), "--project-dir", str(project))[0] == 0
    stack.write_text(stack.read_text().replace("rto_s: 180", "rto_s: 170"))
    code, out, _ = run(capsys, "runbook", "--check", str(path), "--project-dir", str(project))
    assert code == 1
    assert out.startswith(f"STALE: {path}: the spec of stack aws-dev changed")
    assert "standby runbook --stack aws-dev" in out


def test_check_is_stale_when_a_drill_appears_or_changes(
        capsys: pytest.CaptureFixture[str], project: Path) -> None:
    path, _ = write_runbook(capsys, project, "aws-dev", "html")
    drill = project / ".drill" / "drill.json"
    drill.parent.mkdir()
    drill.write_text(json.dumps({"started_at": time.time(), "faults": []}))
    code, out, _ = run(capsys, "runbook", "--check", str(path), "--project-dir", str(project))
    assert code == 1 and "a drill result appeared" in out
    path, page = write_runbook(capsys, project, "aws-dev", "html")
    assert "Last drill: <code>.drill/drill.json</code>" in page
    assert run(capsys, "runbook", "--check", str(path), "--project-dir", str(project))[0] == 0
    drill.write_text(json.dumps({"started_at": time.time(), "faults": [], "n": 2}))
    code, out, _ = run(capsys, "runbook", "--check", str(path), "--project-dir", str(project))
    assert code == 1 and "changed (a newer drill ran)" in out
    drill.unlink()
    code, out, _ = run(capsys, "runbook", "--check", str(path), "--project-dir", str(project))
    assert code == 1 and "is gone" in out


def test_last_drill_and_readiness_are_reported(capsys: pytest.CaptureFixture[str],
                                               project: Path, tmp_path: Path) -> None:
    drill = tmp_path / "drill.json"
    drill.write_text(json.dumps({
        "started_at": time.time() - 120 * 86400, "lost_acknowledged_writes": 0,
        "faults": [{"key": "database", "layer": "data", "rto_s": 1.9, "budget_s": 13.5},
                   {"key": "region", "layer": "dns", "rto_s": None, "budget_s": 7}]}))
    ready = tmp_path / "ready.json"
    ready.write_text(json.dumps({"status": "NOT_READY", "checks": [
        {"rule": "parity.logic.memory", "status": "NOT_READY", "message": "256 != 512"},
        {"rule": "parity.runtime", "status": "READY"}]}))
    _, md = write_runbook(capsys, project, "aws-dev", "md", "--drill", str(drill),
                          "--readiness", str(ready))
    assert "lost acknowledged writes 0" in md
    assert "database (data): RTO 1.9 s, budget 13.5 s" in md
    assert "region (dns): RTO not recovered" in md
    assert "The last drill is 120 days old: over `dr.exercise_every_days` (90)" in md
    assert "| parity.logic.memory | NOT_READY | 256 != 512 |" in md
    assert "parity.runtime" not in md
    assert "Readiness is NOT_READY" in md


@pytest.mark.parametrize(("args", "message"), [
    (("--stack", "aws-dev", "--drill", "missing.json"), "missing.json: no such file; allowed"),
    (("--stack", "aws-dev", "--readiness", "list.json"), "a JSON list; allowed"),
    (("--check", "plain.md"), "no `standby-runbook` marker of version 1; allowed"),
    ((), "--stack NAME (write a runbook) or --check FILE (check one) is required"),
    (("--stack", "aws-dev", "--out", "nodir/x.md"), "--out: "),
])
def test_bad_input_exits_2_naming_what_is_allowed(
        capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch,
        args: tuple[str, ...], message: str) -> None:
    monkeypatch.chdir(project)
    (project / "list.json").write_text("[1, 2]")
    (project / "plain.md").write_text("# a runbook written by hand\n")
    code, out, err = run(capsys, "runbook", *args)
    assert code == 2, (out, err)
    assert message in err and err.startswith("standby: error: ")
    assert not (project / "nodir").exists()


def test_check_of_another_stacks_runbook_is_refused(capsys: pytest.CaptureFixture[str],
                                                    project: Path) -> None:
    path, _ = write_runbook(capsys, project, "tencent-dev")
    code, _, err = run(capsys, "runbook", "--check", str(path), "--stack", "aws-dev",
                       "--project-dir", str(project))
    assert code == 2 and "is the runbook of stack tencent-dev" in err


def test_html_escapes_spec_text_and_loads_nothing(capsys: pytest.CaptureFixture[str],
                                                  project: Path) -> None:
    stack = project / "stacks" / "Pulumi.aws-dev.yaml"
    stack.write_text(stack.read_text().replace("name: Lee Chen", "name: Lee & Co"))
    _, page = write_runbook(capsys, project, "aws-dev", "html")
    assert "Lee &amp; Co: oncall@example.com" in page
    assert "<script" not in page and " src=" not in page


def test_dry_run_is_printed_only_when_the_cli_has_it(capsys: pytest.CaptureFixture[str],
                                                     project: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, md = write_runbook(capsys, project, "aws-dev")
    assert "--dry-run" not in md  # this CLI's switch has no dry run
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["switch"].add_argument("--dry-run", action="store_true")
    monkeypatch.setattr(procedures, "_parser", lambda: parser)
    _, md = write_runbook(capsys, project, "aws-dev")
    assert ("standby switch --stack aws-dev --layer data --to standby --reason "
            "'runbook: data to standby' --scope data --dry-run") in md


def test_a_budget_that_misses_its_target_gets_no_runbook(
        capsys: pytest.CaptureFixture[str], project: Path) -> None:
    stack = project / "stacks" / "Pulumi.aws-dev.yaml"
    stack.write_text(stack.read_text().replace("rto_s: 180", "rto_s: 60"))
    code, out, err = run(capsys, "runbook", "--stack", "aws-dev", "--project-dir",
                         str(project))
    assert code == 2 and out == ""
    assert "the declared RTO/RPO targets cannot be met" in err
