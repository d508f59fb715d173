"""Errors a user can act on. Every problem names a config path, the bad value and what is allowed.

This module is shared by deploy time and the CLI; it never imports ``pulumi`` so that the
spec can be validated anywhere (the Pulumi program converts these to
``pulumi.InputPropertiesError`` at its edge).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One bad input: where it is (``monitor.dns.failure_threshold``) and what is wrong."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class StandbyError(Exception):
    """Base class of every error this package raises on purpose."""


class SpecError(StandbyError, ValueError):
    """The topology spec (stack config) is invalid; ``problems`` lists every bad value."""

    def __init__(self, problems: list[Problem], source: str = "topology") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid {source} config ({len(problems)} problem(s)):\n{lines}")


class BudgetError(StandbyError):
    """The declared RTO/RPO targets cannot be met by the configured topology."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class StackFileError(StandbyError):
    """A project or stack file is missing or malformed, or a CLI argument naming one is bad.

    The message names the file (and line and config path when there is one), what is wrong
    and what is allowed; the CLI exits 2 with it.
    """
