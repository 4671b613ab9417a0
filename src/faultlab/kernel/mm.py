"""mm_struct, vm_area_struct, the page table with split page-table locks, and struct vm_fault."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faultlab.kernel.flags import PAGE_SHIFT, PMD_SIZE, FaultFlag, VmFault, VmFlag
from faultlab.kernel.locking import RWSem, SpinLock
from faultlab.kernel.page import Page

if TYPE_CHECKING:
    from faultlab.kernel.fs import Inode
    from faultlab.kernel.kernel import Kernel


@dataclass(frozen=True, slots=True)
class Pte:
    """A present page-table entry: a struct page (file, anon, hole or zero page) or, for DAX, a
    special pfn PTE naming a pmem block.  Equality is pte_same(): same target, same bits."""

    page: Page | None
    block: int | None  # pmem block behind a special (pfn) PTE
    write: bool
    dirty: bool

    @property
    def special(self) -> bool:
        return self.page is None

    def describe(self) -> str:
        target = f"pfn(block {self.block})" if self.page is None else repr(self.page)
        return f"{target} {'rw' if self.write else 'ro'}{' dirty' if self.dirty else ''}"


FaultHandler = Callable[["Kernel", "VmFaultData"], VmFault]


@dataclass(slots=True)
class VmOps:
    """vm_operations_struct: the handlers a filesystem gives its mappings."""

    name: str
    fault: FaultHandler | None = None
    map_pages: Callable[[Kernel, VmFaultData, int, int], None] | None = None
    page_mkwrite: FaultHandler | None = None
    pfn_mkwrite: FaultHandler | None = None


@dataclass(eq=False, slots=True)
class Vma:
    """vm_area_struct."""

    mm: MmStruct
    start: int
    end: int
    pgoff: int
    file: Inode
    flags: VmFlag
    vm_ops: VmOps
    name: str = ""
    shared: bool = False  # VM_SHARED, kept as a bool: tested on every fault

    def __post_init__(self) -> None:
        self.shared = bool(self.flags & VmFlag.SHARED)

    def wants_writenotify(self) -> bool:
        """vma_wants_writenotify(): shared and writable, with ->page_mkwrite or ->pfn_mkwrite."""
        if not (self.flags & VmFlag.SHARED and self.flags & VmFlag.WRITE):
            return False
        return self.vm_ops.page_mkwrite is not None or self.vm_ops.pfn_mkwrite is not None

    def page_prot_writable(self) -> bool:
        """Whether vma->vm_page_prot itself allows writes (shared-writable without write-notify)."""
        return bool(self.flags & VmFlag.SHARED and self.flags & VmFlag.WRITE) and not self.wants_writenotify()

    def linear_page_index(self, address: int) -> int:
        return ((address - self.start) >> PAGE_SHIFT) + self.pgoff

    def address_of(self, pgoff: int) -> int:
        return self.start + ((pgoff - self.pgoff) << PAGE_SHIFT)


class MmStruct:
    """mm_struct: mmap_sem, the VMAs, the page table (one PTE table, and one split page-table
    lock, per 2 MiB of address space) and the rss counters."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mmap_sem = RWSem("&mm->mmap_sem", f"{name}.mmap_sem")
        self.vmas: list[Vma] = []
        self.ptes: dict[int, Pte] = {}
        self.ptls: dict[int, SpinLock] = {}
        self.rss_file = 0
        self.rss_anon = 0

    def find_vma(self, address: int) -> Vma | None:
        for vma in self.vmas:
            if vma.start <= address < vma.end:
                return vma
        return None

    def pte_lockptr(self, address: int) -> SpinLock:
        """The split PTE lock of the page table covering ``address``."""
        key = address // PMD_SIZE
        ptl = self.ptls.get(key)
        if ptl is None:
            ptl = SpinLock("ptlock", f"{self.name}.ptl[{key:#x}]")
            self.ptls[key] = ptl
        return ptl


@dataclass(slots=True)
class VmFaultData:
    """struct vm_fault (the 4.x fields the model uses).  ``entry`` is 4.7's locked DAX entry
    (VM_FAULT_DAX_LOCKED); ``cow_page`` is the seed patch's pre-allocated COW page."""

    vma: Vma
    address: int
    pgoff: int
    flags: FaultFlag
    orig_pte: Pte | None = None
    cow_page: Page | None = None
    page: Page | None = None
    entry: Any = None
    write: bool = False  # FAULT_FLAG_WRITE, kept as a bool: tested on every path

    def __post_init__(self) -> None:
        self.write = bool(self.flags & FaultFlag.WRITE)
