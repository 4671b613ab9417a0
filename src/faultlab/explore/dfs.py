"""Exhaustive stateless search over the tree of scheduling choices: plain DFS and DPOR.

The search is *stateless*: it never snapshots a run.  It keeps the current path through the tree (one
node per step: which threads were ready, which one was taken, which are still to be tried) and, for
every schedule, runs a fresh execution that replays the path's choices up to the deepest node with
an untried alternative, takes that alternative, and then continues with a default choice to the end.

**Plain DFS** tries every ready thread at every node.  It is the reference the reduced search is
cross-checked against.

**DPOR** is the dynamic partial-order reduction of Flanagan and Godefroid, "Dynamic partial-order
reduction for model checking software", POPL 2005, with sleep sets (Godefroid, "Partial-Order
Methods for the Verification of Concurrent Systems", LNCS 1032, 1996).  Each step is the access a
thread announced at its scheduling point, ``(obj, READ|WRITE)``; two steps are *dependent* when they
belong to one thread, or touch the same object and at least one writes it.  Happens-before is
tracked with vector clocks (per thread and per object: last write, reads since).  At every state
``s`` reached for the first time, for every unfinished thread ``p`` (ready or not) the algorithm
looks at ``p``'s pending step and finds the last step ``i`` dependent with it that does not
happen-before ``p``; it then adds to the backtrack set of the state before ``i`` a thread from
``E = {p} + {threads with a later step that happens-before p}`` that is ready there, or, if none is,
every ready thread there (FG05, Fig. 4).  That check is made at every state, not only when ``p``
moves: that is what makes blocking sound here, because a thread waiting on a lock (or sleeping on a
wait queue) has a pending WRITE on the lock (queue), and its races with the holder's acquire are
found while it waits.  Releases and wake-ups are WRITEs on the same object, so they are dependent
with the waiter; FG05's "may be co-enabled" filter is taken as "always" (sound, a little less
reduction).  Incrementally: when a thread announces a step, its race is searched in the object's
history (at most one candidate per object); after that, every step on that object by another thread
while it waits is the newest dependent step and so a race.

Sleep sets: after the branch for thread ``t`` at a node is done, ``t`` sleeps in the later
branches until a step dependent with ``t``'s pending step runs; a run where every ready thread is
asleep is abandoned (counted as *sleep-set blocked*).  A thread in ``E`` that is asleep at the
target node already covers the race.

**Preemption bound** (optional): a preemption is a switch away from a thread that could have gone
on.  Choices that would exceed the bound are not taken, and the search reports that it pruned.
With a bound, DPOR adds the extra backtrack points of BPOR (Coons, Musuvathi and McKinley, "Bounded
partial-order reduction", OOPSLA 2013: also at the start of the block of steps containing the racing
step, where switching costs no extra preemption), and sleep sets are off, since they are unsound
under a preemption bound (Musuvathi and Qadeer, PLDI 2007).

A *prefix* fixes the first choices: only the subtree below it is searched, as if the prefix were
part of the initial state (races with prefix steps are ignored; other prefixes cover them).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from faultlab.errors import UserError
from faultlab.explore.collector import Collector
from faultlab.explore.common import AbortRun, lowest_bit
from faultlab.explore.program import NondeterminismError, Program, RunResult, ScheduleError
from faultlab.explore.results import EXHAUSTED
from faultlab.sched.core import Access, ModelThread, Scheduler

_WRITE = Access.WRITE
_READ = Access.READ


class _Node:
    """One state on the current path; thread sets are bit masks over thread ids."""

    __slots__ = ("enabled", "chosen", "done", "backtrack", "sleep", "preempt", "prev", "block", "sig")

    def __init__(self, enabled: int, chosen: int, sleep: int, backtrack: int, preempt: int, prev: int) -> None:
        self.enabled = enabled  # ready threads
        self.chosen = chosen  # thread taken on the current path
        self.done = 1 << chosen  # threads whose branch has been (or is being) explored
        self.backtrack = backtrack | self.done  # threads that must be explored here
        self.sleep = sleep  # threads asleep on entry (sleep sets)
        self.preempt = preempt  # preemptions on the path before this node
        self.prev = prev  # thread of the previous step, -1 at the root
        self.block = 0  # index of the first node of the block of same-thread steps ending here
        self.sig: tuple[Access, str] | None = None  # (access, label) of the chosen step, for replay checks


class _Obj:
    """Per-object history for happens-before and race lookup."""

    __slots__ = ("widx", "wtid", "wlocal", "wclock", "rclock", "reads")

    def __init__(self) -> None:
        self.widx = -1  # global index of the last write
        self.wtid = -1
        self.wlocal = 0  # that write's index within its thread (1-based)
        self.wclock: list[int] | None = None
        self.rclock: list[int] | None = None  # join of the clocks of reads since the last write
        self.reads: dict[int, tuple[int, int]] | None = None  # tid -> (global, local) of its last read


class TreeSearch:
    """The current path through the choice tree, and the rules for growing and backtracking it."""

    def __init__(
        self,
        program: Program,
        *,
        reduce: bool,
        bound: int | None = None,
        prefix: Sequence[int] = (),
        sleep_sets: bool = True,
        cutoff: int | None = None,
    ) -> None:
        if bound is not None and bound < 0:
            raise UserError(f"preemption bound must be at least 0, not {bound}")
        self.program = program
        self.reduce = reduce
        self.bound = bound
        self.prefix = list(prefix)
        self.fixed = len(self.prefix)
        self.sleep_sets = sleep_sets and bound is None
        self.cutoff = cutoff  # stop each run at this depth (used to enumerate prefixes)
        self.path: list[_Node] = []
        self.replay_len = 0
        self.pruned = False

    def run_one(self) -> tuple[list[int], RunResult | None, bool]:
        """Run the next schedule: (its choices, its result or None if abandoned, cut at ``cutoff``)."""
        chooser = _TreeChooser(self)
        try:
            result = self.program().run(chooser)
        except AbortRun:
            return chooser.trace, None, chooser.cut
        chooser.finish()
        return chooser.trace, result, False

    def advance(self) -> bool:
        """Move to the deepest node with an unexplored alternative; False when the tree is done."""
        path = self.path
        d = len(path) - 1
        while d >= self.fixed:
            node = path[d]
            todo = node.backtrack & ~node.done
            if self.sleep_sets:
                todo &= ~node.sleep
            if todo:
                t = lowest_bit(todo)
                node.done |= 1 << t
                node.chosen = t
                node.sig = None
                del path[d + 1 :]
                self.replay_len = d + 1
                return True
            d -= 1
        return False

    def within_bound(self, node: _Node, c: int) -> bool:
        """Whether taking thread ``c`` at ``node`` keeps the path within the preemption bound."""
        if self.bound is None:
            return True
        prev = node.prev
        cost = node.preempt + (1 if prev >= 0 and c != prev and (node.enabled >> prev) & 1 else 0)
        if cost > self.bound:
            self.pruned = True
            return False
        return True


class _TreeChooser:
    """The chooser of one run of a TreeSearch: replays the path, extends it, and (for DPOR) runs
    the race analysis of every new state."""

    def __init__(self, search: TreeSearch) -> None:
        self.s = search
        self.path = search.path
        self.replay_len = search.replay_len
        self.trace: list[int] = []
        self.prev = -1
        self.preempts = 0
        self.next_sleep = 0
        self.sched: Scheduler | None = None
        self.stopped = False
        self.cut = False
        self.n = 0
        self.clock: list[list[int]] = []
        self.evidx: list[list[int]] = []
        self.objs: dict[Hashable, _Obj] = {}
        self.last_obj: Hashable = None
        self.last_write = False

    # -- the Chooser protocol ---------------------------------------------------------------------
    def choose(self, sched: Scheduler, ready: list[ModelThread]) -> ModelThread:
        if self.stopped:
            raise AbortRun()
        k = len(self.trace)
        threads = sched.threads
        s = self.s
        if k == 0:
            self.sched = sched
            self.n = n = len(threads)
            self.clock = [[0] * n for _ in range(n)]
            self.evidx = [[] for _ in range(n)]
        elif s.reduce:
            self._analyse(k, threads)
        if s.cutoff is not None and k >= s.cutoff:
            self.cut = self.stopped = True
            raise AbortRun()
        enabled = 0
        for t in ready:
            enabled |= 1 << t.tid
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
            node = self._new_node(k, enabled, threads)
            tid = node.chosen
            thread = threads[tid]
            node.sig = (thread.pending_access, thread.pending_label)
            path.append(node)
        node.block = path[k - 1].block if k > 0 and tid == prev else k
        if prev >= 0 and tid != prev and (enabled >> prev) & 1:
            self.preempts += 1
        if s.sleep_sets:
            z = (node.sleep | node.done) & ~(1 << tid)
            self.next_sleep = self._still_asleep(z, thread, threads) if z else 0
        self.last_obj = thread.pending_obj
        self.last_write = thread.pending_access == _WRITE
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
        if self.s.reduce and self.trace and self.sched is not None:
            self._analyse(len(self.trace), self.sched.threads)

    # -- growing the path -------------------------------------------------------------------------
    def _new_node(self, k: int, enabled: int, threads: list[ModelThread]) -> _Node:
        s = self.s
        prev = self.prev
        if k < s.fixed:
            tid = s.prefix[k]
            if tid < 0 or not (enabled >> tid) & 1:
                raise ScheduleError(
                    f"prefix step {k} names thread {tid}, which cannot move there (ready: {_tids(enabled)})"
                )
            return _Node(enabled, tid, 0, 0, self.preempts, prev)
        sleep = self.next_sleep
        avail = enabled & ~sleep
        if not avail:  # sleep-set blocked: everything from here was covered elsewhere
            self.stopped = True
            raise AbortRun()
        tid = prev if prev >= 0 and (avail >> prev) & 1 else lowest_bit(avail)
        if s.reduce:
            backtrack = 0
        else:
            backtrack = avail
            if s.bound is not None and self.preempts >= s.bound and prev >= 0 and (enabled >> prev) & 1:
                if backtrack & ~(1 << prev):
                    s.pruned = True
                backtrack &= 1 << prev
        return _Node(enabled, tid, sleep, backtrack, self.preempts, prev)

    @staticmethod
    def _still_asleep(z: int, thread: ModelThread, threads: list[ModelThread]) -> int:
        """The threads of ``z`` whose pending step is independent of ``thread``'s pending step."""
        obj = thread.pending_obj
        write = thread.pending_access == _WRITE
        keep = 0
        while z:
            low = z & -z
            z ^= low
            other = threads[low.bit_length() - 1]
            if other.pending_obj != obj or (not write and other.pending_access == _READ):
                keep |= low
        return keep

    # -- DPOR race analysis -----------------------------------------------------------------------
    def _analyse(self, k: int, threads: list[ModelThread]) -> None:
        """Account for step ``k - 1`` (already executed) and do the race checks of state ``k``."""
        i = k - 1
        q = self.prev
        obj = self.last_obj
        write = self.last_write
        n = self.n
        cq = self.clock[q]
        cq[q] += 1
        self.evidx[q].append(i)
        info = self.objs.get(obj)
        if info is None:
            info = self.objs[obj] = _Obj()
        wc = info.wclock
        if wc is not None:
            for t in range(n):
                if wc[t] > cq[t]:
                    cq[t] = wc[t]
        if write:
            rc = info.rclock
            if rc is not None:
                for t in range(n):
                    if rc[t] > cq[t]:
                        cq[t] = rc[t]
                info.rclock = None
                info.reads = None
            info.wclock = cq.copy()
            info.widx = i
            info.wtid = q
            info.wlocal = cq[q]
        else:
            rc = info.rclock
            if rc is None or info.reads is None:
                info.rclock = cq.copy()
                info.reads = {q: (i, cq[q])}
            else:
                for t in range(n):
                    if cq[t] > rc[t]:
                        rc[t] = cq[t]
                info.reads[q] = (i, cq[q])
        if k < self.replay_len:  # an old state: its races were found when it was first reached
            return
        # Threads waiting with a pending step dependent on step i: i is the newest race for them.
        for p in threads:
            if p.finished or p.tid == q:
                continue
            if p.pending_obj == obj and (write or p.pending_access == _WRITE):
                self._race(i, p.tid, None)
        # The step thread q just announced: its last race in the object's history.
        tq = threads[q]
        if not tq.finished:
            self._race_new_pending(q, tq.pending_obj, tq.pending_access == _WRITE, cq)

    def _race_new_pending(self, q: int, obj: Hashable, write: bool, cq: list[int]) -> None:
        """The last step dependent with q's new pending step that does not happen-before q."""
        info = self.objs.get(obj)
        if info is None:
            return
        best = -1
        reads = info.reads
        if write and reads:
            # Each read since the last write is dependent; the last write happens-before q if any of
            # them does, so it is a candidate only when there are no such reads.
            for r, (idx, local) in reads.items():
                if r != q and cq[r] < local and idx > best:
                    best = idx
        elif info.widx >= 0 and info.wtid != q and cq[info.wtid] < info.wlocal:
            best = info.widx
        if best >= 0:
            self._race(best, q, cq)

    def _race(self, i: int, p: int, cq: list[int] | None) -> None:
        """Thread ``p``'s pending step races with step ``i``: make sure the state before ``i`` also
        tries something that can reverse it (FG05).  ``cq`` is p's clock when p has steps after
        ``i`` (for the set E), None when it has not."""
        s = self.s
        if i < s.fixed:
            return
        node = self.path[i]
        en = node.enabled
        e = (1 << p) & en
        if cq is not None:
            evidx = self.evidx
            for r in range(self.n):
                c = cq[r]
                if r != p and c and evidx[r][c - 1] > i:
                    e |= (1 << r) & en
        self._add(node, e, p)
        if s.bound is not None:  # BPOR: also where the racing step's block began
            j = node.block
            if j != i and j >= s.fixed:
                nj = self.path[j]
                self._add(nj, (1 << p) & nj.enabled, p)

    def _add(self, node: _Node, e: int, p: int) -> None:
        s = self.s
        covered = node.backtrack | node.done
        if s.sleep_sets:
            covered |= node.sleep
        if e:
            if e & covered:
                return
            if (e >> p) & 1 and s.within_bound(node, p):
                node.backtrack |= 1 << p
                return
            rest = e & ~(1 << p)
            while rest:
                low = rest & -rest
                rest ^= low
                if s.within_bound(node, low.bit_length() - 1):
                    node.backtrack |= low
                    return
            return
        todo = node.enabled & ~covered
        while todo:
            low = todo & -todo
            todo ^= low
            if s.within_bound(node, low.bit_length() - 1):
                node.backtrack |= low


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
    while True:
        trace, result, _ = ts.run_one()
        collector.add(trace, result)
        reason = collector.stop_reason()
        more = ts.advance()
        if not more:
            return not ts.pruned, reason or EXHAUSTED, ts.pruned
        if reason is not None:
            return False, reason, ts.pruned
