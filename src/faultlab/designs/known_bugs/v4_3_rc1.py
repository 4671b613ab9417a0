"""Linux 4.3-rc1's DAX fault locking: 843172978bb9 "dax: fix race between simultaneous faults"
takes i_mmap_rwsem for *write* in __dax_fault() whenever no hole page was found, before
get_block(), and holds it to the end of the fault (through dax_insert_mapping(), and across the
COW's PTE install, released by do_cow_fault() with i_mmap_unlock_write(), 52a2b53ffde6); and
46c043ede471 "mm: take i_mmap_lock in unmap_mapping_range() for DAX" makes unmap_mapping_range()
take i_mmap_rwsem for write on DAX files again, as the v4.0 design's does.

A write fault that finds no page takes i_mmap_rwsem, allocates, and then -- "Check we didn't race
with a read fault installing a new page" -- find_lock_page() takes the page lock of a hole page
that a read fault inserted meanwhile (the read branch drops i_mmap_rwsem before dax_load_hole()),
and calls unmap_mapping_range() on it, which asks for i_mmap_rwsem again.  That order,
i_mmap_rwsem -> page lock, inverts the one a fault that found the hole page at its start, and
truncate_inode_page(), take (page lock -> i_mmap_rwsem in unmap_mapping_range()); and the second
down_write() of i_mmap_rwsem by its own holder never returns.  4.3-rc1's read branch also
i_mmap_unlock_write()s when it found a hole page and so never took the lock (an up_write() of an
rwsem it does not hold).

Fixed for 4.3 by 0f90cc6609c7 "mm, dax: fix DAX deadlocks" ("essentially returning us to the DAX
locking scheme that was used in v4.2": i_mmap_rwsem for read in dax_insert_mapping() and the COW
branch) with 0df9d41ab5d4 (4.4, 4.3 stable) pairing do_cow_fault()'s release with the read lock
again: the locking of the v4.0 design.
"""

from __future__ import annotations

from faultlab.designs.v4_0 import DESIGN as V40
from faultlab.fs.dax import v4_0 as dax
from faultlab.fs.ext2 import clear_pmem
from faultlab.kernel.eras import v4_0
from faultlab.kernel.filemap import delete_from_page_cache, find_get_page, find_lock_page
from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE, VM_FAULT_LOCKED, VM_FAULT_MAJOR, VM_FAULT_SIGBUS, size_in_pages
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.memory import i_mmap_lock_write, i_mmap_unlock_write, unmap_mapping_range, vm_insert_mixed
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.inode import Extent, Inode
from faultlab.kernel.state.page import Page, clear_page, lock_page, page_mapping, put_page, unlock_page

EIO = -5


def dax_fault_unlock(k: Kernel, vmf: VmFault, page: Page | None, error: int, major: int) -> int:
    """The ``unlock:`` label of __dax_fault() (843172978bb9): the hole page's lock, or i_mmap_rwsem
    held for write."""
    if page is not None:
        unlock_page(k, page)
        put_page(k, page)
    else:
        i_mmap_unlock_write(k, vmf.vma.file.mapping)
    return dax.dax_fault_return(error, major)


def do_dax_fault(k: Kernel, vmf: VmFault, get_block: dax.GetBlock) -> int:
    """__dax_fault() (4.3-rc1, 843172978bb9): with no hole page, i_mmap_rwsem for write from
    before get_block() to the end of the fault; a read of a hole drops it (whether or not it was
    taken) for dax_load_hole(); a write that allocated looks for a hole page a read fault
    inserted meanwhile -- under i_mmap_rwsem -- and unmaps it with unmap_mapping_range(), which
    takes i_mmap_rwsem again (46c043ede471)."""
    inode = vmf.vma.file
    mapping = inode.mapping
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return VM_FAULT_SIGBUS
    page: Page | None = None
    while True:  # repeat:
        page = find_get_page(k, mapping, vmf.pgoff)
        if page is None:
            i_mmap_lock_write(k, mapping)
            break
        lock_page(k, page)
        if page_mapping(k, page) is not mapping:
            unlock_page(k, page)
            put_page(k, page)
            k.retry("do_dax_fault")
            continue
        if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):  # raced with a truncate
            return dax_fault_unlock(k, vmf, page, EIO, 0)
        break
    ext, new, error = get_block(k, inode, vmf.pgoff, False)
    if error:
        return dax_fault_unlock(k, vmf, page, error, 0)
    major = 0
    if ext is None and vmf.cow_page is None:
        if not vmf.write:
            i_mmap_unlock_write(k, mapping)
            return dax.dax_load_hole(k, mapping, page, vmf)
        ext, new, error = get_block(k, inode, vmf.pgoff, True)
        major = VM_FAULT_MAJOR
        if error or ext is None:
            return dax_fault_unlock(k, vmf, page, error or EIO, major)
    if vmf.cow_page is not None:
        return dax_cow_fault(k, vmf, ext, page)
    if page is None and major:
        page = find_lock_page(k, mapping, vmf.pgoff)  # "we didn't race with a read fault"
    if page is not None:
        unmap_mapping_range(k, mapping, vmf.pgoff << PAGE_SHIFT, PAGE_SIZE, even_cows=False)
        delete_from_page_cache(k, page)
        unlock_page(k, page)
        put_page(k, page)
    assert ext is not None
    error = dax_insert_mapping(k, inode, ext, new, vmf)
    if ext.unwritten:
        dax.complete_unwritten(k, inode, vmf.pgoff)
    if page is None:
        i_mmap_unlock_write(k, mapping)
    return dax.dax_fault_return(error, major)


def dax_cow_fault(k: Kernel, vmf: VmFault, ext: Extent | None, page: Page | None) -> int:
    """The COW branch of __dax_fault() (4.3-rc1): i_mmap_rwsem is already held for write when there
    is no hole page; re-check i_size under it and return it held to do_cow_fault()."""
    new_page = vmf.cow_page
    assert new_page is not None
    if dax.buffer_written(ext):
        assert ext is not None
        k.pmem.copy_to_page(k, ext.block, new_page, "copy_user_bh")
        k.count("bytes_copied", PAGE_SIZE)
    else:
        clear_page(k, new_page, "clear_user_highpage")
        k.count("pages_zeroed")
    vmf.page = page
    if page is None and vmf.pgoff >= size_in_pages(vmf.vma.file.i_size_read(k)):
        i_mmap_unlock_write(k, vmf.vma.file.mapping)
        return VM_FAULT_SIGBUS
    return VM_FAULT_LOCKED


def dax_insert_mapping(k: Kernel, inode: Inode, ext: Extent, new: bool, vmf: VmFault) -> int:
    """dax_insert_mapping() (4.3-rc1): 843172978bb9 moved i_mmap_rwsem out to the caller; the
    i_size re-check, the zeroing of a new block and the pfn insert are unchanged."""
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return EIO
    if ext.unwritten or new:
        clear_pmem(k, ext.block)
    return vm_insert_mixed(k, vmf.vma, vmf.address, ext.block)


def release_fault_page(k: Kernel, vmf: VmFault) -> None:
    """do_cow_fault()'s release (4.3-rc1, 52a2b53ffde6 "mm, dax: use i_mmap_unlock_write() in
    do_cow_fault()"): the page lock, or i_mmap_rwsem held for write by the DAX handler."""
    if vmf.page is not None:
        unlock_page(k, vmf.page)
        put_page(k, vmf.page)
    else:
        i_mmap_unlock_write(k, vmf.vma.file.mapping)


DESIGN = V40.variant(
    "v4.3-rc1",
    "known bug: 4.3-rc1 __dax_fault holds i_mmap_rwsem (write) into find_lock_page and unmap_mapping_range",
    "Linux 4.3-rc1 fs/dax.c + mm/memory.c (843172978bb9, 46c043ede471, 52a2b53ffde6); fixed by 0f90cc6609c7 "
    "and 0df9d41ab5d4; scenario: races/hole-read-vs-write-fault",
    {dax.do_dax_fault: do_dax_fault, dax.dax_cow_fault: dax_cow_fault, dax.dax_insert_mapping: dax_insert_mapping,
     v4_0.release_fault_page: release_fault_page},
    scenario="scenarios/races/hole-read-vs-write-fault.toml", fixed_by="v4.0", expected_violation="lock-order",
)
