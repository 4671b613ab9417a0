"""ext4 files in the page cache (no DAX), as the 4.x designs run them: filemap_fault and
fault-around, ->page_mkwrite on shared write faults, pages read back from the disk, writeback on
fsync.  The disk holds the file's initial contents (a hole reads as zeros).  ``FS`` is ext4 before
4.5; ``FS_4_5`` adds i_mmap_sem, which serialises faults against truncate (ea3d7209ca01).

One 6.x behaviour is kept because the oracle measured it on this machine's kernel: when a file
grows past a partial last page, the bytes past the old EOF in that page are zeroed, so a store made
through a mapping past EOF does not reappear (tmpfs keeps them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.fs.ops import AddressSpaceOperations, FileOperations, FileSystemType, InodeOperations, VmOperations
from faultlab.kernel.filemap import (
    do_generic_file_read,
    filemap_fault,
    filemap_map_pages,
    filemap_page_mkwrite,
    filemap_write_and_wait,
    find_lock_page,
    generic_perform_write,
)
from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.page import Page, SetPageDirty, page_zero_range, put_page, unlock_page
from faultlab.kernel.truncate import round_up_page, truncate_pagecache, truncate_pagecache_range, truncate_setsize

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.locking import RWSem
    from faultlab.kernel.state.inode import Inode


def ext4_readpage(k: Kernel, inode: Inode, page: Page) -> int:
    """->readpage.  A page the cache never held that still has its initial contents is made on
    lookup (see AddressSpace.lookup), so one read here has none on the disk: a hole, or a page
    truncated away.  It reads as zeros, which a new page already holds."""
    return 0


def zero_tail_of_last_page(k: Kernel, inode: Inode, old_size: int) -> None:
    """Zero the bytes past ``old_size`` in its page before the file grows (ext4, 6.x)."""
    if old_size & (PAGE_SIZE - 1) == 0:
        return
    page = find_lock_page(k, inode.mapping, old_size >> PAGE_SHIFT)
    if page is None:
        return
    page_zero_range(k, page, old_size & (PAGE_SIZE - 1), PAGE_SIZE, "zero tail past EOF")
    unlock_page(k, page)
    put_page(k, page)


def ext4_setattr(k: Kernel, inode: Inode, newsize: int) -> None:
    """ext4_setattr() for ATTR_SIZE: zero the old tail when growing, then truncate_setsize()."""
    oldsize = inode.i_size_read(k)
    if newsize > oldsize:
        zero_tail_of_last_page(k, inode, oldsize)
    truncate_setsize(k, inode, newsize)


def ext4_file_write_iter(k: Kernel, inode: Inode, pos: int, data: bytes) -> int:
    """ext4_file_write_iter(): i_rwsem across the copy; a write past EOF zeroes the old tail first."""
    inode.i_rwsem.lock(k)
    size = inode.i_size_read(k)
    if pos > size:
        zero_tail_of_last_page(k, inode, size)
    ret = generic_perform_write(k, inode, pos, data)
    inode.i_rwsem.unlock(k)
    return ret


def ext4_block_zero_page_range(k: Kernel, inode: Inode, pos: int, length: int) -> None:
    """ext4_block_zero_page_range(): zero part of one block (clipped to its end) through its
    page-cache page, read in if need be, and dirty it."""
    start = pos & (PAGE_SIZE - 1)
    length = min(length, PAGE_SIZE - start)
    page = find_lock_page(k, inode.mapping, pos >> PAGE_SHIFT)
    if page is None:
        return
    page_zero_range(k, page, start, start + length, "zero_user")
    SetPageDirty(k, page)
    unlock_page(k, page)
    put_page(k, page)


def ext4_zero_partial_blocks(k: Kernel, inode: Inode, lstart: int, length: int) -> None:
    """ext4_zero_partial_blocks() (4.10): the partial blocks at the ends of [lstart, lstart+length)."""
    byte_end = lstart + length - 1
    partial_start = lstart & (PAGE_SIZE - 1)
    partial_end = byte_end & (PAGE_SIZE - 1)
    if lstart >> PAGE_SHIFT == byte_end >> PAGE_SHIFT and (partial_start or partial_end != PAGE_SIZE - 1):
        ext4_block_zero_page_range(k, inode, lstart, length)  # "partial zero within the single block"
        return
    if partial_start:
        ext4_block_zero_page_range(k, inode, lstart, PAGE_SIZE)
    if partial_end != PAGE_SIZE - 1:
        ext4_block_zero_page_range(k, inode, byte_end - partial_end, partial_end + 1)


def ext4_punch_hole(k: Kernel, inode: Inode, offset: int, length: int, mmap_lock: RWSem | None = None) -> int:
    """ext4_punch_hole() (4.4 fs/ext4/inode.c; ``mmap_lock``: from 4.5 i_mmap_sem, ea3d7209ca01,
    from 5.15 mapping->invalidate_lock): write back the range, then under i_rwsem (and the
    ``mmap_lock`` for write, "Prevent page faults from reinstantiating pages we have released from
    page cache") clip the hole to EOF, drop its whole
    pages from the page cache, zero the partial blocks at its ends and free its blocks.  The
    model's disk frees a block with its page (truncate_inode_pages_range), so a fault between
    the two cannot read the old block back; the range is written back whole (the file's)."""
    filemap_write_and_wait(k, inode)  # filemap_write_and_wait_range(offset, offset + length - 1)
    inode.i_rwsem.lock(k)
    size = inode.i_size_read(k)
    if offset >= size:  # "No need to punch hole beyond i_size"
        inode.i_rwsem.unlock(k)
        return 0
    if offset + length > size:
        length = size + PAGE_SIZE - (size & (PAGE_SIZE - 1)) - offset
    if mmap_lock is not None:
        mmap_lock.down_write(k)
    first_block_offset = round_up_page(offset)
    last_block_offset = ((offset + length) & ~(PAGE_SIZE - 1)) - 1
    if last_block_offset > first_block_offset:
        truncate_pagecache_range(k, inode, first_block_offset, last_block_offset)
    ext4_zero_partial_blocks(k, inode, offset, length)
    if mmap_lock is not None:
        mmap_lock.up_write(k)
    inode.file_update_time(k)
    inode.i_rwsem.unlock(k)
    return 0


def ext4_fallocate(k: Kernel, inode: Inode, mode: str, offset: int, length: int) -> int:
    """ext4_fallocate() with FALLOC_FL_PUNCH_HOLE (before 4.5: no i_mmap_sem)."""
    return ext4_punch_hole(k, inode, offset, length)


def ext4_sync_file(k: Kernel, inode: Inode) -> int:
    return filemap_write_and_wait(k, inode)


def ext4_file_mmap(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    return ext4_file_vm_ops, 0


ext4_file_vm_ops = VmOperations("ext4_file_vm_ops", fault=filemap_fault, map_pages=filemap_map_pages,
                                page_mkwrite=filemap_page_mkwrite)

FS = FileSystemType(
    "ext4",
    dax=False,
    disk=True,
    i_op=InodeOperations("ext4_file_inode_operations", setattr=ext4_setattr),
    f_op=FileOperations("ext4_file_operations", read_iter=do_generic_file_read, write_iter=ext4_file_write_iter,
                        fsync=ext4_sync_file, mmap=ext4_file_mmap, fallocate=ext4_fallocate),
    a_ops=AddressSpaceOperations("ext4_aops", readpage=ext4_readpage),
)


# -- ext4 from 4.5: i_mmap_sem between faults and truncate (ea3d7209ca01, CVE-2015-8839) ----------------
def ext4_filemap_fault(k: Kernel, vmf: VmFault) -> int:
    """ext4_filemap_fault() (4.5): filemap_fault() under i_mmap_sem for read, so that a fault
    cannot bring a page back into the range truncate or punch hole is emptying."""
    inode = vmf.vma.file
    inode.i_mmap_sem.down_read(k)
    ret = filemap_fault(k, vmf)
    inode.i_mmap_sem.up_read(k)
    return ret


def ext4_page_mkwrite(k: Kernel, vmf: VmFault) -> int:
    """ext4_page_mkwrite() (4.5): the write-notify step under i_mmap_sem for read too."""
    inode = vmf.vma.file
    inode.i_mmap_sem.down_read(k)
    ret = filemap_page_mkwrite(k, vmf)
    inode.i_mmap_sem.up_read(k)
    return ret


def ext4_setattr_4_5(k: Kernel, inode: Inode, newsize: int) -> None:
    """ext4_setattr() for ATTR_SIZE (4.5): i_size first, then the page cache under i_mmap_sem for
    write ("Blocks are going to be removed from the inode")."""
    oldsize = inode.i_size_read(k)
    if newsize > oldsize:
        zero_tail_of_last_page(k, inode, oldsize)
    inode.i_size_write(k, newsize)
    if newsize < oldsize:
        inode.i_mmap_sem.down_write(k)
        truncate_pagecache(k, inode, newsize)
        inode.i_mmap_sem.up_write(k)


def ext4_fallocate_4_5(k: Kernel, inode: Inode, mode: str, offset: int, length: int) -> int:
    """ext4_fallocate() with FALLOC_FL_PUNCH_HOLE (4.5): ext4_punch_hole() under i_mmap_sem."""
    return ext4_punch_hole(k, inode, offset, length, inode.i_mmap_sem)


def ext4_file_mmap_4_5(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    return ext4_file_vm_ops_4_5, 0


ext4_file_vm_ops_4_5 = VmOperations("ext4_file_vm_ops", fault=ext4_filemap_fault, map_pages=filemap_map_pages,
                                    page_mkwrite=ext4_page_mkwrite)

FS_4_5 = FileSystemType(
    "ext4",
    dax=False,
    disk=True,
    i_op=InodeOperations("ext4_file_inode_operations", setattr=ext4_setattr_4_5),
    f_op=FileOperations("ext4_file_operations", read_iter=do_generic_file_read, write_iter=ext4_file_write_iter,
                        fsync=ext4_sync_file, mmap=ext4_file_mmap_4_5, fallocate=ext4_fallocate_4_5),
    a_ops=AddressSpaceOperations("ext4_aops", readpage=ext4_readpage),
)
