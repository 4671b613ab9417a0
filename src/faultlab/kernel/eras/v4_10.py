"""The generic fault code of Linux 4.10: ``finish_fault()`` and ``VM_FAULT_DONE_COW`` (Jan Kara,
9118c0cbd442 "mm: factor out functionality to finish page faults", 3917048d4572 "mm: allow full
handling of COW faults in ->fault handlers").

The read, COW and shared faults end in ``finish_fault()``, which picks the COW page on a private
write and installs it under the PTL after re-checking that the slot is still none
(``alloc_set_pte``).  A handler that installed the COW page itself returns VM_FAULT_DONE_COW and
``do_cow_fault`` just returns: generic code no longer knows anything about DAX locking -- Jan's 2014
suggestion, with finish_fault() in place of vm_insert_page().  ``wp_pfn_shared`` hands the PTE
update to ``finish_mkwrite_fault()``.  The rest is 3.15's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.eras.v3_15 import (
    alloc_cow_page,
    copy_page_range,
    do_fault_around,
    do_page_mkwrite,
    handle_pte_fault,
    lock_fault_page,
    wp_page_reuse,
)
from faultlab.kernel.flags import (
    ERROR_NOPAGE_RETRY,
    FAULT_AROUND_BYTES,
    FAULT_FLAG_MKWRITE,
    FAULT_FLAG_WRITE,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_DONE_COW,
    VM_FAULT_ERROR,
    VM_FAULT_FALLBACK,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_FAULT_WRITE,
    VM_WRITE,
)
from faultlab.kernel.huge_memory import (
    huge_pmd_set_accessed,
    is_huge,
    pmd_lock,
    pmd_unlock,
    transparent_hugepage_enabled,
)
from faultlab.kernel.memory import __pte_alloc, do_set_pte, pte_offset_map_lock, pte_read, pte_unmap_unlock
from faultlab.kernel.mm import Vma, VmFault
from faultlab.kernel.state.page import Page, SetPageDirty, SetPageUptodate, copy_page, put_page, unlock_page
from faultlab.kernel.state.pagetable import HugePmd

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

I_MMAP_IS_MUTEX = False
__all__ = ["copy_page_range", "handle_mm_fault"]


# -- the PMD level (DAX PMD faults: ->pmd_fault, 4.6-4.10) -------------------------------------------
def handle_mm_fault(k: Kernel, vma: Vma, address: int, flags: int) -> int:
    """handle_mm_fault() -> __handle_mm_fault() (4.10): "if (pmd_none(*vmf.pmd) &&
    transparent_hugepage_enabled(vma))" try create_huge_pmd(), and go on to the PTEs only on
    VM_FAULT_FALLBACK; a huge PMD is made writable by wp_huge_pmd() (falling back to PTEs for a
    COW) or just marked accessed.  Then the PTE table and handle_pte_fault(), which returns 0 on a
    PMD that turned huge meanwhile ("if (pmd_devmap(*vmf->pmd) || pmd_trans_unstable(vmf->pmd))
    return 0").  Where PMDs are possible the PTE table is made late, in finish_fault(), as 4.10's
    alloc_set_pte() does (Kirill Shutemov's "mm: postpone page table allocation until we have page
    to map"); elsewhere the model allocates it here, as 3.15 did, and this is 3.15's
    handle_mm_fault."""
    k.count("faults")
    vmf = VmFault(vma, address, vma.linear_page_index(address), flags)
    huge = transparent_hugepage_enabled(vma)
    if huge:
        orig_pmd = vma.mm.pt.pmd_read(k, address, "__handle_mm_fault: *pmd")
        if orig_pmd is None:
            ret = create_huge_pmd(k, vmf)
            if not ret & VM_FAULT_FALLBACK:
                return ret
        elif isinstance(orig_pmd, HugePmd):
            if vmf.write and not orig_pmd.write:
                ret = wp_huge_pmd(k, vmf, orig_pmd)
                if not ret & VM_FAULT_FALLBACK:
                    return ret
            else:
                huge_pmd_set_accessed(k, vma, address, vmf.write)
                return 0
        if is_huge(vma.mm.pt.pmd_read(k, address, "handle_pte_fault: pmd_devmap")):
            return 0
    else:
        __pte_alloc(k, vma, address)
    return handle_pte_fault(k, vmf)


def create_huge_pmd(k: Kernel, vmf: VmFault) -> int:
    """create_huge_pmd() (4.10 mm/memory.c, as quoted by Dave Jiang's 4.11 pmd_fault() patch): "if
    (vma_is_anonymous(vma)) return do_huge_pmd_anonymous_page(vmf); if (vma->vm_ops->pmd_fault)
    return vma->vm_ops->pmd_fault(vma, vmf->address, vmf->pmd, vmf->flags); return
    VM_FAULT_FALLBACK;"."""
    pmd_fault = vmf.vma.vm_ops.huge_fault
    if pmd_fault is None:
        return VM_FAULT_FALLBACK
    ret: int = pmd_fault(k, vmf)
    if not ret & VM_FAULT_FALLBACK:
        k.count("fault.pmd")
    return ret


def wp_huge_pmd(k: Kernel, vmf: VmFault, orig_pmd: HugePmd) -> int:
    """wp_huge_pmd() (4.10 mm/memory.c, the same source): a file VMA's ->pmd_fault does the write
    (a DAX one falls back for a COW and splits the PMD at its ``fallback:``); the "COW handled on
    pte level: split pmd" tail is for VMAs without ->pmd_fault, which never have a huge PMD here."""
    return create_huge_pmd(k, vmf)


def insert_pfn_pmd(k: Kernel, vmf: VmFault, block: int, write: bool) -> int:
    """vmf_insert_pfn_pmd() -> insert_pfn_pmd() (4.10 mm/huge_memory.c, read in a copy of the 4.10-era
    file, ``vmf_insert_pfn_pmd(vma, addr, pmd, pfn, write)``): "ptl = pmd_lock(mm, pmd); entry =
    pmd_mkhuge(pfn_t_pmd(pfn, prot)); ... if (write) { entry = pmd_mkyoung(pmd_mkdirty(entry));
    entry = maybe_pmd_mkwrite(entry, vma); } set_pmd_at(...)" -- whatever the PMD held: 4.10 does
    not look (``prot`` is vm_page_prot; its address-in-VMA check cannot fail here)."""
    vma = vmf.vma
    pmd = HugePmd(None, block, (write and bool(vma.flags & VM_WRITE)) or vma.page_prot_writable(), write)
    pmd_lock(k, vma)
    vma.mm.pt.set_huge(k, vma, vmf.address, pmd, "insert_pfn_pmd: set_pmd_at")
    pmd_unlock(k, vma)
    return VM_FAULT_NOPAGE


def do_fault(k: Kernel, vmf: VmFault) -> int:
    """do_fault(): route by write and VM_SHARED."""
    vma = vmf.vma
    if vma.vm_ops.fault is None:
        return VM_FAULT_SIGBUS
    if not vmf.write:
        return do_read_fault(k, vmf)
    if not vma.shared:
        return do_cow_fault(k, vmf)
    return do_shared_fault(k, vmf)


do_linear_fault = do_fault  # handle_pte_fault (unchanged from 3.15 here) calls it by its 3.15 name


def __do_fault(k: Kernel, vmf: VmFault) -> int:
    """__do_fault() (4.10): returns at once on ERROR, NOPAGE, RETRY and DONE_COW."""
    fault = vmf.vma.vm_ops.fault
    assert fault is not None
    ret = fault(k, vmf)
    if ret & (ERROR_NOPAGE_RETRY | VM_FAULT_DONE_COW):
        return ret
    return lock_fault_page(k, vmf, ret)


def alloc_set_pte(k: Kernel, vmf: VmFault, page: Page) -> int:
    """alloc_set_pte() (4.10): with the PTL held, "re-check under ptl" that the slot is still
    none, then map ``page`` (as a new anonymous page when it is the COW page of a private write)."""
    if pte_read(k, vmf.vma, vmf.address) is not None:
        return VM_FAULT_NOPAGE
    write = vmf.write
    do_set_pte(k, vmf, page, write, anon=write and not vmf.vma.shared, label="alloc_set_pte")
    return 0


def finish_fault(k: Kernel, vmf: VmFault) -> int:
    """finish_fault() (4.10): pick the COW page on a private write, else vmf->page, and install
    it under the PTL; VM_FAULT_NOPAGE when another fault got there first."""
    page = vmf.cow_page if (vmf.write and not vmf.vma.shared) else vmf.page
    assert page is not None
    vma = vmf.vma
    if transparent_hugepage_enabled(vma):
        # alloc_set_pte() -> pte_alloc_one_map(): the PTE table is made here, under whatever lock
        # the caller holds (a DAX fault: its entry lock), and a PMD that turned huge meanwhile
        # sends the fault back ("if (pmd_devmap_trans_unstable(vmf->pmd)) return VM_FAULT_NOPAGE",
        # 4.12 "mm: avoid spurious 'bad pmd' warning messages").
        if vma.mm.pt.pmd_none(k, vmf.address):
            __pte_alloc(k, vma, vmf.address)
        if is_huge(vma.mm.pt.pmd_read(k, vmf.address, "pte_alloc_one_map: pmd_devmap_trans_unstable")):
            return VM_FAULT_NOPAGE
    pte_offset_map_lock(k, vmf)
    ret = alloc_set_pte(k, vmf, page)
    pte_unmap_unlock(k, vmf)
    return ret


def do_read_fault(k: Kernel, vmf: VmFault) -> int:
    """do_read_fault() (4.10): fault-around (NOPAGE if it mapped the faulting address), ->fault,
    finish_fault(), unlock (and put the page if it was not mapped)."""
    k.count("fault.read")
    vma = vmf.vma
    if vma.vm_ops.map_pages is not None and FAULT_AROUND_BYTES >> PAGE_SHIFT > 1:
        pte_offset_map_lock(k, vmf)
        do_fault_around(k, vmf)
        if pte_read(k, vma, vmf.address) is not None:
            pte_unmap_unlock(k, vmf)
            return VM_FAULT_NOPAGE
        pte_unmap_unlock(k, vmf)
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


def do_cow_fault(k: Kernel, vmf: VmFault) -> int:
    """do_cow_fault() (4.10): ``if (ret & VM_FAULT_DONE_COW) return ret;`` -- the handler installed
    the COW page itself; otherwise copy, finish_fault(), unlock the source page."""
    k.count("fault.cow")
    new_page = alloc_cow_page(k)
    if new_page is None:
        return VM_FAULT_OOM
    vmf.cow_page = new_page
    ret = __do_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        put_page(k, new_page)
        return ret
    if ret & VM_FAULT_DONE_COW:
        return ret
    fault_page = vmf.page
    assert fault_page is not None
    copy_page(k, new_page, fault_page)
    k.count("bytes_copied", PAGE_SIZE)
    SetPageUptodate(k, new_page)
    ret |= finish_fault(k, vmf)
    unlock_page(k, fault_page)
    put_page(k, fault_page)
    if ret & ERROR_NOPAGE_RETRY:
        put_page(k, new_page)
    return ret


def do_shared_fault(k: Kernel, vmf: VmFault) -> int:
    """do_shared_fault() (4.10): ->fault, ->page_mkwrite, finish_fault(), then dirty the page
    (fault_dirty_shared_page)."""
    k.count("fault.shared")
    vma = vmf.vma
    ret = __do_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        return ret
    page = vmf.page
    assert page is not None
    if vma.vm_ops.page_mkwrite is not None:
        unlock_page(k, page)
        tmp = do_page_mkwrite(k, vmf, page)
        if not tmp or tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            put_page(k, page)
            return tmp
    ret |= finish_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        unlock_page(k, page)
        put_page(k, page)
        return ret
    SetPageDirty(k, page)
    unlock_page(k, page)
    if vma.vm_ops.page_mkwrite is None:
        vma.file.file_update_time(k)
    return ret


def wp_pfn_shared(k: Kernel, vmf: VmFault) -> int:
    """wp_pfn_shared() (4.10): ->pfn_mkwrite with the PTL dropped; NOPAGE means it made the entry
    writable itself, otherwise finish_mkwrite_fault() does."""
    vma = vmf.vma
    pfn_mkwrite = vma.vm_ops.pfn_mkwrite
    if pfn_mkwrite is None:
        return wp_page_reuse(k, vmf, None, page_mkwrite=False, dirty_shared=False)
    mk = VmFault(vma, vmf.address, vmf.pgoff, FAULT_FLAG_WRITE | FAULT_FLAG_MKWRITE)
    mk.orig_pte = vmf.orig_pte
    pte_unmap_unlock(k, vmf)
    ret = pfn_mkwrite(k, mk)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
        return ret
    return finish_mkwrite_fault(k, vmf)


def finish_mkwrite_fault(k: Kernel, vmf: VmFault) -> int:
    """finish_mkwrite_fault() (4.10): under the PTL, if the entry is unchanged, make it writable
    (wp_page_reuse); NOPAGE if it changed meanwhile."""
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vmf.vma, vmf.address) != vmf.orig_pte:
        pte_unmap_unlock(k, vmf)
        return VM_FAULT_NOPAGE
    wp_page_reuse(k, vmf, None, page_mkwrite=False, dirty_shared=False)
    return VM_FAULT_WRITE
