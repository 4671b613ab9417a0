"""The coverage of an exhaustive search (faultlab.explore.coverage): what it explored at its decision
points, what the preemption bound pruned and what the reduction left out, checked against the shape
of the search tree on generated toy programs, and the same however the search is split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_explore_property import COMMON, lock_programs, programs

from faultlab.explore import toys
from faultlab.explore.explorer import explore
from faultlab.explore.parallel import InlineExecutor
from faultlab.explore.results import ExploreResult

ROOT = Path(__file__).resolve().parent.parent


def _search(prog: toys.ToyProgram, strategy: str, bound: int | None = None, top: int | None = None) -> ExploreResult:
    executor = InlineExecutor(prog) if top is not None else None
    return explore(prog, strategy, bound=bound, stop_on_first=False, minimise=False, executor=executor,
                   split_top=top)


def _check_tree(r: ExploreResult) -> None:
    """A complete search's runs are the leaves of its tree: one, plus one more for every explored
    branch of a decision point beyond its first.  Every alternative is counted exactly once."""
    cov = r.coverage
    assert cov is not None and r.stop_reason == "exhausted"
    assert r.schedules == 1 + cov.explored - cov.points
    assert cov.explored + cov.bound + cov.reduction == cov.alternatives
    assert cov.reduction >= 0 and cov.explored >= cov.points
    assert (cov.bound > 0) == (r.pruned_by_bound and not r.retry_cut)


@settings(COMMON, max_examples=80)
@given(programs(), st.sampled_from([None, 0, 1, 2]))
def test_coverage_counts_the_tree_searched(prog: toys.ToyProgram, bound: int | None) -> None:
    plain = _search(prog, "dfs", bound)
    dpor = _search(prog, "dpor", bound)
    _check_tree(plain)
    _check_tree(dpor)
    assert plain.coverage is not None and dpor.coverage is not None
    if bound is None:  # plain search leaves nothing out; nothing is pruned by a bound that is not there
        assert plain.coverage.reduction == 0 and plain.coverage.bound == 0 and dpor.coverage.bound == 0
        assert plain.coverage.explored == plain.coverage.alternatives
        # DPOR explores a part of plain search's tree, which has every decision point it meets
        assert dpor.coverage.explored <= plain.coverage.explored
        assert dpor.coverage.points <= plain.coverage.points


@settings(COMMON, max_examples=60)
@given(lock_programs(), st.integers(min_value=1, max_value=6), st.sampled_from([None, 1]))
def test_a_split_search_covers_what_one_process_does(prog: toys.ToyProgram, top: int, bound: int | None) -> None:
    for strategy in ("dpor", "dfs"):
        one = _search(prog, strategy, bound)
        split = _search(prog, strategy, bound, top=top)
        assert one.coverage is not None and split.coverage is not None
        assert split.coverage.counts() == one.coverage.counts()
        assert (split.schedules, split.sleep_blocked) == (one.schedules, one.sleep_blocked)
        _check_tree(split)


def test_dpor_leaves_out_what_plain_search_explores() -> None:
    """Three threads on variables of their own: plain search explores every order, DPOR one."""
    prog = toys.ToyProgram(tuple((toys.Write(f"p{t}", 1), toys.Write(f"p{t}", 2)) for t in range(3)))
    plain, dpor = _search(prog, "dfs"), _search(prog, "dpor")
    assert plain.coverage is not None and dpor.coverage is not None
    assert dpor.schedules == 1 and dpor.coverage.explored == dpor.coverage.points
    assert dpor.coverage.reduction == dpor.coverage.alternatives - dpor.coverage.points > 0
    assert plain.schedules > 1 and plain.coverage.reduction == 0


def test_samples_have_no_coverage() -> None:
    r = explore(toys.counter(2), "random", max_schedules=5, stop_on_first=False, minimise=False)
    assert r.coverage is None and r.estimate is None


def test_explore_reports_coverage_and_the_estimate() -> None:
    """``--json`` gives the coverage with the verdict and the estimated total and time to go with
    the timing; the text report gives the coverage under each verdict line."""
    cmd = [sys.executable, "-m", "faultlab", "explore", "scenarios/seed/cow-vs-truncate.toml",
           "--design", "v4.7", "--jobs", "1"]
    doc = json.loads(subprocess.run([*cmd, "--json", "--bound", "1"], cwd=ROOT, capture_output=True, text=True,
                                    check=True).stdout)
    d = doc["designs"][0]
    cov = d["coverage"]
    assert d["schedules"] == 1 + cov["explored"] - cov["decision_points"]
    assert cov["explored"] + cov["pruned_by_bound"] + cov["left_out_by_reduction"] == cov["alternatives"]
    assert cov["pruned_by_bound"] > 0 and not d["complete"]
    assert doc["timing"]["v4.7"]["estimated_schedules"] == d["schedules"]  # a bounded tree, all run
    assert doc["timing"]["v4.7"]["seconds_to_go"] == 0
    capped = json.loads(subprocess.run([*cmd, "--json", "--max-schedules", "10"], cwd=ROOT, capture_output=True,
                                       text=True, check=True).stdout)
    timing = capped["timing"]["v4.7"]
    left = timing["estimated_schedules"] - 10
    assert capped["designs"][0]["schedules"] == 10 and left > 0
    # (both figures are rounded to the millisecond: the elapsed time's rounding is scaled by left / 10)
    slack = 0.001 + 0.0005 * left / 10
    assert timing["seconds_to_go"] == pytest.approx(left * timing["elapsed_seconds"] / 10, rel=0.05, abs=slack)
    text = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "left out by the reduction, 0 pruned by the bound" in text
    assert "coverage: 0 runs sleep-set blocked;" in text
