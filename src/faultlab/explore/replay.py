"""Replay: run a program along a given schedule (list of thread ids), then on by a fixed default.

After the list is exhausted the run continues deterministically: the thread that made the previous
step goes on while it is ready, otherwise the ready thread with the lowest id goes (see
:func:`faultlab.explore.common.default_choice`).  That continuation never preempts, so a schedule can
be cut right after its last non-default choice and still replay the same run: that is how
schedules are stored compactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from faultlab.explore.common import default_choice
from faultlab.explore.program import Program, RunResultLike, ScheduleError
from faultlab.explore.schedule import check_matches, decode
from faultlab.sched.core import ModelThread, Scheduler


class ReplayChooser:
    """Picks exactly the threads named by ``tids``, then continues with the default choice.

    A named thread that cannot move is an error (ScheduleError, a UserError: "schedule step N names
    thread T, which is blocked") unless ``lenient``, in which case the default choice is taken
    instead: the minimiser uses that to try edited schedules.  Records what actually ran."""

    def __init__(self, tids: Sequence[int], lenient: bool = False) -> None:
        self.tids = list(tids)
        self.lenient = lenient
        self.trace: list[int] = []  # thread chosen at every step
        self.preemption_points: list[int] = []  # steps that switched away from a still-ready thread
        self.nondefault: list[int] = []  # steps whose choice differs from the default choice

    def choose(self, sched: Scheduler, ready: list[ModelThread]) -> ModelThread:
        k = len(self.trace)
        prev = self.trace[-1] if self.trace else -1
        default = default_choice(prev, ready)
        chosen = default
        if k < len(self.tids):
            want = self.tids[k]
            for t in ready:
                if t.tid == want:
                    chosen = t
                    break
            else:
                if not self.lenient:
                    raise ScheduleError(_not_ready_message(k, want, sched))
        if chosen is not default:
            self.nondefault.append(k)
            if default.tid == prev:
                self.preemption_points.append(k)
        self.trace.append(chosen.tid)
        return chosen


def _not_ready_message(k: int, tid: int, sched: Scheduler) -> str:
    if not 0 <= tid < len(sched.threads):
        return f"schedule step {k} names thread {tid}, which does not exist (there are {len(sched.threads)})"
    t = sched.threads[tid]
    state = "has finished" if t.finished else "is blocked"
    return f"schedule step {k} names thread {tid} ({t.name}), which {state}"


@dataclass
class Replayed:
    """A replayed run and what its chooser saw."""

    result: RunResultLike
    trace: list[int]  # the full schedule that ran
    preemption_points: list[int] = field(default_factory=list)
    nondefault: list[int] = field(default_factory=list)

    def preemptions_until(self, step: int | None) -> int:
        """Preemptions among steps ``0..step`` (all steps if None)."""
        if step is None:
            return len(self.preemption_points)
        return sum(1 for p in self.preemption_points if p <= step)

    def shortest_schedule(self, until: int | None = None) -> list[int]:
        """The shortest tid list that replays this run identically up to step ``until`` (inclusive;
        the whole run if None): the trace cut after its last non-default choice."""
        last = -1
        for k in self.nondefault:
            if until is not None and k > until:
                break
            last = k
        return self.trace[: last + 1]


def replay_traced(program: Program, tids: Sequence[int], lenient: bool = False) -> Replayed:
    """Replay ``tids`` (then the default) and return the run with the schedule that actually ran."""
    chooser = ReplayChooser(tids, lenient=lenient)
    result = program().run(chooser)
    return Replayed(result, chooser.trace, chooser.preemption_points, chooser.nondefault)


def replay(program: Program, tids: Sequence[int]) -> RunResultLike:
    """Run ``program`` once along ``tids``, continuing with the default choice after them."""
    return replay_traced(program, tids).result


def replay_schedule(program: Program, schedule: str, *, scenario_digest: str, design: str) -> RunResultLike:
    """Decode a schedule string, refuse it if it was recorded against another scenario or design,
    and replay it."""
    digest, recorded_design, tids = decode(schedule)
    check_matches(digest, recorded_design, scenario_digest=scenario_digest, current_design=design)
    return replay(program, tids)
