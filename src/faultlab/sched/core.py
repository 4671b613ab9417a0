"""Controlled threads: every model thread is a greenlet, and every scheduling point asks a chooser
which thread moves next.

A scheduling point is announced *before* the access it guards: the thread states what it is about
to touch (``obj``), whether it reads or writes it, and optionally a readiness predicate (a lock that
is held is not ready).  The chooser then picks one ready thread; only that thread performs its
pending access and runs on to its next point.  So the executed steps form a sequence in which each
step is (thread, object, access), which is all an explorer needs for partial-order reduction.

With the default chooser (``SequentialChooser``) a point costs one call and a predicate check: no
greenlet switch happens unless the running thread cannot go on.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Protocol

from greenlet import greenlet

from faultlab.errors import AuditError


class Access(enum.IntEnum):
    """How a step touches an object.

    Two accesses to one object are dependent (their order can matter) unless both are READs or
    both are UPDATEs.  An UPDATE is a write that commutes with other UPDATEs of the same object:
    adding one member to a set (a PTE into a page table's set of present entries, a page into a
    page-cache tree), or an atomic increment.  It does not commute with a READ of the object (a
    scan of the set) or with a WRITE."""

    READ = 1
    UPDATE = 2
    WRITE = 3


STEP_LIMIT = 50_000
"""Steps per run (faultlab.limits.MAX_STEPS_PER_RUN): past it, the run is a ``livelock``."""


def conflicting(a: Access, b: Access) -> bool:
    """Whether two accesses to the same object are dependent."""
    return a != b or a == Access.WRITE


def covers(announced: Access, needed: Access) -> bool:
    """Whether an access announced as ``announced`` permits an actual access ``needed``."""
    return announced == needed or announced == Access.WRITE


class _Everything:
    """The object of a step that depends on every other step (see :data:`EVERYTHING`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "everything"


EVERYTHING: Hashable = _Everything()
"""A step announcing ``(EVERYTHING, WRITE)`` is dependent with every step of every thread: a
power failure, which reads the whole machine and stops every thread where it is.  It is announced
as a step's only object (``point(EVERYTHING, WRITE, label)``), and such a step ends the run (the
explorers count on both: they look for it first, and account nothing after it)."""

Accesses = tuple[tuple[Hashable, Access], ...]
"""Further objects a step touches besides its first one."""


@dataclass(slots=True)
class Step:
    """One executed step: the access a thread announced and then performed."""

    tid: int
    obj: Hashable
    access: Access
    label: str
    func: str = ""
    # A step may touch more objects (a user load/store reads the PTE and the page it maps in one
    # atomic hardware access; a PTE write also updates its table's set of present entries);
    # dependence considers all of them.
    more: Accesses = ()


class Chooser(Protocol):
    """Picks the thread that moves next among the ready ones (never empty, ordered by tid)."""

    def choose(self, sched: Scheduler, ready: list[ModelThread]) -> ModelThread: ...


class SchedulerError(Exception):
    """The chooser asked for something impossible (for example a schedule naming a blocked thread)."""


class StepLimitExceeded(BaseException):  # noqa: N818 - ends a run, like the watchdog's StepTimeout
    """The run made more than ``Scheduler.step_limit`` steps: a livelock (a design or a retry loop
    that goes round for ever).  Raised at every scheduling point past the limit, and a
    BaseException, so that model code catching ``Exception`` cannot carry on regardless."""


@dataclass(eq=False, slots=True)
class ModelThread:
    tid: int
    name: str
    body: Callable[[], object]
    glet: greenlet | None = None
    finished: bool = False
    # The announced, not yet performed, access.
    pending_obj: Hashable = None
    pending_access: Access = Access.READ
    pending_label: str = "start"
    pending_more: Accesses = ()
    ready_fn: Callable[[], bool] | None = None
    # Set while sleeping on a wait queue; cleared by a wake-up.
    sleeping_on: WaitQueue | None = None
    queued_on: WaitQueue | None = None
    error: BaseException | None = None
    result: object = None
    locals: dict[str, object] = field(default_factory=dict)

    def ready(self) -> bool:
        if self.finished or self.sleeping_on is not None:
            return False
        return self.ready_fn is None or self.ready_fn()


class WaitQueue:
    """A kernel wait queue: sleepers are woken one (exclusive) or all at a time, in FIFO order."""

    __slots__ = ("name", "sleepers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.sleepers: list[tuple[ModelThread, bool]] = []

    def __repr__(self) -> str:
        return f"WaitQueue({self.name})"


class Deadlock(Exception):
    """No thread can move but some have not finished."""

    def __init__(self, blocked: list[ModelThread]) -> None:
        self.blocked = blocked
        names = ", ".join(f"{t.name} ({t.pending_label})" for t in blocked)
        super().__init__(f"all unfinished threads are blocked: {names}")


class SequentialChooser:
    """Run the current thread for as long as it can go on, then the lowest-numbered ready one.

    ``order`` (thread ids) makes it run whole threads in that order instead."""

    def __init__(self, order: list[int] | None = None) -> None:
        self.order = order

    def choose(self, sched: Scheduler, ready: list[ModelThread]) -> ModelThread:
        cur = sched.current
        if cur is not None and cur in ready:
            return cur
        if self.order is not None:
            for tid in self.order:
                for t in ready:
                    if t.tid == tid:
                        return t
        return ready[0]


class Scheduler:
    """Runs a set of model threads to completion under a chooser, recording every step.

    With ``audit`` set, shared-state objects ask :meth:`check_announced` before every raw access,
    and an access that the running thread's current step did not announce raises AuditError."""

    def __init__(self, chooser: Chooser | None = None, record: bool = True, audit: bool = False) -> None:
        self.chooser: Chooser = chooser or SequentialChooser()
        self._sequential = type(self.chooser) is SequentialChooser
        self.threads: list[ModelThread] = []
        self.current: ModelThread | None = None
        self.steps: list[Step] = []
        self.nsteps = 0
        self.setup_points = 0  # scheduling points passed in the set-up (run_setup), which are not steps
        # A chooser may say it does not need Step records (``record_steps = False``): an explorer
        # reads only its own trace, so it saves building a Step (and naming its function) per step.
        self.record = record and getattr(self.chooser, "record_steps", True)
        self.audit = audit
        self.exempt = 0  # > 0 while checks or reports read the model's state
        self.main: greenlet | None = None
        # Set by a report-time tracer to name the kernel function of each recorded step.
        self.func_of: Callable[[], str] | None = None
        self.deadlock: Deadlock | None = None
        # The threads that had not finished when another thread's exception ended the run (a
        # crash, an error): each stopped at its pending step, as a blocked thread is.
        self.halted: list[ModelThread] = []
        # Which steps of a thread took or dropped a lock: (tid, lock) -> [(step, took)], in order
        # (see took()).
        self.lock_ops: dict[tuple[int, Hashable], list[tuple[int, bool]]] = {}
        self._holders: dict[Hashable, list[tuple[int, bool]]] = {}  # (audit) lock -> (tid, shared)
        self.step_limit = STEP_LIMIT
        self.last_thread: ModelThread | None = None  # the thread the main loop last ran (an error's)
        self.running = False  # inside run() (the watchdog raises into a run only then)
        # Called before each step is committed, i.e. in the state the previous step left
        # (explore --crash checks a crash there).
        self.between_steps: Callable[[], None] | None = None

    # -- set-up -----------------------------------------------------------------------------------
    def spawn(self, name: str, body: Callable[[], object]) -> ModelThread:
        t = ModelThread(tid=len(self.threads), name=name, body=body)
        self.threads.append(t)
        return t

    # -- called from model code inside a thread ----------------------------------------------------
    def point(
        self,
        obj: Hashable,
        access: Access,
        label: str = "",
        ready: Callable[[], bool] | None = None,
        more: Accesses = (),
    ) -> None:
        """Announce the next access of the running thread and let the chooser decide who moves."""
        t = self.current
        if t is None:  # outside any thread (scenario set-up): nothing to schedule, but a bound
            self.setup_points += 1
            if self.setup_points > self.step_limit:
                raise StepLimitExceeded(f"more than {self.step_limit} scheduling points in the set-up")
            return
        t.pending_obj = obj
        t.pending_access = access
        t.pending_label = label
        t.pending_more = more
        t.ready_fn = ready
        self._yield_to_chooser(t)

    def check_announced(self, obj: Hashable, access: Access, what: str) -> None:
        """Audit: the running thread's current step must have announced ``access`` to ``obj``."""
        t = self.current
        if t is None or self.exempt or t.pending_obj is EVERYTHING:
            return
        if t.pending_obj == obj and covers(t.pending_access, access):
            return
        for o, a in t.pending_more:
            if o == obj and covers(a, access):
                return
        raise AuditError(f"{_model_caller()} {access.name.lower()}s {what} ({obj!r}) in a step that announced "
                         f"{_describe_step(t)}")

    def prepare_to_wait(self, wq: WaitQueue, exclusive: bool) -> None:
        """prepare_to_wait(_exclusive)(): queue the running thread on ``wq``; a wake-up from now on
        is not lost, even if it comes before schedule()."""
        t = self.current
        assert t is not None, "prepare_to_wait outside a model thread"
        if any(w is t for w, _ in wq.sleepers):
            return
        if exclusive:
            wq.sleepers.append((t, True))
        else:  # non-exclusive waiters go to the head, as add_wait_queue() does
            wq.sleepers.insert(0, (t, False))
        t.queued_on = wq

    def schedule(self, label: str) -> None:
        """schedule() after prepare_to_wait(): sleep until woken (at once if already woken)."""
        t = self.current
        assert t is not None, "schedule outside a model thread"
        wq = t.queued_on
        if wq is not None:
            t.sleeping_on = wq
        t.pending_obj = wq if wq is not None else ("thread", t.tid)
        t.pending_access = Access.WRITE
        t.pending_more = ()
        t.pending_label = label
        t.ready_fn = None
        self._yield_to_chooser(t)

    def finish_wait(self, wq: WaitQueue) -> None:
        t = self.current
        assert t is not None
        wq.sleepers = [(w, e) for w, e in wq.sleepers if w is not t]
        t.queued_on = None
        t.sleeping_on = None

    def took(self, lock: Hashable, shared: bool = False) -> None:
        """The running step has taken ``lock`` (``shared``: for read).  Until the thread's step
        that :meth:`dropped` it, no other thread's *blocking* step on ``lock`` can move (a READ one
        can, if the lock is held shared).  DPOR counts on exactly that (a race of such a step with
        the release is reversed before this step instead: faultlab.explore.dfs), so a lock's model
        says it when, and only when, it sets its owner; the audit checks it at every scheduling
        point."""
        t = self.current
        if t is not None:
            self.lock_ops.setdefault((t.tid, lock), []).append((self.nsteps - 1, True))
            if self.audit:
                self._holders.setdefault(lock, []).append((t.tid, shared))

    def dropped(self, lock: Hashable) -> None:
        """The running step has released ``lock`` (see :meth:`took`)."""
        t = self.current
        if t is not None:
            self.lock_ops.setdefault((t.tid, lock), []).append((self.nsteps - 1, False))
            if self.audit:
                held = self._holders.get(lock, [])
                for i, (tid, _) in enumerate(held):
                    if tid == t.tid:
                        del held[i]
                        break

    def _audit_locks(self, ready: list[ModelThread]) -> None:
        """Audit: a blocking step on a lock another thread holds (as took() says) cannot move."""
        for t in ready:
            if t.ready_fn is None:
                continue
            for tid, shared in self._holders.get(t.pending_obj, ()):
                if tid != t.tid and not (shared and t.pending_access == Access.READ):
                    raise AuditError(
                        f"{t.name}'s blocking step {t.pending_label!r} on {t.pending_obj!r} can move while "
                        f"{self.threads[tid].name} holds it{' shared' if shared else ''}: the lock's model "
                        f"reports taking or dropping it wrongly (Scheduler.took)")

    def wake_up(self, wq: WaitQueue, nr_exclusive: int) -> int:
        """__wake_up(): wake every non-exclusive sleeper and ``nr_exclusive`` exclusive ones
        (0 = all), in queue order; returns how many were woken."""
        kept: list[tuple[ModelThread, bool]] = []
        woken = 0
        exclusive_left = nr_exclusive
        for t, exclusive in wq.sleepers:
            if exclusive and nr_exclusive and exclusive_left == 0:
                kept.append((t, exclusive))
                continue
            t.sleeping_on = None
            t.queued_on = None
            woken += 1
            if exclusive:
                exclusive_left -= 1
        wq.sleepers = kept
        return woken

    @property
    def progress(self) -> int:
        """Steps and set-up points so far (what the watchdog sees move)."""
        return self.nsteps + self.setup_points

    def run_setup(self, body: Callable[[], object]) -> None:
        """Run ``body`` before the threads start, outside any thread (the scenario's set-up): its
        scheduling points are not steps and choose nothing, but they count toward the step limit,
        and the watchdog watches it as it does a run (a set-up can loop too, in a design's code)."""
        self.running = True
        try:
            body()
        finally:
            self.running = False

    # -- the loop ---------------------------------------------------------------------------------
    def _ready(self) -> list[ModelThread]:
        # ModelThread.ready(), inlined: this runs at every scheduling point
        return [t for t in self.threads
                if not t.finished and t.sleeping_on is None and (t.ready_fn is None or t.ready_fn())]

    def _pick(self) -> ModelThread | None:
        ready = self._ready()
        if not ready:
            return None
        if self.audit and self._holders:
            self._audit_locks(ready)
        chosen = self.chooser.choose(self, ready)
        if chosen not in ready:
            raise SchedulerError(f"chooser picked thread {chosen.name}, which cannot move")
        return chosen

    def _yield_to_chooser(self, t: ModelThread) -> None:
        if self._sequential and t.ready():  # the default chooser keeps a thread that can go on
            self._commit(t)
            return
        # _pick(), inlined: this runs at every scheduling point
        ready = [u for u in self.threads
                 if not u.finished and u.sleeping_on is None and (u.ready_fn is None or u.ready_fn())]
        if self.audit and self._holders:
            self._audit_locks(ready)
        chosen = self.chooser.choose(self, ready) if ready else None
        if chosen is not None and chosen not in ready:
            raise SchedulerError(f"chooser picked thread {chosen.name}, which cannot move")
        if chosen is t:
            self._commit(t)
            return
        assert self.main is not None
        self.main.switch(chosen)
        # Resumed by the main loop: it has committed our step.

    def _commit(self, t: ModelThread) -> None:
        if self.between_steps is not None:
            self.between_steps()
        if self.record:
            func = self.func_of() if self.func_of is not None else ""
            self.steps.append(Step(t.tid, t.pending_obj, t.pending_access, t.pending_label, func,
                                   t.pending_more))
        self.nsteps += 1
        if self.nsteps > self.step_limit:
            raise StepLimitExceeded(f"more than {self.step_limit} steps")
        t.ready_fn = None

    def _start(self, t: ModelThread) -> None:
        def run() -> None:
            try:
                t.result = t.body()
            except BaseException as e:  # noqa: BLE001 - reported to the caller of run()
                t.error = e
            t.finished = True

        t.glet = greenlet(run, parent=self.main)
        t.pending_obj = ("thread", t.tid)
        t.pending_access = Access.WRITE
        t.pending_label = "start"

    def run(self) -> None:
        """Run all threads until each has finished or all that remain are blocked."""
        self.main = greenlet.getcurrent()
        for t in self.threads:
            self._start(t)
        self.running = True
        try:
            self._loop()
        except BaseException:
            self.current = None
            self.halted = [t for t in self.threads if not t.finished]
            self._kill_all()
            raise
        finally:
            self.running = False
        blocked = [t for t in self.threads if not t.finished]
        if blocked:
            self.deadlock = Deadlock(blocked)
            self._kill_all()

    def _loop(self) -> None:
        chosen = self._pick()
        while chosen is not None:
            self.last_thread = chosen
            self._commit(chosen)
            self.current = chosen
            assert chosen.glet is not None
            nxt = chosen.glet.switch()
            self.current = None
            if chosen.error is not None:
                raise chosen.error
            chosen = nxt if isinstance(nxt, ModelThread) else self._pick()

    def _kill_all(self) -> None:
        for t in self.threads:
            if t.glet is not None and not t.glet.dead:
                t.glet.throw(greenlet.GreenletExit)


def _describe_step(t: ModelThread) -> str:
    parts = [f"{t.pending_access.name.lower()} {t.pending_obj!r}"]
    parts += [f"{a.name.lower()} {o!r}" for o, a in t.pending_more]
    return f"{' + '.join(parts)} ({t.pending_label!r})"


def _model_caller() -> str:
    """The innermost function outside the scheduler and the state layer (for audit messages)."""
    f = sys._getframe(2)
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        if not mod.startswith(("faultlab.sched", "faultlab.kernel.state")):
            path = f.f_code.co_filename
            cut = path.rfind("/faultlab/")
            return f"{f.f_code.co_name}() ({path[cut + 1:] if cut >= 0 else path}:{f.f_lineno})"
        f = f.f_back  # type: ignore[assignment]
    return "?"
