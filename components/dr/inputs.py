"""What a runbook is generated from, and how to tell that it is stale.

A runbook embeds the SHA-256 of the validated spec and of the last drill result it read. If
either has changed since, the runbook describes a topology or an exercise record that no
longer exists: ``check`` says so and names what changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.errors import StackFileError
from components.plan.model import Plan
from components.spec import TopologySpec

MARKER = "standby-runbook"
MARKER_VERSION = 1
#: Where the drill writes its summary (``components.sandbox.drill --out .drill``).
DEFAULT_DRILL = Path(".drill") / "drill.json"
MAX_INPUT_BYTES = 16 * 1024 * 1024


class RunbookInputError(StackFileError):
    """A file given to the runbook (drill, readiness, a runbook to check) is missing or not
    what it should be; the CLI exits 2 naming the file and what is allowed."""


def spec_sha256(spec: TopologySpec) -> str:
    """Of the validated spec, so comments and key order in the stack file do not count."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    allowed = f"a JSON object file ({what})"
    try:
        size = path.stat().st_size
        if not path.is_file() or size > MAX_INPUT_BYTES:
            raise RunbookInputError(f"{path}: not a file of at most {MAX_INPUT_BYTES} bytes; "
                                    f"allowed: {allowed}")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunbookInputError(f"{path}: no such file; allowed: {allowed}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunbookInputError(f"{path}: {exc}; allowed: {allowed}") from None
    if not isinstance(data, dict):
        raise RunbookInputError(f"{path}: a JSON {type(data).__name__}; allowed: {allowed}")
    return data


@dataclass
class Inputs:
    stack: str
    project_dir: Path
    plan: Plan
    drill: dict[str, Any] | None
    drill_path: Path | None
    """The drill result read, or where one is looked for (the default path) if none."""
    readiness: dict[str, Any] | None
    readiness_path: Path | None
    generated_at: dt.datetime

    @property
    def spec(self) -> TopologySpec:
        return self.plan.spec

    def drill_label(self) -> str | None:
        if self.drill_path is None:
            return None
        try:
            return self.drill_path.resolve().relative_to(self.project_dir.resolve()).as_posix()
        except ValueError:
            return str(self.drill_path.resolve())

    def marker(self) -> dict[str, Any]:
        drill_sha = (file_sha256(self.drill_path) if self.drill is not None
                     and self.drill_path is not None else None)
        return {"v": MARKER_VERSION, "stack": self.stack,
                "spec_sha256": spec_sha256(self.spec),
                "drill": {"path": self.drill_label(), "sha256": drill_sha},
                "generated_at": self.generated_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def gather(stack: str, project_dir: Path, drill: Path | None = None,
           readiness: Path | None = None, now: dt.datetime | None = None) -> Inputs:
    """Validate the stack, run its plan offline (the outputs the runbook names), and read the
    last drill (``--drill``, else ``.drill/drill.json`` if present) and readiness results."""
    from components.plan import make_plan

    drill_path = drill if drill is not None else project_dir / DEFAULT_DRILL
    drill_data = None
    if drill is not None or drill_path.is_file():
        drill_data = read_json_object(drill_path, "a drill summary such as .drill/drill.json")
    ready = (read_json_object(readiness, "the output of standby readiness --format json")
             if readiness is not None else None)
    plan = make_plan(stack, project_dir)  # after the cheap checks: bad input fails fast
    return Inputs(stack, project_dir, plan, drill_data, drill_path, ready, readiness,
                  now or dt.datetime.now(dt.UTC))


# --- the marker embedded in the runbook --------------------------------------------------


def marker_comment(data: dict[str, Any]) -> str:
    """The marker as the text of an HTML comment: JSON with '-' and '>' escaped, so no path
    can end the comment early in either rendering."""
    text = json.dumps(data, sort_keys=True).replace("-", "\\u002d").replace(">", "\\u003e")
    return f"{MARKER} {text}"


_MARKER_RE = re.compile(r"<!-- " + MARKER + r" (\{.*?\}) -->")


def read_marker(path: Path) -> dict[str, Any]:
    allowed = "a runbook written by `standby runbook` (Markdown or HTML)"
    try:
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise RunbookInputError(f"{path}: larger than {MAX_INPUT_BYTES} bytes; "
                                    f"allowed: {allowed}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunbookInputError(f"{path}: no such file; allowed: {allowed}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunbookInputError(f"{path}: {exc}; allowed: {allowed}") from None
    found = _MARKER_RE.search(text)
    data: Any = None
    if found:
        try:
            data = json.loads(found.group(1))
        except json.JSONDecodeError:
            data = None
    if (not isinstance(data, dict) or data.get("v") != MARKER_VERSION
            or not isinstance(data.get("stack"), str)
            or not isinstance(data.get("spec_sha256"), str)
            or not isinstance(data.get("drill"), dict)):
        raise RunbookInputError(f"{path}: no `{MARKER}` marker of version {MARKER_VERSION}; "
                                f"allowed: {allowed}")
    return data


def stale_reasons(marker: dict[str, Any], spec: TopologySpec, project_dir: Path) -> list[str]:
    """Why a runbook with ``marker`` no longer describes this stack; empty if it does."""
    out: list[str] = []
    if marker["spec_sha256"] != spec_sha256(spec):
        out.append(f"the spec of stack {marker['stack']} changed since the runbook was "
                   f"generated ({marker.get('generated_at', '?')})")
    recorded = marker["drill"]
    label = recorded.get("path")
    path = Path(label) if label else DEFAULT_DRILL
    if not path.is_absolute():
        path = project_dir / path
    now = file_sha256(path) if path.is_file() else None
    if now != recorded.get("sha256"):
        if recorded.get("sha256") is None:
            out.append(f"a drill result appeared at {path} after the runbook was generated")
        elif now is None:
            out.append(f"the drill result {path} it was generated from is gone")
        else:
            out.append(f"the drill result {path} changed (a newer drill ran)")
    return out
