"""Run the real Pulumi program under mocks, with a stack file's config.

No cloud, no Pulumi CLI, no credentials: ``pulumi.runtime.set_mocks`` replaces the engine and
``RecordingMocks`` answers every resource and invoke.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.settings import SETTINGS, get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.errors import StackFileError
from components.plan.mocks import PlanRun, RecordingMocks, RecordingMonitor

SECRET_PLACEHOLDER = "[secret]"


@dataclass
class StackConfig:
    project: str
    stack: str
    project_dir: Path
    path: Path
    config: dict[str, str]
    """Full key (``project:key``) -> value as Pulumi hands it to programs (objects as JSON)."""
    secret_keys: list[str]
    raw: dict[str, Any]
    """Full key -> parsed value (secure values replaced by the placeholder)."""


def find_project_dir(start: Path) -> Path:
    for d in (start, *start.parents):
        if (d / "Pulumi.yaml").is_file():
            return d
    raise StackFileError(f"no Pulumi.yaml in {start} or any parent directory")


def read_stack(stack: str, project_dir: Path) -> StackConfig:
    project_file = project_dir / "Pulumi.yaml"
    try:
        project_doc = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise StackFileError(f"{project_file}: cannot read: {exc}") from None
    project = str(project_doc.get("name", ""))
    config_dir = project_dir / str(project_doc.get("stackConfigDir", "."))
    path = config_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in config_dir.glob("Pulumi.*.yaml"))  # noqa: E501
        raise StackFileError(
            f"--stack: no stack file {path}; known stacks: {', '.join(known) or 'none'}"
        )
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path}: not valid YAML: {exc}") from None
    entries = doc.get("config") or {}
    if not isinstance(entries, dict):
        raise StackFileError(f"{path}: `config` must be a mapping")
    config: dict[str, str] = {}
    raw: dict[str, Any] = {}
    secret_keys: list[str] = []
    for key, value in entries.items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret_keys.append(full)
            value = SECRET_PLACEHOLDER
        raw[full] = value
        config[full] = value if isinstance(value, str) else json.dumps(value)
    return StackConfig(project, stack, project_dir, path, config, secret_keys, raw)


def run_program(stack: StackConfig, program: Callable[[], None]) -> PlanRun:
    """Run ``program`` under recording mocks; returns every registration and the exports."""
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    # A fresh root stack per run: set_mocks keeps an existing one, and with it the exports
    # and stack transformations of an earlier run in this process.
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(
        mocks, project=stack.project, stack=stack.stack, preview=False, monitor=monitor
    )
    set_all_config(stack.config, stack.secret_keys)
    run = PlanRun(mocks)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    cwd = Path.cwd()
    os.chdir(stack.project_dir)  # Pulumi runs programs from the project directory
    # The cyclic GC rescans every live Output, future and task on each full collection, which
    # made the run superlinear in the resource count (bench/plan_scale.py). A mock run is
    # short and bounded: collect once at the end instead.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:

        def body() -> None:
            program()
            root = get_root_resource()
            outputs = getattr(root, "outputs", {}) if root is not None else {}
            exported: Any = _sync_await(pulumi.Output.from_input(outputs).future())
            run.exports = dict(exported or {})

        _sync_await(run_pulumi_func(body))
    finally:
        os.chdir(cwd)
        if gc_was_enabled:
            gc.enable()
        gc.collect()
    return run
