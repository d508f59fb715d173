"""EventBridge schedules as the cloud delivers them: per rule, at a phase of its own, with
overlapping invocations and at-least-once delivery.

- ``rate(N minute[s]|hour[s]|day[s])`` fires every N units; one minute is the floor.
- Each rule fires at its own offset inside its period (EventBridge does not align rules),
  so two regions' monitors see a failure at different moments. Offsets are seeded.
- An invocation never waits for the previous one: they may overlap.
- Delivery is at least once: a seeded fraction of deliveries is repeated a few (simulated)
  seconds later, with the same event.
- Time may be compressed (``seconds_per_minute`` < 60): the schedule runs faster; the
  function code and network calls do not (the runner scales the monitors' loop and
  intervals, ``lambda_runner.compressed_env``); the scheduler says so when it starts.

The run is bounded by ``minutes`` and stops by itself; ``stop()`` ends it early.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from components.sandbox.deploy import Schedule

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_MIN = {"minute": 1, "hour": 60, "day": 1440}
#: How late (simulated seconds) a duplicate delivery arrives after the original.
DUPLICATE_DELAY_S = (1.0, 10.0)
#: How long ``run`` waits for invocations still running when the schedule ends.
DRAIN_TIMEOUT_S = 300.0


class ScheduleError(ValueError):
    pass


def period_minutes(expression: str) -> int:
    m = _RATE.match(expression.strip())
    if not m:
        raise ScheduleError(f"schedule {expression!r}: only rate(N minute[s]|hour[s]|day[s]) "
                            "is supported by the sandbox")
    n = int(m.group(1))
    if n < 1:
        raise ScheduleError(f"schedule {expression!r}: the rate must be at least 1")
    return n * _UNIT_MIN[m.group(2).rstrip("s")]


@dataclass
class Delivery:
    at_s: float
    """Simulated seconds from the start of the run."""
    schedule: Schedule
    duplicate: bool = False
    result: Any = None
    error: str | None = None


@dataclass
class Scheduler:
    schedules: list[Schedule]
    invoke: Callable[[str, Any], Any]
    seconds_per_minute: float = 60.0
    duplicate_fraction: float = 0.0
    seed: int = 0
    max_workers: int = 16
    say: Callable[[str], None] = print
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.duplicate_fraction <= 1.0:
            raise ScheduleError(f"duplicate_fraction: {self.duplicate_fraction}; allowed: "
                                "0.0 .. 1.0")
        if self.seconds_per_minute <= 0:
            raise ScheduleError(f"seconds_per_minute: {self.seconds_per_minute}; allowed: > 0")
        for s in self.schedules:
            period_minutes(s.expression)  # refuse a bad expression before anything runs

    @property
    def compression(self) -> float:
        return 60.0 / self.seconds_per_minute

    def plan(self, minutes: int) -> list[Delivery]:
        """Every delivery of ``minutes`` simulated minutes, in time order (deterministic)."""
        rng = random.Random(self.seed)
        out: list[Delivery] = []
        for s in sorted(self.schedules, key=lambda x: (x.region, x.rule)):
            period_s = period_minutes(s.expression) * 60.0
            at = rng.uniform(0.0, period_s)
            while at < minutes * 60.0:
                out.append(Delivery(at, s))
                if rng.random() < self.duplicate_fraction:
                    out.append(Delivery(at + rng.uniform(*DUPLICATE_DELAY_S), s, True))
                at += period_s
        out.sort(key=lambda d: (d.at_s, d.schedule.rule, d.duplicate))
        return [d for d in out if d.at_s < minutes * 60.0]

    def stop(self) -> None:
        self._stop.set()

    def run(self, minutes: int) -> list[Delivery]:
        deliveries = self.plan(minutes)
        if self.seconds_per_minute != 60.0:
            self.say(f"time compression: 1 min = {self.seconds_per_minute:g} s "
                     f"({self.compression:g}x; the function code runs in real time, a "
                     "monitor's loop and intervals are scaled to the compressed minute)")
        self.say(f"schedules: {len(self.schedules)} rules, {minutes} min, "
                 f"{len(deliveries)} deliveries "
                 f"({sum(d.duplicate for d in deliveries)} duplicated)")
        started = time.monotonic()
        futures: list[tuple[Delivery, Future[Any]]] = []
        with ThreadPoolExecutor(max_workers=self.max_workers,
                                thread_name_prefix="schedule") as pool:
            for d in deliveries:
                wait = started + d.at_s / self.compression - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                if self._stop.is_set():
                    break
                futures.append((d, pool.submit(self.invoke, d.schedule.function,
                                               dict(d.schedule.input or {}))))
            for d, f in futures:
                try:
                    d.result = f.result(timeout=DRAIN_TIMEOUT_S)
                except Exception as exc:  # a failed invocation is a result, not a crash
                    d.error = f"{type(exc).__name__}: {exc}"
        return [d for d, _ in futures]
