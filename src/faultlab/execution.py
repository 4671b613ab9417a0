"""One run of a scenario on the model: a fresh Kernel, the scenario's threads as model threads,
the invariants watching, and the result (op outcomes, counters, violations, final state)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

from faultlab.checks.coherence import CoherenceChecker
from faultlab.checks.durability import DurabilityChecker
from faultlab.checks.invariants import INVARIANT_IDS, InvariantChecker, Violation
from faultlab.checks.lockdep import LockDep
from faultlab.designs.base import Design
from faultlab.errors import UserError
from faultlab.explore import interrupt
from faultlab.forking import Forks
from faultlab.kernel.events import Event
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.mm import Vma
from faultlab.kernel.snapshot import file_snapshot
from faultlab.kernel.syscalls import FaultTally, PowerFailure
from faultlab.limits import step_limit
from faultlab.mapvars import MapVars
from faultlab.results import FileState, OpRecord, RunRecord
from faultlab.run_errors import classify
from faultlab.scenario.model import SETUP, Outcome, Scenario, ThreadSpec
from faultlab.sched import Chooser, Scheduler, SchedulerError, Step, watchdog
from faultlab.sched.core import AuditError, StepLimitExceeded

AUDIT = False
"""Run every execution in audit mode (the test suite sets this; ``--audit`` on the command line):
an access to shared state that its step did not announce raises AuditError at once.  Executions of
a design with code from outside faultlab (``Design.user_code``) are audited whatever this says."""


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


HAS_FALLOCATE = ("ext4", "tmpfs")
"""File systems whose real kernels have ->fallocate (punch hole) in every era modelled; ext2 has
none, and fallocate(2) on it is EOPNOTSUPP."""


def check_supported(scenario: Scenario, design: Design) -> None:
    """A design whose model of the scenario's file system leaves out an operation the real file
    system has cannot run the scenario: a UserError naming the design and the op."""
    fstype = design.image().filesystem(scenario.fs)
    if fstype.f_op.fallocate is not None or fstype.name.split()[0] not in HAS_FALLOCATE:
        return
    for t in scenario.all_threads():
        for op in t.ops:
            if op.kind == "fallocate":
                raise UserError(f"design {design.name} does not model fallocate {op.advice} on {fstype.name}: "
                                "expected a scenario without it, or another design", where=str(op.loc))


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
                 retry_bound: int | None = None, crash: bool = False) -> None:
        self.scenario = scenario
        self.crash = crash  # explore --crash: check a crash after every step
        self.design = design
        self.lockdep = lockdep
        self.retry_bound = retry_bound
        self.record_steps = record_steps
        self.record_events = record_events
        # A design with code that is not faultlab's own is always audited: its accesses are checked
        # nowhere else, and one it did not announce would be invisible to DPOR.
        self.audit = (AUDIT or bool(design.user_code)) if audit is None else audit
        check_supported(scenario, design)
        data = sum(len(op.data) + (op.length if op.kind in ("load", "read") else 0)
                   for t in scenario.all_threads() for op in t.ops)
        self.step_limit = step_limit(sum(len(t.ops) for t in scenario.all_threads()), data)

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
        CoherenceChecker(k, checker.report)
        events: list[Event] = []
        if self.record_events:
            k.events.subscribe(events.append)
        # Hold times are for single runs (compare); an exploration's runs keep no Step records either.
        holds = LockHoldTracker(k) if sched.record else None
        # What reached pmem matters only where a run can crash (explore --crash, or a crash op).
        may_crash = self.crash or any(op.kind == "crash" for t in self.scenario.threads for op in t.ops)
        durability = DurabilityChecker(k) if may_crash else None

        def crash_here(where: str) -> None:
            assert durability is not None
            sched.exempt += 1
            try:
                for vid, message in durability.crash(where):
                    checker.report(vid, message)
            finally:
                sched.exempt -= 1

        if self.crash:
            sched.between_steps = lambda: crash_here(f"after step {sched.nsteps - 1}")
        crashed = False
        # A cycle among the lock dependencies of this run is its violation (so it has a replay); an
        # exploration also keeps one lockdep across all its schedules, whose cycles it reports once.
        thread_name = (lambda tid: sched.threads[tid].name if tid >= 0 else "?")  # noqa: E731
        k.events.subscribe(LockDep().listener(thread_name, lambda report: checker.report("lock-order", report)),
                           ("lock_attempt",))
        if self.lockdep is not None:
            k.events.subscribe(self.lockdep.listener(thread_name, lambda report: None), ("lock_attempt",))
        records: dict[str, list[OpRecord]] = {}
        syscalls = image.module("faultlab.kernel.syscalls")
        run_op = syscalls.run_op
        variables = MapVars(self.scenario)
        forks = Forks(self.scenario)
        for spec in self.scenario.threads:
            records[spec.name] = []
            sched.spawn(spec.name, self._thread_body(k, run_op, spec, records[spec.name], variables, forks, syscalls))
        sched.step_limit = self.step_limit
        ended: BaseException | None = None
        try:
            with watchdog.guard(sched):
                if self.scenario.setup is not None:  # one thread, before the others start: no steps
                    records[SETUP] = []
                    sched.run_setup(self._thread_body(k, run_op, self.scenario.setup, records[SETUP], variables,
                                                      forks, syscalls))
                sched.run()
        except (SchedulerError, AuditError):
            raise
        except PowerFailure:
            crashed = True
            crash_here(f"at the crash op (step {sched.nsteps - 1})")
        except KeyboardInterrupt as e:
            if interrupt.requested():  # a Ctrl-C (explore.interrupt): stop now
                raise
            ended = e  # raised by the design's (or the model's) code
        except (Exception, SystemExit, GeneratorExit, StepLimitExceeded, watchdog.StepTimeout) as e:  # noqa: BLE001
            # A design's code does not get to end faultlab with its own status: its error, and a run
            # that does not end, are violations. Other BaseExceptions pass: the explorer's AbortRun.
            ended = e
        sched.between_steps = None
        if ended is not None:
            checker.report(*classify(ended, self.design, sched))
        elif self.crash and not crashed:
            crash_here(f"at the end (after step {sched.nsteps - 1})")
        if sched.deadlock is not None:
            checker.report("deadlock", str(sched.deadlock))
        if ended is None and not crashed:  # the end-of-run checks of a run cut short would only report its consequences
            checker.finish()
        record = RunRecord()
        for spec in self.scenario.all_threads():
            record.ops.extend(records.get(spec.name, ()))
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
            lock_hold_max=holds.longest if holds is not None else {},
            events=events,
        )

    def _thread_body(self, k: Kernel, run_op: Callable[..., Outcome], spec: ThreadSpec,
                     out: list[OpRecord], variables: MapVars, forks: Forks, syscalls: ModuleType) -> Callable[[], None]:
        def body() -> None:
            maps: dict[str, Vma] = variables.setup if spec.name == SETUP else {}
            if spec.forked_by:
                maps = forks.wait(k, spec.name)
            for op in spec.ops:
                tally = FaultTally()
                view = variables.view(k, maps, op)
                k.events.emit("syscall_enter", op=op.text, thread=spec.name, spec=op, vma=view.get(op.map))
                if op.kind == "fork":
                    outcome = forks.fork(k, syscalls.sys_fork, op, maps, variables.setup)
                else:
                    outcome = run_op(k, op, view, tally)
                k.events.emit("syscall_exit", op=op.text, outcome=outcome, spec=op)
                out.append(OpRecord(spec.name, op.text, outcome, tally.minflt, tally.majflt, op.loc.line))
                if op.kind == "mmap" and outcome.kind == "ok":
                    variables.publish(k, spec.name, op.var, maps[op.var])
            if spec.forked_by:
                syscalls.sys_exit_mm(k, k.mm)

        return body

    def _check_expectations(self, record: RunRecord, checker: InvariantChecker) -> None:
        expected = {(t.name, i): op for t in self.scenario.all_threads() for i, op in enumerate(t.ops)}
        index: dict[str, int] = {}
        for r in record.ops:
            i = index.get(r.thread, 0)
            index[r.thread] = i + 1
            op = expected[(r.thread, i)]
            if op.expect is not None and op.expect != r.outcome:
                checker.report("expected-outcome", f"{op.loc}: {r.thread}: '{op.text}' gave {r.outcome}, "
                               f"expected {op.expect}")
