"""The running estimate of the total (Stats.estimate; faultlab.explore.estimate): what the progress
bar and ``--json`` show while an exhaustive search runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultlab.designs import get_design
from faultlab.explore import toys
from faultlab.explore.dfs import _Node
from faultlab.explore.estimate import ROOT_STEPS, BranchSizes, estimate_total
from faultlab.explore.explorer import explore
from faultlab.explore.parallel import InlineExecutor
from faultlab.explore.results import Stats
from faultlab.exploring import SearchOptions, explore_design
from faultlab.scenario import load_scenario
from tests.test_explore_parallel import HandOffAfter

ROOT = Path(__file__).resolve().parent.parent


def _node(order: list[int], pos: int, start: int, bstart: int, nexp: int, first: int) -> _Node:
    node = _Node(0b111, order[pos], 0, 0, 0, -1, start)
    node.order = order
    node.pos = pos
    node.bstart = bstart
    node.nexp = nexp
    node.first = first
    return node


def test_estimate_counts_finished_branches_and_sizes_the_rest_by_the_learned_ratio() -> None:
    sizes = BranchSizes()
    sizes.merge(10, 5)  # later branches have been half as large as the first
    # The top node is in its second (last) branch after a first of 10 runs; the node below is in
    # the first of three branches, and the run just done is its first leaf.
    top = _node([0, 1], 1, 0, 10, 1, 10)
    below = _node([1, 0, 2], 0, 10, 10, 0, 0)
    assert estimate_total([top, below], sizes, sleep_sets=False) == 10 + 1 + 2 * 0.5
    # asleep branches are not counted
    below.sleep = 1 << 2
    assert estimate_total([top, below], sizes, sleep_sets=True) == 10 + 1 + 0.5
    # A path with no branch point among its first steps is expected to gain one there.
    chain = [_node([0], 0, 0, 0, 0, 0) for _ in range(ROOT_STEPS)]
    first = _node([0, 1], 0, 0, 0, 0, 0)
    assert estimate_total([*chain, first], sizes, sleep_sets=False) == 1.5 * 1.5


def _estimates(spec: str, jobs: int) -> tuple[int, list[tuple[int, int | None]]]:
    path, design = spec.split(":")
    seen: list[tuple[int, int | None]] = []

    def progress(stats: Stats) -> None:
        seen.append((stats.schedules, stats.estimate))

    verdict = explore_design(load_scenario(str(ROOT / path)), get_design(design), progress=progress,
                             options=SearchOptions(jobs=jobs))
    assert verdict.result.complete
    return verdict.result.schedules, seen


@pytest.mark.parametrize("spec", [
    # Since DPOR reverses lock races at the acquire, this search is 66 schedules and the estimate at
    # 10% is 243 (3.7x): the target is missed here, and the test says so until it is met.
    pytest.param("scenarios/races/generic-503-dax.toml:v4.7",
                 marks=pytest.mark.xfail(strict=True, reason="estimate 3.7x off at 10% (issue 13, not met)")),
    "scenarios/races/mkwrite-vs-truncate.toml:v4.7",
    "scenarios/races/hole-write-fault-vs-write.toml:v4.7",
])
def test_estimate_of_a_complete_search_at_10_percent_is_within_2x(spec: str) -> None:
    real, seen = _estimates(spec, jobs=1)
    assert len(seen) == real
    at_10 = next(e for s, e in seen if s >= 0.10 * real)
    assert at_10 is not None and real / 2 <= at_10 <= 2 * real, (at_10, real)
    for s, e in seen:
        assert e is not None and e >= s  # never below what was done
    assert seen[-1] == (real, real)  # exact at the end


def test_split_search_gives_an_estimate_never_below_what_was_done() -> None:
    prog = toys.counter(3, padding=1)
    for top, executor in ((2, InlineExecutor(prog)), (5, InlineExecutor(prog)), (2, HandOffAfter(prog, 3))):
        seen: list[Stats] = []
        result = explore(prog, "dpor", stop_on_first=False, executor=executor, split_top=top,
                         progress=seen.append)
        assert len(seen) == result.schedules > 10
        for stats in seen:
            assert stats.estimate is not None and stats.estimate >= stats.schedules
        assert seen[-1].estimate == result.schedules  # exact at the end
