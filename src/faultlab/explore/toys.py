"""Toy programs: small straight-line threads over shared variables, locks and events.

They implement the :mod:`faultlab.explore.program` contract exactly as the kernel model does (a
Scheduler, greenlet threads, a scheduling point before every shared access), so they serve as the
explorer's self-checks, tests and benchmarks, where the right answers are known.

A thread is a tuple of ops, each one scheduling step (``WaitRacy`` two, a ``Wait`` that sleeps one
more when woken):

* ``Read(var)``: read a variable (remembered in the thread's read log, part of the final state).
* ``Write(var, value)``: write ``value``, or the last value this thread read plus one if None.
* ``Lock(name)`` / ``Unlock(name)``: a mutex (a WRITE on the lock; acquiring waits while held).
* ``Signal(event)``: set the event and wake every waiter.  ``Wait(event)``: sleep until it is set,
  checking and sleeping in one step.  ``WaitRacy(event)``: check in one step and go to sleep in the
  next (a lost wake-up, when a ``Signal`` falls in between, is a deadlock).
* ``Check(var, bad, vid)``: read a variable; violation ``vid`` if it holds ``bad``.
* ``Inc(var)``: add one to a variable, an UPDATE (increments commute with each other, not with
  reads or writes).
* ``Move(src, dst)``: read ``src`` and write its value to ``dst`` in one step (two objects).
* ``Scan(var)``: READ one of the toy "sets" ``var`` (its member count is logged); ``Add(var,
  member)`` adds a member to it as an UPDATE of the set and a WRITE of the member's own slot.

``Expect(var, value, vid)`` checks a variable at the end of the run.  A run in which some thread
never finishes reports the violation ``deadlock``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from faultlab.explore.program import RunResult, Violation, deadlock_violation
from faultlab.sched.core import Access, Chooser, Scheduler, WaitQueue


@dataclass(frozen=True)
class Read:
    var: str


@dataclass(frozen=True)
class Write:
    var: str
    value: int | None = None


@dataclass(frozen=True)
class Lock:
    name: str


@dataclass(frozen=True)
class Unlock:
    name: str


@dataclass(frozen=True)
class Signal:
    event: str


@dataclass(frozen=True)
class Wait:
    event: str


@dataclass(frozen=True)
class WaitRacy:
    event: str


@dataclass(frozen=True)
class Check:
    var: str
    bad: int
    vid: str


@dataclass(frozen=True)
class Inc:
    var: str


@dataclass(frozen=True)
class Move:
    src: str
    dst: str


@dataclass(frozen=True)
class Scan:
    var: str


@dataclass(frozen=True)
class Add:
    var: str
    member: int


@dataclass(frozen=True)
class Expect:
    var: str
    value: int
    vid: str


Op = Read | Write | Lock | Unlock | Signal | Wait | WaitRacy | Check | Inc | Move | Scan | Add


@dataclass(frozen=True)
class ToyProgram:
    """A program (factory of executions) made of straight-line toy threads."""

    threads: tuple[tuple[Op, ...], ...]
    initial: tuple[tuple[str, int], ...] = ()
    expects: tuple[Expect, ...] = ()
    name: str = "toy"

    def __call__(self) -> ToyExecution:
        return ToyExecution(self)


@dataclass
class _State:
    vars: dict[str, int]
    sets: dict[str, set[int]] = field(default_factory=dict)
    holders: dict[str, int] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    queues: dict[str, WaitQueue] = field(default_factory=dict)
    logs: list[list[int]] = field(default_factory=list)
    pcs: list[int] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)


class ToyExecution:
    """One run of a ToyProgram."""

    def __init__(self, program: ToyProgram) -> None:
        self.program = program

    def run(self, chooser: Chooser) -> RunResult:
        prog = self.program
        sched = Scheduler(chooser)
        st = _State(vars=dict(prog.initial))
        for tid, ops in enumerate(prog.threads):
            st.logs.append([])
            st.pcs.append(0)
            sched.spawn(f"t{tid}", _body(sched, st, tid, ops))
        sched.run()
        violations = list(st.violations)
        for e in prog.expects:
            got = st.vars.get(e.var, 0)
            if got != e.value:
                violations.append(Violation(e.vid, f"{e.var} is {got} at the end, expected {e.value}", None))
        dl = deadlock_violation(sched)
        if dl is not None:
            violations.append(dl)
        blocked = tuple((t.tid, st.pcs[t.tid]) for t in sched.threads if not t.finished)
        final: Hashable = (
            tuple(sorted(st.vars.items())),
            tuple(tuple(log) for log in st.logs),
            tuple(sorted(st.holders.items())),
            tuple(sorted(k for k, v in st.flags.items() if v)),
            tuple(sorted((k, tuple(sorted(v))) for k, v in st.sets.items())),
            blocked,
        )
        return RunResult(sched.steps, violations, final, [t.name for t in sched.threads])


def _free(st: _State, name: str) -> Callable[[], bool]:
    return lambda: name not in st.holders


def _body(sched: Scheduler, st: _State, tid: int, ops: tuple[Op, ...]) -> Callable[[], None]:
    def queue(event: str) -> WaitQueue:
        wq = st.queues.get(event)
        if wq is None:
            wq = st.queues[event] = WaitQueue(event)
        return wq

    def body() -> None:
        last = 0
        for pc, op in enumerate(ops):
            st.pcs[tid] = pc
            if isinstance(op, Read):
                sched.point(("var", op.var), Access.READ, f"read {op.var}")
                last = st.vars.get(op.var, 0)
                st.logs[tid].append(last)
            elif isinstance(op, Write):
                sched.point(("var", op.var), Access.WRITE, f"write {op.var}")
                st.vars[op.var] = op.value if op.value is not None else last + 1
            elif isinstance(op, Check):
                sched.point(("var", op.var), Access.READ, f"check {op.var}")
                got = st.vars.get(op.var, 0)
                st.logs[tid].append(got)
                if got == op.bad:
                    st.violations.append(
                        Violation(op.vid, f"t{tid} saw {op.var} == {got}", sched.nsteps - 1)
                    )
            elif isinstance(op, Inc):
                sched.point(("var", op.var), Access.UPDATE, f"inc {op.var}")
                st.vars[op.var] = st.vars.get(op.var, 0) + 1
            elif isinstance(op, Move):
                sched.point(("var", op.src), Access.READ, f"move {op.src} -> {op.dst}",
                            more=((("var", op.dst), Access.WRITE),))
                last = st.vars.get(op.src, 0)
                st.vars[op.dst] = last
            elif isinstance(op, Scan):
                sched.point(("set", op.var), Access.READ, f"scan {op.var}")
                st.logs[tid].append(len(st.sets.get(op.var, ())))
            elif isinstance(op, Add):
                sched.point(("set", op.var), Access.UPDATE, f"add {op.member} to {op.var}",
                            more=((("member", op.var, op.member), Access.WRITE),))
                st.sets.setdefault(op.var, set()).add(op.member)
            elif isinstance(op, Lock):
                sched.point(("lock", op.name), Access.WRITE, f"lock {op.name}", ready=_free(st, op.name))
                st.holders[op.name] = tid
                sched.took(("lock", op.name))
            elif isinstance(op, Unlock):
                sched.point(("lock", op.name), Access.WRITE, f"unlock {op.name}")
                if st.holders.get(op.name) != tid:
                    raise ValueError(f"t{tid} unlocks {op.name}, which it does not hold")
                del st.holders[op.name]
                sched.dropped(("lock", op.name))
            elif isinstance(op, Signal):
                wq = queue(op.event)
                sched.point(wq, Access.WRITE, f"signal {op.event}")
                st.flags[op.event] = True
                sched.wake_up(wq, 0)
            elif isinstance(op, Wait):
                wq = queue(op.event)
                sched.point(wq, Access.WRITE, f"wait {op.event}")
                if not st.flags.get(op.event, False):
                    sched.prepare_to_wait(wq, exclusive=False)
                    sched.schedule(f"woken {op.event}")
                    sched.finish_wait(wq)
            elif isinstance(op, WaitRacy):
                wq = queue(op.event)
                sched.point(wq, Access.READ, f"test {op.event}")
                if not st.flags.get(op.event, False):
                    sched.point(wq, Access.WRITE, f"prepare_to_wait {op.event}")
                    sched.prepare_to_wait(wq, exclusive=False)
                    sched.schedule(f"woken {op.event}")
                    sched.finish_wait(wq)
        st.pcs[tid] = len(ops)

    return body


# -- a small catalogue with known answers --------------------------------------------------------


def counter(threads: int = 2, locked: bool = False, padding: int = 0) -> ToyProgram:
    """Each thread does ``padding`` private writes, then ``c = c + 1`` as a read and a write
    (under a mutex if ``locked``).  Unlocked, the lost update (``lost-update``) is a depth-2 bug."""
    progs: list[tuple[Op, ...]] = []
    for t in range(threads):
        ops: list[Op] = [Write(f"p{t}", i) for i in range(padding)]
        body: list[Op] = [Read("c"), Write("c")]
        ops += [Lock("m"), *body, Unlock("m")] if locked else body
        progs.append(tuple(ops))
    return ToyProgram(tuple(progs), expects=(Expect("c", threads, "lost-update"),), name="counter")


def two_locks() -> ToyProgram:
    """Two threads take locks A and B in opposite orders: a deadlock with one preemption."""
    t0: tuple[Op, ...] = (Lock("A"), Lock("B"), Unlock("B"), Unlock("A"))
    t1: tuple[Op, ...] = (Lock("B"), Lock("A"), Unlock("A"), Unlock("B"))
    return ToyProgram((t0, t1), name="two-locks")


def independent(threads: int = 3, private: int = 2) -> ToyProgram:
    """Each thread does ``private`` writes to its own variable, then one write to the shared ``x``:
    ``threads!`` orders of the conflicting writes, and no violation."""
    progs = tuple(
        tuple([Write(f"p{t}", i) for i in range(private)] + [Write("x", t + 1)]) for t in range(threads)
    )
    return ToyProgram(progs, name="independent")


def ordering() -> ToyProgram:
    """``bad-order`` needs t1 to read ``a`` between t0's two writes and t2 to check ``b`` between
    t1's two writes: exactly two preemptions, no fewer."""
    t0: tuple[Op, ...] = (Write("a", 1), Write("a", 0))
    t1: tuple[Op, ...] = (Read("a"), Write("b"), Write("b", 0))
    t2: tuple[Op, ...] = (Check("b", 2, "bad-order"),)
    return ToyProgram((t0, t1, t2), name="ordering")


def lost_wakeup() -> ToyProgram:
    """t0 tests an event and sleeps in two steps; t1 signals it in between: t0 sleeps for ever."""
    return ToyProgram(((WaitRacy("E"),), (Signal("E"),)), name="lost-wakeup")


def handoff() -> ToyProgram:
    """t0 waits for an event that t1 sets after writing ``x``; t0 then checks ``x`` (never bad)."""
    t0: tuple[Op, ...] = (Wait("E"), Check("x", 0, "early-read"))
    t1: tuple[Op, ...] = (Write("x", 7), Signal("E"))
    return ToyProgram((t0, t1), name="handoff")
