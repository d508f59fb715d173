"""What the phase machine needs from an engine, and what an engine gets from the runner.

An adapter does one engine's work for each phase. Every method is idempotent: a runner that
was killed in the middle of one calls it again, and it carries on from what it finds in the
engines and in the checkpoint data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from components.migrate.phases import Phase
from components.migrate.state import Chunk


class MigrationError(RuntimeError):
    """A step that cannot go on (prechecks failed, an engine refused, a drain timed out)."""


class PreflightFailed(MigrationError):
    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks
        bad = [c for c in checks if not c.ok]
        super().__init__("preflight refused: " + "; ".join(f"{c.name}: {c.detail}"
                                                            for c in bad))


class Overrun(MigrationError):
    """The freeze took longer than max_freeze_s: the caller must unfreeze the old side."""


class Interrupted(Exception):
    """A long step stops because the runner has a request (pause, abort) to act on; not an
    error."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class VerifyResult:
    tables: dict[str, dict[str, int]]  # table -> rows_source, rows_target, mismatches
    chunks: list[Chunk]
    mismatches: int
    rechecks: int
    exact: bool  # computed with writes stopped: no difference can be a passing one
    seconds: float = 0.0
    keys: list[str] = field(default_factory=list)  # a sample of differing keys

    def summary(self) -> dict[str, Any]:
        return {"mismatches": self.mismatches, "tables": self.tables, "rechecks": self.rechecks,
                "exact": self.exact, "chunks": len(self.chunks),
                "chunks_mismatched": sum(c.state == "mismatch" for c in self.chunks),
                "seconds": round(self.seconds, 3), "keys": self.keys[:20]}


class Context(Protocol):
    """The runner as an adapter sees it."""

    @property
    def data(self) -> dict[str, Any]: ...

    @property
    def phase(self) -> Phase: ...

    def save(self, **data: Any) -> None:
        """A fenced checkpoint write, merged into the migration's data."""

    def tick(self, **progress: Any) -> None:
        """Renew the lease and record progress; raises Fenced when the lease was lost and
        Interrupted when a pause or abort was requested."""

    def put_chunks(self, chunks: list[Chunk]) -> None: ...


class Adapter(Protocol):
    engine: str

    def plan(self) -> dict[str, Any]:
        """The dry run: checks, tables, sequences, size estimates, the rollback plan."""

    def preflight(self, ctx: Context) -> None: ...

    def capture(self, ctx: Context) -> None:
        """Start recording changes; the start position is checkpointed before any copy."""

    def backfill(self, ctx: Context) -> None: ...

    def catch_up(self, ctx: Context) -> None: ...

    def lag(self, ctx: Context) -> dict[str, Any]:
        """The replication lag of the active direction, and the applied position."""

    def verify(self, ctx: Context, exact: bool) -> VerifyResult: ...

    def freeze(self, ctx: Context, deadline: float) -> None:
        """Writes are stopped: drain to the final position before ``deadline`` (monotonic)."""

    def cutover(self, ctx: Context) -> None:
        """Sequences, fence the source, stop the forward direction, start the reverse one,
        unfence the target. Never leaves two writable sides."""

    def rollback(self, ctx: Context, deadline: float) -> VerifyResult | None:
        """Writes on the target are stopped: drain back, verify, make the source writable
        again. Returns the failing verify result (nothing changed) or None when done."""

    def finalize(self, ctx: Context) -> None: ...

    def abort(self, ctx: Context) -> None:
        """Before cutover: drop every artifact; the source is left as it was."""

    def close(self) -> None: ...
