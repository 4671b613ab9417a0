"""Counterexample minimisation: the same violation id with the fewest preemptions, then the fewest
steps up to the violation, then the shortest schedule to write down.

1. **Iterative preemption bounding** (CHESS: Musuvathi and Qadeer, PLDI 2007): search with DPOR at
   preemption bound 0, 1, 2, ... (BPOR backtrack points, see :mod:`faultlab.explore.dfs`) until a run
   shows the violation id; the first bound that does is the fewest preemptions any schedule needs
   (up to the schedule budget).  That bound's tree is searched on, within the budget, for a run that
   detects the violation in fewer steps.
2. **Local edits** of the best schedule so far, each replayed (leniently: a named thread that cannot
   move is replaced by the default choice) and kept only if it shows the same violation id and is
   better: drop a preemption (cut the schedule there, so the preempted thread goes on), or delete
   the block of steps the preempting thread ran.
3. **Cut** the schedule after its last non-default choice up to the detection step: the default
   continuation (:mod:`faultlab.explore.replay`) then reproduces the run up to the violation.

Every candidate costs one replay; ``max_schedules`` caps the total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from faultlab.errors import UserError
from faultlab.explore.common import RunCut
from faultlab.explore.dfs import TreeSearch
from faultlab.explore.program import Program, ScheduleError, ViolationLike
from faultlab.explore.replay import Replayed, replay_traced


@dataclass
class Minimised:
    schedule: list[int]  # the thread ids to replay (then the default continuation)
    replayed: Replayed  # the replay of ``schedule``
    violation: ViolationLike  # the violation as that replay reports it
    preemptions: int  # preemptions up to the detection step
    steps: int  # steps up to and including the detection step (all steps if not known)
    schedules: int  # replays and search runs spent


@dataclass
class _Candidate:
    key: tuple[int, int, int]
    schedule: list[int]
    replayed: Replayed
    violation: ViolationLike


class _Budget:
    def __init__(self, n: int) -> None:
        self.left = n
        self.spent = 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.spent += 1
        return True


def _evaluate(program: Program, tids: Sequence[int], vid: str, lenient: bool) -> _Candidate | None:
    try:
        rp = replay_traced(program, tids, lenient=lenient)
    except (ScheduleError, RunCut):  # a candidate the retry bound cuts shows nothing
        return None
    v = next((v for v in rp.result.violations if v.id == vid), None)
    if v is None:
        return None
    until = v.step if v.step is not None and 0 <= v.step < len(rp.trace) else None
    steps = until + 1 if until is not None else len(rp.trace)
    schedule = rp.shortest_schedule(until)
    return _Candidate((rp.preemptions_until(until), steps, len(schedule)), schedule, rp, v)


def _bounded_search(program: Program, vid: str, best: _Candidate, budget: _Budget, extra: int) -> _Candidate:
    for bound in range(best.key[0]):
        ts = TreeSearch(program, reduce=True, bound=bound)
        found = False
        after = 0  # runs since the first hit at this bound (looking for fewer steps)
        while after <= extra and budget.take():
            after += 1 if found else 0
            trace, result, _ = ts.run_one()
            if result is not None and any(v.id == vid for v in result.violations):
                if budget.take():
                    cand = _evaluate(program, trace, vid, lenient=False)
                    if cand is not None and cand.key < best.key:
                        best = cand
                        found = True
            if not ts.advance():
                break
        if found or budget.left <= 0:
            break
    return best


def _neighbours(best: _Candidate) -> list[list[int]]:
    rp = best.replayed
    until = best.key[1] - 1
    trace = rp.trace[: until + 1]
    points = [p for p in rp.preemption_points if p <= until]
    out: list[list[int]] = []
    for p in reversed(points):
        out.append(trace[:p])  # no switch here: the preempted thread goes on
    for p in reversed(points):
        end = p
        while end < len(trace) and trace[end] == trace[p]:
            end += 1
        out.append(trace[:p] + trace[end:])  # without the preempting block
    return out


def minimise(
    program: Program,
    tids: Sequence[int],
    violation_id: str,
    *,
    max_schedules: int = 2000,
    bound_search: bool = True,
    extra_after_hit: int = 200,
) -> Minimised:
    """A schedule showing ``violation_id`` with the fewest preemptions, then fewest steps, found
    from the violating schedule ``tids`` (which must reproduce it: UserError otherwise).

    ``max_schedules`` caps the runs spent; ``extra_after_hit`` caps the runs spent at the smallest
    bound that shows the violation, looking for a run that shows it in fewer steps."""
    budget = _Budget(max_schedules)
    budget.take()
    best = _evaluate(program, tids, violation_id, lenient=False)
    if best is None:
        raise UserError(f"the schedule does not reproduce violation {violation_id!r}: nothing to minimise")
    if bound_search and best.key[0] > 0:
        best = _bounded_search(program, violation_id, best, budget, extra_after_hit)
    improved = True
    while improved:
        improved = False
        for tids2 in _neighbours(best):
            if not budget.take():
                break
            cand = _evaluate(program, tids2, violation_id, lenient=True)
            if cand is not None and cand.key < best.key:
                best = cand
                improved = True
                break
    # The cut schedule replays the same run up to the detection step; confirm and keep its replay.
    final = _evaluate(program, best.schedule, violation_id, lenient=False)
    budget.spent += 1
    if final is None or final.key[:2] != best.key[:2]:
        full = best.replayed.trace
        final = _evaluate(program, full, violation_id, lenient=False)
        budget.spent += 1
        if final is None:  # pragma: no cover - only for a nondeterministic program
            raise UserError(
                f"violation {violation_id!r} did not reproduce on replay: the program is not deterministic"
            )
        final.schedule = list(full)
    return Minimised(
        final.schedule, final.replayed, final.violation, final.key[0], final.key[1], budget.spent
    )
