"""The generic fault code of the seed patch: "[PATCH v7 02/22] Allow page fault handlers to perform
the COW" (Matthew Wilcox, 23 Mar 2014) on 3.15 mm/memory.c.

``struct vm_fault`` gains ``cow_page``; ``do_cow_fault`` passes its pre-allocated page to
``->fault``, and when the handler returns VM_FAULT_COWED (it did the copy), ``__do_fault`` skips
the HWPoison and lock checks and ``do_cow_fault`` skips its own copy and, after installing the PTE,
calls ``mutex_unlock(&vma->vm_file->f_mapping->i_mmap_mutex)`` -- the "leaking of locking details
about DAX into generic fault code" of Jan Kara's review.  Everything else is 3.15's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.eras.v3_15 import alloc_cow_page, copy_page_range, handle_mm_fault, lock_fault_page
from faultlab.kernel.flags import ERROR_NOPAGE_RETRY, PAGE_SIZE, VM_FAULT_COWED, VM_FAULT_OOM
from faultlab.kernel.memory import do_set_pte, i_mmap_unlock_read, pte_offset_map_lock, pte_read, pte_unmap_unlock
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.page import SetPageUptodate, copy_page, put_page, unlock_page

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

I_MMAP_IS_MUTEX = True
__all__ = ["copy_page_range", "handle_mm_fault"]


def __do_fault(k: Kernel, vmf: VmFault) -> int:
    """__do_fault() of the v7 patch: on VM_FAULT_COWED there is no page to check or lock."""
    fault = vmf.vma.vm_ops.fault
    assert fault is not None
    ret = fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        return ret
    if ret & VM_FAULT_COWED:
        return ret
    return lock_fault_page(k, vmf, ret)


def do_cow_fault(k: Kernel, vmf: VmFault) -> int:
    """do_cow_fault() of the v7 patch: ``if (!(ret & VM_FAULT_COWED)) copy_user_highpage(...)``;
    after the PTE (and on the !pte_same bail-out) ``if (ret & VM_FAULT_COWED)
    mutex_unlock(&...->i_mmap_mutex); else { unlock_page(fault_page); page_cache_release(...); }``."""
    k.count("fault.cow")
    new_page = alloc_cow_page(k)
    if new_page is None:
        return VM_FAULT_OOM
    vmf.cow_page = new_page
    ret = __do_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        put_page(k, new_page)
        return ret
    if not ret & VM_FAULT_COWED:
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
    """The v7 patch's two copies of ``if (ret & VM_FAULT_COWED) mutex_unlock(&mapping->i_mmap_mutex);
    else { unlock_page(fault_page); page_cache_release(fault_page); }``."""
    if ret & VM_FAULT_COWED:
        i_mmap_unlock_read(k, vmf.vma.file.mapping)  # i_mmap_mutex: the read side is the mutex
        return
    assert vmf.page is not None
    unlock_page(k, vmf.page)
    put_page(k, vmf.page)
