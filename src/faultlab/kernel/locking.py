"""Sleeping locks, spinlocks and bit locks of the model, each a scheduling point.

Acquiring is announced as a WRITE on the lock object with a readiness predicate, so a contended
lock simply makes its thread not runnable; releasing is announced too, so an explorer sees the
release and the acquire it enables as dependent steps.  Who holds what is tracked per thread for
the checks (lockdep, lock pairing, sleep-in-atomic), which learn it from the events emitted here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.sched import Access

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel


class Lock:
    """Common part: a lock instance has a name and a lock class (what lockdep orders)."""

    sleeping = True

    def __init__(self, cls: str, name: str) -> None:
        self.cls = cls
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class RWSem(Lock):
    """struct rw_semaphore: down_read/up_read, down_write/up_write.  A mutex is an RWSem used only
    in write mode (``Mutex``).  Readers do not wait for queued writers (no writer preference)."""

    def __init__(self, cls: str, name: str) -> None:
        super().__init__(cls, name)
        self.readers: list[int] = []
        self.writer: int | None = None

    def down_read(self, k: Kernel) -> None:
        # Readers commute with each other (READ); a writer's acquire and release are WRITEs, so
        # every step that can change a waiting writer's or reader's readiness is dependent on it.
        k.sched.point(self, Access.READ, f"down_read({self.cls})", ready=lambda: self.writer is None)
        self.readers.append(k.tid())
        k.lock_acquired(self, "R")

    def down_write(self, k: Kernel) -> None:
        k.sched.point(
            self,
            Access.WRITE,
            f"down_write({self.cls})",
            ready=lambda: self.writer is None and not self.readers,
        )
        self.writer = k.tid()
        k.lock_acquired(self, "W")

    def up_read(self, k: Kernel) -> None:
        k.sched.point(self, Access.READ, f"up_read({self.cls})")
        tid = k.tid()
        if tid not in self.readers:
            k.lock_bad_release(self, "R", "up_read of a rwsem this thread does not hold for read")
            return
        self.readers.remove(tid)
        k.lock_released(self, "R")

    def up_write(self, k: Kernel) -> None:
        k.sched.point(self, Access.WRITE, f"up_write({self.cls})")
        if self.writer != k.tid():
            k.lock_bad_release(self, "W", "up_write of a rwsem this thread does not hold for write")
            return
        self.writer = None
        k.lock_released(self, "W")


class Mutex(RWSem):
    """struct mutex."""

    def lock(self, k: Kernel) -> None:
        k.sched.point(
            self, Access.WRITE, f"mutex_lock({self.cls})", ready=lambda: self.writer is None
        )
        self.writer = k.tid()
        k.lock_acquired(self, "W")

    def unlock(self, k: Kernel) -> None:
        self.up_write(k)


class SpinLock(Lock):
    """spinlock_t (the page-table lock, tree_lock): holding one, a thread must not sleep."""

    sleeping = False

    def __init__(self, cls: str, name: str) -> None:
        super().__init__(cls, name)
        self.owner: int | None = None

    def lock(self, k: Kernel) -> None:
        k.sched.point(self, Access.WRITE, f"spin_lock({self.cls})", ready=lambda: self.owner is None)
        self.owner = k.tid()
        k.lock_acquired(self, "W")

    def unlock(self, k: Kernel) -> None:
        k.sched.point(self, Access.WRITE, f"spin_unlock({self.cls})")
        if self.owner != k.tid():
            k.lock_bad_release(self, "W", "spin_unlock of a lock this thread does not hold")
            return
        self.owner = None
        k.lock_released(self, "W")


class BitLock(Lock):
    """A lock bit in an object (PG_locked, the DAX entry lock bit): taken by one owner at a time;
    the object decides how waiters sleep."""

    def __init__(self, cls: str, name: str) -> None:
        super().__init__(cls, name)
        self.owner: int | None = None

    @property
    def locked(self) -> bool:
        return self.owner is not None
