"""One run of a scenario on the model: a fresh Kernel, the scenario's threads as model threads,
the invariants watching, and the result (op outcomes, counters, violations, final state)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from faultlab.checks.invariants import INVARIANT_IDS, InvariantChecker, Violation
from faultlab.checks.lockdep import LockDep
from faultlab.designs.base import Design
from faultlab.errors import describe_exception
from faultlab.kernel.events import Event
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.mm import Vma
from faultlab.kernel.syscalls import (
    FaultTally,
    file_snapshot,
    sys_fsync,
    sys_ftruncate,
    sys_madvise_dontneed,
    sys_mmap,
    sys_msync,
    sys_munmap,
    sys_read,
    sys_write,
    user_access,
)
from faultlab.results import FileState, OpRecord, RunRecord
from faultlab.scenario.model import Op, Outcome, Scenario, ThreadSpec
from faultlab.sched import Chooser, Scheduler, SchedulerError, Step


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


def execute_op(k: Kernel, op: Op, maps: dict[str, Vma], tally: FaultTally) -> Outcome:
    """Carry out one scenario operation on the model."""
    if op.kind == "mmap":
        mapped = sys_mmap(k, k.inodes[op.file], op.offset, op.length, op.shared, op.writable)
        if isinstance(mapped, str):
            return Outcome.errno(mapped)
        maps[op.var] = mapped
        return Outcome.ok()
    if op.kind in ("munmap", "load", "store", "msync", "madvise"):
        vma = maps.get(op.map)
        if vma is None:
            return Outcome.signal("SIGSEGV") if op.kind in ("load", "store") else Outcome.errno("EINVAL")
        if op.kind == "munmap":
            return sys_munmap(k, vma)
        if op.kind == "load":
            return user_access(k, vma, op.offset, op.length, None, tally)
        if op.kind == "store":
            return user_access(k, vma, op.offset, len(op.data), op.data, tally)
        if op.kind == "msync":
            return sys_msync(k, vma)
        return sys_madvise_dontneed(k, vma)
    inode = k.inodes[op.file]
    if op.kind == "read":
        return sys_read(k, inode, op.offset, op.length)
    if op.kind == "write":
        return sys_write(k, inode, op.offset, op.data)
    if op.kind == "truncate":
        return sys_ftruncate(k, inode, op.size)
    if op.kind == "fsync":
        return sys_fsync(k, inode)
    raise ValueError(f"unknown op kind {op.kind}")


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

    def __init__(self, scenario: Scenario, design: type[Design], lockdep: LockDep | None = None,
                 record_steps: bool = True, record_events: bool = False) -> None:
        self.scenario = scenario
        self.design = design
        self.lockdep = lockdep
        self.record_steps = record_steps
        self.record_events = record_events

    def run(self, chooser: Chooser) -> ModelRunResult:
        sched = Scheduler(chooser, record=self.record_steps)
        k = Kernel(self.scenario, self.design(), sched)
        checker = InvariantChecker(k)
        events: list[Event] = []
        if self.record_events:
            k.events.subscribe(events.append)
        holds = LockHoldTracker(k)
        # A run on its own gets its own lockdep and reports a cycle as its violation; an exploration
        # shares one lockdep across schedules and reports its cycles once, for the whole search.
        own_lockdep = self.lockdep is None
        lockdep = LockDep() if self.lockdep is None else self.lockdep
        k.events.subscribe(lockdep.listener(lambda tid: sched.threads[tid].name if tid >= 0 else "?"),
                           ("lock_acquire",))
        records: dict[str, list[OpRecord]] = {}
        for spec in self.scenario.threads:
            records[spec.name] = []
            sched.spawn(spec.name, self._thread_body(k, spec, records[spec.name]))
        try:
            sched.run()
        except SchedulerError:
            raise
        except (Exception, SystemExit, GeneratorExit) as e:  # noqa: BLE001 - a model (or user design) bug
            # becomes a violation; a design's code does not get to end faultlab with its own status either.
            # Other BaseExceptions pass: KeyboardInterrupt, and the explorer's AbortRun.
            checker.report("model-error", describe_exception(e))
        if sched.deadlock is not None:
            checker.report("deadlock", str(sched.deadlock))
        checker.finish()
        record = RunRecord()
        for spec in self.scenario.threads:
            record.ops.extend(records[spec.name])
        for name, inode in k.inodes.items():
            record.files[name] = FileState(inode.i_size, file_snapshot(k, inode))
        self._check_expectations(record, checker)
        if own_lockdep:
            for report in lockdep.reports:
                checker.report("lock-order", report)
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

    def _thread_body(self, k: Kernel, spec: ThreadSpec, out: list[OpRecord]):  # type: ignore[no-untyped-def]
        def body() -> None:
            maps: dict[str, Vma] = {}
            for op in spec.ops:
                tally = FaultTally()
                k.events.emit("syscall_enter", op=op.text, thread=spec.name)
                outcome = execute_op(k, op, maps, tally)
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
