"""The sandbox scheduler: EventBridge rate schedules with phases, overlap and duplicates."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from typing import Any

import pytest

from components.sandbox.deploy import Schedule
from components.sandbox.schedule import ScheduleError, Scheduler, period_minutes


def rules() -> list[Schedule]:
    return [Schedule("mon-a", "us-east-1", "rate(1 minute)", "fn-a", {"source": "schedule"}),
            Schedule("mon-b", "us-west-2", "rate(1 minute)", "fn-b", {"source": "schedule"}),
            Schedule("slow", "us-east-1", "rate(5 minutes)", "fn-c", {"source": "schedule"})]


class Recorder:
    """Stands in for the function runner: records calls and how many ran at once."""

    def __init__(self, hold_s: float = 0.0) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.running = 0
        self.most_at_once = 0
        self.hold_s = hold_s
        self.lock = threading.Lock()

    def __call__(self, function: str, event: Any) -> str:
        with self.lock:
            self.calls.append((function, event))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.hold_s)
        with self.lock:
            self.running -= 1
        return function


def test_rate_schedules_fire_once_per_period_at_a_phase_of_their_own() -> None:
    s = Scheduler(rules(), Recorder(), seed=3)
    plan = s.plan(10)
    per_rule = Counter(d.schedule.rule for d in plan)
    assert per_rule == {"mon-a": 10, "mon-b": 10, "slow": 2}
    phase = {d.schedule.rule: d.at_s for d in reversed(plan)}
    assert phase["mon-a"] != phase["mon-b"]  # the regions' rules are not aligned
    assert all(0 <= p < 60 for r, p in phase.items() if r != "slow")
    a = [d.at_s for d in plan if d.schedule.rule == "mon-a"]
    assert [round(y - x, 6) for x, y in itertools.pairwise(a)] == [60.0] * 9
    assert s.plan(10) == Scheduler(rules(), Recorder(), seed=3).plan(10)  # seeded


def test_some_deliveries_are_duplicated_with_the_same_event() -> None:
    plan = Scheduler(rules(), Recorder(), duplicate_fraction=0.5, seed=11).plan(20)
    dups = [d for d in plan if d.duplicate]
    assert 0 < len(dups) < len(plan) / 2 + 5
    originals = {(d.schedule.rule, d.at_s) for d in plan if not d.duplicate}
    assert len(originals) == 20 + 20 + 4
    none = Scheduler(rules(), Recorder(), duplicate_fraction=0.0, seed=11).plan(20)
    assert not any(d.duplicate for d in none)


def test_run_compresses_time_overlaps_invocations_and_stops_by_itself() -> None:
    said: list[str] = []
    recorder = Recorder(hold_s=0.3)
    s = Scheduler(rules()[:2], recorder, seconds_per_minute=0.05, duplicate_fraction=0.3,
                  seed=5, say=said.append)
    done = s.run(6)
    assert any("1 min = 0.05 s" in line for line in said)
    assert len(done) == len(s.plan(6)) == len(recorder.calls)
    assert Counter(f for f, _ in recorder.calls if f) >= Counter({"fn-a": 6, "fn-b": 6})
    assert all(e == {"source": "schedule"} for _, e in recorder.calls)
    assert all(d.result == d.schedule.function and d.error is None for d in done)
    # Each call holds 0.3 s while a simulated minute is 0.05 s: calls overlap.
    assert recorder.most_at_once > 1


def test_a_failed_invocation_is_recorded_not_raised() -> None:
    def boom(function: str, event: Any) -> None:
        raise RuntimeError("function crashed")
    done = Scheduler(rules()[:1], boom, seconds_per_minute=0.01).run(2)
    assert [d.error for d in done] == ["RuntimeError: function crashed"] * 2


@pytest.mark.parametrize("expression", ["cron(0 * * * ? *)", "rate(0 minutes)",
                                        "rate(1 second)", "every minute"])
def test_unsupported_schedule_expressions_are_refused_by_name(expression: str) -> None:
    with pytest.raises(ScheduleError) as err:
        Scheduler([Schedule("r", "us-east-1", expression, "fn", {})], Recorder())
    assert expression in str(err.value)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ScheduleError, match="duplicate_fraction"):
        Scheduler(rules(), Recorder(), duplicate_fraction=1.5)
    with pytest.raises(ScheduleError, match="seconds_per_minute"):
        Scheduler(rules(), Recorder(), seconds_per_minute=0)
    assert period_minutes("rate(2 hours)") == 120
