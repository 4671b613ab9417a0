"""The generic fault code of Linux 4.0: the seed's idea as it landed (2e4cdab0584f "mm: allow
page fault handlers to perform the COW", with Willy's v11 locking and akpm's i_mmap_lock_read).

``__do_fault`` returns at once when the handler set no page ("The fault handler has no page to
lock, so it holds i_mmap_lock for read to protect against truncate"); ``do_cow_fault`` copies only
when a page came back, and after the PTE (and on the !pte_same bail-out) releases the page lock, or
``i_mmap_unlock_read()`` when there was no page.  i_mmap is an rwsem from 3.19 on; 4.0 has no
``->pfn_mkwrite`` yet (4.1).  Everything else is 3.15's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.eras.v3_15 import alloc_cow_page, copy_page_range, handle_mm_fault, lock_fault_page
from faultlab.kernel.flags import ERROR_NOPAGE_RETRY, PAGE_SIZE, VM_FAULT_OOM
from faultlab.kernel.memory import do_set_pte, i_mmap_unlock_read, pte_offset_map_lock, pte_read, pte_unmap_unlock
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.page import SetPageUptodate, copy_page, put_page, unlock_page

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

I_MMAP_IS_MUTEX = False
__all__ = ["copy_page_range", "handle_mm_fault"]


def __do_fault(k: Kernel, vmf: VmFault) -> int:
    """__do_fault() (4.0): ->fault with vmf.cow_page set by the caller; a NULL page means the
    handler holds i_mmap_rwsem instead of a page lock: no HWPoison check, nothing to lock."""
    fault = vmf.vma.vm_ops.fault
    assert fault is not None
    ret = fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        return ret
    if vmf.page is None:
        return ret
    return lock_fault_page(k, vmf, ret)


def do_cow_fault(k: Kernel, vmf: VmFault) -> int:
    """do_cow_fault() (4.0): allocate the COW page before ->fault, copy only if a page came back,
    install under the PTL, then release the page lock -- or i_mmap when there was no page."""
    k.count("fault.cow")
    new_page = alloc_cow_page(k)
    if new_page is None:
        return VM_FAULT_OOM
    vmf.cow_page = new_page
    ret = __do_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        put_page(k, new_page)
        return ret
    fault_page = vmf.page
    if fault_page is not None:
        copy_page(k, new_page, fault_page)
        k.count("bytes_copied", PAGE_SIZE)
    SetPageUptodate(k, new_page)
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vmf.vma, vmf.address) != vmf.orig_pte:
        pte_unmap_unlock(k, vmf)
        release_fault_page(k, vmf)
        put_page(k, new_page)
        return ret
    do_set_pte(k, vmf, new_page, write=True, anon=True)
    pte_unmap_unlock(k, vmf)
    release_fault_page(k, vmf)
    return ret


def release_fault_page(k: Kernel, vmf: VmFault) -> None:
    """4.0's two copies of ``if (fault_page) { unlock_page(fault_page); page_cache_release(fault_page);
    } else { i_mmap_unlock_read(vma->vm_file->f_mapping); }``."""
    if vmf.page is not None:
        unlock_page(k, vmf.page)
        put_page(k, vmf.page)
    else:
        i_mmap_unlock_read(k, vmf.vma.file.mapping)
