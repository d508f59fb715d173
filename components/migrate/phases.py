"""The migration's phase machine: which phase may follow which, and what each command may do.

A phase names the step being worked on; its work is idempotent, so a runner that was killed
mid-phase resumes by doing the phase again. ``paused`` is a flag beside the phase, not a
phase, so a resumed runner knows where to go on.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    PLANNED = "planned"
    PREFLIGHT = "preflight"
    CAPTURE = "capture"
    BACKFILL = "backfill"
    CATCH_UP = "catch-up"
    VERIFY = "verify"
    FREEZE = "freeze"
    CUTOVER = "cutover"
    REVERSE_SYNC = "reverse-sync"
    FINALIZE = "finalize"
    FINALIZED = "finalized"
    ROLLBACK = "rollback"
    ROLLED_BACK = "rolled-back"
    ABORT = "abort"
    ABORTED = "aborted"


#: Phases a runner advances through on its own, in order, each to the next.
AUTOMATIC = (Phase.PLANNED, Phase.PREFLIGHT, Phase.CAPTURE, Phase.BACKFILL, Phase.CATCH_UP)

#: Phases where the source is still the only side the application writes, so abort leaves
#: the source as it was. From CUTOVER on the target has taken writes: only rollback is safe.
BEFORE_CUTOVER = frozenset((*AUTOMATIC, Phase.VERIFY, Phase.FREEZE))

TERMINAL = frozenset((Phase.FINALIZED, Phase.ROLLED_BACK, Phase.ABORTED))

_NEXT: dict[Phase, frozenset[Phase]] = {
    Phase.PLANNED: frozenset({Phase.PREFLIGHT}),
    Phase.PREFLIGHT: frozenset({Phase.CAPTURE}),
    Phase.CAPTURE: frozenset({Phase.BACKFILL}),
    Phase.BACKFILL: frozenset({Phase.CATCH_UP}),
    Phase.CATCH_UP: frozenset({Phase.VERIFY}),
    # A verify that found mismatches goes back to catching up and tries again.
    Phase.VERIFY: frozenset({Phase.CATCH_UP, Phase.FREEZE}),
    # FREEZE -> VERIFY is the unfreeze: the drain overran max_freeze_s or the final verify
    # found a difference, and the source was never fenced.
    Phase.FREEZE: frozenset({Phase.CUTOVER, Phase.VERIFY}),
    Phase.CUTOVER: frozenset({Phase.REVERSE_SYNC}),
    Phase.REVERSE_SYNC: frozenset({Phase.FINALIZE, Phase.ROLLBACK}),
    Phase.FINALIZE: frozenset({Phase.FINALIZED}),
    # ROLLBACK -> REVERSE_SYNC: the rollback's drain or verify failed before the source was
    # unfenced, so the target stays the writable side.
    Phase.ROLLBACK: frozenset({Phase.ROLLED_BACK, Phase.REVERSE_SYNC}),
    Phase.ABORT: frozenset({Phase.ABORTED}),
    Phase.FINALIZED: frozenset(),
    Phase.ROLLED_BACK: frozenset(),
    Phase.ABORTED: frozenset(),
}
for _p in BEFORE_CUTOVER:
    _NEXT[_p] = _NEXT[_p] | {Phase.ABORT}


class TransitionError(ValueError):
    """A command or step that the current phase does not allow."""


def successors(phase: Phase) -> frozenset[Phase]:
    return _NEXT[phase]


def check_transition(current: Phase, new: Phase) -> None:
    if new not in _NEXT[current]:
        allowed = ", ".join(sorted(_NEXT[current])) or "nothing (the migration has ended)"
        raise TransitionError(f"phase {current} cannot go to {new}; allowed from {current}: "
                              f"{allowed}")


def parse_phase(value: str) -> Phase:
    try:
        return Phase(value)
    except ValueError:
        raise TransitionError(f"unknown phase {value!r}; allowed: "
                              f"{', '.join(p.value for p in Phase)}") from None
