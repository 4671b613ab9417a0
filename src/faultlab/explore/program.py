"""The contract between the explorer and whatever it explores.

A *program* is a factory: every call returns a fresh, independent :class:`Execution`.  An execution
builds its own :class:`~faultlab.sched.core.Scheduler` around the chooser it is given, spawns its
threads, runs once and reports a :class:`RunResult`.  The explorer never looks inside a run except
through the chooser (which sees every scheduling decision) and the result.

What the explorer relies on (and what the model must guarantee):

* **Determinism.**  The same sequence of choices gives the same run: same ready sets, same announced
  accesses, same result.  The explorers check this on every replayed prefix and raise
  :class:`NondeterminismError` when it does not hold.
* **Honest accesses.**  Between two scheduling points a thread touches shared state only through the
  object(s) it announced at the first of them (``obj``, and ``obj2`` if given), reading only if it
  announced READ.  Partial-order reduction treats steps on different objects, or two READs of one
  object, as commuting.  Queueing on a wait queue (``prepare_to_wait``) is a WRITE on the queue.
* **Honest blocking.**  Whether a thread's pending step is ready may change only through a WRITE step
  on the object that step announced: a lock release is a WRITE on the lock, a wake-up is a WRITE on
  the wait queue the sleeper announced.
* **Honest locks.**  A step that sets a lock's owner says so (``Scheduler.took``), and the step that
  clears it too (``Scheduler.dropped``); while a thread holds a lock, no other thread's blocking
  step on it is ready (a READ one may be, if it is held shared).  DPOR reverses a lock's races at
  the acquire on that word; a lock that does not report itself is only searched less cleverly.
* **Choosers' errors pass through.**  A chooser raises SchedulerError subclasses (a schedule naming a
  blocked thread, nondeterminism) and :class:`faultlab.explore.common.AbortRun` (a BaseException);
  ``run`` must let both propagate rather than turn them into violations.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

from faultlab.errors import UserError
from faultlab.sched.core import Chooser, Scheduler, SchedulerError, Step


@dataclass(frozen=True)
class Violation:
    """A broken invariant (``id`` is stable, e.g. ``stale-pte-after-truncate`` or ``deadlock``)."""

    id: str
    message: str
    step: int | None  # index into RunResult.steps where it was detected, if known


@dataclass
class RunResult:
    """What one run of an execution produced."""

    steps: list[Step]
    violations: list[Violation]
    final_state: Hashable  # canonical fingerprint of the end state (for cross-checks)
    thread_names: list[str]


class ViolationLike(Protocol):
    """What the explorer reads of a violation (Violation, or any class with these fields)."""

    @property
    def id(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def step(self) -> int | None: ...


class RunResultLike(Protocol):
    """What the explorer reads of a run's result (RunResult, or any class with these fields, such
    as the model's richer result)."""

    @property
    def steps(self) -> Sequence[Step]: ...
    @property
    def violations(self) -> Sequence[ViolationLike]: ...
    @property
    def final_state(self) -> Hashable: ...
    @property
    def thread_names(self) -> Sequence[str]: ...


class Execution(Protocol):
    def run(self, chooser: Chooser) -> RunResultLike:
        """Build a fresh Scheduler with this chooser and run it once."""
        ...


Program = Callable[[], Execution]
"""A factory: every call gives a fresh, independent execution."""


class ScheduleError(UserError, SchedulerError):
    """A schedule (or prefix) that cannot be followed, e.g. it names a thread that is blocked.

    A SchedulerError so that an execution passes it through ``sched.run()`` instead of reporting it
    as a model error; a UserError so that the CLI shows it as one line."""


class NondeterminismError(SchedulerError):
    """Replaying the same choices did not reproduce the same run: the program is not deterministic
    (global RNG, wall clock, iteration over a set of objects hashed by id, state kept across runs)."""


def deadlock_violation(sched: Scheduler) -> Violation | None:
    """The ``deadlock`` violation for a finished ``sched.run()``, or None if every thread finished."""
    if sched.deadlock is None:
        return None
    return Violation("deadlock", str(sched.deadlock), None)
