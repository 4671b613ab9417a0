"""Book-keeping shared by every strategy: counts, distinct final states, violations by id, limits.

The only use of the clock is ``budget_seconds``: it may stop a search early, and that shows only as
``stop_reason == "time-budget"`` (never as a duration)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from faultlab.explore.program import RunResultLike
from faultlab.explore.results import FIRST_VIOLATION, MAX_SCHEDULES, MAX_STEPS, TIME_BUDGET, Stats


@dataclass
class Hit:
    """The first run that showed a violation id, and how many runs showed it."""

    found_at: int  # 1-based schedule index
    trace: list[int]
    result: RunResultLike
    count: int = 1


class Collector:
    def __init__(
        self,
        strategy: str,
        *,
        stop_on_first: bool = True,
        max_schedules: int | None = None,
        max_steps: int | None = None,
        budget_seconds: float | None = None,
        progress: Callable[[Stats], None] | None = None,
        keep_schedules: bool = False,
    ) -> None:
        self.strategy = strategy
        self.stop_on_first = stop_on_first
        self.max_schedules = max_schedules
        self.max_steps = max_steps
        self.deadline = time.monotonic() + budget_seconds if budget_seconds is not None else None
        self.progress = progress
        self.schedules = 0
        self.sleep_blocked = 0
        self.steps = 0
        self.violating_runs = 0
        self.longest_run = 0
        self.final_states: set[Hashable] = set()
        self.hits: dict[str, Hit] = {}
        self.schedules_list: list[tuple[int, ...]] | None = [] if keep_schedules else None

    def add(self, trace: list[int], result: RunResultLike | None) -> None:
        """Record one run (``result`` None: abandoned, sleep-set blocked)."""
        self.schedules += 1
        self.steps += len(trace)
        if len(trace) > self.longest_run:
            self.longest_run = len(trace)
        if self.schedules_list is not None:
            self.schedules_list.append(tuple(trace))
        if result is None:
            self.sleep_blocked += 1
        else:
            self.final_states.add(result.final_state)
            if result.violations:
                self.violating_runs += 1
                for v in result.violations:
                    hit = self.hits.get(v.id)
                    if hit is None:
                        self.hits[v.id] = Hit(self.schedules, list(trace), result)
                    else:
                        hit.count += 1
        if self.progress is not None:
            self.progress(self.stats())

    def stats(self) -> Stats:
        return Stats(
            self.strategy,
            self.schedules,
            self.sleep_blocked,
            self.steps,
            self.violating_runs,
            len(self.final_states),
        )

    def stop_reason(self) -> str | None:
        """Why the search must stop now, or None to go on."""
        if self.stop_on_first and self.hits:
            return FIRST_VIOLATION
        if self.max_schedules is not None and self.schedules >= self.max_schedules:
            return MAX_SCHEDULES
        if self.max_steps is not None and self.steps >= self.max_steps:
            return MAX_STEPS
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return TIME_BUDGET
        return None
