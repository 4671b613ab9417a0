"""PCT, probabilistic concurrency testing: Burckhardt, Kothari, Musuvathi and Nagarakatte, "A
randomized scheduler with probabilistic guarantees of finding bugs", ASPLOS 2010.

Each run gives the ``n`` threads distinct random priorities ``d .. d+n-1`` and picks ``d-1``
distinct priority-change points uniformly from the steps ``1..k``.  At every step the ready thread
with the highest priority moves; when the step count reaches the ``j``-th change point, the thread
that would move has its priority lowered to ``d-j`` (below every initial priority) first.  A bug of
depth ``d`` is then found by one run with probability at least ``1/(n * k^(d-1))``.

``k`` is estimated from a first run with the default (sequential) chooser and raised whenever a run
turns out longer.  All randomness comes from ``random.Random(seed)``.
"""

from __future__ import annotations

import random

from faultlab.errors import UserError
from faultlab.explore.collector import Collector
from faultlab.explore.program import Program
from faultlab.explore.replay import ReplayChooser
from faultlab.explore.results import MAX_SCHEDULES
from faultlab.sched.core import ModelThread, Scheduler


class PCTChooser:
    """One PCT run: priorities and change points are drawn from ``rng`` when the run starts."""

    def __init__(self, rng: random.Random, depth: int, k: int) -> None:
        self.rng = rng
        self.depth = depth
        self.k = max(k, 1)
        self.prio: list[int] = []
        self.changes: dict[int, int] = {}  # step number (1-based) -> new priority
        self.trace: list[int] = []

    def _start(self, nthreads: int) -> None:
        d = self.depth
        order = list(range(nthreads))
        self.rng.shuffle(order)
        self.prio = [0] * nthreads
        for rank, tid in enumerate(order):
            self.prio[tid] = d + rank
        points = self.rng.sample(range(1, self.k + 1), min(d - 1, self.k))
        self.changes = {step: d - 1 - j for j, step in enumerate(points)}

    def choose(self, sched: Scheduler, ready: list[ModelThread]) -> ModelThread:
        if not self.trace:
            self._start(len(sched.threads))
        prio = self.prio
        best = max(ready, key=lambda t: prio[t.tid])
        lowered = self.changes.get(len(self.trace) + 1)
        if lowered is not None:
            prio[best.tid] = lowered
            best = max(ready, key=lambda t: prio[t.tid])
        self.trace.append(best.tid)
        return best


def pct_search(
    program: Program, collector: Collector, *, seed: int, depth: int, max_schedules: int
) -> tuple[bool, str]:
    """Run up to ``max_schedules`` PCT runs of bug depth ``depth`` (or until the collector says stop).

    Returns ``(complete, stop_reason)``; a sample is never complete."""
    if depth < 1:
        raise UserError(f"PCT depth must be at least 1, not {depth}")
    probe = ReplayChooser([])
    program().run(probe)  # estimate k (not counted as a schedule)
    k = len(probe.trace)
    rng = random.Random(seed)
    for _ in range(max_schedules):
        chooser = PCTChooser(rng, depth, k)
        result = program().run(chooser)
        k = max(k, len(chooser.trace))
        collector.add(chooser.trace, result)
        reason = collector.stop_reason()
        if reason is not None:
            return False, reason
    return False, MAX_SCHEDULES
