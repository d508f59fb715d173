"""The offline plan: run the real program under mocks and describe what it would build."""

from __future__ import annotations

from pathlib import Path

from components.budget import check_budget
from components.errors import SpecError
from components.plan.model import Plan, build_plan
from components.plan.run import SECRET_PLACEHOLDER, read_stack, run_program
from components.spec import parse_spec

__all__ = ["SECRET_PLACEHOLDER", "Plan", "make_plan"]


def make_plan(stack: str, project_dir: Path) -> Plan:
    """Validate the stack's spec and budget first (clear errors), then run the program."""
    from components.program import CONFIG_KEY, main

    cfg = read_stack(stack, project_dir)
    key = f"{cfg.project}:{CONFIG_KEY}"
    if key not in cfg.raw:
        from components.errors import Problem

        raise SpecError([Problem(key, "is required but missing")], source=str(cfg.path))
    spec = parse_spec(cfg.raw[key], source=f"{cfg.path.name} {key}")
    budget = check_budget(spec)
    run = run_program(cfg, main)
    return build_plan(cfg.project, stack, spec, budget, run)
