"""Random walk: at every step, a uniformly random ready thread moves.

Seeded with its own ``random.Random(seed)`` (never the global RNG), so a seed names a sequence of
schedules exactly.  Cheap and surprisingly effective (Shuttle, Fray); no completeness claim.
"""

from __future__ import annotations

import random

from faultlab.explore.collector import Collector
from faultlab.explore.program import Program
from faultlab.explore.results import MAX_SCHEDULES
from faultlab.sched.core import ModelThread, Scheduler


class RandomChooser:
    """Picks a uniformly random ready thread; records the schedule."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.trace: list[int] = []

    def choose(self, sched: Scheduler, ready: list[ModelThread]) -> ModelThread:
        t = ready[self.rng.randrange(len(ready))] if len(ready) > 1 else ready[0]
        self.trace.append(t.tid)
        return t


def random_search(
    program: Program, collector: Collector, *, seed: int, max_schedules: int
) -> tuple[bool, str]:
    """Run up to ``max_schedules`` random walks (or until the collector says stop).

    Returns ``(complete, stop_reason)``; a sample is never complete."""
    rng = random.Random(seed)
    for _ in range(max_schedules):
        chooser = RandomChooser(rng)
        result = program().run(chooser)
        collector.add(chooser.trace, result)
        reason = collector.stop_reason()
        if reason is not None:
            return False, reason
    return False, MAX_SCHEDULES
