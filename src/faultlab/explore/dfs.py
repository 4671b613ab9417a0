"""Exhaustive stateless search over the tree of scheduling choices: plain DFS and DPOR.

The search is *stateless*: it never snapshots a run.  It keeps the current path through the tree (one
node per step: which threads were ready, which one was taken, which are still to be tried) and, for
every schedule, runs a fresh execution that replays the path's choices up to the deepest node with
an untried alternative, takes that alternative, and then continues with a default choice to the end.

**Plain DFS** tries every ready thread at every node.  It is the reference the reduced search is
cross-checked against.

**DPOR** is source-DPOR with sleep sets: Abdulla, Aronis, Jonsson and Sagonas, "Optimal dynamic
partial order reduction", POPL 2014, Algorithm 1 (source sets), which refines the DPOR of Flanagan
and Godefroid (POPL 2005); sleep sets are Godefroid's (LNCS 1032, 1996).  Each step is the set of
accesses a thread announced at its scheduling point, each ``(obj, READ|UPDATE|WRITE)``; two steps
are *dependent* when they belong to one thread, or touch a common object in conflicting ways: not
both READs and not both UPDATEs (an UPDATE is a write that commutes with other UPDATEs, such as
adding a member to a set; see :class:`faultlab.sched.core.Access`).  Happens-before is tracked with
vector clocks (per event, per thread, and per object: the last WRITE, and the READs and UPDATEs
since it).

* When thread ``p`` is about to take step ``e'`` (at every node reached with a new choice), every
  *race* ``e < e'`` is found: ``e`` is dependent with ``e'``, does not happen-before ``p``, and no
  other such step happens after ``e`` (at most two per object: the last write, or each thread's
  last read since it).  With ``u = notdep(e).p`` (the steps after ``e`` that do not happen after it,
  then ``p``), if no thread in ``initials(u)`` is in the backtrack set of the state before ``e``,
  one (``p`` first, one that is not asleep if possible) is added.  ``initials(u)`` is computed from
  vector clocks in O(threads^2): a thread is initial when its first step in ``u`` has no
  predecessor in ``u``.
* **Blocking.**  A thread whose pending step is not ready (a held lock, a wait queue it sleeps on)
  is checked at every state while it waits, as FG05 does for every process: each step on the
  object it waits for (e.g. the holder's acquire) is a race, and when it starts waiting its races
  in the objects' history are found.  A race that cannot be reversed at the state before ``e``
  (no initial thread is ready there: ``e`` released the lock or woke the sleeper) falls back to
  FG05's conservative rule, adding every ready thread there.  Releases and wake-ups are WRITEs on
  the lock or queue, so they are dependent with the waiter's step.
* **Locks.**  A blocking step on a lock (an acquire) races with the release that let it go, but it
  cannot move in any state between the releasing thread's acquire and that release.  When the
  model's lock log (:meth:`faultlab.sched.core.Scheduler.took`) shows the releasing thread holding
  the lock from an acquire to the release, the race is reversed before that acquire instead, with
  ``u`` taken from there; if the acquiring thread already happens after that acquire, no run can
  put it first and the race is dropped.  Reversed before the release, the branch only brought the
  thread up to the held lock, where it waited (the run then often ended sleep-set blocked), and
  reached the acquire from there: on ``hole-double-zero`` under ``v4.7`` 1,100 of 8,932 runs
  were blocked; with the change, none of 7,832 were.  (In every run where the acquire goes first
  it also goes before the holder's acquire, so the reversed runs are those a branch there
  starts.)  The audit checks the lock log at every scheduling point.

Sleep sets: after the branch for thread ``t`` at a node is done, ``t`` sleeps in the later branches
until a step dependent with ``t``'s pending step runs; a run where every ready thread is asleep is
abandoned (counted as *sleep-set blocked*).

**Preemption bound** (optional): a preemption is a switch away from a thread that could have gone
on.  Choices that would exceed the bound are not taken, and the search reports that it pruned.
With a bound, DPOR reverses a race as FG05 does (``p`` if it can move there, else every thread that
can), both at the state before the racing step and at the start of that step's block, where
switching costs no extra preemption (BPOR: Coons, Musuvathi and McKinley, "Bounded partial-order
reduction", OOPSLA 2013); sleep sets are off, since they are unsound under a preemption bound
(Musuvathi and Qadeer, PLDI 2007).  Bounded plain DFS is exact; bounded DPOR reached every end state
that bounded plain DFS did on 1,300 random toy programs at bounds 0-2, but carries no proof.

A *prefix* fixes the first choices: only the subtree below it is searched, as if the prefix were
part of the initial state (races with prefix steps are ignored; other prefixes cover them).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Sequence

from faultlab.errors import UserError
from faultlab.explore.collector import Collector
from faultlab.explore.common import AbortRun, RunCut
from faultlab.explore.coverage import Coverage
from faultlab.explore.estimate import BranchSizes, estimate_total
from faultlab.explore.program import NondeterminismError, Program, RunResultLike, ScheduleError
from faultlab.explore.results import EXHAUSTED
from faultlab.sched.core import EVERYTHING, Access, Accesses, ModelThread, Scheduler

_READ = Access.READ
_UPDATE = Access.UPDATE
_WRITE = Access.WRITE
_NONE: frozenset[int] = frozenset()
StepAccesses = list[tuple[Hashable, Access]]


Request = tuple[int, int, int]
"""A race a run found, to be settled at the node of its racing step: ``(depth, initials, p)``.  Under
a preemption bound ``initials`` is ``-1`` (that node and the start of its block) or ``-2`` (that
node only)."""


class _Node:
    """One state on the current path; thread sets are bit masks over thread ids.  The threads to
    explore here are kept in the order they were added (``order``), and explored in that order: a
    branch's sleep set is then fixed when it is added (the branches before it), which is what lets
    a search be split without changing what it explores (see :mod:`faultlab.explore.parallel`)."""

    __slots__ = ("enabled", "chosen", "done", "backtrack", "order", "pos", "sleep", "preempt", "prev", "block",
                 "cut", "sig", "start", "bstart", "nexp", "first")

    def __init__(
        self, enabled: int, chosen: int, sleep: int, backtrack: int, preempt: int, prev: int, start: int = 0
    ) -> None:
        self.enabled = enabled  # ready threads
        self.chosen = chosen  # thread taken on the current path
        self.done = 1 << chosen  # threads whose branch has been (or is being) explored
        self.backtrack = self.done  # threads that must be explored here
        self.order = [chosen]  # the same, in the order they are explored
        self.pos = 0  # index of ``chosen`` in ``order``
        self.sleep = sleep  # threads asleep on entry (sleep sets)
        self.preempt = preempt  # preemptions on the path before this node
        self.prev = prev  # thread of the previous step, -1 at the root
        self.block = 0  # index of the first node of the block of same-thread steps ending here
        self.cut = 0  # threads the preemption bound kept from being explored here (for the coverage)
        self.sig: tuple[Access, str] | None = None  # (access, label) of the chosen step, for replay checks
        # For the estimate of the total (faultlab.explore.estimate): the runs finished before this
        # node was made and before its current branch began, how many of its branches are finished,
        # and the leaves of the first one.
        self.start = start
        self.bstart = start
        self.nexp = 0
        self.first = 0
        if backtrack:
            self.insert(backtrack)

    def insert(self, mask: int) -> None:
        """Add the threads of ``mask`` to explore here (after those already added, lowest id first)."""
        mask &= ~self.backtrack
        self.backtrack |= mask
        while mask:
            low = mask & -mask
            mask ^= low
            self.order.append(low.bit_length() - 1)

    def state(self) -> tuple[int, int, int, list[int], int, int, int, int, int, int]:
        """Everything but the replay signature, for checkpoints."""
        return (self.enabled, self.chosen, self.sleep, list(self.order), self.pos, self.preempt, self.prev,
                self.block, self.done, self.cut)

    @classmethod
    def from_state(cls, st: Sequence[object]) -> _Node:
        enabled, chosen, sleep, order, pos, preempt, prev, block, done, cut = st
        node = cls(int(enabled), int(chosen), int(sleep), 0, int(preempt), int(prev))  # type: ignore[call-overload]
        node.order = [int(t) for t in order]  # type: ignore[attr-defined]
        node.backtrack = 0
        for t in node.order:
            node.backtrack |= 1 << t
        node.pos = int(pos)  # type: ignore[call-overload]
        node.block = int(block)  # type: ignore[call-overload]
        node.done = int(done)  # type: ignore[call-overload]
        node.cut = int(cut)  # type: ignore[call-overload]
        return node


class _Obj:
    """Per-object history for happens-before and race lookup: the last WRITE, and the READs and the
    UPDATEs since it (each kind commutes with itself, so each is kept as a set of per-thread last
    accesses and the join of their clocks)."""

    __slots__ = ("widx", "wtid", "wlocal", "wclock", "rclock", "reads", "uclock", "updates", "step", "pos")

    def __init__(self, step: int, pos: int) -> None:
        # where the object was first announced: the step, and 0 for its first object, j + 1 for its
        # j-th further one (to find the same object in another run, see _History.rekey)
        self.step = step
        self.pos = pos
        self.widx = -1  # global index of the last write
        self.wtid = -1
        self.wlocal = 0  # that write's index within its thread (1-based)
        self.wclock: list[int] | None = None
        self.rclock: list[int] | None = None  # join of the clocks of reads since the last write
        self.reads: dict[int, tuple[int, int]] | None = None  # tid -> (global, local) of its last read
        self.uclock: list[int] | None = None  # the same for updates
        self.updates: dict[int, tuple[int, int]] | None = None


_Saved = tuple["_Obj", int, int, int, "list[int] | None", "list[int] | None", "dict[int, tuple[int, int]] | None",
               "list[int] | None", "dict[int, tuple[int, int]] | None"]
_EMPTY = (-1, -1, 0, None, None, None, None, None)  # the fields of a new _Obj


class _History:
    """The happens-before state of the steps accounted so far on the current path (vector clocks and
    object histories), kept from one run to the next: a run that replays the first ``d`` steps of the
    previous one starts from its state after those steps instead of accounting them again.  Clocks
    are never changed once made (a join makes a new list), so that each step can be undone from what
    it replaced (``undo``).

    Each run makes its model objects anew, so the objects of the kept steps are renamed to the new
    run's (:meth:`rekey`): those announced at the same place of the same step."""

    __slots__ = ("n", "clock", "evidx", "evclock", "objs", "undo")

    def __init__(self, n: int) -> None:
        self.n = n
        self.clock: list[list[int]] = [[0] * n for _ in range(n)]  # per thread: the clock of its last step
        self.evidx: list[list[int]] = [[] for _ in range(n)]  # per thread: global indices of its steps
        self.evclock: list[list[int]] = []  # per step: its vector clock
        self.objs: dict[Hashable, _Obj] = {}
        # per step: its thread, that thread's clock before it, and each object's history before it
        self.undo: list[tuple[int, list[int], list[_Saved]]] = []

    def truncate(self, d: int) -> None:
        """Forget the steps from index ``d`` on."""
        undo = self.undo
        while len(undo) > d:
            q, old, saved = undo.pop()
            self.clock[q] = old
            self.evidx[q].pop()
            self.evclock.pop()
            # (an object first seen after ``d`` is left empty, which is as good as absent)
            for info, widx, wtid, wlocal, wclock, rclock, reads, uclock, updates in reversed(saved):
                info.widx, info.wtid, info.wlocal, info.wclock = widx, wtid, wlocal, wclock
                info.rclock, info.reads, info.uclock, info.updates = rclock, reads, uclock, updates

    def rekey(self, raw: list[tuple[Hashable, Accesses]]) -> None:
        """Rename the objects to those the kept steps of a new run announced (``raw``: per step, its
        first object and its further accesses)."""
        kept = len(raw)
        objs: dict[Hashable, _Obj] = {}
        for info in self.objs.values():
            if info.step < kept:  # (the others were first seen in steps forgotten since: empty)
                obj, more = raw[info.step]
                objs[obj if info.pos == 0 else more[info.pos - 1][0]] = info
        self.objs = objs

    def account(self, i: int, q: int, last: StepAccesses, more: Accesses) -> None:
        """Vector clocks and object histories for step ``i`` of thread ``q`` (accesses ``last``; the
        further accesses it announced: ``more``)."""
        old = self.clock[q]
        cq = old.copy()
        cq[q] += 1
        self.evidx[q].append(i)
        objs = self.objs
        saved: list[_Saved] = []
        if len(last) == 1:
            obj, mode = last[0]
            info = objs.get(obj)
            if info is None:
                info = objs[obj] = _Obj(i, 0)
                saved.append((info, *_EMPTY))
            else:
                saved.append((info, info.widx, info.wtid, info.wlocal, info.wclock, info.rclock, info.reads,
                              info.uclock, info.updates))
            _join_history(info, mode, cq)
            _record(info, mode, cq, i, q)
        else:
            infos = []
            positions: dict[Hashable, int] | None = None
            for obj, mode in last:
                info = objs.get(obj)
                if info is None:
                    if positions is None:
                        positions = _positions(last[0][0], more)
                    info = objs[obj] = _Obj(i, positions[obj])
                    saved.append((info, *_EMPTY))
                else:
                    saved.append((info, info.widx, info.wtid, info.wlocal, info.wclock, info.rclock,
                                  info.reads, info.uclock, info.updates))
                _join_history(info, mode, cq)
                infos.append((info, mode))
            for info, mode in infos:
                _record(info, mode, cq, i, q)
        self.clock[q] = cq
        self.evclock.append(cq)
        self.undo.append((q, old, saved))


def add_race(node: _Node, initials: int, p: int, sleep_sets: bool) -> None:
    """Make sure the node explores one of ``initials`` (source-DPOR; p first, and one that is not
    asleep if there is one), or, if none of them can move there, every thread that can (FG05's
    conservative rule)."""
    covered = node.backtrack
    if initials & covered:
        return
    cand = initials & node.enabled
    if sleep_sets:
        awake = cand & ~node.sleep
        if cand and not awake:  # asleep: explored from an equivalent state already
            return
        cand = awake
        covered |= node.sleep
    if cand:
        node.insert(1 << p if (cand >> p) & 1 else cand & -cand)
    else:
        node.insert(node.enabled & ~covered)


def within_bound(node: _Node, c: int, bound: int | None) -> bool:
    """Whether taking thread ``c`` at ``node`` keeps the path within the preemption bound."""
    if bound is None:
        return True
    prev = node.prev
    cost = node.preempt + (1 if prev >= 0 and c != prev and (node.enabled >> prev) & 1 else 0)
    return cost <= bound


def add_race_bounded(node: _Node, p: int, bound: int | None) -> bool:
    """Under a preemption bound: add p if it can move at the node, else every thread that can; only
    choices within the bound are taken.  Returns whether the bound pruned one."""
    cand = (1 << p) & node.enabled or node.enabled
    todo = cand & ~node.backtrack
    pruned = False
    while todo:
        low = todo & -todo
        todo ^= low
        if within_bound(node, low.bit_length() - 1, bound):
            node.insert(low)
        else:
            node.cut |= low
            pruned = True
    return pruned


def settle(path: Sequence[_Node], requests: Sequence[Request], lim: int, bound: int | None, sleep_sets: bool,
           out: list[Request] | None) -> bool:
    """Settle a run's races at the nodes of ``path`` from depth ``lim`` on; those above go to ``out``
    (if given).  Returns whether the bound pruned a choice."""
    pruned = False
    for i, initials, p in requests:
        if i < lim:
            if out is not None:
                out.append((i, initials, p))
            continue
        node = path[i]
        if initials >= 0:
            add_race(node, initials, p, sleep_sets)
            continue
        # Bounded: FG05's rule here and where the racing step's block began (BPOR), which costs no
        # extra preemption.
        pruned |= add_race_bounded(node, p, bound)
        j = node.block
        if initials == -1 and j != i:
            if j >= lim:
                pruned |= add_race_bounded(path[j], p, bound)
            elif out is not None:
                out.append((j, -2, p))
    return pruned


class TreeSearch:
    """The current path through the choice tree, and the rules for growing and backtracking it.

    ``prefix`` fixes the first choices.  ``top`` leaves the nodes above that depth to the caller
    (a split search): their branches are not explored here, and with ``export`` the races found for
    them are kept, in the order found, in ``exported``.  ``branch_sleep`` is the sleep set of the
    last prefix node (the threads explored there before the prefix's last choice)."""

    def __init__(
        self,
        program: Program,
        *,
        reduce: bool,
        bound: int | None = None,
        prefix: Sequence[int] = (),
        sleep_sets: bool = True,
        cutoff: int | None = None,
        top: int = 0,
        branch_sleep: int = 0,
        export: bool = False,
    ) -> None:
        if bound is not None and bound < 0:
            raise UserError(f"preemption bound must be at least 0, not {bound}")
        self.program = program
        self.reduce = reduce
        self.bound = bound
        self.prefix = list(prefix)
        self.fixed = len(self.prefix)
        self.lim = max(self.fixed, top)
        self.branch_sleep = branch_sleep
        self.sleep_sets = sleep_sets and bound is None
        self.cutoff = cutoff  # stop each run at this depth (used to enumerate prefixes)
        self.path: list[_Node] = []
        self.replay_len = 0
        self.pruned = False
        self.exported: list[Request] | None = [] if export else None
        self.history: _History | None = None  # DPOR's state along the path, kept between runs
        self.runs = 0  # runs finished (each a leaf of the tree)
        self.sizes = BranchSizes()  # for the estimate of the total
        self.coverage = Coverage()  # of the nodes finished here (tree_search: the collector's)
        self.retry_cut = False  # whether the program's retry bound cut the last run (RunCut)

    def run_one(self) -> tuple[list[int], RunResultLike | None, bool]:
        """Run the next schedule: (its choices, its result or None if abandoned, cut at ``cutoff``)."""
        chooser = _TreeChooser(self)
        self.retry_cut = False
        try:
            result = self.program().run(chooser)
        except AbortRun as e:
            self.runs += 1
            if isinstance(e, RunCut):  # the program's own bound cut the run: not a proof beyond it
                self.pruned = self.retry_cut = True
            self._settle(chooser.requests)
            return chooser.trace, None, chooser.cut
        self.runs += 1
        chooser.finish()
        self._settle(chooser.requests)
        return chooser.trace, result, False

    def _settle(self, requests: list[Request]) -> None:
        if requests and settle(self.path, requests, self.lim, self.bound, self.sleep_sets, self.exported):
            self.pruned = True

    def advance(self) -> bool:
        """Move to the deepest node with an unexplored alternative; False when the tree is done."""
        path = self.path
        d = len(path) - 1
        sleep_sets = self.sleep_sets
        while d >= self.lim:
            node = path[d]
            order = node.order
            pos = node.pos + 1
            n = len(order)
            while pos < n and sleep_sets and (node.sleep >> order[pos]) & 1:
                pos += 1
            if pos < n:
                t = order[pos]
                node.pos = pos
                node.done |= 1 << t
                node.chosen = t
                node.sig = None
                if not node.nexp:
                    node.first = self.runs - node.start
                node.bstart = self.runs
                node.nexp += 1
                del path[d + 1 :]
                self.replay_len = d + 1
                return True
            self.sizes.finished(node, self.runs)
            self.coverage.finished(node)
            node.pos = n - 1
            d -= 1
        return False

    def estimate(self) -> float:
        """The estimated runs of the whole search (see :mod:`faultlab.explore.estimate`)."""
        return estimate_total(self.path[self.lim :], self.sizes, self.sleep_sets)

    def within_bound(self, node: _Node, c: int) -> bool:
        """Whether taking thread ``c`` at ``node`` keeps the path within the preemption bound (noting
        that the search pruned if not)."""
        if within_bound(node, c, self.bound):
            return True
        self.pruned = True
        return False


class _TreeChooser:
    """The chooser of one run of a TreeSearch: replays the path, extends it, and (for DPOR) finds
    the races of every new state (settled by the search after the run)."""

    record_steps = False  # the scheduler need not keep Step records: the trace is enough here

    def __init__(self, search: TreeSearch) -> None:
        self.s = search
        self.path = search.path
        self.replay_len = search.replay_len
        self.new_from = max(search.replay_len, search.fixed)  # states analysed from here on
        self.reduce = search.reduce
        self.sleep_sets = search.sleep_sets
        self.trace: list[int] = []
        self.prev = -1
        self.preempts = 0
        self.next_sleep = 0
        self.sched: Scheduler | None = None
        self.stopped = False
        self.cut = False
        self.n = 0
        self.hist: _History | None = None
        self.clock: list[list[int]] = []  # per thread: the clock of its last step
        self.evidx: list[list[int]] = []  # per thread: global indices of its steps
        self.evclock: list[list[int]] = []  # per step: its vector clock
        self.objs: dict[Hashable, _Obj] = {}
        # Steps before this index replay the previous run's and were accounted by it (see _History).
        self.kept = 0
        self.raw: list[tuple[Hashable, Accesses]] = []  # the kept steps' announcements in this run
        self.last: StepAccesses = []  # the accesses of the step taken last
        self.last_more: Accesses = ()
        self.requests: list[Request] = []

    # -- the Chooser protocol ---------------------------------------------------------------------
    def choose(self, sched: Scheduler, ready: list[ModelThread]) -> ModelThread:
        if self.stopped:
            raise AbortRun()
        trace = self.trace
        k = len(trace)
        if 0 < k < self.kept:
            return self._replay(k, sched, ready)
        threads = sched.threads
        s = self.s
        reduce = self.reduce
        enabled = 0
        for t in ready:
            enabled |= 1 << t.tid
        if k == 0:
            self._begin(sched)
        if not reduce:
            pass
        elif k == self.kept:
            self._rekey()
        elif k > self.kept:
            self._account(k - 1)
            if k >= self.new_from:  # a new state
                self._waiting_races(k, threads, enabled, _NONE)
        if s.cutoff is not None and k >= s.cutoff:
            self.cut = self.stopped = True
            raise AbortRun()
        prev = self.prev
        path = self.path
        if k < len(path):
            node = path[k]
            if node.enabled != enabled:
                raise NondeterminismError(
                    f"replaying the same choices gave different ready threads at step {k} "
                    f"({_tids(node.enabled)} before, {_tids(enabled)} now): the program is not deterministic"
                )
            tid = node.chosen
            thread = threads[tid]
            sig = (thread.pending_access, thread.pending_label)
            if node.sig is None:
                node.sig = sig
            elif node.sig != sig:
                raise NondeterminismError(
                    f"replaying the same choices gave a different step at step {k} (thread {tid}: "
                    f"{node.sig[1]!r} before, {sig[1]!r} now): the program is not deterministic"
                )
        else:
            node = self._new_node(k, enabled)
            tid = node.chosen
            thread = threads[tid]
            node.sig = (thread.pending_access, thread.pending_label)
            path.append(node)
        if k > 0 and tid == prev:
            node.block = path[k - 1].block
        else:
            node.block = k
            if prev >= 0 and (enabled >> prev) & 1:
                self.preempts += 1
        # A replayed step before the new choice needs neither its accesses nor the sleep set after it.
        if k < self.kept:
            self.raw.append((thread.pending_obj, thread.pending_more))
        else:
            acc = _accesses(thread)
            if reduce and k >= self.new_from - 1:  # a new choice: the races of the step it takes
                self._races_of_pending(tid, acc, k)
            if self.sleep_sets and k >= self.replay_len - 1:
                z = (node.sleep | node.done) & ~(1 << tid)
                self.next_sleep = _still_asleep(z, acc, threads) if z else 0
            self.last = acc
            self.last_more = thread.pending_more
        self.prev = tid
        trace.append(tid)
        return thread

    def _replay(self, k: int, sched: Scheduler, ready: list[ModelThread]) -> ModelThread:
        """choose() for a step the previous run took and accounted: check it is the same step."""
        enabled = 0
        for t in ready:
            enabled |= 1 << t.tid
        node = self.path[k]
        if node.enabled != enabled:
            raise NondeterminismError(
                f"replaying the same choices gave different ready threads at step {k} "
                f"({_tids(node.enabled)} before, {_tids(enabled)} now): the program is not deterministic"
            )
        tid = node.chosen
        thread = sched.threads[tid]
        sig = node.sig
        if sig is None:
            node.sig = (thread.pending_access, thread.pending_label)
        elif sig[0] != thread.pending_access or sig[1] != thread.pending_label:
            raise NondeterminismError(
                f"replaying the same choices gave a different step at step {k} (thread {tid}: "
                f"{sig[1]!r} before, {thread.pending_label!r} now): the program is not deterministic"
            )
        prev = self.prev
        if tid != prev and prev >= 0 and (enabled >> prev) & 1:
            self.preempts += 1
        # (node.block is as the previous run left it: the same steps lead here)
        self.raw.append((thread.pending_obj, thread.pending_more))
        self.prev = tid
        self.trace.append(tid)
        return thread

    def finish(self) -> None:
        """After a run that ended normally: check it replayed the path, and analyse the end state."""
        if len(self.trace) < self.replay_len:
            raise NondeterminismError(
                f"replaying the same choices ended the run after {len(self.trace)} steps, "
                f"not {self.replay_len} or more: the program is not deterministic"
            )
        sched = self.sched
        if self.reduce and self.trace and sched is not None:
            # A deadlock kills the blocked threads (marking them finished); their pending steps,
            # still in place, are exactly what the end state's race check needs.
            blocked = _NONE
            if sched.deadlock is not None:
                blocked = frozenset(t.tid for t in sched.deadlock.blocked)
            if sched.halted:  # stopped by the step that ended the run: they race with it as waiters do
                blocked = blocked | frozenset(t.tid for t in sched.halted)
            k = len(self.trace)
            if k > self.kept:
                self._account(k - 1)
            if k >= self.new_from:
                self._waiting_races(k, sched.threads, 0, blocked)

    def _begin(self, sched: Scheduler) -> None:
        """At the first step: take over the search's history, less the steps this run does not
        replay."""
        self.sched = sched
        self.n = n = len(sched.threads)
        if not self.reduce:
            return
        s = self.s
        hist = s.history
        if hist is None or hist.n != n:
            hist = s.history = _History(n)
        hist.truncate(max(self.replay_len - 1, 0))
        self.kept = len(hist.undo)
        self.hist = hist
        self.clock = hist.clock
        self.evidx = hist.evidx
        self.evclock = hist.evclock
        self.objs = hist.objs

    # -- growing the path -------------------------------------------------------------------------
    def _new_node(self, k: int, enabled: int) -> _Node:
        s = self.s
        prev = self.prev
        if k < s.fixed:
            tid = s.prefix[k]
            if tid < 0 or not (enabled >> tid) & 1:
                raise ScheduleError(
                    f"prefix step {k} names thread {tid}, which cannot move there (ready: {_tids(enabled)})"
                )
            return _Node(enabled, tid, s.branch_sleep if k == s.fixed - 1 else 0, 0, self.preempts, prev, s.runs)
        sleep = self.next_sleep
        avail = enabled & ~sleep
        if not avail:  # sleep-set blocked: everything from here was covered elsewhere
            self.stopped = True
            raise AbortRun()
        tid = prev if prev >= 0 and (avail >> prev) & 1 else (avail & -avail).bit_length() - 1
        cut = 0
        if self.reduce:
            backtrack = 0
        else:
            backtrack = avail
            if s.bound is not None and self.preempts >= s.bound and prev >= 0 and (enabled >> prev) & 1:
                cut = backtrack & ~(1 << prev)
                if cut:
                    s.pruned = True
                backtrack &= 1 << prev
        node = _Node(enabled, tid, sleep, backtrack, self.preempts, prev, s.runs)
        node.cut = cut
        return node

    # -- DPOR race analysis -----------------------------------------------------------------------
    def _account(self, i: int) -> None:
        """Vector clocks and object histories for step ``i`` (already executed)."""
        assert self.hist is not None
        self.hist.account(i, self.prev, self.last, self.last_more)

    def _rekey(self) -> None:
        hist = self.hist
        assert hist is not None
        hist.rekey(self.raw)
        self.objs = hist.objs

    def _waiting_races(self, k: int, threads: list[ModelThread], enabled: int, dead: frozenset[int]) -> None:
        """Races of the threads that cannot move in state ``k``: step ``k - 1`` races with every
        waiting thread whose pending step it is dependent with, and the thread that made it races
        with its history if its new pending step cannot move.  (``dead``: threads a deadlock marked
        finished that are in fact waiting.)"""
        q = self.prev
        waiting = ((1 << len(threads)) - 1) & ~enabled & ~(1 << q)
        if waiting:
            i = k - 1
            last = self.last
            for p in threads:
                tid = p.tid
                if not (waiting >> tid) & 1 or (p.finished and tid not in dead):
                    continue
                if _conflicts(p, last):
                    self._race(i, tid, k, None)
        tq = threads[q]
        if not (enabled >> q) & 1 and (not tq.finished or q in dead):
            self._races_of_pending(q, _accesses(tq), k)

    def _races_of_pending(self, p: int, acc: StepAccesses, k: int) -> None:
        """Every race of thread ``p``'s pending step (accesses ``acc``) in state ``k`` (the last
        dependent steps that do not happen-before p and are not ordered after one another)."""
        vp = self.clock[p]
        pclock: list[int] | None = None  # the clock the pending step would have
        cands: list[int] = []
        objs = self.objs
        if acc[0][0] is EVERYTHING:  # dependent with every step: each other thread's last one
            pclock = [max(c) for c in zip(*self.clock, strict=True)]
            cands = [ev[-1] for r, ev in enumerate(self.evidx) if r != p and ev and vp[r] < len(ev)]
            acc = []
        for obj, mode in acc:
            info = objs.get(obj)
            if info is None:
                continue
            if pclock is None:
                pclock = vp.copy()
            _join_history(info, mode, pclock)
            # The last accesses since the last write that conflict with this one are each a race;
            # the write happens before all of them, so it is a race only when there are none.
            since = 0
            if mode != _UPDATE and info.updates:
                since += 1
                for r, (idx, local) in info.updates.items():
                    if r != p and vp[r] < local:
                        cands.append(idx)
            if mode != _READ and info.reads:
                since += 1
                for r, (idx, local) in info.reads.items():
                    if r != p and vp[r] < local:
                        cands.append(idx)
            if not since and info.widx >= 0 and info.wtid != p and vp[info.wtid] < info.wlocal:
                cands.append(info.widx)
        if not cands:
            return
        if len(cands) > 1:
            evclock = self.evclock
            trace = self.trace
            uniq = sorted(set(cands))
            cands = [
                e
                for e in uniq
                if not any(e2 != e and evclock[e2][trace[e]] >= evclock[e][trace[e]] for e2 in uniq)
            ]
        sched = self.sched
        if sched is not None and sched.lock_ops and sched.threads[p].ready_fn is not None:
            cands = self._acquires_instead(cands, acc[0][0], vp)
        for e in cands:
            self._race(e, p, k, pclock)

    def _acquires_instead(self, cands: list[int], lock: Hashable, vp: list[int]) -> list[int]:
        """The races of a blocking step on ``lock`` (an acquire), with each release among ``cands``
        replaced by the acquire it ends.

        The step cannot move in any state between the releasing thread's acquire and its release
        (the lock is held), so a run where it goes first differs before that acquire: the race is
        reversed there.  Reversed before the release, as any other race is, the branch only brings
        the thread up to the held lock, where it waits (the run then often ends sleep-set blocked),
        and the acquire is reached from there at the cost of those runs.  When the step already
        happens after the acquire (its thread saw something the lock holder did after taking it),
        no run can put it first, and the race is dropped.  A race is left as it is when the lock
        log (Scheduler.took) does not show the releasing thread holding the lock from an acquire to
        the release."""
        assert self.sched is not None
        lock_ops = self.sched.lock_ops
        trace = self.trace
        evclock = self.evclock
        out: list[int] = []
        for e in cands:
            te = trace[e]
            ops = lock_ops.get((te, lock))
            if ops is not None:
                j = len(ops) - 1
                while j >= 0 and ops[j][0] > e:
                    j -= 1
                # a release at e, and the thread's lock operation before it an acquire
                if j >= 1 and ops[j] == (e, False) and ops[j - 1][1]:
                    took_at = ops[j - 1][0]
                    if vp[te] >= evclock[took_at][te]:
                        continue  # it comes after the acquire, so after the release: not reversible
                    e = took_at
            if e not in out:
                out.append(e)
        return out

    def _race(self, i: int, p: int, k: int, pclock: list[int] | None) -> None:
        """Step ``i`` races with thread ``p``'s pending step in state ``k`` (``pclock``: that step's
        clock; None when no step lies between, so that ``u`` is just p's step)."""
        s = self.s
        if i < s.lim and s.exported is None:
            return
        if s.bound is not None:
            self.requests.append((i, -1, p))
            return
        te = self.trace[i]
        evclock = self.evclock
        le = evclock[i][te]
        # initials(u), u = notdep(i).p: for each other thread its first step after i, if that does
        # not happen after i, is in u; it is initial if no earlier step of u happens before it.
        users: list[int] = []
        first_g: dict[int, int] = {}
        first_l: dict[int, int] = {}
        if pclock is not None:
            for r in range(self.n):
                if r == te:
                    continue
                ev = self.evidx[r]
                pos = bisect_right(ev, i)
                if pos < len(ev):
                    g = ev[pos]
                    if g < k and evclock[g][te] < le:
                        users.append(r)
                        first_g[r] = g
                        first_l[r] = pos + 1
        initials = 0
        for r in users:
            vc = evclock[first_g[r]]
            if all(r2 == r or vc[r2] < first_l[r2] for r2 in users):
                initials |= 1 << r
        if p not in first_g and (pclock is None or all(pclock[r2] < first_l[r2] for r2 in users)):
            initials |= 1 << p
        self.requests.append((i, initials, p))


def _still_asleep(z: int, acc: StepAccesses, threads: list[ModelThread]) -> int:
    """The threads of ``z`` whose pending step is independent of a step of accesses ``acc``."""
    keep = 0
    while z:
        low = z & -z
        z ^= low
        if not _conflicts(threads[low.bit_length() - 1], acc):
            keep |= low
    return keep


def _accesses(t: ModelThread) -> StepAccesses:
    """The pending step's accesses, one per object (two announced on one object are merged: READ
    and UPDATE together make a WRITE)."""
    first: StepAccesses = [(t.pending_obj, t.pending_access)]
    more: Accesses = t.pending_more
    if not more:
        return first
    merged: dict[Hashable, Access] = {t.pending_obj: t.pending_access}
    for obj, mode in more:
        had = merged.get(obj)
        merged[obj] = mode if had is None or had == mode else _WRITE
    return list(merged.items())


def _positions(first: Hashable, more: Accesses) -> dict[Hashable, int]:
    """Where a step announced each of its objects: 0 for its first object, j + 1 for its j-th
    further one (the first place it appears; a crash step announces every pmem block)."""
    where: dict[Hashable, int] = {}
    for j in range(len(more) - 1, -1, -1):
        where[more[j][0]] = j + 1
    where[first] = 0
    return where


def _conflicts(p: ModelThread, acc: StepAccesses) -> bool:
    """Whether p's pending step is dependent with a step of accesses ``acc``: a common object that
    they access in conflicting ways (not both READ, not both UPDATE)."""
    po = p.pending_obj
    if po is EVERYTHING or acc[0][0] is EVERYTHING:  # (announced alone: see sys_crash)
        return True
    pa = p.pending_access
    more = p.pending_more
    for obj, mode in acc:
        if po == obj and (pa != mode or mode == _WRITE):
            return True
        for o2, a2 in more:
            if o2 == obj and (a2 != mode or mode == _WRITE):
                return True
    return False


def _join_history(info: _Obj, mode: Access, cq: list[int]) -> None:
    """Join into ``cq`` the clocks of the steps on this object that an access must come after: the
    last write, and the accesses since it of the other kinds."""
    wc = info.wclock
    if wc is not None:
        for t, c in enumerate(wc):
            if c > cq[t]:
                cq[t] = c
    if mode != _UPDATE:
        uc = info.uclock
        if uc is not None:
            for t, c in enumerate(uc):
                if c > cq[t]:
                    cq[t] = c
    if mode != _READ:
        rc = info.rclock
        if rc is not None:
            for t, c in enumerate(rc):
                if c > cq[t]:
                    cq[t] = c


def _record(info: _Obj, mode: Access, cq: list[int], i: int, q: int) -> None:
    """Add step ``i`` of thread ``q`` (clock ``cq``) to the object's history.  The clocks and maps
    it replaces are left as they were (a history step can be undone by restoring them)."""
    if mode == _WRITE:
        info.wclock = cq
        info.widx = i
        info.wtid = q
        info.wlocal = cq[q]
        info.rclock = info.reads = info.uclock = info.updates = None
        return
    if mode == _READ:
        rc = info.rclock
        reads = info.reads
        if rc is None or reads is None:
            info.rclock = cq
            info.reads = {q: (i, cq[q])}
            return
        info.rclock = [c if c > r else r for c, r in zip(cq, rc, strict=True)]
        reads = reads.copy()
        reads[q] = (i, cq[q])
        info.reads = reads
        return
    uc = info.uclock
    updates = info.updates
    if uc is None or updates is None:
        info.uclock = cq
        info.updates = {q: (i, cq[q])}
        return
    info.uclock = [c if c > u else u for c, u in zip(cq, uc, strict=True)]
    updates = updates.copy()
    updates[q] = (i, cq[q])
    info.updates = updates


def _tids(mask: int) -> list[int]:
    return [t for t in range(mask.bit_length()) if (mask >> t) & 1]


def tree_search(
    program: Program,
    collector: Collector,
    *,
    reduce: bool,
    bound: int | None = None,
    prefix: Sequence[int] = (),
) -> tuple[bool, str, bool]:
    """Run a plain (``reduce=False``) or DPOR search, feeding every run to ``collector``.

    Returns ``(complete, stop_reason, pruned_by_bound)``; complete means the whole (reduced) tree
    under the prefix was explored and the bound pruned nothing."""
    ts = TreeSearch(program, reduce=reduce, bound=bound, prefix=prefix, sleep_sets=reduce)
    ts.coverage = collector.coverage
    collector.total = ts.estimate
    while True:
        trace, result, _ = ts.run_one()
        collector.add(trace, result, ts.retry_cut)
        reason = collector.stop_reason()
        more = ts.advance()
        if not more:
            return not ts.pruned, reason or EXHAUSTED, ts.pruned
        if reason is not None:
            return False, reason, ts.pruned
