"""fs/dax.c of Linux 4.0 (v12 of the DAX series, 4.1.27 for the parts 4.1 kept), with ext2's DAX
side.

``do_dax_fault`` performs the COW into ``vmf->cow_page`` and returns VM_FAULT_LOCKED with a NULL
page, meaning "i_mmap_rwsem is held for read instead of a page lock" (``dax_cow_fault``).  Block
allocation: ext2's get_block zeroes a new block before ext2_splice_branch() makes it reachable
("block must be initialised before we put it in the tree", dax_clear_blocks), and 4.0's
dax_insert_mapping() and dax_do_io() zero a buffer_new block *again* once it is in the tree -- the
second zeroing is what lets a racing store be lost (fixed by "dax: Remove zeroing from dax_io()"
and "dax: Remove dead zeroing code from fault handlers", 4.7).  4.1's ``complete_unwritten`` is
here for ext4's unwritten extents (see the known bug v4.1-hole-double-zero).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from faultlab.fs.ext2 import clear_pmem, ext2_get_block
from faultlab.fs.ops import AddressSpaceOperations, FileOperations, FileSystemType, InodeOperations, VmOperations
from faultlab.kernel.filemap import delete_from_page_cache, find_get_page, find_lock_page, find_or_create_page
from faultlab.kernel.flags import (
    FAULT_FLAG_WRITE,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_LOCKED,
    VM_FAULT_MAJOR,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_MIXEDMAP,
    size_in_pages,
)
from faultlab.kernel.memory import i_mmap_lock_read, i_mmap_unlock_read, unmap_mapping_range, vm_insert_mixed
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.inode import Extent
from faultlab.kernel.state.journal import jbd2_complete_transaction
from faultlab.kernel.state.page import Page, clear_page, lock_page, page_mapping, put_page, unlock_page
from faultlab.kernel.truncate import invalidate_inode_pages2_range, truncate_setsize

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode
    from faultlab.kernel.state.pagecache import AddressSpace

EIO = -5
ENOMEM = -12
EBUSY = -16

GetBlock = Callable[["Kernel", "Inode", int, bool], tuple[Extent | None, bool, int]]


# -- the block map ------------------------------------------------------------------------------------------
def complete_unwritten(k: Kernel, inode: Inode, index: int) -> None:
    """->complete_unwritten (4.1; ext4_end_io_unwritten): the extent is now written."""
    ext = inode.lookup_extent(k, index)
    if ext is not None and ext.unwritten:
        inode.set_extent(k, index, Extent(ext.block), "ext4_convert_unwritten_extents")


def buffer_written(ext: Extent | None) -> bool:
    return ext is not None and not ext.unwritten


# -- the fault handler ---------------------------------------------------------------------------------------
def dax_fault_return(error: int, major: int) -> int:
    """The ``out:`` label of do_dax_fault."""
    if error == ENOMEM:
        return VM_FAULT_OOM | major
    if error < 0 and error != EBUSY:
        return VM_FAULT_SIGBUS | major
    return VM_FAULT_NOPAGE | major


def unlock_page_out(k: Kernel, page: Page | None, error: int, major: int) -> int:
    """The ``unlock_page:`` label of do_dax_fault."""
    if page is not None:
        unlock_page(k, page)
        put_page(k, page)
    return dax_fault_return(error, major)


def do_dax_fault(k: Kernel, vmf: VmFault, get_block: GetBlock) -> int:
    """do_dax_fault() (4.0; 4.1's complete_unwritten): i_size; a hole page from an earlier read
    fault, locked and re-checked; the block map; a hole on a write is allocated (a major fault), on
    a read loaded as a hole page; a COW copies into vmf->cow_page; otherwise the pfn is inserted,
    after any hole page is unmapped and dropped."""
    inode = vmf.vma.file
    mapping = inode.mapping
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return VM_FAULT_SIGBUS
    page: Page | None = None
    while True:  # repeat:
        page = find_get_page(k, mapping, vmf.pgoff)
        if page is None:
            break
        lock_page(k, page)
        if page_mapping(k, page) is not mapping:
            unlock_page(k, page)
            put_page(k, page)
            k.retry("do_dax_fault")
            continue
        if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):  # raced with a truncate
            return unlock_page_out(k, page, EIO, 0)
        break
    ext, new, error = get_block(k, inode, vmf.pgoff, False)
    if error:
        return unlock_page_out(k, page, error, 0)
    major = 0
    if ext is None and vmf.cow_page is None:
        if not vmf.write:
            return dax_load_hole(k, mapping, page, vmf)
        ext, new, error = get_block(k, inode, vmf.pgoff, True)
        major = VM_FAULT_MAJOR
        if error or ext is None:
            return unlock_page_out(k, page, error or EIO, major)
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
        complete_unwritten(k, inode, vmf.pgoff)
    return dax_fault_return(error, major)


def dax_cow_fault(k: Kernel, vmf: VmFault, ext: Extent | None, page: Page | None) -> int:
    """The COW branch of do_dax_fault (inline in 4.0): copy pmem (or zeros) into cow_page; hand
    the hole page's lock, or -- "Check we didn't race with truncate" -- i_mmap for read, to
    do_cow_fault."""
    new_page = vmf.cow_page
    assert new_page is not None
    if buffer_written(ext):
        assert ext is not None
        k.pmem.copy_to_page(k, ext.block, new_page, "copy_user_bh")
        k.count("bytes_copied", PAGE_SIZE)
    else:
        clear_page(k, new_page, "clear_user_highpage")
        k.count("pages_zeroed")
    vmf.page = page
    if page is None:
        mapping = vmf.vma.file.mapping
        i_mmap_lock_read(k, mapping)
        if vmf.pgoff >= size_in_pages(vmf.vma.file.i_size_read(k)):
            i_mmap_unlock_read(k, mapping)
            return VM_FAULT_SIGBUS
    return VM_FAULT_LOCKED


def dax_insert_mapping(k: Kernel, inode: Inode, ext: Extent, new: bool, vmf: VmFault) -> int:
    """dax_insert_mapping() (4.0): under i_mmap (read), re-check i_size ("truncate happened while
    we were allocating"), zero a buffer_new or unwritten block, insert the pfn."""
    mapping = inode.mapping
    i_mmap_lock_read(k, mapping)
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        i_mmap_unlock_read(k, mapping)
        return EIO
    if ext.unwritten or new:
        clear_pmem(k, ext.block)
    error = vm_insert_mixed(k, vmf.vma, vmf.address, ext.block)
    i_mmap_unlock_read(k, mapping)
    return error


def dax_load_hole(k: Kernel, mapping: AddressSpace, page: Page | None, vmf: VmFault) -> int:
    """dax_load_hole() (4.0): a zeroed page-cache page, locked, re-checked against i_size."""
    hole = page if page is not None else find_or_create_page(k, mapping, vmf.pgoff)
    if hole is None:
        return VM_FAULT_OOM
    if vmf.pgoff >= size_in_pages(mapping.host.i_size_read(k)):
        unlock_page(k, hole)
        put_page(k, hole)
        return VM_FAULT_SIGBUS
    vmf.page = hole
    return VM_FAULT_LOCKED


def dax_fault(k: Kernel, vmf: VmFault, get_block: GetBlock) -> int:
    """dax_fault(): file_update_time on a write fault (sb_start_pagefault is not modelled)."""
    if vmf.write and vmf.cow_page is None:
        vmf.vma.file.file_update_time(k)
    return do_dax_fault(k, vmf, get_block)


# -- read(2) and write(2): dax_do_io -----------------------------------------------------------------------
def dax_do_io_read(k: Kernel, inode: Inode, pos: int, count: int, get_block: GetBlock) -> bytes:
    """dax_do_io() for reads: straight from pmem, holes and unwritten extents read as zeros."""
    out = bytearray()
    while count > 0:
        isize = inode.i_size_read(k)
        if pos >= isize:
            break
        index = pos >> PAGE_SHIFT
        off = pos & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - off, count, isize - pos)
        ext, _new, _err = get_block(k, inode, index, False)
        out += k.pmem.read(k, ext.block, off, n, "dax_io read") if ext is not None and buffer_written(ext) \
            else bytes(n)
        pos += n
        count -= n
    return bytes(out)


def dax_do_io_write(k: Kernel, inode: Inode, pos: int, data: bytes, get_block: GetBlock) -> int:
    """dax_do_io() for writes, i_rwsem held by the caller: get a block; a new or unwritten one is
    zeroed where the write does not cover it (dax_new_buf) -- after get_block made it reachable;
    copy; then the DIO path invalidates a hole page mapped over the range; i_size grows at the
    end."""
    written = 0
    while written < len(data):
        index = pos >> PAGE_SHIFT
        off = pos & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - off, len(data) - written)
        ext, new, err = get_block(k, inode, index, True)
        if err or ext is None:
            return written if written else err
        if new or ext.unwritten:
            clear_pmem(k, ext.block, "dax_new_buf")
        if new:
            invalidate_inode_pages2_range(k, inode.mapping, index, index)
        chunk = data[written : written + n]
        # copy_from_iter_nocache(): __copy_user_nocache's movnti stores end with an sfence
        k.pmem.write(k, ext.block, off, chunk, "dax_io write", how="durable")
        if ext.unwritten:
            complete_unwritten(k, inode, index)
        k.events.emit("store_done", kind="write", inode=inode, offset=pos, data=chunk)
        written += n
        pos += n
    if pos > inode.i_size_read(k):
        inode.i_size_write(k, pos)
    inode.file_update_time(k)
    return written


# -- truncate ------------------------------------------------------------------------------------------------
def dax_truncate_page(k: Kernel, inode: Inode, frm: int, get_block: GetBlock) -> None:
    """dax_truncate_page() -> dax_zero_page_range(): zero the partial last block in place (no
    lock, no unmap: "the file might be mmapped")."""
    offset = frm & (PAGE_SIZE - 1)
    if offset == 0:
        return
    index = frm >> PAGE_SHIFT
    ext, _new, _err = get_block(k, inode, index, False)
    if buffer_written(ext):
        assert ext is not None
        k.pmem.write(k, ext.block, offset, bytes(PAGE_SIZE - offset), "dax_zero_page_range")


def dax_free_blocks(k: Kernel, inode: Inode, newsize: int) -> None:
    """ext2_truncate_blocks() / ext4_truncate(): free every block wholly past the new EOF."""
    for _index, ext in inode.mapped_blocks(k, size_in_pages(newsize)):
        k.pmem.free(k, ext.block)
        k.count("blocks_freed")
        k.events.emit("block_free", block=ext.block, count=1)


def dax_delete_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> None:
    """4.0 has no DAX radix-tree entries: nothing calls this."""
    raise AssertionError("no DAX entries before 4.7")


def dax_invalidate_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> bool:
    raise AssertionError("no DAX entries before 4.7")


def dax_entry_handed_to_page(k: Kernel, mapping: AddressSpace, index: int) -> None:
    raise AssertionError("no DAX entries before 4.7")


def dax_wake_mapping_entry_waiter(k: Kernel, mapping: AddressSpace, index: int, wake_all: bool) -> None:
    raise AssertionError("no DAX entries before 4.7")


# -- ext2 -------------------------------------------------------------------------------------------------------
def ext2_dax_fault(k: Kernel, vmf: VmFault) -> int:
    """ext2_dax_fault(): dax_fault(vma, vmf, ext2_get_block)."""
    return dax_fault(k, vmf, ext2_get_block)


def ext2_dax_mkwrite(k: Kernel, vmf: VmFault) -> int:
    """->page_mkwrite: ``#define dax_mkwrite(vma, vmf, gb) dax_fault(vma, vmf, gb)`` -- a write to a
    hole page re-enters the whole fault."""
    vmf.flags |= FAULT_FLAG_WRITE
    vmf.write = True
    vmf.page = None
    return dax_fault(k, vmf, ext2_get_block)


def ext2_setsize(k: Kernel, inode: Inode, newsize: int) -> None:
    """ext2_setsize() on a DAX file: dax_truncate_page, truncate_setsize, __ext2_truncate_blocks."""
    oldsize = inode.i_size_read(k)
    if newsize < oldsize:
        dax_truncate_page(k, inode, newsize, ext2_get_block)
    truncate_setsize(k, inode, newsize)
    if newsize < oldsize:
        dax_free_blocks(k, inode, newsize)


def ext2_dax_read(k: Kernel, inode: Inode, pos: int, count: int) -> bytes:
    return dax_do_io_read(k, inode, pos, count, ext2_get_block)


def ext2_dax_write(k: Kernel, inode: Inode, pos: int, data: bytes) -> int:
    """generic_file_write_iter() -> ext2_direct_IO() -> dax_do_io(), under i_rwsem."""
    inode.i_rwsem.lock(k)
    ret = dax_do_io_write(k, inode, pos, data, ext2_get_block)
    inode.i_rwsem.unlock(k)
    return ret


def ext2_fsync(k: Kernel, inode: Inode) -> int:
    """generic_file_fsync(): before 4.5 nothing tracks DAX stores and nothing flushes the CPU
    cache, so a store through a mapping (and dax_clear_blocks' zeroing) may still be lost in a
    crash after fsync returns: the durability gap "dax: add support for fsync/sync" closed in 4.5.
    It does write the inode and its indirect blocks (sync_mapping_buffers(), sync_inode_metadata()):
    the block map and i_size are committed."""
    jbd2_complete_transaction(k, inode, "sync_inode_metadata")
    return 0


def ext2_file_mmap(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    """ext2_file_mmap(): DAX files get ext2_dax_vm_ops and VM_MIXEDMAP."""
    return ext2_dax_vm_ops, VM_MIXEDMAP


ext2_dax_vm_ops = VmOperations("ext2_dax_vm_ops", fault=ext2_dax_fault, page_mkwrite=ext2_dax_mkwrite)

FS = FileSystemType(
    "ext2 (dax)",
    dax=True,
    disk=True,
    i_op=InodeOperations("ext2_file_inode_operations", setattr=ext2_setsize),
    f_op=FileOperations("ext2_file_operations", read_iter=ext2_dax_read, write_iter=ext2_dax_write,
                        fsync=ext2_fsync, mmap=ext2_file_mmap),
    a_ops=AddressSpaceOperations("ext2_aops"),
)
