"""Result objects of an exploration.  Nothing here holds wall-clock time: the same inputs give the
same, byte-identical summary."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from faultlab.explore.coverage import Coverage
from faultlab.explore.program import RunResultLike, ViolationLike

# Why a search stopped.
EXHAUSTED = "exhausted"  # the whole (reduced, maybe bounded) tree has been searched
FIRST_VIOLATION = "violation"  # stopped at the first violation (stop_on_first)
MAX_SCHEDULES = "max-schedules"  # the schedule cap (or, for pct and random, the sample size) was reached
MAX_STEPS = "max-steps"
TIME_BUDGET = "time-budget"
INTERRUPTED = "interrupted"  # SIGINT or SIGTERM


@dataclass(frozen=True)
class Stats:
    """Progress so far (handed to the ``progress`` callback after every schedule)."""

    strategy: str
    schedules: int  # runs started, including sleep-set-blocked ones
    sleep_blocked: int  # DPOR runs abandoned because every ready thread was in the sleep set
    steps: int  # scheduling steps executed over all runs
    violations: int  # violating runs seen
    final_states: int  # distinct final states of complete runs
    # A running estimate of the schedules of the whole search (exhaustive strategies; None for
    # samples or before the first run), never below ``schedules``: see faultlab.explore.estimate.
    estimate: int | None = None
    # Runs that tasks still running have finished (a search on workers), not yet in ``schedules``:
    # they are counted there when their task is committed.
    running: int = 0


@dataclass
class FoundViolation:
    """A violation and the (minimised) schedule that reproduces it."""

    violation: ViolationLike  # as reported by the replay of ``schedule``
    schedule: list[int]  # thread ids to replay (then default continuation); minimised if asked
    run: RunResultLike  # the replay of ``schedule``
    preemptions: int  # preemptions up to the violation's detection in that replay
    found_schedule: list[int]  # the schedule as the search first hit it
    found_at: int  # 1-based index of the search's schedule that hit it
    occurrences: int = 1  # violating runs with this id (when not stopping at the first)


@dataclass
class ExploreResult:
    strategy: str
    schedules: int
    sleep_blocked: int
    steps: int
    complete: bool  # the whole (reduced) tree was explored and no bound pruned anything
    stop_reason: str
    bound: int | None
    pruned_by_bound: bool
    seed: int | None
    violations: list[FoundViolation]
    final_states: frozenset[Hashable]
    longest_run: int  # steps in the longest run
    prefix: list[int] = field(default_factory=list)
    schedules_list: list[tuple[int, ...]] | None = None  # every schedule run, if asked for
    retry_cut: int = 0  # runs the retry bound cut (abandoned, as the sleep-set-blocked ones)
    coverage: Coverage | None = None  # of an exhaustive search's decision points (None: a sample)
    # The estimated schedules of the whole search when it stopped (exhaustive strategies; the
    # schedules run if it is complete).  It depends on how the search was split: not for reports
    # that must be the same whatever the jobs.
    estimate: int | None = None

    @property
    def final_state_count(self) -> int:
        return len(self.final_states)

    @property
    def violation_ids(self) -> list[str]:
        return [f.violation.id for f in self.violations]

    def why_incomplete(self) -> str:
        """Why a search that is not complete stopped, in words for a verdict line."""
        if self.stop_reason != EXHAUSTED:
            return f"stopped: {self.stop_reason}"
        cuts = []
        if self.coverage is not None and self.coverage.bound:
            cuts.append(f"the preemption bound {self.bound} pruned {self.coverage.bound} alternatives")
        if self.retry_cut:
            cuts.append(f"the retry bound cut {self.retry_cut} runs")
        if cuts:
            return " and ".join(cuts)
        if self.bound is not None:
            return f"the preemption bound {self.bound} or the retry bound cut schedules"
        return "the retry bound cut runs"

    def coverage_summary(self) -> str | None:
        """What an exhaustive search covered, in one line (None for a sample): its abandoned runs,
        and the alternatives at its decision points (see faultlab.explore.coverage)."""
        if self.coverage is None:
            return None
        runs = f"{self.sleep_blocked} runs sleep-set blocked"
        if self.retry_cut:
            runs += f", {self.retry_cut} cut by the retry bound"
        so_far = "" if self.stop_reason == EXHAUSTED else " so far"
        return f"coverage{so_far}: {runs}; {self.coverage.describe()}"

    def summary(self) -> str:
        """A deterministic, human-readable summary (no timings)."""
        lines = [
            f"strategy {self.strategy}: {self.schedules} schedules ({self.sleep_blocked} sleep-set blocked), "
            f"{self.steps} steps, {self.final_state_count} distinct final states",
            f"stopped: {self.stop_reason}; complete: {'yes' if self.complete else 'no'}"
            + (f"; preemption bound {self.bound}" if self.bound is not None else "")
            + ("; the bound pruned schedules" if self.pruned_by_bound else "")
            + (f"; seed {self.seed}" if self.seed is not None else ""),
        ]
        coverage = self.coverage_summary()
        if coverage is not None:
            lines.append(coverage)
        if self.prefix:
            lines.append(f"prefix: {self.prefix}")
        if not self.violations:
            lines.append("no violations")
        for f in self.violations:
            lines.append(
                f"violation {f.violation.id} (schedule #{f.found_at}, {f.occurrences} run(s)): "
                f"{f.violation.message}; {f.preemptions} preemption(s), replay {f.schedule}"
            )
        return "\n".join(lines)
