"""Exploring a scenario under designs: the glue between the model (ModelExecution), the explorer
and the reports, shared by the CLI, the comparison and the pytest plugin."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from faultlab.checks.lockdep import LockDep
from faultlab.designs.base import Design
from faultlab.execution import ModelExecution, ModelRunResult
from faultlab.explore.checkpoint import Checkpoint
from faultlab.explore.explorer import explore
from faultlab.explore.parallel import Executor
from faultlab.explore.replay import ReplayChooser
from faultlab.explore.results import INTERRUPTED, ExploreResult, Stats
from faultlab.explore.schedule import check_matches, decode, encode
from faultlab.scenario.model import Scenario
from faultlab.sched import watchdog

DEFAULT_RETRY_BOUND = 2
"""How many times an explored run lets one thread go round one kernel retry loop (see
faultlab.kernel.kernel.Kernel.retry); a run that needs more is cut, and the search then says it is
not a proof beyond that bound."""

STRATEGY_NAMES = {"dfs": "dpor", "pct": "pct", "random": "random"}
"""CLI strategy -> explorer strategy; ``dfs`` is exhaustive search with DPOR and sleep sets
(``--plain`` turns the reduction off)."""


@dataclass
class Counterexample:
    id: str
    message: str
    preemptions: int
    steps: int
    schedule: str  # versioned schedule string
    replay_command: str
    run: ModelRunResult  # the replay, with events recorded (for swim lanes)
    found_at: int


@dataclass
class DesignVerdict:
    design: str
    result: ExploreResult
    counterexamples: list[Counterexample] = field(default_factory=list)
    lock_order: list[str] = field(default_factory=list)
    retry_bound: int | None = None
    # Wall-clock figures: never part of json() or the text report, which stay byte-identical.
    timing: dict[str, Any] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return self.result.stop_reason == INTERRUPTED

    @property
    def clean(self) -> bool:
        return not self.counterexamples and not self.lock_order

    @property
    def violation_ids(self) -> list[str]:
        ids = [c.id for c in self.counterexamples]
        return ids + (["lock-order"] if self.lock_order and "lock-order" not in ids else [])

    def json(self) -> dict[str, Any]:
        r = self.result
        return {
            "design": self.design,
            "strategy": r.strategy,
            "schedules": r.schedules,
            "steps": r.steps,
            "complete": r.complete,
            "stop_reason": r.stop_reason,
            "bound": r.bound,
            "retry_bound": self.retry_bound,
            "seed": r.seed,
            "final_states": r.final_state_count,
            "coverage": None if r.coverage is None else {
                "sleep_set_blocked": r.sleep_blocked, "cut_by_retry_bound": r.retry_cut, **r.coverage.json()},
            "verdict": "clean" if self.clean else self.violation_ids[0],
            "lock_order": self.lock_order,
            "violations": [
                {
                    "id": c.id,
                    "message": c.message,
                    "preemptions": c.preemptions,
                    "steps": c.steps,
                    "found_at_schedule": c.found_at,
                    "schedule": c.schedule,
                    "replay": c.replay_command,
                }
                for c in self.counterexamples
            ],
        }


@dataclass
class SearchOptions:
    """How exhaustive searches run (not what they find): worker processes, the engine that runs
    their tasks, and a checkpoint file."""

    jobs: int = 1  # 0 with Ray: every CPU of the cluster
    engine: str = "process"  # "process" (a local pool) or "ray"
    address: str | None = None  # the Ray cluster (None: a local Ray started for the run)
    checkpoint: Checkpoint | None = None

    def executor_factory(self) -> Callable[[ScenarioProgram], Executor] | None:
        if self.engine == "ray":
            from faultlab.explore.ray_engine import RayExecutor

            return lambda program: RayExecutor(program, address=self.address, jobs=self.jobs or None)
        return None


_OPTIONS: ContextVar[SearchOptions | None] = ContextVar("faultlab_search_options", default=None)


@contextmanager
def search_options(options: SearchOptions) -> Iterator[None]:
    """Run the explorations inside (explore, compare) with these options."""
    token = _OPTIONS.set(options)
    try:
        yield
    finally:
        _OPTIONS.reset(token)


class RecordingLockDep(LockDep):
    """A lockdep that also keeps, in order, the dependencies it saw first (a split search's task
    sends them to the coordinator, which adds them in the order one process would have)."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[tuple[str, str, str]] = []

    def add(self, a: str, b: str, where: str) -> str | None:
        if a != b and b not in self.edges.get(a, {}):
            self.added.append((a, b, where))
        return super().add(a, b, where)


class ScenarioProgram:
    """A scenario under a design as a program (see :mod:`faultlab.explore.program`), with one
    lockdep across its runs; split searches keep that lockdep exact through the task hooks (a task
    records into a lockdep of its own, merged into ``lockdep`` by the coordinator)."""

    def __init__(self, scenario: Scenario, design: Design, retry_bound: int | None = DEFAULT_RETRY_BOUND,
                 crash: bool = False) -> None:
        self.scenario = scenario
        self.design = design
        self.retry_bound = retry_bound
        self.crash = crash
        self.lockdep: LockDep = LockDep()
        self.task_lockdep: RecordingLockDep | None = None

    def __call__(self) -> ModelExecution:
        lockdep = self.task_lockdep if self.task_lockdep is not None else self.lockdep
        return ModelExecution(self.scenario, self.design, lockdep=lockdep, retry_bound=self.retry_bound,
                              crash=self.crash)

    def begin_task(self) -> None:
        self.task_lockdep = RecordingLockDep()

    def task_mark(self) -> int:
        return len(self.task_lockdep.added) if self.task_lockdep is not None else 0

    def end_task(self) -> list[tuple[str, str, str]]:
        added = self.task_lockdep.added if self.task_lockdep is not None else []
        self.task_lockdep = None
        return added

    def save_state(self) -> tuple[object, ...]:
        ld = self.lockdep
        return ({a: dict(bs) for a, bs in ld.edges.items()}, list(ld.reports), sorted(map(sorted, ld._reported)))

    def load_state(self, st: tuple[object, ...]) -> None:
        edges, reports, reported = st
        self.lockdep = LockDep()
        self.lockdep.edges = {a: dict(bs) for a, bs in edges.items()}  # type: ignore[attr-defined]
        self.lockdep.reports = list(reports)  # type: ignore[call-overload]
        self.lockdep._reported = {frozenset(r) for r in reported}  # type: ignore[attr-defined]

    def merge_task(self, added: list[tuple[str, str, str]] | None) -> None:
        for a, b, where in added or ():
            self.lockdep.add(a, b, where)


def search_key(scenario: Scenario, design: Design, inner: str, bound: int | None, retry_bound: int | None,
               crash: bool) -> str:
    """What names one exhaustive search in a checkpoint: the scenario (its digest), the design (its
    name, and the digest of a design's own code), the strategy and the options that change the
    search."""
    key = f"{scenario.digest()}:{design.name}:{inner}:{bound}:{retry_bound}" + (":crash" if crash else "")
    return key + (f":code={design.code_digest}" if design.code_digest else "")


def inner_strategy(strategy: str, plain: bool) -> str:
    """The search ``strategy`` (and ``plain``) run: ``dfs`` (plain), ``dpor``, ``pct`` or ``random``."""
    return "dfs" if (strategy == "dfs" and plain) else STRATEGY_NAMES[strategy]


def explore_design(
    scenario: Scenario,
    design: Design,
    *,
    strategy: str = "dfs",
    plain: bool = False,
    bound: int | None = None,
    depth: int = 3,
    seed: int = 0,
    max_schedules: int | None = None,
    budget_seconds: float | None = None,
    design_arg: str | None = None,
    progress: Callable[[Stats], None] | None = None,
    options: SearchOptions | None = None,
    retry_bound: int | None = DEFAULT_RETRY_BOUND,
    crash: bool = False,
) -> DesignVerdict:
    """Explore ``scenario`` under ``design`` and return the verdict with minimal counterexamples.

    ``retry_bound``: how often one thread may go round one kernel retry loop in a run (None: no
    bound); a run that needs more is cut and the search is then not complete.

    ``crash``: also check a crash after every step of every explored schedule (durability and
    torn-metadata, faultlab.checks.durability).

    ``options`` (default: those of the enclosing :func:`search_options`) say how an exhaustive
    search runs: in how many processes, on which engine, with which checkpoint; the result does
    not depend on them."""
    opts = options or _OPTIONS.get() or SearchOptions()
    program = ScenarioProgram(scenario, design, retry_bound, crash)

    inner = inner_strategy(strategy, plain)
    exhaustive = inner in ("dpor", "dfs")
    factory = opts.executor_factory() if exhaustive else None
    checkpoint = None
    if opts.checkpoint is not None and exhaustive:
        checkpoint = opts.checkpoint.for_search(search_key(scenario, design, inner, bound, retry_bound, crash))
    # The replays below come under the budget too: a step stuck past it is stopped (sched.watchdog).
    with watchdog.deadline(budget_seconds):
        return _explore_design(scenario, design, program, inner, exhaustive, factory, checkpoint, opts, bound=bound,
                               depth=depth, seed=seed, max_schedules=max_schedules, budget_seconds=budget_seconds,
                               design_arg=design_arg, progress=progress, retry_bound=retry_bound, crash=crash)


def _explore_design(scenario: Scenario, design: Design, program: ScenarioProgram, inner: str, exhaustive: bool,
                    factory: Callable[[ScenarioProgram], Executor] | None, checkpoint: Checkpoint | None,
                    opts: SearchOptions, *, bound: int | None, depth: int, seed: int, max_schedules: int | None,
                    budget_seconds: float | None, design_arg: str | None, progress: Callable[[Stats], None] | None,
                    retry_bound: int | None, crash: bool) -> DesignVerdict:
    saved = checkpoint.load() if checkpoint is not None else None
    # (the rates are of this run: a resumed search's counts include those before the checkpoint)
    before = saved.get("collector") if isinstance(saved, dict) else None
    steps0, schedules0 = (before.get("steps", 0), before.get("schedules", 0)) if isinstance(before, dict) else (0, 0)
    started = time.perf_counter()
    cpu0 = os.times()
    result = explore(
        program,
        inner,
        bound=bound,
        depth=depth,
        seed=seed,
        max_schedules=max_schedules,
        budget_seconds=budget_seconds,
        progress=progress,
        jobs=max(opts.jobs, 1) if exhaustive else 1,
        executor=factory(program) if factory is not None else None,
        checkpoint=checkpoint,
    )
    elapsed = time.perf_counter() - started
    cpu1 = os.times()
    cpu = sum(cpu1[:4]) - sum(cpu0[:4])
    lockdep = program.lockdep
    verdict = DesignVerdict(design.name, result, lock_order=list(lockdep.reports), retry_bound=retry_bound)
    verdict.timing = {
        "elapsed_seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu, 3),
        "steps_per_second": round((result.steps - steps0) / elapsed) if elapsed > 0 else None,
        "schedules_per_second": round((result.schedules - schedules0) / elapsed) if elapsed > 0 else None,
        "resumed_at_schedule": schedules0,
        "estimated_schedules": result.estimate,
        "seconds_to_go": _seconds_to_go(result, elapsed, schedules0),
        "jobs": opts.jobs if exhaustive else 1,
        "engine": opts.engine if exhaustive else "process",
    }
    name = design_arg or design.name
    for found in result.violations:
        schedule = encode(found.schedule, scenario.digest(), design.name)
        run = ModelExecution(scenario, design, lockdep=lockdep, record_events=True, crash=crash).run(
            ReplayChooser(found.schedule))
        verdict.counterexamples.append(
            Counterexample(
                id=found.violation.id,
                message=found.violation.message,
                preemptions=found.preemptions,
                steps=len(run.steps),
                schedule=schedule,
                replay_command=f"faultlab replay {scenario.path} --design {name} --schedule {schedule}"
                + (" --crash" if crash else ""),
                run=run,
                found_at=found.found_at,
            )
        )
    return verdict


def _seconds_to_go(result: ExploreResult, elapsed: float, resumed_at: int = 0) -> float | None:
    """What the rest of the search would take at the rate it ran (0 once complete; None for a
    sample, or before any schedule of this run)."""
    done = result.schedules - resumed_at
    if result.estimate is None or done <= 0 or elapsed <= 0:
        return None
    return round((result.estimate - result.schedules) * elapsed / done, 3)


def replay_design(scenario: Scenario, design: Design, schedule: str, crash: bool = False) -> ModelRunResult:
    """Replay a schedule string, refusing one recorded against another scenario or design
    (``crash``: with the crash checks after every step, as explore --crash found it)."""
    digest, recorded, tids = decode(schedule)
    check_matches(digest, recorded, scenario_digest=scenario.digest(), current_design=design.name)
    return ModelExecution(scenario, design, record_events=True, crash=crash).run(ReplayChooser(tids))
