"""Run the real Pulumi program under mocks, with a stack file's config.

No cloud, no Pulumi CLI, no credentials: ``pulumi.runtime.set_mocks`` replaces the engine and
``RecordingMocks`` answers every resource and invoke.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.settings import SETTINGS, get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.errors import StackFileError
from components.plan.mocks import PlanRun, RecordingMocks, RecordingMonitor
from components.spec import TopologySpec, secret_refs
from components.stackfile import (
    SECRET_PLACEHOLDER,
    StackConfig,
    find_project_dir,
    read_stack,
)

__all__ = ["SECRET_PLACEHOLDER", "StackConfig", "check_secret_keys", "find_project_dir",
           "read_stack", "run_program"]


def check_secret_keys(stack: StackConfig, spec: TopologySpec) -> None:
    """Every ``config: KEY`` the spec names must be a ``secure:`` value of this stack.

    The program refuses the same at deploy time; checking here turns it into a clear
    ``StackFileError`` (exit 2) before the program runs.
    """
    for path, ref in secret_refs(spec):
        full = f"{stack.project}:{ref.config}"
        if ref.config is None:
            continue
        if full not in stack.raw:
            raise StackFileError(
                f"{stack.path}: {path}.config names {full}, which is not set; allowed: a "
                f"secret key set with: pulumi config set --secret {ref.config} VALUE"
            )
        if full not in stack.secret_keys:
            raise StackFileError(
                f"{stack.path}: config.{full} holds a plaintext value but {path} uses it as a "
                f"secret; allowed: a `secure:` value (pulumi config set --secret {ref.config} "
                "VALUE)"
            )


def run_program(stack: StackConfig, program: Callable[[], None],
                mocks: RecordingMocks | None = None) -> PlanRun:
    """Run ``program`` under recording mocks (``mocks``, default a fresh ``RecordingMocks``);
    returns every registration and the exports."""
    mocks = mocks if mocks is not None else RecordingMocks()
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
