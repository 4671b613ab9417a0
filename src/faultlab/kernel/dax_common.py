"""Pieces of fs/dax.c and the DAX filesystem (ext2/ext4 get_block) that every design shares: the
block map, pmem reads/writes/zeroing, COW copies from pmem, freeing blocks on truncate, and the
DIO-like read(2)/write(2) path with its invalidation of hole pages.

Blocks are page-sized (i_blkbits == PAGE_SHIFT), as DAX requires."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE, size_in_pages
from faultlab.kernel.fs import DaxEntry, Extent, Inode
from faultlab.kernel.memory import unmap_mapping_range
from faultlab.kernel.page import Page, lock_page, unlock_page
from faultlab.sched import Access

if TYPE_CHECKING:
    from faultlab.kernel.fs import AddressSpace
    from faultlab.kernel.kernel import Kernel

ENOSPC = -28


def lookup_extent(inode: Inode, index: int) -> Extent | None:
    ext = inode.extents.get(index)
    if ext is None and index < inode.initial_pages:
        ext = Extent(inode.initial_base + index)
    return ext


def get_block(k: Kernel, inode: Inode, index: int, create: bool, unwritten: bool = False,
              zero: bool = False) -> tuple[Extent | None, bool, int]:
    """->get_block(inode, block, bh, create): (extent or None for a hole, buffer_new, error).
    With create, a hole gets a freshly allocated block: written-but-new (ext2: buffer_new) or, with
    ``unwritten``, an unwritten extent (ext4), which the caller must zero before mapping; with
    ``zero`` the filesystem zeroes it while allocating (ext4 for DAX from 4.7, EXT4_GET_BLOCKS_ZERO)."""
    k.sched.point(("extents", inode), Access.WRITE if create else Access.READ,
                  f"get_block({inode.name}, {index}, create={int(create)})")
    ext = lookup_extent(inode, index)
    if ext is not None or not create:
        return ext, False, 0
    block = k.pmem.alloc()
    if block is None:
        return None, False, ENOSPC
    ext = Extent(block, unwritten=unwritten)
    k.count("blocks_allocated")
    k.events.emit("block_alloc", inode=inode, index=index, block=block)
    if zero:
        clear_pmem(k, block)
    inode.extents[index] = ext
    return ext, True, 0


def convert_unwritten(k: Kernel, inode: Inode, index: int) -> None:
    """->complete_unwritten / ext4_convert_unwritten_extents: the extent is now written."""
    k.sched.point(("extents", inode), Access.WRITE, f"convert_unwritten({inode.name}, {index})")
    ext = inode.extents.get(index)
    if ext is not None:
        ext.unwritten = False


def initial_block_contents(inode: Inode, block: int, index: int) -> bytes | None:
    """What an untouched block holds: the fill pattern if it is the file's own initial block for
    ``index`` (blocks reserved when the scenario created the file), else nothing (zeros)."""
    if block == inode.initial_base + index and index < inode.initial_pages:
        return inode.initial_contents(index)
    return None


def dax_read_block(k: Kernel, inode: Inode, block: int, index: int, off: int = 0, n: int = PAGE_SIZE) -> bytes:
    k.sched.point(("block", block), Access.READ, f"read pmem block {block}")
    k.events.emit("block_access", block=block, write=False, user=False)
    return k.pmem.read(block, off, n, initial_block_contents(inode, block, index))


def dax_write_block(k: Kernel, inode: Inode, block: int, index: int, off: int, data: bytes) -> None:
    k.sched.point(("block", block), Access.WRITE, f"write pmem block {block}")
    k.events.emit("block_access", block=block, write=True, user=False)
    k.pmem.write(block, off, data, initial_block_contents(inode, block, index))


def clear_pmem(k: Kernel, block: int) -> None:
    """clear_page() / dax_zero_page_range() on a whole block."""
    k.sched.point(("block", block), Access.WRITE, f"clear_pmem block {block}")
    k.pmem.zero(block)
    k.count("pages_zeroed")
    k.events.emit("block_zero", block=block)


def copy_user_bh(k: Kernel, cow_page: Page, inode: Inode, ext: Extent, index: int) -> None:
    """copy_user_bh() (4.0) / copy_user_dax() (4.10): copy the pmem block into the COW page."""
    cow_page.copy_from(dax_read_block(k, inode, ext.block, index))
    k.count("bytes_copied", PAGE_SIZE)


def clear_user_highpage(k: Kernel, page: Page) -> None:
    page.copy_from(None)
    k.count("pages_zeroed")


def buffer_written(ext: Extent | None) -> bool:
    return ext is not None and not ext.unwritten


def dax_free_blocks(k: Kernel, inode: Inode, newsize: int) -> None:
    """ext2_truncate_blocks() / ext4_truncate(): free every block wholly past the new EOF."""
    first = size_in_pages(newsize)
    k.sched.point(("extents", inode), Access.WRITE, f"free blocks of {inode.name} from {first}")
    for index in sorted(i for i in inode.extents if i >= first):
        ext = inode.extents.pop(index)
        k.pmem.free(ext.block)
        k.count("blocks_freed")
        k.events.emit("block_free", block=ext.block, count=1)
    if inode.initial_pages > first:
        start = inode.initial_base + first
        count = inode.initial_pages - first
        k.pmem.free(start, count)
        k.count("blocks_freed", count)
        k.events.emit("block_free", block=start, count=count)
        inode.initial_pages = first


def dax_zero_page_range(k: Kernel, inode: Inode, frm: int) -> None:
    """dax_truncate_page() -> dax_zero_page_range(): zero the partial last block in place (no
    lock, no unmap: "the file might be mmapped")."""
    offset = frm & (PAGE_SIZE - 1)
    if offset == 0:
        return
    index = frm >> PAGE_SHIFT
    ext, _new, _err = get_block(k, inode, index, create=False)
    if buffer_written(ext):
        assert ext is not None
        dax_write_block(k, inode, ext.block, index, offset, bytes(PAGE_SIZE - offset))


def invalidate_inode_pages2_range(k: Kernel, mapping: AddressSpace, start: int, end: int) -> None:
    """invalidate_inode_pages2_range(): lock each page in range, unmap it (even_cows=0: private
    copies are kept) and delete it.  DAX entries are left to the design's
    invalidate_exceptional_entry() (4.12 waits for a locked entry there)."""
    for index in range(start, end + 1):
        k.sched.point(mapping.slot(index), Access.READ, f"invalidate lookup {index}")
        entry = mapping.page_tree.get(index)
        if isinstance(entry, DaxEntry) and k.design.invalidate_exceptional_entry(k, mapping, index):
            entry = mapping.page_tree.get(index)
        if entry is None or isinstance(entry, DaxEntry):
            continue
        page = entry
        k.alloc.get_page(page)
        lock_page(k, page)
        if page.mapping is not mapping:
            unlock_page(k, page)
            k.alloc.put_page(k, page)
            continue
        if page.mapcount > 0:
            unmap_mapping_range(k, mapping, index << PAGE_SHIFT, PAGE_SIZE, even_cows=False)
        from faultlab.kernel.filemap import delete_from_page_cache

        delete_from_page_cache(k, page)
        unlock_page(k, page)
        k.alloc.put_page(k, page)


def dax_file_read(k: Kernel, inode: Inode, pos: int, count: int) -> bytes:
    """dax_do_io() / dax_iomap_rw() for reads: straight from pmem, holes read as zeros."""
    out = bytearray()
    while count > 0:
        isize = inode.i_size_read(k)
        if pos >= isize:
            break
        index = pos >> PAGE_SHIFT
        off = pos & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - off, count, isize - pos)
        ext, _new, _err = get_block(k, inode, index, create=False)
        out += dax_read_block(k, inode, ext.block, index, off, n) if buffer_written(ext) and ext else bytes(n)
        pos += n
        count -= n
    return bytes(out)


def dax_file_write(k: Kernel, inode: Inode, pos: int, data: bytes, unwritten: bool = False) -> int:
    """dax_do_io() / dax_iomap_actor() for writes, with i_rwsem held by the caller: allocate,
    zero what a new block will not be written with (dax_new_buf), copy, tear down any hole page
    mapped over the range (invalidate_inode_pages2_range), and extend i_size at the end."""
    written = 0
    while written < len(data):
        index = pos >> PAGE_SHIFT
        off = pos & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - off, len(data) - written)
        ext, new, err = get_block(k, inode, index, create=True, unwritten=unwritten)
        if err or ext is None:
            return written if written else err
        if new or ext.unwritten:
            clear_pmem(k, ext.block)
        if new:  # IOMAP_F_NEW: a hole page may be mapped over the range (nrpages || nrexceptional)
            invalidate_inode_pages2_range(k, inode.mapping, index, index)
        dax_write_block(k, inode, ext.block, index, off, data[written : written + n])
        if ext.unwritten:
            convert_unwritten(k, inode, index)
        k.events.emit("store_done", kind="write", inode=inode, offset=pos, data=data[written : written + n])
        written += n
        pos += n
    if pos > inode.i_size:
        inode.i_size_write(k, pos)
    inode.file_update_time(k)
    return written
