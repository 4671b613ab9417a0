"""The Kernel object: the state of one run of the model (threads, memory, files, pmem, counters).

A run builds one Kernel from a scenario and a design's linked kernel image, executes the
scenario's threads on it, and throws it away whole.  The Kernel knows no design and no file kind
by name: the scenario's files get the file system type the image provides for ``scenario.fs``,
and everything file-specific goes through that type's operations.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from faultlab.errors import UserError
from faultlab.explore.common import RunCut
from faultlab.kernel.events import EventBus
from faultlab.kernel.flags import PAGE_SIZE, PTRS_PER_PTE, size_in_pages
from faultlab.kernel.locking import Lock, Mutex, RWSem
from faultlab.kernel.mm import AuditedMmStruct, MmStruct
from faultlab.kernel.state.cell import READ, WRITE, Cell, CellMap
from faultlab.kernel.state.inode import AuditedInode, Inode
from faultlab.kernel.state.journal import Journal
from faultlab.kernel.state.page import Page, PageAllocator, page_fill
from faultlab.kernel.state.pagecache import AddressSpace, AuditedAddressSpace
from faultlab.kernel.state.pagetable import Pte
from faultlab.kernel.state.pmem import PmemDevice
from faultlab.sched import Scheduler

if TYPE_CHECKING:
    from faultlab.kernel.image import KernelImage
    from faultlab.scenario.model import FileSpec, Scenario

MAP_BASE = 0x40000000


class Kernel:
    """One model machine: a scheduler, the event bus, memory, files, one mm shared by the threads
    (or one per thread)."""

    def __init__(self, scenario: Scenario, image: KernelImage, sched: Scheduler) -> None:
        self.scenario = scenario
        self.image = image
        self.sched = sched
        self.audit = sched.audit
        self.events = EventBus(sched)
        self.alloc = PageAllocator(sched, scenario.memory_limit_pages)
        self.pmem = PmemDevice(sched, scenario.pmem_size)
        # pmem_align = "2m": extents are 2 MiB aligned and DAX mappings may map PMDs.
        self.pmds = scenario.pmem_align == "2m"
        self._mm_cls = AuditedMmStruct if sched.audit else MmStruct
        # One mm for all threads (threads of a process), or one per thread (processes).
        self.mms: dict[int, MmStruct] = {}
        self.shared_mm = self._new_mm("mm") if scenario.mm == "shared" else None
        # A forked child (a thread of the scenario that starts at its parent's fork): its own mm.
        self.task_mms: dict[int, MmStruct] = {}
        self.counters: Counter[str] = Counter()
        self.lock_counts: Counter[str] = Counter()
        self.held: dict[int, list[tuple[Lock, str]]] = {}
        self.next_map_slot = MAP_BASE
        # A file system's own kernel globals (3.14 XIP's sparse page...): named cells, and locks.
        self.statics: dict[str, object] = {}
        self.static_cells: CellMap[str] = CellMap("static")
        self.static_locks: dict[str, Lock] = {}
        # Pages a kernel global holds a reference to (they are not leaked at the end of a run).
        self.pinned: list[Page] = []
        # A retry loop (a kernel "goto repeat" after losing a race) may go round at most this many
        # times per thread and site in an explored run; None: no bound (see Kernel.retry).
        self.retry_limit: int | None = None
        self.retries: dict[tuple[int, str], int] = {}
        self.fstype = image.filesystem(scenario.fs)
        self.journal = Journal()  # the committed metadata of DAX files
        self.inodes: dict[str, Inode] = {}
        for f in scenario.files:
            self.inodes[f.name] = self._create_file(f)

    def _new_mm(self, name: str) -> MmStruct:
        mm = self._mm_cls(self.sched, name)
        mm.pt.pmds = self.pmds
        if self.audit:
            mm._audit_sched = self.sched
        return mm

    def _create_file(self, f: FileSpec) -> Inode:
        fstype = self.fstype
        pages = 0 if f.hole else size_in_pages(f.size)
        inode = (AuditedInode if self.audit else Inode)(self.sched, f.name, fstype, f.size, f.fill, pages)
        if fstype.dax and pages:
            base = self.pmem.reserve(pages, inode.initial_contents, PTRS_PER_PTE if self.pmds else 1)
            if base is None:
                raise UserError(f"file {f.name} ({f.size} bytes) does not fit on the {self.scenario.pmem_size}-byte "
                                "pmem device", where=str(f.loc))
            inode.initial_base = base
        lock: Lock = Mutex("&mapping->i_mmap_mutex", f"{f.name}.i_mmap") if self.image.i_mmap_is_mutex else \
            RWSem("&mapping->i_mmap_rwsem", f"{f.name}.i_mmap")
        mapping_cls = AuditedAddressSpace if self.audit else AddressSpace
        initial = 0 if fstype.dax else pages
        mapping = mapping_cls(self.sched, inode, lock, initial, self._initial_page)
        if self.audit:
            inode._audit_sched = self.sched
            mapping._audit_sched = self.sched
        mapping.huge = self.pmds and fstype.dax
        inode.mapping = mapping
        if fstype.dax:
            self.journal.register(inode)
        return inode

    def _initial_page(self, mapping: AddressSpace, index: int) -> Page | None:
        """A cached page holding the file's initial contents, made the first time it is looked up
        (None: no memory for it under the scenario's limit)."""
        def init(page: Page) -> None:
            page_fill(page, mapping.host.initial_contents(index))
            page._uptodate = True
            page._mapping = mapping
            page._index = index

        return self.alloc.try_new_page(self.tid(), init)

    def pte_target(self, pte: Pte) -> Cell:
        """The cell a PTE's access touches: the page's contents, or the pmem block."""
        page = pte.page
        if page is not None:
            return page.data
        assert pte.block is not None
        return self.pmem.cells[pte.block]

    def retry(self, site: str) -> None:
        """A retry loop goes round again because it lost a race (``goto repeat``).  Two such loops
        can chase each other for ever under an adversarial scheduler (a fault re-reading a page that
        truncate keeps deleting), so an exploration bounds them: past the bound, the run is cut
        (RunCut) and the search reports that it is not a proof beyond that bound."""
        limit = self.retry_limit
        if limit is None:
            return
        key = (self.tid(), site)
        n = self.retries.get(key, 0) + 1
        self.retries[key] = n
        if n > limit:
            raise RunCut(f"{site} went round more than {limit} times")

    # -- a file system's kernel globals -----------------------------------------------------------------
    def static_get(self, name: str) -> object:
        self.sched.point(self.static_cells[name], READ, "read " + name)
        return self.statics.get(name)

    def static_set(self, name: str, value: object) -> None:
        self.sched.point(self.static_cells[name], WRITE, "set " + name)
        self.statics[name] = value

    def static_mutex(self, name: str) -> Mutex:
        """A statically initialised mutex (DEFINE_MUTEX): made on first use, the same for everyone."""
        lock = self.static_locks.get(name)
        if lock is None:
            lock = self.static_locks[name] = Mutex(name, name)
        assert isinstance(lock, Mutex)
        return lock

    # -- threads ----------------------------------------------------------------------------------
    def tid(self) -> int:
        cur = self.sched.current
        return -1 if cur is None else cur.tid

    def new_task_mm(self, tid: int, name: str) -> MmStruct:
        """The mm of a child that fork gives thread ``tid`` (empty until dup_mmap fills it)."""
        mm = self.task_mms[tid] = self._new_mm(name)
        return mm

    @property
    def mm(self) -> MmStruct:
        """current->mm: the running thread's address space."""
        if self.task_mms:
            forked = self.task_mms.get(self.tid())
            if forked is not None:
                return forked
        if self.shared_mm is not None:
            return self.shared_mm
        tid = self.tid()
        mm = self.mms.get(tid)
        if mm is None:
            name = self.sched.threads[tid].name if tid >= 0 else "setup"
            mm = self.mms[tid] = self._new_mm(f"mm.{name}")
        return mm

    def all_mms(self) -> list[MmStruct]:
        forked = [self.task_mms[t] for t in sorted(self.task_mms)]
        if self.shared_mm is not None:
            return [self.shared_mm, *forked]
        return [self.mms[t] for t in sorted(self.mms)] + forked

    # -- lock bookkeeping (what the checks see) ---------------------------------------------------
    # (These run at every lock operation: the running thread's id is read inline.)
    def lock_attempt(self, lock: Lock, mode: str, exclude: tuple[Lock, ...] = ()) -> None:
        cur = self.sched.current
        held = self.held.get(-1 if cur is None else cur.tid)
        if held:
            held = [h for h in held if h[0] not in exclude] if exclude else held.copy()
            if held:
                self.events.emit("lock_attempt", lock=lock, cls=lock.cls, mode=mode, held=held)

    def lock_acquired(self, lock: Lock, mode: str, trylock: bool = False) -> None:
        cur = self.sched.current
        tid = -1 if cur is None else cur.tid
        held = self.held.get(tid)
        if held is None:
            held = self.held[tid] = []
        self.lock_counts[lock.cls] += 1
        self.sched.took(lock, shared=mode == "R")
        self.events.emit("lock_acquire", lock=lock, cls=lock.cls, mode=mode, held=held.copy(), trylock=trylock)
        held.append((lock, mode))

    def lock_released(self, lock: Lock, mode: str) -> None:
        cur = self.sched.current
        held = self.held.get(-1 if cur is None else cur.tid)
        if held:
            for i in range(len(held) - 1, -1, -1):
                if held[i][0] is lock:
                    del held[i]
                    break
        self.sched.dropped(lock)
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
