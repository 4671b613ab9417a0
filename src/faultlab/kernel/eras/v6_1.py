"""The generic fault code of Linux 6.1 (mm/memory.c at v6.1), the kernel of the DAX VM.

What changed since 4.10, read next to v6.1 mm/memory.c:

* ``__handle_mm_fault`` no longer allocates the PTE table (4.11, Kirill Shutemov, "mm: postpone
  page table allocation until we have page to map"): ``do_fault_around`` pre-allocates one
  (``vmf->prealloc_pte``) that ``->map_pages`` installs, and ``finish_fault`` allocates it when
  nobody did.
* ``do_read_fault`` returns whatever ``->map_pages`` returned: filemap_map_pages says
  VM_FAULT_NOPAGE itself when it mapped the faulting address (5.12, 9d3af4b4489a).
* ``finish_fault`` re-checks ``pte_none`` under the PTL and returns NOPAGE if another fault won.
* Fault accounting moved into ``handle_mm_fault`` (5.9, bce617edecad ``mm_account_fault``): faults
  that return an error or VM_FAULT_RETRY are not counted, a fault is major if it returned
  VM_FAULT_MAJOR or had been retried (FAULT_FLAG_TRIED).  The model's arch handler passes no
  FAULT_FLAG_ALLOW_RETRY, so this is what ``do_page_fault`` already counts.

``do_cow_fault``, ``do_shared_fault``, ``wp_pfn_shared`` and ``finish_mkwrite_fault`` read as 4.10's
(6.1 adds the memcg charge and ``anon_vma_prepare``, which the model does not have).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.eras.v3_15 import do_wp_page, handle_pte_fault, lock_fault_page
from faultlab.kernel.eras.v4_10 import (
    __do_fault,
    do_cow_fault,
    do_shared_fault,
    finish_mkwrite_fault,
    wp_pfn_shared,
)
from faultlab.kernel.flags import (
    ERROR_NOPAGE_RETRY,
    FAULT_AROUND_BYTES,
    PAGE_SHIFT,
    PAGE_SIZE,
    PTRS_PER_PTE,
    VM_FAULT_FALLBACK,
    VM_FAULT_NOPAGE,
    VM_FAULT_SIGBUS,
    VM_MAYSHARE,
    VM_SHARED,
    VM_WRITE,
)
from faultlab.kernel.huge_memory import (
    huge_pmd_set_accessed,
    is_huge,
    pmd_lock,
    pmd_unlock,
    split_huge_pmd,
    transparent_hugepage_enabled,
)
from faultlab.kernel.memory import __pte_alloc, do_set_pte, pte_offset_map_lock, pte_read, pte_unmap_unlock
from faultlab.kernel.mm import Vma, VmFault
from faultlab.kernel.state.page import put_page, unlock_page
from faultlab.kernel.state.pagetable import HugePmd

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

I_MMAP_IS_MUTEX = False
__all__ = ["do_cow_fault", "do_shared_fault", "do_wp_page", "finish_mkwrite_fault", "handle_mm_fault",
           "lock_fault_page", "wp_pfn_shared"]


def handle_mm_fault(k: Kernel, vma: Vma, address: int, flags: int) -> int:
    """handle_mm_fault() -> __handle_mm_fault() -> handle_pte_fault() (6.1): no PTE table is
    allocated on the way down (a none PMD reads as a none PTE).  Where PMDs are possible (a DAX
    VMA, see transparent_hugepage_enabled): "if (pmd_none(*vmf.pmd) && hugepage_vma_check(...))"
    create_huge_pmd(), going on to the PTEs only on VM_FAULT_FALLBACK; a huge PMD is made writable
    by wp_huge_pmd() or marked accessed; and handle_pte_fault() returns 0 on a PMD that turned huge
    ("if (pmd_devmap_trans_unstable(vmf->pmd)) return 0")."""
    k.count("faults")
    vmf = VmFault(vma, address, vma.linear_page_index(address), flags)
    if transparent_hugepage_enabled(vma):
        orig_pmd = vma.mm.pt.pmd_read(k, address, "__handle_mm_fault: *pmd")
        if orig_pmd is None:
            ret = create_huge_pmd(k, vmf)
            if not ret & VM_FAULT_FALLBACK:
                return ret
        elif isinstance(orig_pmd, HugePmd):
            if vmf.write and not orig_pmd.write:
                ret = wp_huge_pmd(k, vmf)
                if not ret & VM_FAULT_FALLBACK:
                    return ret
            else:
                huge_pmd_set_accessed(k, vma, address, vmf.write)
                return 0
        if is_huge(vma.mm.pt.pmd_read(k, address, "handle_pte_fault: pmd_devmap_trans_unstable")):
            return 0
    return handle_pte_fault(k, vmf)


def create_huge_pmd(k: Kernel, vmf: VmFault) -> int:
    """create_huge_pmd() (6.1): ``vma->vm_ops->huge_fault(vmf, PE_SIZE_PMD)``, else FALLBACK."""
    huge_fault = vmf.vma.vm_ops.huge_fault
    if huge_fault is None:
        return VM_FAULT_FALLBACK
    ret: int = huge_fault(k, vmf)
    if not ret & VM_FAULT_FALLBACK:
        k.count("fault.pmd")
    return ret


def wp_huge_pmd(k: Kernel, vmf: VmFault) -> int:
    """wp_huge_pmd() (6.1): a shared VMA's ->huge_fault; "COW or write-notify handled on pte
    level: split pmd" otherwise, or when it fell back."""
    vma = vmf.vma
    if vma.flags & (VM_SHARED | VM_MAYSHARE):
        ret = create_huge_pmd(k, vmf)
        if not ret & VM_FAULT_FALLBACK:
            return ret
    split_huge_pmd(k, vma, vmf.address)
    return VM_FAULT_FALLBACK


def insert_pfn_pmd(k: Kernel, vmf: VmFault, block: int, write: bool) -> int:
    """vmf_insert_pfn_pmd() -> insert_pfn_pmd() (6.1): under the PMD lock; a PMD already there is
    left alone, except that a write to the same pfn makes it young, dirty and writable
    (pmdp_set_access_flags) -- "if (!pmd_none(*pmd)) { if (write) { if (pmd_pfn(*pmd) !=
    pfn_t_to_pfn(pfn)) { WARN_ON_ONCE(!is_huge_zero_pmd(*pmd)); goto out_unlock; } ...}}"."""
    vma = vmf.vma
    pt = vma.mm.pt
    pmd_lock(k, vma)
    old = pt.pmd_read(k, vmf.address, "insert_pfn_pmd: pmd_none")
    if old is None:
        writable = (write and bool(vma.flags & VM_WRITE)) or vma.page_prot_writable()
        pt.set_huge(k, vma, vmf.address, HugePmd(None, block, writable, write), "insert_pfn_pmd: set_pmd_at")
    elif write and isinstance(old, HugePmd) and old.block == block:
        pt.set_huge(k, vma, vmf.address, old._replace(write=bool(vma.flags & VM_WRITE), dirty=True),
                    "pmdp_set_access_flags")
    pmd_unlock(k, vma)
    return VM_FAULT_NOPAGE


def do_fault(k: Kernel, vmf: VmFault) -> int:
    """do_fault() (6.1): route by write and VM_SHARED."""
    vma = vmf.vma
    if vma.vm_ops.fault is None:
        return VM_FAULT_SIGBUS
    if not vmf.write:
        return do_read_fault(k, vmf)
    if not vma.shared:
        return do_cow_fault(k, vmf)
    return do_shared_fault(k, vmf)


do_linear_fault = do_fault  # handle_pte_fault (unchanged in what the model has) calls it by its 3.15 name


def do_fault_around(k: Kernel, vmf: VmFault) -> int:
    """do_fault_around() (6.1): the same window as 3.15 (fault_around_bytes aligned on the virtual
    address, clipped to the VMA and the PTE table); pre-allocate a table if the PMD is none, then
    return what ->map_pages returns."""
    vma = vmf.vma
    nr_pages = FAULT_AROUND_BYTES >> PAGE_SHIFT
    address = max(vmf.address & ~(nr_pages * PAGE_SIZE - 1), vma.start)
    off = ((vmf.address - address) >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)
    start_pgoff = vmf.pgoff - off
    end_pgoff = start_pgoff - ((address >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)) + PTRS_PER_PTE - 1
    end_pgoff = min(end_pgoff, vma.linear_page_index(vma.end - PAGE_SIZE), start_pgoff + nr_pages - 1)
    if vma.mm.pt.pmd_none(k, vmf.address):
        vmf.prealloc_pte = True  # pte_alloc_one(): private until installed
    map_pages = vma.vm_ops.map_pages
    assert map_pages is not None
    return map_pages(k, vmf, start_pgoff, end_pgoff) or 0


def do_read_fault(k: Kernel, vmf: VmFault) -> int:
    """do_read_fault() (6.1): ->map_pages first ("use ->fault() as fallback"), returning at once if
    it reported anything (NOPAGE: it mapped the address); then ->fault, finish_fault(), unlock."""
    k.count("fault.read")
    if vmf.vma.vm_ops.map_pages is not None and FAULT_AROUND_BYTES >> PAGE_SHIFT > 1:
        ret = do_fault_around(k, vmf)
        if ret:
            return ret
    ret = __do_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        return ret
    page = vmf.page
    assert page is not None
    ret |= finish_fault(k, vmf)
    unlock_page(k, page)
    if ret & ERROR_NOPAGE_RETRY:
        put_page(k, page)
    return ret


def finish_fault(k: Kernel, vmf: VmFault) -> int:
    """finish_fault() (6.1): pick the COW page on a private write, else vmf->page; if the PMD is
    none, install the pre-allocated table or allocate one; then, under the PTL, "Re-check under
    ptl" that the PTE is none and map the page, else VM_FAULT_NOPAGE."""
    page = vmf.cow_page if (vmf.write and not vmf.vma.shared) else vmf.page
    assert page is not None
    if vmf.vma.mm.pt.pmd_none(k, vmf.address):
        __pte_alloc(k, vmf.vma, vmf.address)  # pmd_install(prealloc_pte) or pte_alloc()
    if transparent_hugepage_enabled(vmf.vma) and is_huge(vmf.vma.mm.pt.pmd_read(k, vmf.address)):
        return 0  # "See comment in handle_pte_fault()": pmd_devmap_trans_unstable()
    pte_offset_map_lock(k, vmf)
    ret = 0
    if pte_read(k, vmf.vma, vmf.address) is None:
        do_set_pte(k, vmf, page, vmf.write, anon=vmf.write and not vmf.vma.shared)
    else:
        ret = VM_FAULT_NOPAGE
    pte_unmap_unlock(k, vmf)
    return ret
