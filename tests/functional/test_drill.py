"""The local drill in a smaller form: the whole sandbox, three of the faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.sandbox.drill import Drill, main
from components.sandbox.pg import PgUnavailable, pg_bin


@pytest.fixture(autouse=True)
def needs_postgres() -> None:
    try:
        pg_bin()
    except PgUnavailable as exc:
        pytest.skip(str(exc))


def test_drill_recovers_every_fault_and_loses_no_acknowledged_write(tmp_path: Path) -> None:
    lines: list[str] = []
    drill = Drill(tmp_path, say=lines.append)
    try:
        drill.setup()
        summary = drill.run(("logic", "wrapper", "planned", "database"))
    finally:
        drill.close()
    faults = {f["key"]: f for f in summary["faults"]}
    assert list(faults) == ["logic", "wrapper", "planned", "failback", "database"]
    for f in faults.values():
        assert f["first_standby"] is not None, f
        assert f["injected"] <= f["first_standby"]
        assert f["rto_s"] > 0 and f["budget_s"] > 0
    for key in ("logic", "database"):  # unplanned: the monitors detected, then switched
        f = faults[key]
        assert f["injected"] <= f["detected"] <= f["switched"], f
        assert f["failed_requests"] > 0
    # The wrapper outage is absorbed by the client's fallback before the monitor acts.
    assert faults["wrapper"]["first_standby"] < faults["wrapper"]["switched"]
    assert faults["planned"]["lost_writes"] == faults["failback"]["lost_writes"] == 0
    assert summary["lost_planned"] == 0 and summary["duplicate_rows"] == 0
    assert summary["acknowledged_writes"] > 100
    assert isinstance(summary["lost_acknowledged_writes"], int)
    assert any("switched to standby" in a["title"] for a in summary["alerts"])
    saved = json.loads((tmp_path / "drill.json").read_text())
    assert saved["acknowledged_writes"] == summary["acknowledged_writes"]
    html = (tmp_path / "drill.html").read_text()
    assert "<svg" in html and "polyline" in html and "database" in html
    assert any("first success on the standby" in line for line in lines)


def test_drill_cli_refuses_unknown_faults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--faults", "logic,meteor"])
    assert exit_.value.code == 2
    assert "meteor; allowed: logic, wrapper, planned, database, region" in capsys.readouterr().err
