"""Exploring a scenario under designs: the glue between the model (ModelExecution), the explorer
and the reports, shared by the CLI, the comparison and the pytest plugin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faultlab.checks.lockdep import LockDep
from faultlab.designs.base import Design
from faultlab.execution import ModelExecution, ModelRunResult
from faultlab.explore.explorer import explore
from faultlab.explore.replay import ReplayChooser
from faultlab.explore.results import ExploreResult, Stats
from faultlab.explore.schedule import check_matches, decode, encode
from faultlab.scenario.model import Scenario

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

    @property
    def clean(self) -> bool:
        return not self.counterexamples and not self.lock_order

    @property
    def violation_ids(self) -> list[str]:
        return [c.id for c in self.counterexamples] + (["lock-order"] if self.lock_order else [])

    def json(self) -> dict[str, Any]:
        r = self.result
        return {
            "design": self.design,
            "strategy": r.strategy,
            "schedules": r.schedules,
            "complete": r.complete,
            "stop_reason": r.stop_reason,
            "bound": r.bound,
            "seed": r.seed,
            "final_states": r.final_state_count,
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
) -> DesignVerdict:
    """Explore ``scenario`` under ``design`` and return the verdict with minimal counterexamples."""
    lockdep = LockDep()

    def program() -> ModelExecution:
        return ModelExecution(scenario, design, lockdep=lockdep)

    inner = "dfs" if (strategy == "dfs" and plain) else STRATEGY_NAMES[strategy]
    result = explore(
        program,
        inner,
        bound=bound,
        depth=depth,
        seed=seed,
        max_schedules=max_schedules,
        budget_seconds=budget_seconds,
        progress=progress,
    )
    verdict = DesignVerdict(design.name, result, lock_order=list(lockdep.reports))
    name = design_arg or design.name
    for found in result.violations:
        schedule = encode(found.schedule, scenario.digest(), design.name)
        run = ModelExecution(scenario, design, lockdep=lockdep, record_events=True).run(ReplayChooser(found.schedule))
        verdict.counterexamples.append(
            Counterexample(
                id=found.violation.id,
                message=found.violation.message,
                preemptions=found.preemptions,
                steps=len(run.steps),
                schedule=schedule,
                replay_command=f"faultlab replay {scenario.path} --design {name} --schedule {schedule}",
                run=run,
                found_at=found.found_at,
            )
        )
    return verdict


def replay_design(scenario: Scenario, design: Design, schedule: str) -> ModelRunResult:
    """Replay a schedule string, refusing one recorded against another scenario or design."""
    digest, recorded, tids = decode(schedule)
    check_matches(digest, recorded, scenario_digest=scenario.digest(), current_design=design.name)
    return ModelExecution(scenario, design, record_events=True).run(ReplayChooser(tids))
