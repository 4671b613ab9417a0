"""tmpfs (mm/shmem.c, 4.x): page cache with no disk behind it and no write notification.

A hole is filled with a zeroed page on a fault (shmem_getpage_gfp), read(2) of a hole returns
zeros without allocating, fsync does nothing, and shared mappings are writable straight away (no
->page_mkwrite: a store after a read takes no fault).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.fs.ops import AddressSpaceOperations, FileOperations, FileSystemType, InodeOperations, VmOperations
from faultlab.kernel.filemap import (
    add_to_page_cache_lru,
    delete_from_page_cache,
    do_generic_file_read,
    filemap_map_pages,
    find_lock_page,
    generic_perform_write,
)
from faultlab.kernel.flags import PAGE_SIZE, VM_FAULT_LOCKED, VM_FAULT_OOM, VM_FAULT_SIGBUS, size_in_pages
from faultlab.kernel.memory import unmap_mapping_range
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.page import SetPageUptodate, page_mapping, put_page, unlock_page
from faultlab.kernel.truncate import round_up_page, truncate_inode_pages_range, truncate_setsize

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode


def shmem_fault(k: Kernel, vmf: VmFault) -> int:
    """shmem_fault() -> shmem_getpage_gfp(SGP_CACHE) (4.0): find and lock the page, or add a zeroed
    one for a hole.  Past EOF is SIGBUS: checked after every look-up (``repeat:``), and again once a
    new page is in ("Perhaps the file has been truncated since we checked")."""
    inode = vmf.vma.file
    mapping = inode.mapping
    while True:  # repeat:
        page = find_lock_page(k, mapping, vmf.pgoff)
        if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):  # checked again on every repeat
            if page is not None:
                unlock_page(k, page)
                put_page(k, page)
            return VM_FAULT_SIGBUS
        if page is not None:
            break
        page = k.alloc.alloc_page(k)
        if page is None:
            return VM_FAULT_OOM
        if add_to_page_cache_lru(k, page, mapping, vmf.pgoff) == 0:
            k.count("pages_zeroed")
            SetPageUptodate(k, page)
            break
        put_page(k, page)  # -EEXIST: another fault added it first; look again
        k.retry("shmem_getpage_gfp")
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):  # "Perhaps the file has been truncated"
        if page_mapping(k, page) is mapping:
            delete_from_page_cache(k, page)
        unlock_page(k, page)
        put_page(k, page)
        return VM_FAULT_SIGBUS
    vmf.page = page
    return VM_FAULT_LOCKED


def shmem_setattr(k: Kernel, inode: Inode, newsize: int) -> None:
    """shmem_setattr() for ATTR_SIZE: truncate_setsize()."""
    truncate_setsize(k, inode, newsize)


def shmem_file_write_iter(k: Kernel, inode: Inode, pos: int, data: bytes) -> int:
    """generic_file_write_iter(): i_rwsem across the copy."""
    inode.i_rwsem.lock(k)
    ret = generic_perform_write(k, inode, pos, data)
    inode.i_rwsem.unlock(k)
    return ret


def shmem_fallocate(k: Kernel, inode: Inode, mode: str, offset: int, length: int) -> int:
    """shmem_fallocate(FALLOC_FL_PUNCH_HOLE) (4.10 mm/shmem.c), under i_rwsem: unmap the whole
    pages of the hole (even_cows=0: "hole-punching leaves COWed pages"), then
    shmem_truncate_range() drops them and zeroes the partial ones.  Not modelled: the
    inode->i_private notice that makes a racing shmem_fault wait for the punch to finish (a
    livelock guard, 3.16 f00cdc6df7d7); without it a fault may add a page the punch then removes."""
    mapping = inode.mapping
    inode.i_rwsem.lock(k)
    unmap_start = round_up_page(offset)
    unmap_end = ((offset + length) & ~(PAGE_SIZE - 1)) - 1
    if unmap_end > unmap_start:
        unmap_mapping_range(k, mapping, unmap_start, 1 + unmap_end - unmap_start, even_cows=False)
    truncate_inode_pages_range(k, mapping, offset, offset + length - 1, restart=False)  # shmem_truncate_range
    inode.file_update_time(k)
    inode.i_rwsem.unlock(k)
    return 0


def noop_fsync(k: Kernel, inode: Inode) -> int:
    return 0


def shmem_mmap(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    return shmem_vm_ops, 0


shmem_vm_ops = VmOperations("shmem_vm_ops", fault=shmem_fault, map_pages=filemap_map_pages)

FS = FileSystemType(
    "tmpfs",
    dax=False,
    disk=False,
    i_op=InodeOperations("shmem_inode_operations", setattr=shmem_setattr),
    f_op=FileOperations("shmem_file_operations", read_iter=do_generic_file_read, write_iter=shmem_file_write_iter,
                        fsync=noop_fsync, mmap=shmem_mmap, fallocate=shmem_fallocate),
    a_ops=AddressSpaceOperations("shmem_aops"),
    extra=(("shmem_mapping", True),),  # what shmem_mapping() tests (mapping->a_ops == &shmem_aops)
)
