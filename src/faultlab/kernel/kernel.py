"""The Kernel object: the state of one run of the model (threads, memory, files, pmem, counters).

A run builds one Kernel, executes the scenario's threads on it, and throws it away whole."""

from __future__ import annotations

import sys
from collections import Counter
from types import FrameType
from typing import TYPE_CHECKING

from faultlab.kernel.events import EventBus
from faultlab.kernel.flags import PAGE_SIZE
from faultlab.kernel.fs import Inode, PmemDevice
from faultlab.kernel.locking import Lock
from faultlab.kernel.mm import MmStruct
from faultlab.kernel.page import PageAllocator
from faultlab.sched import Scheduler

if TYPE_CHECKING:
    from faultlab.designs.base import Design
    from faultlab.scenario.model import Scenario

_MODEL_PREFIXES = ("faultlab.kernel.", "faultlab.designs.")
_SKIP_FUNCS = frozenset({
    "point", "lock_page", "trylock_page", "unlock_page", "down_read", "down_write", "up_read",
    "up_write", "lock", "unlock", "i_size_read", "i_size_write", "pte_read", "pte_write", "pte_clear",
    "_yield_to_chooser", "mutex_lock", "i_mmap_lock_read", "i_mmap_lock_write", "i_mmap_unlock_read",
    "i_mmap_unlock_write", "sleep", "<lambda>",
})


class Kernel:
    """One model machine: a scheduler, the event bus, memory, files, one mm shared by the threads."""

    def __init__(self, scenario: Scenario, design: Design, sched: Scheduler) -> None:
        self.scenario = scenario
        self.design = design
        self.sched = sched
        self.events = EventBus(lambda: sched.nsteps - 1, self.tid)
        self.alloc = PageAllocator(scenario.memory_limit_pages)
        self.pmem = PmemDevice(scenario.pmem_size)
        # One mm for all threads (threads of a process), or one per thread (processes).
        self.mms: dict[int, MmStruct] = {}
        self.shared_mm = MmStruct("mm") if scenario.mm == "shared" else None
        self.counters: Counter[str] = Counter()
        self.lock_counts: Counter[str] = Counter()
        self.held: dict[int, list[tuple[Lock, str]]] = {}
        self.next_map_slot = 0x40000000
        # Kernel-global state a design keeps (XIP's sparse page and xip_sparse_mutex, ...).
        self.design_state: dict[str, object] = {}
        i_mmap_cls = "&mapping->i_mmap_mutex" if design.i_mmap_is_mutex else "&mapping->i_mmap_rwsem"
        self.inodes: dict[str, Inode] = {}
        for f in scenario.files:
            inode = Inode(f.name, scenario.fs, f.size, f.fill, f.hole, i_mmap_cls)
            if scenario.fs == "dax" and inode.initial_pages:
                base = self.pmem.reserve(inode.initial_pages)
                if base is None:
                    raise ValueError(f"file {f.name} does not fit on the {scenario.pmem_size}-byte pmem device")
                inode.initial_base = base
            self.inodes[f.name] = inode
        sched.func_of = self.current_function

    # -- threads ----------------------------------------------------------------------------------
    def tid(self) -> int:
        cur = self.sched.current
        return -1 if cur is None else cur.tid

    def current_function(self) -> str:
        """The innermost model (kernel or design) function on the running thread's stack."""
        f: FrameType | None = sys._getframe(2)
        while f is not None:
            mod = f.f_globals.get("__name__", "")
            if mod.startswith(_MODEL_PREFIXES) and f.f_code.co_name not in _SKIP_FUNCS:
                if not mod.startswith(("faultlab.kernel.locking", "faultlab.kernel.page", "faultlab.kernel.kernel")):
                    return f.f_code.co_name
            f = f.f_back
        return ""

    @property
    def mm(self) -> MmStruct:
        """current->mm: the running thread's address space."""
        if self.shared_mm is not None:
            return self.shared_mm
        tid = self.tid()
        mm = self.mms.get(tid)
        if mm is None:
            name = self.sched.threads[tid].name if tid >= 0 else "setup"
            mm = MmStruct(f"mm.{name}")
            self.mms[tid] = mm
        return mm

    def all_mms(self) -> list[MmStruct]:
        if self.shared_mm is not None:
            return [self.shared_mm]
        return [self.mms[t] for t in sorted(self.mms)]

    # -- lock bookkeeping (what the checks see) ---------------------------------------------------
    def lock_acquired(self, lock: Lock, mode: str, trylock: bool = False) -> None:
        held = self.held.setdefault(self.tid(), [])
        self.lock_counts[lock.cls] += 1
        self.events.emit("lock_acquire", lock=lock, cls=lock.cls, mode=mode, held=list(held), trylock=trylock)
        held.append((lock, mode))

    def lock_released(self, lock: Lock, mode: str) -> None:
        held = self.held.get(self.tid(), [])
        for i in range(len(held) - 1, -1, -1):
            if held[i][0] is lock:
                del held[i]
                break
        self.events.emit("lock_release", lock=lock, cls=lock.cls, mode=mode)

    def lock_bad_release(self, lock: Lock, mode: str, why: str) -> None:
        self.events.emit("lock_bad_release", lock=lock, cls=lock.cls, mode=mode, why=why)

    def holds(self, lock: Lock) -> str | None:
        for held, mode in self.held.get(self.tid(), []):
            if held is lock:
                return mode
        return None

    # -- counters ---------------------------------------------------------------------------------
    def count(self, what: str, n: int = 1) -> None:
        self.counters[what] += n

    def map_slot(self, length: int) -> int:
        """The next 2 MiB-aligned virtual address for a mapping of ``length`` bytes (as the
        real-kernel probe places its MAP_FIXED mappings)."""
        addr = self.next_map_slot
        span = max(length, PAGE_SIZE)
        self.next_map_slot += (span + (2 << 20) - 1) // (2 << 20) * (2 << 20)
        return addr
