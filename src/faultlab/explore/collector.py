"""Book-keeping shared by every strategy: counts, distinct final states, violations by id, limits.

The only use of the clock is ``budget_seconds``: it may stop a search early, and that shows only as
``stop_reason == "time-budget"`` (never as a duration)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from faultlab.explore import interrupt
from faultlab.explore.coverage import Coverage
from faultlab.explore.program import RunResultLike
from faultlab.explore.results import FIRST_VIOLATION, INTERRUPTED, MAX_SCHEDULES, MAX_STEPS, TIME_BUDGET, Stats


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
        self.retry_cut = 0  # runs the program's retry bound cut (RunCut)
        self.coverage = Coverage()  # of an exhaustive search's decision points (its search fills it)
        self.steps = 0
        self.violating_runs = 0
        self.longest_run = 0
        self.final_states: set[Hashable] = set()
        self.hits: dict[str, Hit] = {}
        self.schedules_list: list[tuple[int, ...]] | None = [] if keep_schedules else None
        # A split search checks for a signal itself, between tasks (so that it stops where it can
        # save a checkpoint).
        self.interruptible = True
        # The estimated runs of the whole exhaustive search (set by the search; see Stats.estimate).
        self.total: Callable[[], float] | None = None

    def add(self, trace: list[int], result: RunResultLike | None, retry_cut: bool = False) -> None:
        """Record one run (``result`` None: abandoned, sleep-set blocked or, with ``retry_cut``, cut by
        the retry bound)."""
        if result is None:
            self.add_run(len(trace), trace, None, (), None, retry_cut)
        else:
            self.add_run(len(trace), trace, result.final_state, [v.id for v in result.violations], result)

    def add_run(self, steps: int, trace: Sequence[int] | None, final_state: Hashable | None,
                violation_ids: Sequence[str], result: RunResultLike | None, retry_cut: bool = False) -> None:
        """Record one run from its parts (``final_state`` None: abandoned; ``retry_cut``: by the retry
        bound, else sleep-set blocked).  ``trace`` and ``result``
        may be None for a run that is not the first to show a violation (a split search sends
        only those); they are needed for the first one, and the trace for ``keep_schedules``."""
        self.schedules += 1
        self.steps += steps
        if steps > self.longest_run:
            self.longest_run = steps
        if self.schedules_list is not None:
            assert trace is not None
            self.schedules_list.append(tuple(trace))
        if final_state is None:
            if retry_cut:
                self.retry_cut += 1
            else:
                self.sleep_blocked += 1
        else:
            self.final_states.add(final_state)
            if violation_ids:
                self.violating_runs += 1
                for vid in violation_ids:
                    hit = self.hits.get(vid)
                    if hit is None:
                        assert trace is not None and result is not None
                        self.hits[vid] = Hit(self.schedules, list(trace), result)
                    else:
                        hit.count += 1
        if self.progress is not None:
            self.progress(self.stats())

    def snapshot(self) -> dict[str, object]:
        """The counts so far, for a checkpoint."""
        return {
            "schedules": self.schedules, "sleep_blocked": self.sleep_blocked, "retry_cut": self.retry_cut,
            "coverage": self.coverage.counts(), "steps": self.steps,
            "violating_runs": self.violating_runs, "longest_run": self.longest_run,
            "final_states": list(self.final_states),
            "hits": {vid: (h.found_at, h.trace, h.result, h.count) for vid, h in self.hits.items()},
            "schedules_list": self.schedules_list,
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Go on from a :meth:`snapshot`."""
        self.schedules = snap["schedules"]
        self.sleep_blocked = snap["sleep_blocked"]
        self.retry_cut = snap["retry_cut"]
        self.coverage = Coverage()
        self.coverage.merge(snap["coverage"])
        self.steps = snap["steps"]
        self.violating_runs = snap["violating_runs"]
        self.longest_run = snap["longest_run"]
        self.final_states = set(snap["final_states"])
        self.hits = {vid: Hit(a, list(t), r, c) for vid, (a, t, r, c) in snap["hits"].items()}
        if self.schedules_list is not None:
            self.schedules_list = list(snap["schedules_list"] or [])

    def stats(self) -> Stats:
        return Stats(
            self.strategy,
            self.schedules,
            self.sleep_blocked,
            self.steps,
            self.violating_runs,
            len(self.final_states),
            self._estimate(),
        )

    def _estimate(self) -> int | None:
        if self.total is None or not self.schedules:
            return None
        return max(self.schedules, round(self.total()))  # never below what was done

    def stop_reason(self) -> str | None:
        """Why the search must stop now, or None to go on."""
        if self.interruptible and interrupt.requested():
            return INTERRUPTED
        if self.stop_on_first and self.hits:
            return FIRST_VIOLATION
        if self.max_schedules is not None and self.schedules >= self.max_schedules:
            return MAX_SCHEDULES
        if self.max_steps is not None and self.steps >= self.max_steps:
            return MAX_STEPS
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return TIME_BUDGET
        return None
