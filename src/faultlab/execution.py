"""One run of a scenario on the model: a fresh Kernel, the scenario's threads as model threads,
the invariants watching, and the result (op outcomes, counters, violations, final state)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from faultlab.checks.invariants import INVARIANT_IDS, InvariantChecker, Violation
from faultlab.checks.lockdep import LockDep
from faultlab.designs.base import Design
from faultlab.explore import interrupt
from faultlab.kernel.events import Event
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.mm import Vma
from faultlab.kernel.snapshot import file_snapshot
from faultlab.kernel.syscalls import FaultTally
from faultlab.limits import step_limit
from faultlab.results import FileState, OpRecord, RunRecord
from faultlab.run_errors import classify
from faultlab.scenario.model import Outcome, Scenario, ThreadSpec
from faultlab.sched import Chooser, Scheduler, SchedulerError, Step, watchdog
from faultlab.sched.core import AuditError, StepLimitExceeded

AUDIT = False
"""Run every execution in audit mode (the test suite sets this; ``--audit`` on the command line):
an access to shared state that its step did not announce raises AuditError at once."""


@dataclass
class ModelRunResult:
    """A run's result: what the explorer needs (steps, violations, final_state, thread_names)
    plus what a user sees (the ops' outcomes, the files, the counters)."""

    steps: list[Step]
    violations: list[Violation]
    final_state: tuple[object, ...]
    thread_names: list[str]
    record: RunRecord = field(default_factory=RunRecord)
    counters: Counter[str] = field(default_factory=Counter)
    lock_counts: Counter[str] = field(default_factory=Counter)
    lock_hold_max: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


class LockHoldTracker:
    """The longest any lock of each class was held, in scheduling steps."""

    def __init__(self, k: Kernel) -> None:
        self.since: dict[int, int] = {}
        self.longest: dict[str, int] = {}
        k.events.subscribe(self.on_event, ("lock_acquire", "lock_release"))

    def on_event(self, ev: Event) -> None:
        if ev.kind == "lock_acquire":
            self.since[id(ev.data["lock"])] = ev.step
        elif ev.kind == "lock_release":
            start = self.since.pop(id(ev.data["lock"]), None)
            if start is not None:
                cls = ev.data["cls"]
                self.longest[cls] = max(self.longest.get(cls, 0), ev.step - start)


class ModelExecution:
    """An Execution (see faultlab.explore.program) of one scenario under one design."""

    def __init__(self, scenario: Scenario, design: Design, lockdep: LockDep | None = None,
                 record_steps: bool = True, record_events: bool = False, audit: bool | None = None,
                 retry_bound: int | None = None) -> None:
        self.scenario = scenario
        self.design = design
        self.lockdep = lockdep
        self.retry_bound = retry_bound
        self.record_steps = record_steps
        self.record_events = record_events
        self.audit = AUDIT if audit is None else audit
        data = sum(len(op.data) + (op.length if op.kind in ("load", "read") else 0)
                   for t in scenario.threads for op in t.ops)
        self.step_limit = step_limit(sum(len(t.ops) for t in scenario.threads), data)

    def run(self, chooser: Chooser) -> ModelRunResult:
        sched = Scheduler(chooser, record=self.record_steps, audit=self.audit)
        # A run recorded for a report is traced: each step is labelled with its kernel function.
        image = self.design.image(trace=self.record_events)
        k = Kernel(self.scenario, image, sched)
        k.retry_limit = self.retry_bound
        if self.record_events:
            from faultlab.report.trace import FunctionTracer

            FunctionTracer(k)
        checker = InvariantChecker(k)
        events: list[Event] = []
        if self.record_events:
            k.events.subscribe(events.append)
        holds = LockHoldTracker(k)
        # A cycle among the lock dependencies of this run is its violation (so it has a replay); an
        # exploration also keeps one lockdep across all its schedules, whose cycles it reports once.
        thread_name = (lambda tid: sched.threads[tid].name if tid >= 0 else "?")  # noqa: E731
        k.events.subscribe(LockDep().listener(thread_name, lambda report: checker.report("lock-order", report)),
                           ("lock_attempt",))
        if self.lockdep is not None:
            k.events.subscribe(self.lockdep.listener(thread_name, lambda report: None), ("lock_attempt",))
        records: dict[str, list[OpRecord]] = {}
        run_op = image.module("faultlab.kernel.syscalls").run_op
        for spec in self.scenario.threads:
            records[spec.name] = []
            sched.spawn(spec.name, self._thread_body(k, run_op, spec, records[spec.name]))
        sched.step_limit = self.step_limit
        ended: BaseException | None = None
        try:
            with watchdog.guard(sched):
                sched.run()
        except (SchedulerError, AuditError):
            raise
        except KeyboardInterrupt as e:
            if interrupt.requested():  # a Ctrl-C (explore.interrupt): stop now
                raise
            ended = e  # raised by the design's (or the model's) code
        except (Exception, SystemExit, GeneratorExit, StepLimitExceeded, watchdog.StepTimeout) as e:  # noqa: BLE001
            # A design's code does not get to end faultlab with its own status: its error, and a run
            # that does not end, are violations. Other BaseExceptions pass: the explorer's AbortRun.
            ended = e
        if ended is not None:
            checker.report(*classify(ended, self.design, sched))
        if sched.deadlock is not None:
            checker.report("deadlock", str(sched.deadlock))
        if ended is None:  # the end-of-run checks of a run cut short would only report its consequences
            checker.finish()
        record = RunRecord()
        for spec in self.scenario.threads:
            record.ops.extend(records[spec.name])
        for name, inode in k.inodes.items():
            record.files[name] = FileState(inode.peek_size(), file_snapshot(k, inode))
        self._check_expectations(record, checker)
        violations = sorted(checker.violations, key=lambda v: INVARIANT_IDS.index(v.id))
        final_state = (
            tuple((r.thread, r.op, str(r.outcome)) for r in record.ops),
            tuple((n, f.size, f.contents) for n, f in sorted(record.files.items())),
        )
        return ModelRunResult(
            steps=sched.steps,
            violations=violations,
            final_state=final_state,
            thread_names=[t.name for t in sched.threads],
            record=record,
            counters=k.counters,
            lock_counts=k.lock_counts,
            lock_hold_max=holds.longest,
            events=events,
        )

    def _thread_body(self, k: Kernel, run_op: Callable[..., Outcome], spec: ThreadSpec,
                     out: list[OpRecord]) -> Callable[[], None]:
        def body() -> None:
            maps: dict[str, Vma] = {}
            for op in spec.ops:
                tally = FaultTally()
                k.events.emit("syscall_enter", op=op.text, thread=spec.name)
                outcome = run_op(k, op, maps, tally)
                k.events.emit("syscall_exit", op=op.text, outcome=outcome)
                out.append(OpRecord(spec.name, op.text, outcome, tally.minflt, tally.majflt, op.loc.line))

        return body

    def _check_expectations(self, record: RunRecord, checker: InvariantChecker) -> None:
        expected = {(t.name, i): op for t in self.scenario.threads for i, op in enumerate(t.ops)}
        index: dict[str, int] = {}
        for r in record.ops:
            i = index.get(r.thread, 0)
            index[r.thread] = i + 1
            op = expected[(r.thread, i)]
            if op.expect is not None and op.expect != r.outcome:
                checker.report("expected-outcome", f"{op.loc}: {r.thread}: '{op.text}' gave {r.outcome}, "
                               f"expected {op.expect}")
