"""DPOR keeps its happens-before state from one run to the next (``dfs._History``): a run that
replays the previous run's first steps starts from the state after them, with the objects renamed
to the new run's.  Checked against the same search that builds the state afresh for every run:
the same runs, in the same order, and the same races found in each."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultlab.designs import get_design
from faultlab.execution import ModelExecution
from faultlab.explore import dfs, toys
from faultlab.explore.program import Program
from faultlab.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent


Runs = list[tuple[tuple[int, ...], tuple[dfs.Request, ...]]]


def _runs(program: Program, fresh: bool, bound: int | None, cap: int) -> Runs:
    """(schedule, races found) of each run of a DPOR search; ``fresh``: no state kept between runs."""
    ts = dfs.TreeSearch(program, reduce=True, bound=bound)
    runs: Runs = []
    settle = ts._settle

    def recording_settle(requests: list[dfs.Request]) -> None:
        runs[-1] = (runs[-1][0], tuple(requests))
        settle(requests)

    ts._settle = recording_settle  # type: ignore[method-assign]
    for _ in range(cap):
        if fresh:
            ts.history = None
        runs.append(((), ()))
        trace, _, _ = ts.run_one()
        runs[-1] = (tuple(trace), runs[-1][1])
        if not ts.advance():
            break
    return runs


@pytest.mark.parametrize(("scenario", "design", "bound", "cap"), [
    ("races/hole-double-zero.toml", "v4.7", None, 250),
    # under a preemption bound (no sleep sets); a thread's ("thread", tid) object is equal in every
    # run, so a stale entry for it would be found again here
    ("races/three-hole-readers.toml", "v4.7", 1, 120),
    ("seed/cow-vs-truncate.toml", "xip", None, 400),
])
def test_kept_state_finds_the_races_of_state_built_afresh(scenario: str, design: str, bound: int | None,
                                                         cap: int) -> None:
    sc = load_scenario(str(ROOT / "scenarios" / scenario))
    d = get_design(design)

    def program() -> ModelExecution:
        return ModelExecution(sc, d, record_steps=False)

    kept = _runs(program, False, bound, cap)
    fresh = _runs(program, True, bound, cap)
    assert kept == fresh
    assert sum(1 for _, races in kept if races) > len(kept) // 2  # the comparison is not vacuous


@pytest.mark.parametrize("make", [toys.two_locks, toys.ordering, toys.handoff, lambda: toys.counter(3)])
def test_kept_state_on_toy_programs(make: object) -> None:
    program = make()  # type: ignore[operator]
    assert _runs(program, False, None, 5000) == _runs(program, True, None, 5000)
