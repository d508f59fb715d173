"""What the sandbox's replication stand-ins share: a background thread running rounds,
regions that can be cut and healed, and a wait until nothing is left to copy.

A subclass (``replication.GlobalTableReplicator``, ``replication_s3.BucketReplicator``) sets
``regions`` and implements ``step()`` (one round: read what changed, copy what is due between
regions that are up, and count the round with ``_round_done``) and ``_failed()`` (count a
round that raised). A failed round changes nothing half-way that the next round cannot redo.
"""

from __future__ import annotations

import threading
import time
from typing import Self

from botocore.exceptions import BotoCoreError, ClientError

from components.sandbox.deploy_model import Deployment


class Replicator:
    #: Thread name, the noun for a region's contents in errors, and the longest ``delay_s``.
    thread_name = "replicator"
    holds = "replica"
    max_delay_s = 60.0
    #: Longest wait between rounds once nothing is happening (moto serves the functions too).
    idle_poll_max_s = 1.0

    regions: list[str]

    def __init__(self, deployment: Deployment, delay_s: float, poll_s: float,
                 max_run_s: float) -> None:
        if not 0 <= delay_s <= self.max_delay_s:
            raise ValueError(f"delay_s: {delay_s}; allowed: 0..{self.max_delay_s:g} seconds")
        if not 0.01 <= poll_s <= 5:
            raise ValueError(f"poll_s: {poll_s}; allowed: 0.01..5 seconds")
        if max_run_s <= 0:
            raise ValueError(f"max_run_s: {max_run_s}; allowed: > 0 seconds")
        self.deployment = deployment
        self.delay_s, self.poll_s, self.max_run_s = delay_s, poll_s, max_run_s
        self._down: set[str] = set()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rounds = 0
        self._idle_rounds = 0

    # -- what a subclass provides ----------------------------------------------------------

    def open(self) -> None:
        """Checks before the first round (nothing by default)."""

    def step(self) -> None:
        raise NotImplementedError

    def _failed(self, exc: Exception) -> None:
        raise NotImplementedError

    def _round_done(self, busy: bool) -> None:
        """Count a round; an idle one (nothing read, nothing due) adds to the idle streak."""
        with self._lock:
            self._rounds += 1
            self._idle_rounds = 0 if busy else self._idle_rounds + 1

    # -- control ---------------------------------------------------------------------------

    def start(self) -> Self:
        """``open()``, then run rounds in a thread until ``stop()`` or ``max_run_s``."""
        self.open()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _check_region(self, region: str) -> None:
        if region not in self.regions:
            raise ValueError(f"region {region!r} holds no {self.holds}; {self.holds} regions: "
                             f"{', '.join(self.regions) or '(none)'}")

    def cut(self, region: str) -> None:
        """The region is down: it neither sends nor receives until ``heal``."""
        self._check_region(region)
        with self._lock:
            self._down.add(region)

    def heal(self, region: str) -> None:
        """The region is back: what waited for it flows, in order."""
        self._check_region(region)
        with self._lock:
            self._down.discard(region)

    @property
    def down(self) -> set[str]:
        with self._lock:
            return set(self._down)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Until two rounds, both begun after this call, found nothing to read or copy
        between regions that are up (True), or ``timeout_s``. A round already running when
        the call was made may have read the sources before the caller's writes."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            first = self._rounds
        while time.monotonic() < deadline:
            with self._lock:
                if self._idle_rounds >= 2 and self._rounds >= first + 3:
                    return True
            if self._thread is None or not self._thread.is_alive():
                return False
            time.sleep(self.poll_s / 2)
        return False

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_run_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                self.step()
            except (ClientError, BotoCoreError) as exc:
                with self._lock:
                    self._failed(exc)
                    self._idle_rounds = 0
            # Idle rounds back off; a busy one resets.
            with self._lock:
                idle = min(self._idle_rounds, 4)
            self._stop.wait(min(max(self.poll_s, self.idle_poll_max_s),
                                self.poll_s * 2 ** idle))
