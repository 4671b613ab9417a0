"""mm_struct, vm_area_struct and struct vm_fault.

An mm's VMA list and rss counters are shared state (cells ``vmas`` and ``rss``); its page table is
a :class:`~faultlab.kernel.state.pagetable.PageTable`.  A VMA is a value that munmap() and friends
replace in the list (under mmap_sem for write, which no fault in that mm can hold at the same
time), so a fault may read its VMA's fields freely once find_vma() gave it.  mprotect() changes
the flags in place, as Linux does, in a step that writes the VMA list (see
:meth:`Vma.mprotect_fixup`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from faultlab.kernel.flags import FAULT_FLAG_WRITE, PAGE_SHIFT, VM_MAYWRITE, VM_SHARED, VM_WRITE
from faultlab.kernel.locking import RWSem
from faultlab.kernel.state.cell import READ, UPDATE, WRITE, Cell, audited_subclass
from faultlab.kernel.state.pagetable import PageTable, Pte

if TYPE_CHECKING:
    from faultlab.fs.ops import VmOperations
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode
    from faultlab.kernel.state.page import Page
    from faultlab.sched.core import Scheduler


@dataclass(frozen=True, eq=False, slots=True)
class Vma:
    """vm_area_struct (immutable; compared by identity)."""

    mm: MmStruct
    start: int
    end: int
    pgoff: int
    file: Inode
    flags: int
    vm_ops: VmOperations
    shared: bool = field(init=False)  # VM_SHARED, tested on every fault
    writenotify: bool = field(init=False)
    # vma->anon_vma: set by the first anonymous page installed (the fault's anon_vma_prepare(),
    # under mmap_sem for read), and never cleared; fork (mmap_sem for write) reads it.
    anon_vma: bool = field(init=False, default=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shared", bool(self.flags & VM_SHARED))
        wn = bool(self.flags & VM_SHARED and self.flags & VM_WRITE) and (
            self.vm_ops.page_mkwrite is not None or self.vm_ops.pfn_mkwrite is not None)
        object.__setattr__(self, "writenotify", wn)

    def __repr__(self) -> str:
        return f"vma({self.file.name} {self.start:#x}-{self.end:#x})"

    def mprotect_fixup(self, flags: int) -> None:
        """vma->vm_flags = newflags and vma_set_page_prot() (mprotect_fixup(), 4.x): only under
        mmap_sem for write, in a step that announced a write of the mm's VMA list.  The other
        readers outside mmap_sem (truncate's zap, page_mkclean's rmap walk) read the range and
        VM_SHARED, which mprotect does not change."""
        object.__setattr__(self, "flags", flags)
        self.__post_init__()

    def page_prot_writable(self) -> bool:
        """Whether vma->vm_page_prot itself allows writes: shared and writable, without
        write-notify (vma_wants_writenotify())."""
        return bool(self.flags & VM_SHARED and self.flags & VM_WRITE) and not self.writenotify

    def may_write(self) -> bool:
        return bool(self.flags & (VM_WRITE | VM_MAYWRITE))

    def linear_page_index(self, address: int) -> int:
        return ((address - self.start) >> PAGE_SHIFT) + self.pgoff

    def address_of(self, pgoff: int) -> int:
        return self.start + ((pgoff - self.pgoff) << PAGE_SHIFT)

    def npages(self) -> int:
        return (self.end - self.start) >> PAGE_SHIFT

    def maps(self, pgoff: int) -> bool:
        return self.pgoff <= pgoff < self.pgoff + self.npages()


class MmStruct:
    """mm_struct: mmap_sem, the VMAs, the page table and the rss counters."""

    __slots__ = ("name", "mmap_sem", "vma_cell", "rss_cell", "pt", "_vmas", "_rss_anon", "_rss_file")

    def __init__(self, sched: Scheduler, name: str) -> None:
        self.name = name
        self.mmap_sem = RWSem("&mm->mmap_sem", f"{name}.mmap_sem")
        self.vma_cell = Cell(f"{name}.vmas")
        self.rss_cell = Cell(f"{name}.rss")
        self.pt = PageTable(sched, name)
        self._vmas: tuple[Vma, ...] = ()
        self._rss_anon = 0
        self._rss_file = 0

    def __repr__(self) -> str:
        return self.name

    def find_vma(self, k: Kernel, address: int) -> Vma | None:
        k.sched.point(self.vma_cell, READ, "find_vma")
        for vma in self._vmas:
            if vma.start <= address < vma.end:
                return vma
        return None

    def vmas(self, k: Kernel) -> tuple[Vma, ...]:
        k.sched.point(self.vma_cell, READ, "walk vmas")
        return self._vmas

    def set_vmas(self, k: Kernel, vmas: tuple[Vma, ...], label: str) -> None:
        k.sched.point(self.vma_cell, WRITE, label)
        self._vmas = vmas

    def add_rss(self, k: Kernel, anon: bool, delta: int) -> None:
        """add_mm_counter(MM_ANONPAGES or MM_FILEPAGES): an UPDATE (counter changes commute)."""
        k.sched.point(self.rss_cell, UPDATE, "add_mm_counter")
        if anon:
            self._rss_anon += delta
        else:
            self._rss_file += delta

    # -- for checks and reports ----------------------------------------------------------------------
    def peek_vmas(self) -> tuple[Vma, ...]:
        return _RAW_VMAS.__get__(self)

    def peek_rss(self) -> tuple[int, int]:
        return _RAW_ANON.__get__(self), _RAW_FILE.__get__(self)

    def peek_ptes(self) -> list[tuple[int, Pte]]:
        return sorted(dict.items(self.pt.ptes), key=lambda kv: kv[0])


_RAW_VMAS = MmStruct.__dict__["_vmas"]
_RAW_ANON = MmStruct.__dict__["_rss_anon"]
_RAW_FILE = MmStruct.__dict__["_rss_file"]

AuditedMmStruct = audited_subclass(
    MmStruct,
    {"_vmas": lambda m: m.vma_cell, "_rss_anon": lambda m: m.rss_cell, "_rss_file": lambda m: m.rss_cell},
    counters=("_rss_anon", "_rss_file"),
)


class VmFault:
    """struct vm_fault: one fault's own state (not shared).  ``entry`` is 4.7's locked DAX entry
    (VM_FAULT_DAX_LOCKED); ``cow_page`` the pre-allocated COW page; ``ptl_held`` stands for
    4.10's ``vmf->pte`` being mapped and locked; ``prealloc_pte`` for 4.11+'s ``vmf->prealloc_pte``
    (a page table allocated by fault-around, installed by whoever maps first)."""

    __slots__ = ("vma", "address", "pgoff", "flags", "write", "orig_pte", "cow_page", "page", "entry", "ptl_held",
                 "prealloc_pte")

    def __init__(self, vma: Vma, address: int, pgoff: int, flags: int) -> None:
        self.vma = vma
        self.address = address
        self.pgoff = pgoff
        self.flags = flags
        self.write = bool(flags & FAULT_FLAG_WRITE)
        self.orig_pte: Pte | None = None
        self.cow_page: Page | None = None
        self.page: Page | None = None
        self.entry: object = None
        self.ptl_held = False
        self.prealloc_pte = False
