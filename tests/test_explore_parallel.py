"""A split search (coordinator + tasks) explores exactly what one process explores: the same runs
in the same order, so the same counts, final states and first counterexample, whatever the split
depth and the number of workers."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlab.designs import get_design
from faultlab.explore import toys
from faultlab.explore.collector import Collector
from faultlab.explore.dfs import tree_search
from faultlab.explore.explorer import explore
from faultlab.explore.parallel import InlineExecutor, PoolExecutor, SplitSearch, Task, TaskResult, run_task
from faultlab.exploring import ScenarioProgram, SearchOptions, explore_design
from faultlab.scenario import load_scenario
from tests.test_explore_property import COMMON, programs

ROOT = Path(__file__).resolve().parent.parent


def _same(a: object, b: object) -> None:
    assert a.summary() == b.summary()  # type: ignore[attr-defined]
    assert a.schedules_list == b.schedules_list  # type: ignore[attr-defined]
    assert a.final_states == b.final_states  # type: ignore[attr-defined]


@settings(COMMON, max_examples=120)
@given(programs(), st.sampled_from(["dpor", "dfs"]), st.sampled_from([None, None, 0, 1, 2]),
       st.integers(min_value=1, max_value=9), st.booleans())
def test_split_search_runs_what_one_process_runs(prog: toys.ToyProgram, strategy: str, bound: int | None,
                                                 top: int, stop_on_first: bool) -> None:
    one = explore(prog, strategy, bound=bound, stop_on_first=stop_on_first, minimise=False, keep_schedules=True)
    split = explore(prog, strategy, bound=bound, stop_on_first=stop_on_first, minimise=False, keep_schedules=True,
                    executor=InlineExecutor(prog), split_top=top)
    _same(one, split)


@pytest.mark.parametrize("top", [1, 3, 6])
def test_split_search_on_catalogue_with_limits(top: int) -> None:
    prog = toys.counter(3)
    for cap in (1, 7, 40):
        one = explore(prog, "dpor", max_schedules=cap, stop_on_first=False, minimise=False, keep_schedules=True)
        split = explore(prog, "dpor", max_schedules=cap, stop_on_first=False, minimise=False, keep_schedules=True,
                        executor=InlineExecutor(prog), split_top=top)
        _same(one, split)
        assert split.schedules == min(cap, one.schedules)


def test_worker_processes_give_the_result_of_one_process() -> None:
    prog = toys.counter(3, padding=1)
    one = explore(prog, "dpor", stop_on_first=False, keep_schedules=True)
    for top in (2, 5):
        two = explore(prog, "dpor", stop_on_first=False, keep_schedules=True,
                      executor=PoolExecutor(prog, 2), split_top=top)
        _same(one, two)
        assert [f.schedule for f in one.violations] == [f.schedule for f in two.violations]


def test_first_counterexample_is_the_one_of_one_process() -> None:
    for prog in (toys.counter(3), toys.ordering(), toys.two_locks()):
        one = explore(prog, "dpor")
        two = explore(prog, "dpor", executor=PoolExecutor(prog, 2), split_top=2)
        assert one.summary() == two.summary()
        assert [(f.found_at, f.found_schedule, f.schedule) for f in one.violations] == \
            [(f.found_at, f.found_schedule, f.schedule) for f in two.violations]


@pytest.mark.parametrize("design", ["v4.7", "v4.7-wake-one"])
def test_model_race_scenario_same_with_two_workers(design: str) -> None:
    scenario = load_scenario(str(ROOT / "scenarios/races/three-hole-readers.toml"))
    one = explore_design(scenario, get_design(design), bound=1, options=SearchOptions(jobs=1))
    two = explore_design(scenario, get_design(design), bound=1, options=SearchOptions(jobs=2))
    assert one.json() == two.json()
    assert one.result.final_states == two.result.final_states
    assert one.result.steps == two.result.steps


def test_lockdep_contributions_merge_in_order() -> None:
    # The coordinator adds each task's first-seen lock dependencies in commit order: the same graph
    # as one process, with the same "where" of each edge.
    scenario = load_scenario(str(ROOT / "scenarios/seed/cow-vs-truncate.toml"))
    design = get_design("v4.7")
    one = ScenarioProgram(scenario, design)
    explore(one, "dpor", stop_on_first=False, minimise=False)
    split = ScenarioProgram(scenario, design)
    explore(split, "dpor", stop_on_first=False, minimise=False, executor=InlineExecutor(split), split_top=20)
    assert one.lockdep.edges and one.lockdep.edges == split.lockdep.edges


def test_first_run_cut_by_the_retry_bound_splits_like_one_process() -> None:
    """The coordinator sizes its split from the default schedule's run; when the retry bound cuts
    that very run (mmap13's SIGBUS store retries filemap_fault), it must still split, not raise."""
    scenario = load_scenario(str(ROOT / "scenarios/ported/mmap13.toml"))
    one = explore_design(scenario, get_design("v4.0"), retry_bound=0, options=SearchOptions(jobs=1))
    two = explore_design(scenario, get_design("v4.0"), retry_bound=0, options=SearchOptions(jobs=2))
    assert one.json() == two.json()
    cut = one.result.retry_cut
    assert cut > 0 and one.result.sleep_blocked == 0
    assert not one.result.complete and one.result.why_incomplete() == f"the retry bound cut {cut} runs"


def test_races_streamed_while_a_task_runs_start_its_siblings_and_change_nothing() -> None:
    """Workers stream each task's nodes and races as found; the coordinator settles those of the
    task it commits next at once, so the branches they add start while that task still runs.  The
    runs, their order and the final states are still exactly one process's."""
    prog = toys.counter(3, padding=1)
    one = Collector("dpor", stop_on_first=False, keep_schedules=True)
    tree_search(prog, one, reduce=True)
    for top in (1, 2, 4):
        two = Collector("dpor", stop_on_first=False, keep_schedules=True)
        search = SplitSearch(prog, PoolExecutor(prog, 2), True, None, top, stop_on_first=False, keep_schedules=True)
        assert search.search(two) == (True, "exhausted", False)
        assert two.schedules_list == one.schedules_list and two.final_states == one.final_states
        assert search.streamed > 0  # the early settling happened


class _GiveBackFirst(InlineExecutor):
    """Has its first task stop as AdaptiveExecutor's does when the workers start: it hands off if
    it has two branches left of its own, else it is given back unexplored."""

    def __init__(self, program: toys.ToyProgram) -> None:
        super().__init__(program)
        self.first: TaskResult | None = None

    def submit(self, task: Task) -> Future[TaskResult]:
        if self.first is not None:
            return super().submit(task)
        res = self.first = run_task(self.program, Task(**{**task.__dict__, "give_back_at": 0.0}))
        fut: Future[TaskResult] = Future()
        fut.set_result(res)
        return fut


def test_a_task_stopped_as_workers_start_hands_off_or_is_run_again_and_counts_once() -> None:
    """With two branches of its own left it hands off (its runs count); with fewer it is given
    back, run again, and its runs counted once; at every split depth the result is one process's."""
    kinds = set()
    for prog in (toys.counter(3), toys.ordering(), toys.counter(2, padding=2)):
        one = explore(prog, "dpor", stop_on_first=False, minimise=False, keep_schedules=True)
        for top in range(1, 12):
            executor = _GiveBackFirst(prog)
            again = explore(prog, "dpor", stop_on_first=False, minimise=False, keep_schedules=True,
                            executor=executor, split_top=top)
            _same(one, again)
            first = executor.first
            assert first is not None
            if first.rest is not None:
                assert len(first.runs) == 1 and not first.given_back
                kinds.add("handed off")
            elif first.given_back:
                assert not first.runs
                kinds.add("given back")
    assert kinds == {"handed off", "given back"}


def test_the_progress_bar_counts_the_runs_of_tasks_still_running() -> None:
    import io

    from rich.console import Console

    from faultlab.explore.results import Stats
    from faultlab.report import progress as bar

    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    shown = bar.ExploreProgress(console, "v4.7", None, True)
    shown.started -= bar.SHOW_AFTER_SECONDS + 1
    shown.update(Stats("dpor", 10, 0, 100, 0, 1, estimate=12, running=5))
    assert shown.progress is not None
    description = shown.progress.tasks[0].description
    shown.progress.stop()
    assert description.startswith("v4.7: 15 of ~15 ") and "schedules" in description


def test_a_search_stopped_at_the_last_run_of_the_tree_is_complete_with_any_split() -> None:
    """One process calls a search complete when the run it stops at (a violation, the schedule
    limit) was the tree's last; the split search must say the same (it used to say incomplete)."""
    scenario = load_scenario(str(ROOT / "scenarios/races/cow-unlock-mismatch.toml"))
    one = explore_design(scenario, get_design("v4.3-cow-unlock-mismatch"), options=SearchOptions(jobs=1))
    two = explore_design(scenario, get_design("v4.3-cow-unlock-mismatch"), options=SearchOptions(jobs=2))
    assert one.result.complete and one.result.stop_reason == "violation"
    assert one.json() == two.json()
    for prog in (toys.counter(3), toys.ordering()):
        total = explore(prog, "dpor", stop_on_first=False, minimise=False).schedules
        for top in (1, 3):
            ref = explore(prog, "dpor", stop_on_first=False, minimise=False, max_schedules=total)
            split = explore(prog, "dpor", stop_on_first=False, minimise=False, max_schedules=total,
                            executor=InlineExecutor(prog), split_top=top)
            assert ref.complete and split.summary() == ref.summary()


class HandOffAfter(InlineExecutor):
    """Has every task hand off its rest after ``runs`` runs, as a pool's task does when asked."""

    def __init__(self, program: toys.ToyProgram, runs: int) -> None:
        super().__init__(program)
        self.runs = runs

    def submit(self, task: Task) -> Future[TaskResult]:
        return super().submit(Task(**{**task.__dict__, "hand_off_after": self.runs}))


@settings(COMMON, max_examples=120)
@given(programs(), st.sampled_from(["dpor", "dfs"]), st.sampled_from([None, None, 0, 1, 2]),
       st.integers(min_value=1, max_value=9), st.integers(min_value=1, max_value=4), st.booleans())
def test_a_task_that_hands_off_its_rest_changes_nothing(prog: toys.ToyProgram, strategy: str, bound: int | None,
                                                        top: int, runs: int, stop_on_first: bool) -> None:
    """A task asked to hand off stops after a run and gives its own nodes to the coordinator, which
    explores the rest of its subtree as new tasks: the runs, in their order, are one process's."""
    one = explore(prog, strategy, bound=bound, stop_on_first=stop_on_first, minimise=False, keep_schedules=True)
    split = explore(prog, strategy, bound=bound, stop_on_first=stop_on_first, minimise=False, keep_schedules=True,
                    executor=HandOffAfter(prog, runs), split_top=top)
    _same(one, split)
    assert split.coverage is not None and one.coverage is not None
    assert split.coverage.counts() == one.coverage.counts()


@pytest.mark.parametrize("runs", [1, 2, 5])
def test_hand_offs_happen_and_keep_limits_and_the_estimate_sane(runs: int) -> None:
    prog = toys.counter(3, padding=1)
    one = Collector("dpor", stop_on_first=False, keep_schedules=True)
    tree_search(prog, one, reduce=True)
    for cap in (None, 7, 40):
        ref = Collector("dpor", stop_on_first=False, keep_schedules=True, max_schedules=cap)
        tree_search(prog, ref, reduce=True)
        two = Collector("dpor", stop_on_first=False, keep_schedules=True, max_schedules=cap)
        search = SplitSearch(prog, HandOffAfter(prog, runs), True, None, 2, stop_on_first=False,
                             keep_schedules=True, max_schedules=cap)
        search.search(two)
        assert two.schedules_list == ref.schedules_list and two.final_states == ref.final_states
        assert search.handed_off > 0
        if cap is None:
            assert two.schedules_list == one.schedules_list


def test_a_pool_worker_hands_off_when_asked_and_the_pool_still_gives_one_process_result() -> None:
    prog = toys.counter(3, padding=1)
    pool = PoolExecutor(prog, 2)
    try:
        pool.hand_off(7)  # asked before it starts: it hands off after its first run
        asked = pool.submit(Task((), 0, 2, True, None, False, False, ident=7)).result()
        other = pool.submit(Task((), 0, 2, True, None, False, False, ident=8)).result()
    finally:
        pool.close()
    assert asked.rest is not None and len(asked.runs) == 1 and not asked.exhausted
    assert other.rest is None and other.exhausted and len(other.runs) > 1
    one = Collector("dpor", stop_on_first=False, keep_schedules=True)
    tree_search(prog, one, reduce=True)
    for top in (1, 4):
        two = Collector("dpor", stop_on_first=False, keep_schedules=True)
        search = SplitSearch(prog, PoolExecutor(prog, 2), True, None, top, stop_on_first=False, keep_schedules=True)
        assert search.search(two) == (True, "exhausted", False)
        # (Whether the coordinator asked a task to hand off here depends on timing: the first half
        # of this test asks one deterministically.)
        assert two.schedules_list == one.schedules_list and two.final_states == one.final_states
