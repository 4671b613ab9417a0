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
    handle_mm_fault,
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
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_FAULT_WRITE,
)
from faultlab.kernel.memory import do_set_pte, pte_offset_map_lock, pte_read, pte_unmap_unlock
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.page import Page, SetPageDirty, SetPageUptodate, copy_page, put_page, unlock_page

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

I_MMAP_IS_MUTEX = False
__all__ = ["copy_page_range", "handle_mm_fault"]


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
