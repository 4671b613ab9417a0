"""The front door: ``explore(program, strategy, ...)``.

Strategies:

* ``dpor``: exhaustive search with dynamic partial-order reduction and sleep sets (FG05), optionally
  preemption-bounded (BPOR); see :mod:`faultlab.explore.dfs`.
* ``dfs``: plain exhaustive search over every choice (the reference DPOR is cross-checked against),
  optionally preemption-bounded.
* ``pct``: probabilistic concurrency testing (Burckhardt et al. 2010) with bug depth ``depth``.
* ``random``: uniformly random ready thread at every step.

Every violation found is minimised (fewest preemptions, then fewest steps; see
:mod:`faultlab.explore.minimise`) and comes with the schedule that replays it.  The result holds no
wall-clock time: the same program, strategy and options give an identical result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from faultlab.errors import UserError
from faultlab.explore.checkpoint import Checkpoint
from faultlab.explore.collector import Collector
from faultlab.explore.dfs import tree_search
from faultlab.explore.minimise import minimise as minimise_schedule
from faultlab.explore.parallel import AdaptiveExecutor, Executor, InlineExecutor, parallel_search
from faultlab.explore.pct import pct_search
from faultlab.explore.program import Program
from faultlab.explore.random_walk import random_search
from faultlab.explore.replay import replay_traced
from faultlab.explore.results import EXHAUSTED, INTERRUPTED, ExploreResult, FoundViolation, Stats
from faultlab.sched import watchdog

STRATEGIES = ("dpor", "dfs", "pct", "random")
UNMINIMISED = ("livelock",)
"""Violations reported with the schedule that found them, without minimising it."""
DEFAULT_SAMPLES = 1000  # runs of pct and random when max_schedules is not given


def explore(
    program: Program,
    strategy: str = "dpor",
    *,
    bound: int | None = None,
    depth: int = 3,
    seed: int = 0,
    max_schedules: int | None = None,
    max_steps: int | None = None,
    budget_seconds: float | None = None,
    stop_on_first: bool = True,
    prefix: Sequence[int] = (),
    minimise: bool = True,
    minimise_budget: int = 2000,
    keep_schedules: bool = False,
    progress: Callable[[Stats], None] | None = None,
    jobs: int = 1,
    executor: Executor | None = None,
    split_top: int | None = None,
    checkpoint: Checkpoint | None = None,
) -> ExploreResult:
    """Explore the interleavings of ``program`` with ``strategy``.

    ``bound``: preemption bound (dpor, dfs).  ``depth``: PCT bug depth.  ``seed``: pct, random.
    ``max_schedules`` (default unlimited for dpor/dfs, 1000 for pct/random), ``max_steps`` and
    ``budget_seconds`` stop a search early (then ``complete`` is False and ``stop_reason`` says why).
    ``stop_on_first``: stop at the first violating run; otherwise go on and report every violation id
    once.  ``prefix``: search only below this schedule prefix (dpor, dfs; see
    :func:`faultlab.explore.split.split`).  ``minimise``: shrink each counterexample, spending at
    most ``minimise_budget`` runs on it.  ``keep_schedules``: keep every schedule run in the result.
    ``progress`` is called with the running :class:`Stats` after every schedule.  ``jobs`` (dpor,
    dfs): worker processes; more than one splits the search (:mod:`faultlab.explore.parallel`) with
    the same result.  ``executor`` runs the split search's tasks elsewhere (e.g. on Ray), and
    ``split_top`` fixes its split depth.  ``checkpoint`` (dpor, dfs) saves the progress of the
    search, and goes on from what it holds for this search; a search stopped by SIGINT or SIGTERM
    (see :mod:`faultlab.explore.interrupt`) then says ``interrupted``."""
    if strategy not in STRATEGIES:
        raise UserError(f"unknown exploration strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if max_schedules is not None and max_schedules < 1:
        raise UserError(f"max_schedules must be at least 1, not {max_schedules}")
    if prefix and strategy not in ("dpor", "dfs"):
        raise UserError(f"a schedule prefix only applies to the dpor and dfs strategies, not {strategy}")
    if bound is not None and strategy not in ("dpor", "dfs"):
        raise UserError(f"a preemption bound only applies to the dpor and dfs strategies, not {strategy}")
    collector = Collector(
        strategy,
        stop_on_first=stop_on_first,
        max_schedules=max_schedules,
        max_steps=max_steps,
        budget_seconds=budget_seconds,
        progress=progress,
        keep_schedules=keep_schedules,
    )
    if jobs < 1:
        raise UserError(f"jobs must be at least 1, not {jobs}")
    with watchdog.deadline(budget_seconds):  # a step stuck past the budget is stopped (sched.watchdog)
        return _explore(program, strategy, collector, bound=bound, depth=depth, seed=seed,
                        max_schedules=max_schedules, budget_seconds=budget_seconds, stop_on_first=stop_on_first,
                        prefix=prefix, minimise=minimise, minimise_budget=minimise_budget,
                        keep_schedules=keep_schedules, jobs=jobs, executor=executor, split_top=split_top,
                        checkpoint=checkpoint)


def _explore(program: Program, strategy: str, collector: Collector, *, bound: int | None, depth: int, seed: int,
             max_schedules: int | None, budget_seconds: float | None, stop_on_first: bool, prefix: Sequence[int],
             minimise: bool, minimise_budget: int, keep_schedules: bool, jobs: int, executor: Executor | None,
             split_top: int | None, checkpoint: Checkpoint | None) -> ExploreResult:
    sampling = strategy in ("pct", "random")
    pruned = False
    if strategy in ("dpor", "dfs") and (jobs > 1 or executor is not None or checkpoint is not None) and not prefix:
        if executor is not None:
            ex: Executor = executor
        else:
            ex = AdaptiveExecutor(program, jobs) if jobs > 1 else InlineExecutor(program)
        complete, reason, pruned, _tasks = parallel_search(
            program, collector, reduce=strategy == "dpor", bound=bound, executor=ex, top=split_top,
            stop_on_first=stop_on_first, keep_schedules=keep_schedules, max_schedules=max_schedules,
            budget_seconds=budget_seconds, checkpoint=checkpoint,
        )
    elif strategy in ("dpor", "dfs"):
        complete, reason, pruned = tree_search(
            program, collector, reduce=strategy == "dpor", bound=bound, prefix=prefix
        )
    elif strategy == "pct":
        n = max_schedules if max_schedules is not None else DEFAULT_SAMPLES
        complete, reason = pct_search(program, collector, seed=seed, depth=depth, max_schedules=n)
    else:
        n = max_schedules if max_schedules is not None else DEFAULT_SAMPLES
        complete, reason = random_search(program, collector, seed=seed, max_schedules=n)

    found: list[FoundViolation] = []
    if reason == INTERRUPTED:  # report what was found as it was found: no minimisation runs
        minimise = False
    for vid, hit in collector.hits.items():
        # A livelock's run is as long as the step limit (or waits out the watchdog): replayed once, not searched.
        if minimise and vid not in UNMINIMISED:
            m = minimise_schedule(program, hit.trace, vid, max_schedules=minimise_budget)
            found.append(
                FoundViolation(
                    m.violation,
                    m.schedule,
                    m.replayed.result,
                    m.preemptions,
                    hit.trace,
                    hit.found_at,
                    hit.count,
                )
            )
            continue
        rp = replay_traced(program, hit.trace)
        v = next((v for v in rp.result.violations if v.id == vid), hit.result.violations[0])
        until = v.step if v.step is not None and 0 <= v.step < len(rp.trace) else None
        found.append(
            FoundViolation(
                v, list(hit.trace), rp.result, rp.preemptions_until(until), hit.trace, hit.found_at, hit.count
            )
        )
    return ExploreResult(
        strategy=strategy,
        schedules=collector.schedules,
        sleep_blocked=collector.sleep_blocked,
        steps=collector.steps,
        complete=complete,
        stop_reason=reason,
        bound=bound,
        pruned_by_bound=pruned,
        seed=seed if sampling else None,
        violations=found,
        final_states=frozenset(collector.final_states),
        longest_run=collector.longest_run,
        prefix=list(prefix),
        schedules_list=collector.schedules_list,
        retry_cut=collector.retry_cut,
        coverage=None if sampling else collector.coverage,
        estimate=None if sampling else (collector.schedules if reason == EXHAUSTED else collector.stats().estimate),
    )
