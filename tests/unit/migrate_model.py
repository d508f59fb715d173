"""A model of two databases for the migration engine's tests: what the PostgreSQL adapter
does to them (change log, subscription positions, fences, artifacts), with crash points, so
the phase machine and its runner can be driven through every interleaving quickly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from components.migrate import Migration
from components.migrate.adapter import Context, VerifyResult
from components.migrate.phases import BEFORE_CUTOVER


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Crash(Exception):
    """The runner process dies here (nothing after this line of the step runs)."""


class Model:
    """Two databases as the PostgreSQL adapter uses them: a change log on the source read by
    a forward subscription from the capture position, a reverse log on the target from the
    cutover, fences as the app sees them, and the artifacts left behind."""

    def __init__(self) -> None:
        self.db: dict[str, dict[int, int]] = {"source": {}, "target": {}}
        self.log: dict[str, list[tuple[int, int | None]]] = {"source": [], "target": []}
        self.fenced = {"source": False, "target": False}
        self.artifacts: set[str] = set()
        self.applied = {"forward": 0, "reverse": 0}
        self.copied = False
        self.crash_at: str | None = None

    def point(self, name: str) -> None:
        if self.crash_at == name:
            self.crash_at = None
            raise Crash(name)

    def write(self, side: str, key: int, value: int | None) -> bool:
        if self.fenced[side]:
            return False
        if value is None:
            self.db[side].pop(key, None)
        else:
            self.db[side][key] = value
        self.log[side].append((key, value))
        return True

    def replicate(self, direction: str) -> None:
        frm, to = ("source", "target") if direction == "forward" else ("target", "source")
        if f"sub:{direction}" not in self.artifacts:
            return
        for key, value in self.log[frm][self.applied[direction]:]:
            if value is None:
                self.db[to].pop(key, None)
            else:
                self.db[to][key] = value
        self.applied[direction] = len(self.log[frm])


class ModelAdapter:
    engine = "model"

    def __init__(self, m: Model) -> None:
        self.m = m

    def plan(self) -> dict[str, Any]:
        return {"ok": True}

    def preflight(self, ctx: Context) -> None:
        self.m.point("preflight")

    def capture(self, ctx: Context) -> None:
        self.m.fenced["target"] = True
        ctx.save(fences={"target": True})
        self.m.point("capture.fenced")
        if "slot:forward" not in self.m.artifacts:
            self.m.artifacts.add("slot:forward")
            self.m.applied["forward"] = len(self.m.log["source"])

    def backfill(self, ctx: Context) -> None:
        if "sub:forward" not in self.m.artifacts:
            # copy_data: the snapshot and the slot's position agree, so the copy is the
            # source as of the slot's position, and the log goes on from there.
            self.m.db["target"] = {}
            for key, value in self.m.log["source"][:self.m.applied["forward"]]:
                if value is None:
                    self.m.db["target"].pop(key, None)
                else:
                    self.m.db["target"][key] = value
            self.m.artifacts.add("sub:forward")
        self.m.point("backfill")

    def catch_up(self, ctx: Context) -> None:
        self.m.replicate("forward")

    def lag(self, ctx: Context) -> dict[str, Any]:
        return {"lag_bytes": 0}

    def verify(self, ctx: Context, exact: bool) -> VerifyResult:
        self.m.replicate("forward" if ctx.phase in BEFORE_CUTOVER else "reverse")
        diff = sum(self.m.db["source"].get(k) != self.m.db["target"].get(k)
                   for k in self.m.db["source"].keys() | self.m.db["target"].keys())
        return VerifyResult({}, [], diff, 0, exact)

    def freeze(self, ctx: Context, deadline: float) -> None:
        self.m.point("freeze")
        self.m.replicate("forward")

    def cutover(self, ctx: Context) -> None:
        self.m.fenced["source"] = True
        self.m.point("cutover.fenced")
        self.m.artifacts.discard("sub:forward")
        if "sub:reverse" not in self.m.artifacts:
            self.m.artifacts |= {"sub:reverse", "slot:reverse"}
            self.m.applied["reverse"] = len(self.m.log["target"])
        self.m.point("cutover.reverse")
        self.m.fenced["target"] = False

    def rollback(self, ctx: Context, deadline: float) -> VerifyResult | None:
        self.m.fenced["target"] = True
        self.m.point("rollback.fenced")
        self.m.replicate("reverse")
        self.m.fenced["source"] = False
        self.m.point("rollback.unfenced")
        self.m.artifacts.clear()
        return None

    def finalize(self, ctx: Context) -> None:
        self.m.point("finalize")
        self.m.artifacts.clear()

    def abort(self, ctx: Context) -> None:
        self.m.point("abort")
        self.m.artifacts.clear()
        self.m.fenced["target"] = False

    def close(self) -> None:
        pass


CRASH_POINTS = ["preflight", "capture.fenced", "backfill", "freeze", "cutover.fenced",
                "cutover.reverse", "rollback.fenced", "rollback.unfenced", "finalize", "abort"]


def drive(mig_factory: Callable[[], Migration], clock: Clock, model: Model,
           expected: dict[int, int], end: str) -> Migration:
    """Run the whole migration with app writes between moves, replacing the runner whenever
    it crashes, until ``end`` (finalized or rolled-back). Bounded: 200 moves."""
    mig = mig_factory()
    for n in range(1, 201):
        phase = mig.status()["phase"]
        if phase == end:
            return mig
        live = "target" if phase in ("reverse-sync", "finalize") else "source"
        if phase not in ("freeze", "cutover", "rollback") and model.write(live, n % 7, n):
            expected[n % 7] = n
        try:
            if phase == "verify" and mig.status()["mismatches"] == 0:
                mig.cutover(writes_stopped=True)
            elif phase == "reverse-sync":
                mig.command("finalize" if end == "finalized" else "rollback",
                            writes_stopped=True)
            else:
                mig.step()
        except Crash:
            clock.now += 10
            mig = mig_factory()
    raise AssertionError(f"did not reach {end}: {mig.status()['phase']}")
