"""Sleeping locks, spinlocks and bit locks of the model, each a scheduling point.

Acquiring is announced as a WRITE on the lock object (a READ for the read side of an rwsem) with a
readiness predicate, so a contended lock makes its thread not runnable.  Releasing is announced
too, so the explorer sees the release and the acquire it enables as dependent steps.

Every acquisition that may sleep first emits ``lock_attempt`` (what lockdep records: the
dependency exists as soon as a thread *tries* to take B while holding A, whether or not it then
blocks), then ``lock_acquire`` once it holds the lock; releases emit ``lock_release``.  Who holds
what is tracked per thread for the checks, which learn it from these events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.sched import Access

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

_READ = Access.READ
_WRITE = Access.WRITE


class Lock:
    """Common part: a lock instance has a name and a lock class (what lockdep orders)."""

    sleeping = True
    __slots__ = ("cls", "name")

    def __init__(self, cls: str, name: str) -> None:
        self.cls = cls
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class RWSem(Lock):
    """struct rw_semaphore with writer preference, as Linux's: once a writer is queued, new readers
    wait behind it, so a thread that already holds the lock for read and asks again across a queued
    writer deadlocks (the reason lockdep forbids recursive down_read)."""

    __slots__ = ("readers", "writer", "queued")

    def __init__(self, cls: str, name: str) -> None:
        super().__init__(cls, name)
        self.readers: list[int] = []
        self.writer: int | None = None
        self.queued: list[int] = []  # writers waiting, in arrival order

    def _read_ok(self) -> bool:
        return self.writer is None and not self.queued

    def _write_ok(self) -> bool:
        return self.writer is None and not self.readers

    def down_read(self, k: Kernel) -> None:
        # Readers commute with each other (READ).  Whatever can make a waiting reader ready (a
        # writer's release, a queued writer giving up its place) is a WRITE, so it is dependent.
        k.lock_attempt(self, "R")
        k.sched.point(self, _READ, "down_read " + self.cls, ready=self._read_ok)
        self.readers.append(k.tid())
        k.lock_acquired(self, "R")

    def down_write(self, k: Kernel) -> None:
        """Take the lock, or queue behind its holders (one step) and wait (a second one)."""
        k.lock_attempt(self, "W")
        k.sched.point(self, _WRITE, "down_write " + self.cls)
        tid = k.tid()
        if not self._write_ok():
            self.queued.append(tid)
            k.sched.point(self, _WRITE, "down_write (waits) " + self.cls, ready=self._write_ok)
            self.queued.remove(tid)
        self.writer = tid
        k.lock_acquired(self, "W")

    def up_read(self, k: Kernel) -> None:
        k.sched.point(self, _READ, "up_read " + self.cls)
        tid = k.tid()
        if tid not in self.readers:
            k.lock_bad_release(self, "R", "up_read of a rwsem this thread does not hold for read")
            return
        self.readers.remove(tid)
        k.lock_released(self, "R")

    def up_write(self, k: Kernel) -> None:
        k.sched.point(self, _WRITE, "up_write " + self.cls)
        if self.writer != k.tid():
            k.lock_bad_release(self, "W", "up_write of a rwsem this thread does not hold for write")
            return
        self.writer = None
        k.lock_released(self, "W")


class Mutex(RWSem):
    """struct mutex: exclusive only.  (Until 3.19 i_mmap was a mutex; the i_mmap_lock_read()
    helpers then take it exclusively, as i_mmap_mutex was.)"""

    __slots__ = ()

    def lock(self, k: Kernel) -> None:
        k.lock_attempt(self, "W")
        k.sched.point(self, _WRITE, "mutex_lock " + self.cls, ready=self._mutex_ok)
        self.writer = k.tid()
        k.lock_acquired(self, "W")

    def _mutex_ok(self) -> bool:
        return self.writer is None

    def unlock(self, k: Kernel) -> None:
        k.sched.point(self, _WRITE, "mutex_unlock " + self.cls)
        if self.writer != k.tid():
            k.lock_bad_release(self, "W", "mutex_unlock of a mutex this thread does not hold")
            return
        self.writer = None
        k.lock_released(self, "W")

    def down_read(self, k: Kernel) -> None:
        self.lock(k)

    def up_read(self, k: Kernel) -> None:
        self.unlock(k)

    def down_write(self, k: Kernel) -> None:
        self.lock(k)

    def up_write(self, k: Kernel) -> None:
        self.unlock(k)


class SpinLock(Lock):
    """spinlock_t (the page-table lock, tree_lock): holding one, a thread must not sleep."""

    sleeping = False
    __slots__ = ("owner",)

    def __init__(self, cls: str, name: str) -> None:
        super().__init__(cls, name)
        self.owner: int | None = None

    def _free(self) -> bool:
        return self.owner is None

    def lock(self, k: Kernel) -> None:
        k.lock_attempt(self, "W")
        k.sched.point(self, _WRITE, "spin_lock " + self.cls, ready=self._free)
        self.owner = k.tid()
        k.lock_acquired(self, "W")

    def unlock(self, k: Kernel) -> None:
        k.sched.point(self, _WRITE, "spin_unlock " + self.cls)
        if self.owner != k.tid():
            k.lock_bad_release(self, "W", "spin_unlock of a lock this thread does not hold")
            return
        self.owner = None
        k.lock_released(self, "W")


class BitLock(Lock):
    """A lock bit in an object: PG_locked, or a DAX radix-tree entry's lock bit.  Taken by one
    owner at a time.  The page lock blocks on its own; the DAX entry lock is taken by code that
    has already waited for the entry (under tree_lock), so it is :meth:`seize`\\ d.

    Linux's lockdep cannot follow bit locks; faultlab can, and does: both are lock classes here
    ("page lock", "dax entry lock"), ordered against every other lock."""

    __slots__ = ("owner",)

    def __init__(self, cls: str, name: str) -> None:
        super().__init__(cls, name)
        self.owner: int | None = None

    @property
    def locked(self) -> bool:
        return self.owner is not None

    def _free(self) -> bool:
        return self.owner is None

    def acquire(self, k: Kernel, label: str) -> None:
        """Sleep until the bit is clear, then set it."""
        k.lock_attempt(self, "W")
        k.sched.point(self, _WRITE, label, ready=self._free)
        self.owner = k.tid()
        k.lock_acquired(self, "W")

    def try_acquire(self, k: Kernel, label: str) -> bool:
        k.sched.point(self, _WRITE, label)
        if self.owner is not None:
            return False
        self.owner = k.tid()
        k.lock_acquired(self, "W", trylock=True)
        return True

    def seize(self, k: Kernel, *guards: Lock, fresh: bool = False) -> None:
        """Set the bit in the step that found it clear (the caller announced this lock in that
        step): a DAX entry's lock bit, set under tree_lock once the thread has waited for it with
        tree_lock dropped; a new page added to the cache locked.  Lockdep orders the bit after the
        locks held while waiting for it -- not after the ``guards``: tree_lock, which only
        protects the bit, or the lock being handed over to this one (a DAX hole page's page lock
        and the entry lock it stands in for are one lock) -- and setting it does not sleep.  A
        ``fresh`` object is one no other thread can reach yet: its lock orders after nothing."""
        if not fresh:
            k.lock_attempt(self, "W", exclude=guards)
        self.owner = k.tid()
        k.lock_acquired(self, "W", trylock=True)

    def release(self, k: Kernel, label: str) -> bool:
        """Clear the bit; False (and a lock-pairing report) if this thread does not own it."""
        k.sched.point(self, _WRITE, label)
        return self.drop(k)

    def clear_fresh(self, k: Kernel) -> None:
        """__ClearPageLocked(): unlock a page no other thread ever reached (a failed insert)."""
        self.owner = None
        k.lock_released(self, "W")

    def drop(self, k: Kernel) -> bool:
        """Clear the bit in the current step (which announced this lock)."""
        if self.owner != k.tid():
            k.lock_bad_release(self, "W", f"unlock of a {self.cls} this thread does not hold")
            return False
        self.owner = None
        k.lock_released(self, "W")
        return True
