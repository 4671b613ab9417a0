"""The generic fault code of Linux 4.7: DAX radix-tree entry locks protect COW faults
(bc2466e42573 "dax: Use radix tree entry lock to protect cow faults").

``struct vm_fault`` gains ``entry``; ``__do_fault`` hands back a DAX entry the handler returned
locked (VM_FAULT_DAX_LOCKED) with no page handling; ``do_cow_fault`` copies nothing then (the
handler filled the COW page) and, after the PTE, calls ``dax_unlock_mapping_entry()`` instead of
releasing a page.  ``->pfn_mkwrite`` (4.1) is there.  Everything else is 3.15's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.eras.v3_15 import alloc_cow_page, copy_page_range, handle_mm_fault, lock_fault_page
from faultlab.kernel.flags import ERROR_NOPAGE_RETRY, PAGE_SIZE, VM_FAULT_DAX_LOCKED, VM_FAULT_OOM
from faultlab.kernel.memory import do_set_pte, pte_offset_map_lock, pte_read, pte_unmap_unlock
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.page import SetPageUptodate, copy_page, put_page, unlock_page

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

I_MMAP_IS_MUTEX = False
__all__ = ["copy_page_range", "handle_mm_fault"]


def __do_fault(k: Kernel, vmf: VmFault) -> int:
    """__do_fault() (4.7): ``if (unlikely(ret & VM_FAULT_DAX_LOCKED)) { *entry = vmf.entry;
    return ret; }`` before the page checks."""
    fault = vmf.vma.vm_ops.fault
    assert fault is not None
    ret = fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        return ret
    if ret & VM_FAULT_DAX_LOCKED:
        return ret
    return lock_fault_page(k, vmf, ret)


def do_cow_fault(k: Kernel, vmf: VmFault) -> int:
    """do_cow_fault() (4.7): ``if (!(ret & VM_FAULT_DAX_LOCKED)) copy_user_highpage(...)``; the
    entry lock is held across the PTE install and released after it."""
    k.count("fault.cow")
    new_page = alloc_cow_page(k)
    if new_page is None:
        return VM_FAULT_OOM
    vmf.cow_page = new_page
    ret = __do_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        put_page(k, new_page)
        return ret
    if not ret & VM_FAULT_DAX_LOCKED:
        assert vmf.page is not None
        copy_page(k, new_page, vmf.page)
        k.count("bytes_copied", PAGE_SIZE)
    SetPageUptodate(k, new_page)
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vmf.vma, vmf.address) != vmf.orig_pte:
        pte_unmap_unlock(k, vmf)
        release_fault_page(k, vmf, ret)
        put_page(k, new_page)
        return ret
    do_set_pte(k, vmf, new_page, write=True, anon=True)
    pte_unmap_unlock(k, vmf)
    release_fault_page(k, vmf, ret)
    return ret


def release_fault_page(k: Kernel, vmf: VmFault, ret: int) -> None:
    """4.7's two copies of ``if (ret & VM_FAULT_DAX_LOCKED) dax_unlock_mapping_entry(mapping, pgoff);
    else { unlock_page(fault_page); put_page(fault_page); }``."""
    if ret & VM_FAULT_DAX_LOCKED:
        dax.dax_unlock_mapping_entry(k, vmf.vma.file.mapping, vmf.pgoff)
        return
    assert vmf.page is not None
    unlock_page(k, vmf.page)
    put_page(k, vmf.page)


# Last: fs/dax.c itself imports this module.  Linked per design to the design's own fs/dax.c.
from faultlab.fs.dax import v4_7 as dax  # noqa: E402
