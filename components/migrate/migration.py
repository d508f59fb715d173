"""The runner: drives a migration through its phases, checkpointing every step.

``Migration.run`` holds the lease and advances; the commands (cutover, rollback, finalize,
abort, pause, resume, verify) either act directly when no runner is alive, or hand the
command to the live runner through the state store and wait for its answer.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from components.migrate.adapter import (
    Adapter,
    Interrupted,
    MigrationError,
    Overrun,
    VerifyResult,
)
from components.migrate.phases import (
    AUTOMATIC,
    BEFORE_CUTOVER,
    TERMINAL,
    Phase,
    TransitionError,
)
from components.migrate.state import Chunk, LeaseHeld, Record, StateError, StateStore

COMMANDS = ("cutover", "rollback", "finalize", "abort", "pause", "resume", "verify")


class Runner:
    """One lease holder's view of a migration: the Context its adapter writes through."""

    def __init__(self, store: StateStore, rec: Record, holder: str, lease_s: float,
                 on_progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.store, self.rec, self.holder, self.lease_s = store, rec, holder, lease_s
        self._renewed = time.monotonic()
        self._on_progress = on_progress

    @property
    def data(self) -> dict[str, Any]:
        return self.rec.data

    @property
    def phase(self) -> Phase:
        return self.rec.phase

    @property
    def token(self) -> int:
        return self.rec.token

    def save(self, **data: Any) -> None:
        self.rec = self.store.save(self.rec.id, self.token, data=data)

    def move(self, phase: Phase, **data: Any) -> None:
        self.rec = self.store.save(self.rec.id, self.token, phase=phase, data=data or None)

    def renew(self) -> Record:
        self.store.renew(self.rec.id, self.holder, self.token, self.lease_s)
        self._renewed = time.monotonic()
        rec = self.store.get(self.rec.id)
        assert rec is not None
        self.rec = rec
        return rec

    def tick(self, **progress: Any) -> None:
        if progress:
            merged = {**self.rec.data.get("progress", {}), **progress, "at": time.time()}
            self.save(progress=merged)
            if self._on_progress is not None:
                self._on_progress({"phase": self.rec.phase.value, **merged})
        if time.monotonic() - self._renewed >= self.lease_s / 3:
            self.renew()
        req = self.rec.request
        if req is not None and req.get("command") in ("abort", "pause"):
            raise Interrupted(req["command"])

    def put_chunks(self, chunks: list[Chunk]) -> None:
        self.store.put_chunks(self.rec.id, self.token, chunks)


class Migration:
    """``from components.migrate import Migration``: one migration, by id, in a state store."""

    def __init__(self, mid: str, adapter: Adapter, store: StateStore, *, source_shown: str,
                 target_shown: str, lease_s: float = 15.0, poll_s: float = 1.0,
                 max_freeze_s: float = 5.0, holder: str | None = None,
                 on_progress: Callable[[dict[str, Any]], None] | None = None,
                 create: bool = True) -> None:
        self.id, self.adapter, self.store = mid, adapter, store
        self.lease_s, self.poll_s, self.max_freeze_s = lease_s, poll_s, max_freeze_s
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.on_progress = on_progress
        if create:
            self.record = store.create(mid, source_shown, target_shown, adapter.engine)
            return
        rec = store.get(mid)
        if rec is None:
            raise StateError(f"no migration {mid!r} in this state store; allowed: an id "
                             "created by `standby migrate start`")
        if (rec.source, rec.target) != (source_shown, target_shown):
            raise StateError(f"migration {mid!r} moves {rec.source} to {rec.target}, not "
                             f"{source_shown} to {target_shown}; allowed: the same endpoints")
        self.record = rec

    # -- the foreground runner ---------------------------------------------------------------

    def run(self, until: Phase | None = None, max_s: float | None = None,
            keep_paused: bool = False, wait_lease: bool = False) -> Record:
        """Advance until ``until`` is reached (VERIFY: reached with a clean verify), the
        migration ends, or ``max_s`` passes. Resumes where any earlier runner stopped;
        ``wait_lease``: wait out the lease of a runner that died (at most one lease)."""
        r = self._acquire(wait_s=self.lease_s + 1 if wait_lease else 0.0)
        deadline = None if max_s is None else time.monotonic() + max_s
        try:
            if r.rec.paused and not keep_paused:
                r.rec = self.store.save(self.id, r.token, paused=False)
            self._recover(r)
            while deadline is None or time.monotonic() < deadline:
                rec = r.renew()
                if rec.phase in TERMINAL or self._reached(rec, until):
                    break
                if not self._once(r) and rec.request is None:
                    time.sleep(self.poll_s)
            return r.rec
        finally:
            self.store.release(self.id, self.holder, r.token)
            self.record = self.store.get(self.id) or r.rec

    def step(self) -> Record:
        """One unit of work under the lease (a request served or a phase advanced), then
        release: how tests and schedulers drive the machine one move at a time."""
        r = self._acquire()
        try:
            self._recover(r)
            self._once(r)
            return r.rec
        finally:
            self.store.release(self.id, self.holder, r.token)
            self.record = self.store.get(self.id) or r.rec

    def _recover(self, r: Runner) -> None:
        if r.rec.phase == Phase.FREEZE:
            # A runner died during a cutover: the drain's budget is long gone and the
            # source was never fenced in FREEZE, so unfreeze; the caller cuts over again.
            r.move(Phase.VERIFY, last_cutover={"ok": False, "detail": "runner restarted "
                                               "during the freeze; cut over again"})

    def _once(self, r: Runner) -> bool:
        """Serve the pending request or advance; False when there was nothing to do."""
        rec = r.rec
        if rec.request is not None:
            self._serve(r, rec.request)
            return True
        if rec.phase in TERMINAL or rec.paused:
            return False
        try:
            return self._advance(r)
        except Interrupted:
            return True  # the request is served next

    def _reached(self, rec: Record, until: Phase | None) -> bool:
        if until is None:
            return False
        if until == Phase.VERIFY:
            v = rec.data.get("verify")
            return rec.phase == Phase.VERIFY and v is not None and v["mismatches"] == 0
        return rec.phase == until

    def _advance(self, r: Runner) -> bool:
        """Work of the current phase; False when the phase only waits (idle)."""
        phase = r.rec.phase
        if phase in AUTOMATIC:
            if phase == Phase.PREFLIGHT:
                self.adapter.preflight(r)
            elif phase == Phase.CAPTURE:
                self.adapter.capture(r)
            elif phase == Phase.BACKFILL:
                self.adapter.backfill(r)
            elif phase == Phase.CATCH_UP:
                self.adapter.catch_up(r)
            nxt = AUTOMATIC[AUTOMATIC.index(phase) + 1] if phase != Phase.CATCH_UP \
                else Phase.VERIFY
            r.move(nxt, verify=None) if nxt == Phase.VERIFY else r.move(nxt)
        elif phase == Phase.VERIFY:
            last = r.rec.data.get("verify")
            if last is None:
                last = self._verify(r, exact=False).summary()
            if last["mismatches"]:
                # Whoever verified last (this runner, a `verify` command, a refused cutover)
                # found differences: catch up and verify again rather than idle on them.
                r.move(Phase.CATCH_UP)
                return True
            r.tick(**self.adapter.lag(r))
            return False
        elif phase == Phase.REVERSE_SYNC:
            r.tick(**self.adapter.lag(r))
            return False
        elif phase == Phase.CUTOVER:
            self._finish_cutover(r)
        elif phase == Phase.ROLLBACK:
            self._do_rollback(r)
        elif phase == Phase.FINALIZE:
            self.adapter.finalize(r)
            r.move(Phase.FINALIZED)
        elif phase == Phase.ABORT:
            self.adapter.abort(r)
            r.move(Phase.ABORTED)
        return True

    def _verify(self, r: Runner, exact: bool) -> VerifyResult:
        result = self.adapter.verify(r, exact)
        r.put_chunks(result.chunks)
        r.save(verify={**result.summary(), "at": time.time(), "phase": r.rec.phase.value})
        return result

    # -- commands ----------------------------------------------------------------------------

    def command(self, name: str, wait_s: float = 120.0, **args: Any) -> dict[str, Any]:
        """Do ``name`` now: directly if no runner is alive, else through the live runner."""
        if name not in COMMANDS:
            raise MigrationError(f"unknown command {name!r}; allowed: {', '.join(COMMANDS)}")
        try:
            r = self._acquire()
        except LeaseHeld:
            return self._ask(name, args, wait_s)
        try:
            self._recover(r)
            return self._do(r, name, args)
        finally:
            self.store.release(self.id, self.holder, r.token)
            self.record = self.store.get(self.id) or r.rec

    def cutover(self, writes_stopped: bool, **kw: Any) -> dict[str, Any]:
        return self.command("cutover", writes_stopped=writes_stopped, **kw)

    def rollback(self, writes_stopped: bool, **kw: Any) -> dict[str, Any]:
        return self.command("rollback", writes_stopped=writes_stopped, **kw)

    def finalize(self) -> dict[str, Any]:
        return self.command("finalize")

    def abort(self) -> dict[str, Any]:
        return self.command("abort")

    def verify(self) -> dict[str, Any]:
        return self.command("verify")

    def status(self) -> dict[str, Any]:
        rec = self.store.get(self.id)
        assert rec is not None
        return status_document(rec, self.store.now())

    def _acquire(self, wait_s: float = 0.0) -> Runner:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                rec = self.store.acquire(self.id, self.holder, self.lease_s)
                return Runner(self.store, rec, self.holder, self.lease_s, self.on_progress)
            except LeaseHeld:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(min(0.2, self.lease_s / 10))

    def _ask(self, name: str, args: dict[str, Any], wait_s: float) -> dict[str, Any]:
        rid = self.store.request(self.id, name, args)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            rec = self.store.get(self.id)
            assert rec is not None
            last = rec.data.get("last_request") or {}
            if last.get("rid") == rid:
                self.record = rec
                if not last["ok"]:
                    raise MigrationError(last["detail"])
                return dict(last["result"])
            time.sleep(0.1)
        raise MigrationError(f"the runner did not answer {name!r} within {wait_s:g} s; "
                             f"the request stays pending (see `standby migrate status`)")

    def _serve(self, r: Runner, req: dict[str, Any]) -> None:
        try:
            result, ok, detail = self._do(r, req["command"], req.get("args") or {}), True, ""
        except (MigrationError, TransitionError) as exc:
            result, ok, detail = {}, False, str(exc)
        r.rec = self.store.save(self.id, r.token, clear_request=req["rid"], data={
            "last_request": {"rid": req["rid"], "command": req["command"], "ok": ok,
                             "detail": detail, "result": result, "at": time.time()}})

    def _do(self, r: Runner, name: str, args: dict[str, Any]) -> dict[str, Any]:
        phase = r.rec.phase
        if name == "pause":
            r.rec = self.store.save(self.id, r.token, paused=True)
        elif name == "resume":
            r.rec = self.store.save(self.id, r.token, paused=False)
        elif name == "verify":
            if phase in (Phase.PLANNED, Phase.PREFLIGHT, Phase.CAPTURE, Phase.BACKFILL) \
                    or phase in TERMINAL:
                raise TransitionError(f"verify needs the copy done; the phase is {phase} "
                                      "(allowed: catch-up, verify, reverse-sync)")
            self._verify(r, exact=False)
        elif name == "abort":
            if phase not in BEFORE_CUTOVER and phase != Phase.ABORT:
                raise TransitionError(f"abort is only possible before cutover; the phase is "
                                      f"{phase}: use rollback (allowed until finalize)")
            if phase != Phase.ABORT:
                r.move(Phase.ABORT)
            self.adapter.abort(r)
            r.move(Phase.ABORTED)
        elif name == "cutover":
            self._cutover(r, bool(args.get("writes_stopped")),
                          float(args.get("max_freeze_s", self.max_freeze_s)))
        elif name == "rollback":
            if phase != Phase.REVERSE_SYNC:
                raise TransitionError(f"rollback is possible after cutover until finalize; the "
                                      f"phase is {phase} (before cutover, use abort)")
            if not args.get("writes_stopped"):
                raise MigrationError("rollback needs --writes-stopped: stop the application's "
                                     "writes to the target first")
            r.move(Phase.ROLLBACK, rollback={"max_freeze_s": float(
                args.get("max_freeze_s", self.max_freeze_s))})
            self._do_rollback(r)
        elif name == "finalize":
            if phase != Phase.REVERSE_SYNC:
                raise TransitionError(f"finalize follows cutover; the phase is {phase} "
                                      "(allowed from: reverse-sync)")
            r.move(Phase.FINALIZE)
            self.adapter.finalize(r)
            r.move(Phase.FINALIZED)
        return status_document(r.rec, self.store.now())

    def _cutover(self, r: Runner, writes_stopped: bool, max_freeze_s: float) -> None:
        if not writes_stopped:
            raise MigrationError("cutover needs --writes-stopped (the caller has stopped the "
                                 "application's writes to the source); --stack is not built yet")
        if r.rec.phase != Phase.VERIFY:
            raise TransitionError(f"cutover needs the phase verify (copy done, caught up); "
                                  f"the phase is {r.rec.phase}")
        started = time.monotonic()
        deadline = started + max_freeze_s
        r.move(Phase.FREEZE, last_cutover=None)
        try:
            self.adapter.freeze(r, deadline)
            result = self._verify(r, exact=True)
            if time.monotonic() > deadline:
                raise Overrun(f"the drain and final verify took "
                              f"{time.monotonic() - started:.2f} s > max_freeze_s "
                              f"{max_freeze_s:g} s")
        except (Overrun, MigrationError) as exc:
            r.move(Phase.VERIFY, last_cutover={"ok": False, "detail": f"{exc}; the source was "
                                               "not fenced: unfreeze it and try again"})
            raise MigrationError(f"cutover refused: {exc}; the source was not fenced: "
                                 "unfreeze the application's writes to it") from exc
        if result.mismatches:
            r.move(Phase.VERIFY, last_cutover={"ok": False, "detail": "verify mismatches"})
            raise MigrationError(f"cutover refused: {result.mismatches} rows differ after the "
                                 f"drain (e.g. {', '.join(result.keys[:5])}); the source was "
                                 "not fenced: unfreeze the application's writes to it")
        r.move(Phase.CUTOVER, freeze_seconds=round(time.monotonic() - started, 3))
        self._finish_cutover(r)

    def _finish_cutover(self, r: Runner) -> None:
        self.adapter.cutover(r)
        # Writes were stopped from the freeze position until the target is unfenced here.
        frozen_at = (r.rec.data.get("freeze") or {}).get("at")
        r.move(Phase.REVERSE_SYNC, last_cutover={
            "ok": True, "at": time.time(),
            "freeze_total_s": None if frozen_at is None else round(time.time() - frozen_at, 3)})

    def _do_rollback(self, r: Runner) -> None:
        max_freeze_s = float((r.rec.data.get("rollback") or {}).get("max_freeze_s",
                                                                     self.max_freeze_s))
        try:
            failed = self.adapter.rollback(r, time.monotonic() + max_freeze_s)
        except Overrun as exc:  # the adapter made the target writable again
            r.move(Phase.REVERSE_SYNC)
            raise MigrationError(f"rollback refused: {exc}") from exc
        if failed is not None:
            r.move(Phase.REVERSE_SYNC)
            raise MigrationError(f"rollback refused: {failed.mismatches} rows differ after the "
                                 "drain; the target stays the writable side")
        r.move(Phase.ROLLED_BACK)


def status_document(rec: Record, now: float | None = None) -> dict[str, Any]:
    """The one JSON document of ``status --json``: phase, counts, lag, mismatches."""
    progress = rec.data.get("progress") or {}
    verify = rec.data.get("verify") or {}
    return {
        "id": rec.id, "engine": rec.engine, "source": rec.source, "target": rec.target,
        "phase": rec.phase.value, "paused": rec.paused,
        "runner": rec.holder if rec.lease_until > (time.time() if now is None else now)
        else None,
        "token": rec.token,
        "counts": _counts(progress, verify),
        "lag": {"bytes": progress.get("lag_bytes"), "applied": progress.get("applied")},
        "mismatches": verify.get("mismatches"),
        "verify": verify or None,
        "capture": rec.data.get("capture"),
        "last_cutover": rec.data.get("last_cutover"),
        "pending_request": (rec.request or {}).get("command"),
        "last_request": {k: v for k, v in (rec.data.get("last_request") or {}).items()
                         if k != "result"} or None,
    }


def _counts(progress: dict[str, Any], verify: dict[str, Any]) -> dict[str, Any]:
    """Exact row counts from the last verify when there is one, else the copy's progress
    (the source's count is then the planner's estimate)."""
    tables = verify.get("tables") or {}
    if tables:
        return {"rows_source": sum(t["rows_source"] for t in tables.values()),
                "rows_target": sum(t["rows_target"] for t in tables.values()),
                "tables": len(tables), "tables_ready": progress.get("tables_ready"),
                "from": "verify"}
    return {"rows_source": progress.get("rows_source"), "rows_target": progress.get("rows_target"),
            "tables": progress.get("tables"), "tables_ready": progress.get("tables_ready"),
            "from": "progress"}
