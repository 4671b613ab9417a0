"""The one event stream the model emits; checks and reports consume it, the model never reads it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultlab.sched.core import Scheduler


@dataclass(slots=True)
class Event:
    kind: str  # see EVENT_KINDS
    tid: int  # the model thread that caused it (-1: set-up)
    step: int  # index of the scheduling step during which it happened
    data: dict[str, Any]


EVENT_KINDS = (
    "lock_attempt",  # lock, cls, mode, held: about to take a lock that may sleep (what lockdep records)
    "lock_acquire",  # lock, cls, mode ("R"/"W"), held (classes held before, in order)
    "lock_release",  # lock, cls, mode
    "lock_bad_release",  # lock, cls, mode, why
    "pte_set",  # mm, addr, target ("page"/"pfn"), page, block, file, pgoff, anon, write
    "pte_clear",  # mm, addr, entry
    "pte_wrprotect",  # mm, addr
    "pmd_set",  # mm, vma, addr, pmd, over_table: a huge PMD was set (over_table: a PTE table is there)
    "pmd_clear",  # mm, vma, addr, pmd: a huge PMD was cleared (zap, split)
    "page_free",  # page
    "page_cache_delete",  # page, mapping, index: the page left the page cache
    "punch_end",  # inode, offset, length: fallocate(PUNCH_HOLE) returned
    "page_access",  # page, write
    "block_alloc",  # dev, block, inode, index
    "block_free",  # dev, block
    "block_zero",  # dev, block
    "block_access",  # block, write, user (through a PTE, or the kernel's own copy)
    "isize",  # inode, old, new
    "syscall_enter",  # op, thread, spec (the Op), vma (the mapping a map op names, or None)
    "syscall_exit",  # op, outcome, spec
    "fork",  # copies: each parent VMA -> the child's copy (dup_mmap returned)
    "truncate_begin",  # inode, size
    "truncate_end",  # inode, size
    "sync_begin",  # inode, what ("fsync"/"msync"): an fsync or msync of a file starts
    "sync_end",  # inode, ok: and returns
    "persist_begin",  # vma, offset, length: a user-space persist (clwb of each line + sfence) starts
    "persist_end",  # vma: and returns
    "store_done",  # kind ("shared-map"/"private-map"/"write"), inode, offset, data
    "func_enter",  # name: a kernel function was entered (only in traced runs, for reports)
    "func_exit",  # name: and returned
    "refcount",  # page, count (went below zero)
)

Listener = Callable[[Event], None]


class EventBus:
    """Fans events out to listeners, each subscribed to the kinds it wants (or to all of them).
    An event nobody wants costs one dictionary lookup."""

    __slots__ = ("routes", "every", "sched", "audit")

    def __init__(self, sched: Scheduler) -> None:
        self.routes: dict[str, list[Listener]] = {}
        self.every: list[Listener] = []
        self.sched = sched  # an event's thread is the running one, its step the last committed
        self.audit = sched if sched.audit else None  # when auditing: listeners read state freely

    def subscribe(self, fn: Listener, kinds: tuple[str, ...] | None = None) -> None:
        """Call ``fn`` for events of ``kinds`` (None: every event), in subscription order."""
        if kinds is None:
            self.every.append(fn)
            for fns in self.routes.values():
                fns.append(fn)
            return
        for kind in kinds:
            assert kind in EVENT_KINDS, kind
            self.routes.setdefault(kind, list(self.every)).append(fn)

    def emit(self, kind: str, /, **data: Any) -> None:
        fns = self.routes.get(kind, self.every)
        if not fns:
            return
        sched = self.sched
        cur = sched.current
        ev = Event(kind, -1 if cur is None else cur.tid, sched.nsteps - 1, data)
        audit = self.audit
        if audit is None:
            for fn in fns:
                fn(ev)
            return
        audit.exempt += 1
        try:
            for fn in fns:
                fn(ev)
        finally:
            audit.exempt -= 1
