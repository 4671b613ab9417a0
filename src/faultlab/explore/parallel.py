"""An exhaustive search split across workers, exploring exactly what one process explores.

The split keeps the reduction because of one property of the sequential search
(:mod:`faultlab.explore.dfs`): every node explores its threads in the order they were added, so
when a thread ``t`` is added to a node its subtree is already fixed: the path to the node, ``t``,
and the sleep set ``t`` will start with (the node's own, plus the threads added there before
``t``).  Nothing that is explored later can change that subtree; it can only add more branches
after it.  So the subtree can be explored at once, anywhere, by a *task*.

The nodes above a *split depth* belong to a coordinator; a task explores one branch of them: the
path down to the split depth (the first choice at each node, as the sequential search takes it)
and then the whole subtree below it, with its own DPOR.  Races a task finds with the coordinator's
nodes are not settled by the task but sent back, in the order found.  The coordinator *commits*
task results in the order the sequential search would have run them (depth first, each node's
branches in their order): it counts their runs, then settles their races at its nodes, which may
add branches; each added branch becomes a task that workers start at once.  Since the races reach
each node in the same order as in one process, the same branches are added in the same order, and
the tasks are the same: the counts, final states, violations and the first counterexample are
those of one process (``jobs=1``), by construction, whatever the number of workers or the split
depth.  No task is run that one process would not run, except after a search stops early (a
violation with stop-on-first, a limit): tasks computed ahead are then dropped.

Workers in a local pool also *stream* each task's coordinator nodes (after its first run) and its
races (after each run) as they are found.  The coordinator settles those of the task it commits
next as they arrive, so the branches they add start on free workers while that task still runs;
those of later tasks wait until they are next.  This changes no result: the races settled early
are those the commit settles, in the same order (the commit rebuilds the nodes from the task's
result and settles all its races again, which re-adds the same branches, with the same sleep sets,
in the same order), so a branch started early is exactly the one the commit adds.

When a worker is idle and no branch is known that it could start, the task committed next (which
every later commit waits for) is asked to *hand off*: after its current run, if its own nodes (those
below its top) have at least two branches added and not started, it stops and returns, besides the
runs so far, those nodes as they stand.  The coordinator commits the runs as usual and then takes
the nodes onto its path: they are exactly the nodes one process would backtrack through after that
run, so it goes on from them (each branch a task) as one process would go on from there, and the
result is again one process's.  No run is repeated: the first run of each new task is the next
schedule one process would run.  (The pool's workers look at a shared number, the submission
asked, after every run; Ray's tasks ask a small actor, at most every 0.1 s.)

State kept across runs (lockdep) is split the same way: a program may define ``begin_task()``
(called in the worker before a task), ``end_task()`` (its contribution, a list, returned with the
result), ``task_mark()`` (the contribution's length so far, noted after every run, so that a
search that stops inside a task takes only the runs before the stop) and
``merge_task(contribution)`` (called by the coordinator at commit, in order).
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import os
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from faultlab.explore import interrupt
from faultlab.explore.checkpoint import Checkpoint
from faultlab.explore.collector import Collector
from faultlab.explore.common import RunCut
from faultlab.explore.coverage import Coverage
from faultlab.explore.dfs import Request, TreeSearch, _Node, settle
from faultlab.explore.estimate import BranchSizes, estimate_total
from faultlab.explore.program import Program, RunResult, Violation
from faultlab.explore.results import EXHAUSTED, INTERRUPTED, TIME_BUDGET
from faultlab.sched import watchdog

NodeData = tuple[tuple[int, int, int, list[int], int, int, int, int, int, int], Any]


@dataclass(frozen=True)
class Task:
    """One branch of the coordinator's nodes: explore below ``prefix`` (whose last choice is the
    branch), starting with sleep set ``branch_sleep``; nodes above ``top`` belong to the caller."""

    prefix: tuple[int, ...]
    branch_sleep: int
    top: int
    reduce: bool
    bound: int | None
    stop_on_first: bool
    keep_schedules: bool
    max_runs: int | None = None
    deadline: float | None = None  # wall clock (time.time()), for a time budget
    give_back_at: float | None = None  # wall clock: past it, hand off, or if it cannot, stop unexplored
    ident: int = 0  # which submission this is (a task's streamed messages name it)
    hand_off_after: int | None = None  # (tests) hand the rest back after this many runs, as if asked


@dataclass
class TaskResult:
    """What a task explored, in its own order."""

    runs: list[tuple[int, int, tuple[str, ...]]]  # per run: steps, final-state index (-1 sleep-set
    # blocked, -2 cut by the retry bound), violation ids
    marks: list[tuple[int, bool, int, tuple[int, int, int, int]]]  # per run, so far: races exported,
    # whether the bound pruned, the length of the program's contribution (``task_mark()``), and the
    # coverage of the nodes finished before it (after the run before it)
    final_states: list[Hashable]
    firsts: dict[int, tuple[list[int], RunResult]]  # run index -> trace and result, for first hits
    schedules: list[tuple[int, ...]] | None
    nodes: list[NodeData]  # the nodes from len(prefix) to top, as the first run created them
    exported: list[Request]
    pruned: bool
    contribution: Any = None
    stopped: bool = False  # stopped early (violation, max_runs, deadline): the rest was not run
    interrupted: bool = False  # stopped by a signal: the task must be run again
    given_back: bool = False  # stopped at ``give_back_at``: nothing of it counts, it is run again
    exhausted: bool = False  # its subtree has nothing left after its last run
    sizes: tuple[int, int] = (0, 0)  # its BranchSizes (first, later), for the estimate of the total
    coverage: tuple[int, int, int, int] = (0, 0, 0, 0)  # Coverage.counts() of the nodes it finished
    # Handed off (asked by the coordinator while workers were idle): the task stopped after its last
    # run and these are its own nodes, from its top down, with what the estimate keeps of each
    # (start, bstart, nexp, first; in the task's runs): the coordinator explores the rest from them.
    rest: list[tuple[NodeData, tuple[int, int, int, int]]] | None = None


def run_task(program: Program, task: Task) -> TaskResult:
    """Explore one task (in a worker, or in the coordinator's process)."""
    left = None if task.deadline is None else task.deadline - time.time()
    with watchdog.deadline(left):  # a step stuck past the time budget is stopped (sched.watchdog)
        return _run_task(program, task)


def _run_task(program: Program, task: Task) -> TaskResult:
    begin = getattr(program, "begin_task", None)
    if begin is not None:
        begin()
    ts = TreeSearch(program, reduce=task.reduce, bound=task.bound, prefix=task.prefix, sleep_sets=task.reduce,
                    top=task.top, branch_sleep=task.branch_sleep, export=True)
    runs: list[tuple[int, int, tuple[str, ...]]] = []
    marks: list[tuple[int, bool, int, tuple[int, int, int, int]]] = []
    mark = getattr(program, "task_mark", None)
    exported: list[Request] = ts.exported  # type: ignore[assignment]
    states: dict[Hashable, int] = {}
    firsts: dict[int, tuple[list[int], RunResult]] = {}
    seen: set[str] = set()
    schedules: list[tuple[int, ...]] | None = [] if task.keep_schedules else None
    nodes: list[NodeData] | None = None
    stopped = False
    exhausted = False  # nothing of the subtree is left after the last run
    rest: list[tuple[NodeData, tuple[int, int, int, int]]] | None = None
    stream = _STREAM
    streamed = 0
    told = 0.0  # when the runs done were last streamed (for the progress bar)
    while True:
        trace, result, _ = ts.run_one()
        first = nodes is None
        if first:
            nodes = [(n.state(), n.sig) for n in ts.path[ts.fixed : task.top]]
        if stream is not None:
            races = exported[streamed:] if len(exported) > streamed else None
            now = time.monotonic()
            if first or races is not None or now - told >= 0.1:
                stream.put((task.ident, nodes if first else None, races, len(runs) + 1))  # (+1: this run)
                streamed = len(exported)
                told = now
        if schedules is not None:
            schedules.append(tuple(trace))
        marks.append((len(exported), ts.pruned, mark() if mark is not None else 0, ts.coverage.counts()))
        if result is None:
            runs.append((len(trace), -2 if ts.retry_cut else -1, ()))
        else:
            idx = states.setdefault(result.final_state, len(states))
            ids = tuple(v.id for v in result.violations)
            runs.append((len(trace), idx, ids))
            if ids and not seen.issuperset(ids):
                seen.update(ids)
                firsts[len(runs) - 1] = (list(trace), RunResult(
                    [], [Violation(v.id, v.message, v.step) for v in result.violations], result.final_state,
                    list(result.thread_names)))
            if ids and task.stop_on_first:
                stopped = True
                exhausted = not ts.advance()
                break
        if task.max_runs is not None and len(runs) >= task.max_runs:
            stopped = True
            exhausted = not ts.advance()
            break
        if task.deadline is not None and time.time() >= task.deadline:
            stopped = True
            break
        if interrupt.requested():
            break
        if _asked_to_hand_off(task, len(runs)) and (rest := _own_nodes(ts)) is not None:
            break
        if not ts.advance():
            exhausted = True
            break
        if task.give_back_at is not None and time.time() >= task.give_back_at:
            return TaskResult([], [], [], {}, None, [], [], False, None, True, given_back=True)
    end = getattr(program, "end_task", None)
    if interrupt.requested():
        return TaskResult([], [], [], {}, None, [], [], False, None, True, True)
    return TaskResult(runs, marks, list(states), firsts, schedules, nodes or [], exported, ts.pruned,
                      end() if end is not None else None, stopped, sizes=(ts.sizes.first, ts.sizes.later),
                      coverage=ts.coverage.counts(), exhausted=exhausted, rest=rest)


@contextmanager
def asked_by(asked: Any) -> Iterator[None]:
    """Run tasks here reading the submission asked to hand off from ``asked.value`` (a Ray task)."""
    global _HAND_OFF
    before, _HAND_OFF = _HAND_OFF, asked
    try:
        yield
    finally:
        _HAND_OFF = before


def _asked_to_hand_off(task: Task, runs: int) -> bool:
    """Asked by the coordinator, or (in the calling process) the workers have started: rather than
    give its runs back, a task hands off if it can."""
    if task.hand_off_after is not None and runs >= task.hand_off_after:
        return True
    if task.give_back_at is not None and time.time() >= task.give_back_at:
        return True
    return _HAND_OFF is not None and _HAND_OFF.value == task.ident


def _own_nodes(ts: TreeSearch) -> list[tuple[NodeData, tuple[int, int, int, int]]] | None:
    """The task's own nodes as they stand, to hand off; None if fewer than two branches are left."""
    own = ts.path[ts.lim :]
    if branches_left(own, ts.sleep_sets) < 2:
        return None
    return [((n.state(), n.sig), (n.start, n.bstart, n.nexp, n.first)) for n in own]


def branches_left(nodes: Sequence[_Node], sleep_sets: bool) -> int:
    """The branches added to ``nodes`` and not yet started (a task hands off only if it has two:
    one alone would just move, and keep the other worker idle)."""
    left = 0
    for node in nodes:
        for t in node.order[node.pos + 1 :]:
            if not (sleep_sets and (node.sleep >> t) & 1):
                left += 1
    return left


class Executor(Protocol):
    """Runs tasks: ``submit`` returns a future; ``slots`` is how many run at once; a ``lazy``
    executor runs a task only when its result is asked for (so nothing is run ahead); ``stream``,
    if not None, is where its workers put each task's nodes and races as they are found."""

    @property
    def slots(self) -> int: ...

    @property
    def lazy(self) -> bool: ...

    @property
    def stream(self) -> Any: ...

    def submit(self, task: Task) -> Future[TaskResult]: ...

    def hand_off(self, ident: int) -> None:
        """Ask the task of submission ``ident`` to hand back what it has not started (if it can)."""

    def close(self) -> None: ...


class InlineExecutor:
    """Runs each task in this process when its result is first asked for (no speculation)."""

    slots = 1
    lazy = True
    stream = None

    def __init__(self, program: Program) -> None:
        self.program = program

    def submit(self, task: Task) -> Future[TaskResult]:
        fut: _LazyFuture = _LazyFuture(lambda: run_task(self.program, task))
        return fut

    def hand_off(self, ident: int) -> None:
        pass  # (a task here runs to its end before the next is asked for)

    def close(self) -> None:
        pass


class _LazyFuture(Future):
    def __init__(self, fn: Callable[[], TaskResult]) -> None:
        super().__init__()
        self.fn = fn

    def result(self, timeout: float | None = None) -> TaskResult:
        if not self.done():
            self.set_result(self.fn())
        return super().result(timeout)


_WORKER_PROGRAM: Program | None = None
_STREAM: Any = None  # in a pool worker: the queue its tasks' nodes and races go to as found
_HAND_OFF: Any = None  # in a worker: its ``.value`` is the submission asked to hand off (0: none)


def _worker_run(task: Task) -> TaskResult:
    assert _WORKER_PROGRAM is not None
    return run_task(_WORKER_PROGRAM, task)


def _init_worker(stream: Any, hand_off: Any) -> None:
    global _STREAM, _HAND_OFF
    _STREAM = stream
    _HAND_OFF = hand_off
    interrupt.ignore_in_worker()
    gc.freeze()  # what the fork inherited is never collected here: the collector would copy its pages


class PoolExecutor:
    """A pool of ``jobs`` forked worker processes, each holding the program (never pickled)."""

    def __init__(self, program: Program, jobs: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        global _WORKER_PROGRAM
        _WORKER_PROGRAM = program  # inherited by the forked workers
        self.slots = jobs
        self.lazy = False
        context = multiprocessing.get_context("fork")
        self.stream = context.SimpleQueue()
        self.asked = context.RawValue("q", 0)  # read by every worker after each run: no lock needed
        self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                                        initargs=(self.stream, self.asked))

    def submit(self, task: Task) -> Future[TaskResult]:
        return self.pool.submit(_worker_run, task)

    def hand_off(self, ident: int) -> None:
        self.asked.value = ident

    def close(self) -> None:
        # Tasks run ahead of a search that stopped are not waited for.
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            if p.is_alive():
                p.terminate()
        for p in processes:
            p.join()


class AdaptiveExecutor:
    """Runs tasks in this process until the search has taken ``after`` seconds, then on a pool of
    ``jobs`` processes: a small search does not pay for starting workers.  A task still running in
    this process then hands off (its runs count; the rest of its subtree goes to the pool) or, if
    it has fewer than two branches left, is given back (what it ran is dropped) and run again on
    the pool, so a large first task does not keep the workers from starting.  (The result does not
    depend on where tasks run, so switching part way changes nothing in it.)"""

    def __init__(self, program: Program, jobs: int, after: float = 0.1) -> None:
        self.program = program
        self.jobs = jobs
        self.inline = InlineExecutor(program)
        self.pool: PoolExecutor | None = None
        self.switch_at = time.monotonic() + after
        self.give_back_at = time.time() + after

    @property
    def lazy(self) -> bool:
        if self.pool is None and time.monotonic() >= self.switch_at:
            self.pool = PoolExecutor(self.program, self.jobs)
        return self.pool is None

    @property
    def slots(self) -> int:
        return self.jobs if self.pool is not None else 1

    @property
    def stream(self) -> Any:
        return self.pool.stream if self.pool is not None else None

    def submit(self, task: Task) -> Future[TaskResult]:
        if self.pool is not None:
            return self.pool.submit(task)
        return self.inline.submit(dataclasses.replace(task, give_back_at=self.give_back_at))

    def hand_off(self, ident: int) -> None:
        if self.pool is not None:
            self.pool.hand_off(ident)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def default_jobs() -> int:
    """All the cores this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return max(os.cpu_count() or 1, 1)


@dataclass
class _Spec:
    prefix: tuple[int, ...]
    branch_sleep: int
    future: Future[TaskResult] | None = None
    ident: int = 0  # of the submission running it


@dataclass
class SplitSearch:
    """The coordinator: the nodes above ``top`` on the current path, and the tasks below them."""

    program: Program
    executor: Executor
    reduce: bool
    bound: int | None
    top: int
    stop_on_first: bool = True
    keep_schedules: bool = False
    max_schedules: int | None = None
    deadline: float | None = None
    path: list[_Node] = field(default_factory=list)
    specs: dict[tuple[int, ...], _Spec] = field(default_factory=dict)
    pruned: bool = False
    tasks_run: int = 0
    tasks_committed: int = 0
    running: set[Future[TaskResult]] = field(default_factory=set)
    # The estimate of the total: the nodes' start/bstart count committed runs (``runs``); ``current``
    # is the size of the task being committed, ``base`` the runs before a resume (not in any node).
    sizes: BranchSizes = field(default_factory=BranchSizes)
    coverage: Coverage = field(default_factory=Coverage)  # the collector's, once the search runs
    runs: int = 0
    current: int = 1
    base: int = 0
    # What workers streamed for tasks not yet next to commit: per task, (nodes, races) messages.
    early: dict[tuple[int, ...], list[tuple[Any, Any]]] = field(default_factory=dict)
    idents: dict[int, _Spec] = field(default_factory=dict)  # submissions not yet committed or dropped
    streamed: int = 0  # streamed messages applied before their task's commit (to see it happen)
    inflight: dict[int, int] = field(default_factory=dict)  # submission -> runs it has done so far
    done_at_stop: bool = False  # the search stopped (a violation, a limit) at the tree's last run
    asked: int = 0  # the submission last asked to hand off
    handed_off: int = 0  # tasks that did

    @property
    def sleep_sets(self) -> bool:
        return self.reduce and self.bound is None

    def _task(self, spec: _Spec, committed: int) -> Task:
        cap = None if self.max_schedules is None else max(self.max_schedules - committed, 1)
        self.tasks_run += 1
        spec.ident = self.tasks_run
        self.idents[spec.ident] = spec
        return Task(spec.prefix, spec.branch_sleep, self.top, self.reduce, self.bound, self.stop_on_first,
                    self.keep_schedules, cap, self.deadline, ident=spec.ident)

    def _pending(self) -> Iterator[_Spec]:
        """Branches added to the path's nodes and not yet committed, in the order they will be
        (deepest node first, then each node's order)."""
        choices = [n.chosen for n in self.path]
        for d in range(len(self.path) - 1, -1, -1):
            node = self.path[d]
            base = tuple(choices[:d])
            done = node.done
            for t in node.order[node.pos + 1 :]:
                if self.sleep_sets and (node.sleep >> t) & 1:
                    continue
                key = base + (t,)
                spec = self._spec(key, (node.sleep | done) if self.sleep_sets else 0)
                done |= 1 << t
                yield spec

    def _spec(self, key: tuple[int, ...], branch_sleep: int) -> _Spec:
        """The task of a branch; one made earlier is used only if it starts with the same sleep set
        (it always does: see the module's docstring; this keeps a mistake there from counting)."""
        spec = self.specs.get(key)
        if spec is None or spec.branch_sleep != branch_sleep:
            if spec is not None and spec.future is not None:
                spec.future.cancel()
                self.idents.pop(spec.ident, None)
                self.inflight.pop(spec.ident, None)
                self.early.pop(key, None)
            spec = self.specs[key] = _Spec(key, branch_sleep)
        return spec

    def _show_running(self, collector: Collector) -> None:
        """The progress bar, with the runs of tasks not yet committed."""
        if collector.progress is not None and self.inflight:
            collector.progress(dataclasses.replace(collector.stats(), running=sum(self.inflight.values())))

    def _drain(self, spec: _Spec) -> bool:
        """Take what workers streamed; apply that of ``spec`` (the task committed next) to the
        path now, keep that of later tasks until they are next.  Returns whether it applied any."""
        stream = self.executor.stream
        if stream is not None:
            while not stream.empty():
                ident, nodes, races, runs = stream.get()
                owner = self.idents.get(ident)
                if owner is None:  # (a task committed or dropped since says nothing more)
                    continue
                self.inflight[ident] = runs
                if nodes is not None or races is not None:
                    self.early.setdefault(owner.prefix, []).append((nodes, races))
        messages = self.early.pop(spec.prefix, None)
        if not messages:
            return False
        self.streamed += len(messages)
        for nodes, races in messages:
            if nodes is not None:
                del self.path[len(spec.prefix) :]
                self._take(nodes)
            if races is not None:  # (whether the bound pruned is settled at the commit, which settles all again)
                settle(self.path, races, 0, self.bound, self.sleep_sets, None)
        return True

    def _fill(self, spec: _Spec, committed: int) -> None:
        """Keep every slot of the executor busy: ``spec`` (needed next) first, then the pending
        branches in the order they will be needed."""
        running = self.running
        for f in [f for f in running if f.done()]:
            running.discard(f)
        slots = self.executor.slots
        for s in itertools.chain((spec,), self._pending()):
            if len(running) >= slots and s is not spec:
                return
            if s.future is None:
                s.future = self.executor.submit(self._task(s, committed))
                running.add(s.future)

    def _take(self, nodes: Sequence[NodeData]) -> list[_Node]:
        """Put nodes made elsewhere (by a task, or saved in a checkpoint) at the end of the path, as
        if made after the runs committed so far; returns them."""
        taken = []
        for st, sig in nodes:
            node = _Node.from_state(st)
            node.sig = sig
            node.start = node.bstart = self.runs
            self.path.append(node)
            taken.append(node)
        return taken

    def _ask_hand_off(self, spec: _Spec) -> None:
        """A worker is idle and no branch is known to start: ask the task committed next (which
        every later commit waits for) to hand back the branches it has not started."""
        if self.asked == spec.ident or sum(1 for f in self.running if not f.done()) >= self.executor.slots:
            return
        self.asked = spec.ident
        self.executor.hand_off(spec.ident)

    def _advance(self) -> _Spec | None:
        path = self.path
        d = len(path) - 1
        while d >= 0:
            node = path[d]
            order = node.order
            pos = node.pos + 1
            while pos < len(order) and self.sleep_sets and (node.sleep >> order[pos]) & 1:
                pos += 1
            if pos < len(order):
                t = order[pos]
                z = (node.sleep | node.done) if self.sleep_sets else 0
                if not node.nexp:
                    node.first = self.runs - node.start
                node.bstart = self.runs
                node.nexp += 1
                node.pos = pos
                node.done |= 1 << t
                node.chosen = t
                node.block = path[d - 1].block if d > 0 and t == node.prev else d
                del path[d + 1 :]
                return self._spec(tuple(n.chosen for n in path), z)
            self.sizes.finished(node, self.runs)
            self.coverage.finished(node)
            node.pos = len(order) - 1
            d -= 1
        return None

    def state(self, spec: _Spec | None, collector: Collector, program: Program) -> dict[str, Any]:
        """The committed state, with ``spec`` next (None: the search is over), for a checkpoint."""
        save = getattr(program, "save_state", None)
        return {
            "top": self.top,
            "path": [(n.state(), n.sig) for n in self.path],
            "next": None if spec is None else (spec.prefix, spec.branch_sleep),
            "pruned": self.pruned,
            "collector": collector.snapshot(),
            "program": save() if save is not None else None,
            "tasks": self.tasks_committed,
        }

    def restore(self, st: dict[str, Any], collector: Collector, program: Program) -> _Spec | None:
        """Go on from :meth:`state`; returns the next branch to commit (None: nothing is left)."""
        self.top = st["top"]
        self.path = []
        collector.restore(st["collector"])
        # (the runs before the resume are counted once, in ``base``; the sizes of branches finished
        # before it are unknown)
        self.runs = self.base = collector.schedules
        for node in self._take(st["path"]):
            node.nexp = sum(1 for t in node.order[: node.pos] if not (self.sleep_sets and (node.sleep >> t) & 1))
        self.pruned = st["pruned"]
        self.tasks_committed = st.get("tasks", 0)
        load = getattr(program, "load_state", None)
        if load is not None and st["program"] is not None:
            load(st["program"])
        if st["next"] is None:
            return None
        prefix, branch_sleep = st["next"]
        spec = self.specs[tuple(prefix)] = _Spec(tuple(prefix), branch_sleep)
        return spec

    def search(self, collector: Collector, merge: Callable[[Any], None] | None = None,
               start: _Spec | None = None, checkpoint: Checkpoint | None = None) -> tuple[bool, str, bool]:
        """Run the whole search (or, with ``start``, the rest of a restored one), committing into
        ``collector``; ``(complete, stop_reason, pruned)`` as
        :func:`faultlab.explore.dfs.tree_search` returns them.  ``checkpoint`` is saved every
        ``checkpoint.interval`` seconds, at the end, and when a signal stops the search."""
        spec: _Spec | None = start if start is not None else self.specs.setdefault((), _Spec((), 0))
        collector.interruptible = False
        self.coverage = collector.coverage
        collector.total = lambda: self.base + estimate_total(self.path, self.sizes, self.sleep_sets, self.current)
        try:
            while spec is not None:
                if interrupt.requested():
                    return self._stop(spec, collector, checkpoint, INTERRUPTED)
                if self.executor.lazy:
                    if spec.future is None:
                        spec.future = self.executor.submit(self._task(spec, collector.schedules))
                else:
                    self._drain(spec)
                    self._fill(spec, collector.schedules)
                    poll = 0.2 if self.executor.stream is None else 0.005
                    while spec.future is not None and not spec.future.done():
                        done, _ = wait(self.running, timeout=poll, return_when=FIRST_COMPLETED)
                        if interrupt.requested():
                            return self._stop(spec, collector, checkpoint, INTERRUPTED)
                        if self._drain(spec) or done:  # (new branches, or a free worker)
                            self._fill(spec, collector.schedules)
                        self._ask_hand_off(spec)
                        self._show_running(collector)
                assert spec.future is not None
                res = spec.future.result()
                if res.given_back:  # run again, on the workers started meanwhile
                    self.idents.pop(spec.ident, None)
                    self.inflight.pop(spec.ident, None)
                    spec.future = None
                    continue
                if res.interrupted:  # the task stopped part way: it is run again on resume
                    spec.future = None
                    return self._stop(spec, collector, checkpoint, INTERRUPTED)
                if checkpoint is not None and self._limit_reached_by(res, collector):
                    # The search stops part way through this task: what is saved is the state
                    # before it (as on a signal), and a resumed search runs it again.
                    checkpoint.save(self.state(spec, collector, self.program))
                del self.specs[spec.prefix]
                self.idents.pop(spec.ident, None)
                self.inflight.pop(spec.ident, None)
                self.early.pop(spec.prefix, None)
                reason = self._commit(spec, res, collector, merge)
                if reason is not None:
                    return self.done_at_stop and not self.pruned, reason, self.pruned
                self.tasks_committed += 1
                spec = self._advance()
                if checkpoint is not None and (spec is None or checkpoint.due()):
                    checkpoint.save(self.state(spec, collector, self.program))
            return not self.pruned, EXHAUSTED, self.pruned
        finally:
            for s in self.specs.values():
                if s.future is not None:
                    s.future.cancel()
            self.executor.close()

    def _limit_reached_by(self, res: TaskResult, collector: Collector) -> bool:
        """Whether committing ``res`` may stop the search at ``--max-schedules`` or the time budget."""
        if res.stopped or (self.deadline is not None and time.time() >= self.deadline):
            return True
        return self.max_schedules is not None and collector.schedules + len(res.runs) >= self.max_schedules

    def _stop(self, spec: _Spec, collector: Collector, checkpoint: Checkpoint | None,
              reason: str) -> tuple[bool, str, bool]:
        if checkpoint is not None:
            checkpoint.save(self.state(spec, collector, self.program))
        return False, reason, self.pruned

    def _commit(self, spec: _Spec, res: TaskResult, collector: Collector,
                merge: Callable[[Any], None] | None) -> str | None:
        del self.path[len(spec.prefix) :]
        self._take(res.nodes)
        self.sizes.merge(*res.sizes)
        self.current = max(len(res.runs), 1)
        for i, (steps, fs, ids) in enumerate(res.runs):
            first = res.firsts.get(i)
            trace = res.schedules[i] if res.schedules is not None else (first[0] if first else None)
            collector.add_run(steps, trace, None if fs < 0 else res.final_states[fs], ids,
                              first[1] if first else None, fs == -2)
            reason = collector.stop_reason()
            if reason is not None:
                # As one process would: the races of the runs so far are settled (only whether the
                # bound pruned is still looked at).
                n, pruned, m, _ = res.marks[i]
                # the nodes one process finishes before it stops: those finished after this run
                self.coverage.merge(res.marks[i + 1][3] if i + 1 < len(res.marks) else res.coverage)
                if settle(self.path, res.exported[:n], 0, self.bound, self.sleep_sets, None) or pruned:
                    self.pruned = True
                if merge is not None and isinstance(res.contribution, list):
                    merge(res.contribution[:m])
                # Complete if that run was the last of the whole tree, as one process says when its
                # last run is the one it stops at.
                self.done_at_stop = i == len(res.runs) - 1 and res.exhausted and self._advance() is None
                return reason
        self.coverage.merge(res.coverage)
        if res.stopped:  # only a worker's own clock (time budget) can stop it before the collector
            return TIME_BUDGET
        if settle(self.path, res.exported, 0, self.bound, self.sleep_sets, None) or res.pruned:
            self.pruned = True
        if merge is not None:
            merge(res.contribution)
        if res.rest is not None:  # its own nodes are the coordinator's now: the rest starts from them
            self.handed_off += 1
            nodes = self._take([data for data, _ in res.rest])
            for node, (start, bstart, nexp, leaves) in zip(nodes, (sizes for _, sizes in res.rest), strict=True):
                node.start, node.bstart, node.nexp, node.first = self.runs + start, self.runs + bstart, nexp, leaves
        self.runs = collector.schedules
        return None


def split_depth(first_run_steps: int, workers: bool) -> int:
    """Where the coordinator's nodes end.  With workers, a sixth of the first run: tasks are then
    few and large, and the races a task streams while it runs add its siblings early, which keeps
    the workers busy; splitting deep made a thousand small tasks each waiting for the one before it
    (hole-double-zero v4.7/v4.10 on 2 workers: 12.7/32.8 s at two thirds of the run, 6.4/20.3 s at
    a sixth; 11.8/36 s in one process; docs/scaling.md).  In one process (a checkpointed search),
    two thirds: a commit, and so a checkpoint, then comes every few runs."""
    return max(1, first_run_steps // 6 if workers else first_run_steps * 2 // 3)


def first_run_steps(program: Program) -> int:
    """How many steps the default schedule runs. A run that its own retry bound cuts (RunCut) still
    says how deep runs go: the search itself counts the cut."""
    from faultlab.explore.replay import ReplayChooser

    chooser = ReplayChooser([])
    try:
        program().run(chooser)
    except RunCut:
        pass
    return len(chooser.trace)


def parallel_search(program: Program, collector: Collector, *, reduce: bool, bound: int | None,
                    executor: Executor, top: int | None = None, stop_on_first: bool = True,
                    keep_schedules: bool = False, max_schedules: int | None = None,
                    budget_seconds: float | None = None,
                    checkpoint: Checkpoint | None = None) -> tuple[bool, str, bool, int]:
    """:func:`faultlab.explore.dfs.tree_search` split across ``executor``: the same result.
    Returns ``(complete, stop_reason, pruned, tasks committed)``.  With ``checkpoint`` it goes on
    from the checkpoint's state for this search if it has one, and saves its own."""
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        assert checkpoint is not None
        top = saved.get("top")
        if not isinstance(top, int) or top < 0:
            raise checkpoint.damaged(f"its split depth is {top!r}")
    if top is None:
        top = split_depth(first_run_steps(program), workers=not isinstance(executor, InlineExecutor))
    deadline = time.time() + budget_seconds if budget_seconds is not None else None
    search = SplitSearch(program, executor, reduce, bound, top, stop_on_first, keep_schedules, max_schedules,
                         deadline)
    merge = getattr(program, "merge_task", None)
    if saved is not None:
        assert checkpoint is not None
        try:
            start = search.restore(saved, collector, program)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:  # a file made or changed by hand
            search.executor.close()
            raise checkpoint.damaged(f"{type(e).__name__}: {e}") from None
        if start is None:  # finished before: nothing to run
            search.executor.close()
            return not search.pruned, EXHAUSTED, search.pruned, search.tasks_committed
        complete, reason, pruned = search.search(collector, merge, start, checkpoint)
    else:
        complete, reason, pruned = search.search(collector, merge, None, checkpoint)
    return complete, reason, pruned, search.tasks_committed


def _tids(seq: Sequence[int]) -> str:  # pragma: no cover - debugging aid
    return ".".join(map(str, seq))
