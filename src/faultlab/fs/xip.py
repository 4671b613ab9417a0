"""Linux 3.14 mm/filemap_xip.c with ext2's XIP side: execute-in-place before DAX.

COW is the two-step the seed patch set out to remove: ``xip_file_fault`` maps the pmem block (or
the global sparse page, for a hole) read-only and returns VM_FAULT_NOPAGE, so ``do_cow_fault``
gives up its pre-allocated page; the retried access write-faults on the read-only PTE and
``do_wp_page`` copies.  i_size is read once, with no lock, so a racing truncate can leave a PTE past
EOF (fixed in 4.0 by 283307c7607d "mm: fix XIP fault vs truncate race").  New blocks are zeroed by
ext2 before they are reachable (ext2_clear_xip_target() in ext2_get_blocks()).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.fs.dax.v4_0 import dax_do_io_read, dax_free_blocks, dax_truncate_page
from faultlab.fs.ext2 import ext2_get_block
from faultlab.fs.ops import AddressSpaceOperations, FileOperations, FileSystemType, InodeOperations, VmOperations
from faultlab.kernel.filemap import filemap_page_mkwrite
from faultlab.kernel.flags import (
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_SHARED,
    VM_WRITE,
    size_in_pages,
)
from faultlab.kernel.memory import (
    ENOMEM,
    i_mmap_lock_write,
    i_mmap_unlock_write,
    pte_read,
    vm_insert_mixed,
    vm_insert_page,
)
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.journal import jbd2_complete_transaction
from faultlab.kernel.state.page import Page, put_page
from faultlab.kernel.state.pagetable import remove_pte
from faultlab.kernel.truncate import truncate_setsize

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode

SPARSE_PAGE = "__xip_sparse_page"
SPARSE_MUTEX = "xip_sparse_mutex"


def xip_sparse_page(k: Kernel) -> Page | None:
    """xip_sparse_page(): the one global zero-filled page XIP maps for holes, allocated on first
    use (under xip_sparse_mutex) and held for ever."""
    page = k.static_get(SPARSE_PAGE)
    if page is None:
        page = k.alloc.alloc_page(k)
        if page is None:
            return None
        page.label = "xip sparse page"
        k.count("pages_zeroed")
        k.pinned.append(page)
        k.static_set(SPARSE_PAGE, page)
    assert isinstance(page, Page)
    return page


def __xip_unmap(k: Kernel, inode: Inode, pgoff: int) -> None:
    """__xip_unmap(): remove every PTE that maps the sparse page at ``pgoff`` (under i_mmap).  The
    seqcount retry against a concurrent sparse-page insert is not modelled."""
    page = k.static_get(SPARSE_PAGE)
    if not isinstance(page, Page):
        return
    mapping = inode.mapping
    i_mmap_lock_write(k, mapping)
    for vma in mapping.vmas(k):
        if not vma.maps(pgoff):
            continue
        address = vma.address_of(pgoff)
        ptl = vma.mm.pt.ptl(address)
        ptl.lock(k)
        pte = pte_read(k, vma, address)
        if pte is not None and pte.page is page:
            remove_pte(k, vma.mm, address, pte, "ptep_clear_flush")
            k.events.emit("pte_clear", mm=vma.mm, vma=vma, addr=address, pte=pte)
            put_page(k, page)
        ptl.unlock(k)
    i_mmap_unlock_write(k, mapping)


xip_unmap = __xip_unmap  # for the readers below, in the kernel's own words


def xip_file_fault(k: Kernel, vmf: VmFault) -> int:
    """xip_file_fault() (3.14)."""
    vma = vmf.vma
    inode = vma.file
    while True:  # again:
        if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
            return VM_FAULT_SIGBUS
        ext, _new, _err = ext2_get_block(k, inode, vmf.pgoff, False)
        if ext is not None:
            return xip_found(k, vmf, ext.block)
        if vma.flags & (VM_WRITE | VM_MAYWRITE) and vma.flags & (VM_SHARED | VM_MAYSHARE):
            mutex = k.static_mutex(SPARSE_MUTEX)  # maybe shared writable: allocate a new block
            mutex.lock(k)
            ext, _new, err = ext2_get_block(k, inode, vmf.pgoff, True)
            mutex.unlock(k)
            if err or ext is None:
                return VM_FAULT_SIGBUS
            xip_unmap(k, inode, vmf.pgoff)  # "unmap sparse mappings at pgoff from all other vmas"
            return xip_found(k, vmf, ext.block)
        mutex = k.static_mutex(SPARSE_MUTEX)
        mutex.lock(k)
        ext, _new, _err = ext2_get_block(k, inode, vmf.pgoff, False)
        if ext is not None:
            mutex.unlock(k)
            k.retry("xip_file_fault")
            continue  # a block appeared: goto again
        page = xip_sparse_page(k)  # not shared and writable: use the sparse page
        if page is None:
            mutex.unlock(k)
            return VM_FAULT_OOM
        vm_insert_page(k, vma, vmf.address, page, anon=False)
        mutex.unlock(k)
        return VM_FAULT_NOPAGE


def xip_found(k: Kernel, vmf: VmFault, block: int) -> int:
    """The ``found:`` label: insert the pfn; -EBUSY is fine ("we've raced against another thread
    faulting-in the same page")."""
    if vm_insert_mixed(k, vmf.vma, vmf.address, block) == ENOMEM:
        return VM_FAULT_OOM
    return VM_FAULT_NOPAGE


def ext2_xip_setsize(k: Kernel, inode: Inode, newsize: int) -> None:
    """ext2_setsize() on an XIP file: xip_truncate_page, truncate_setsize, free the blocks."""
    oldsize = inode.i_size_read(k)
    if newsize < oldsize:
        dax_truncate_page(k, inode, newsize, ext2_get_block)  # xip_truncate_page()
    truncate_setsize(k, inode, newsize)
    if newsize < oldsize:
        dax_free_blocks(k, inode, newsize)


def xip_file_read(k: Kernel, inode: Inode, pos: int, count: int) -> bytes:
    """xip_file_read() -> do_xip_mapping_read(): from pmem; holes read as zeros."""
    return dax_do_io_read(k, inode, pos, count, ext2_get_block)


def xip_file_write(k: Kernel, inode: Inode, pos: int, data: bytes) -> int:
    """xip_file_write() -> __xip_file_write(), under i_rwsem: a hole is allocated under
    xip_sparse_mutex and the sparse page unmapped from it; then copy; i_size grows at the end."""
    inode.i_rwsem.lock(k)
    written = 0
    while written < len(data):
        index = pos >> PAGE_SHIFT
        off = pos & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - off, len(data) - written)
        ext, _new, _err = ext2_get_block(k, inode, index, False)
        if ext is None:
            mutex = k.static_mutex(SPARSE_MUTEX)
            mutex.lock(k)
            ext, _new, err = ext2_get_block(k, inode, index, True)
            mutex.unlock(k)
            if err or ext is None:
                inode.i_rwsem.unlock(k)
                return written if written else err
            xip_unmap(k, inode, index)
        chunk = data[written : written + n]
        k.pmem.write(k, ext.block, off, chunk, "xip write", how="durable")  # __copy_from_user_nocache: movnti + sfence
        k.events.emit("store_done", kind="write", inode=inode, offset=pos, data=chunk)
        written += n
        pos += n
    if pos > inode.i_size_read(k):
        inode.i_size_write(k, pos)
    inode.file_update_time(k)
    inode.i_rwsem.unlock(k)
    return written


def xip_fsync(k: Kernel, inode: Inode) -> int:
    """ext2_fsync() -> generic_file_fsync() (3.x fs/libfs.c): nothing flushes the CPU cache, but
    the inode and its indirect blocks are written (sync_inode_metadata()): the block map and
    i_size are committed."""
    jbd2_complete_transaction(k, inode, "sync_inode_metadata")
    return 0


def xip_file_mmap(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    """xip_file_mmap(): xip_file_vm_ops, VM_MIXEDMAP."""
    return xip_file_vm_ops, VM_MIXEDMAP


xip_file_vm_ops = VmOperations("xip_file_vm_ops", fault=xip_file_fault, page_mkwrite=filemap_page_mkwrite)

FS = FileSystemType(
    "ext2 (xip)",
    dax=True,
    disk=True,
    i_op=InodeOperations("ext2_file_inode_operations", setattr=ext2_xip_setsize),
    f_op=FileOperations("ext2_xip_file_operations", read_iter=xip_file_read, write_iter=xip_file_write,
                        fsync=xip_fsync, mmap=xip_file_mmap),
    a_ops=AddressSpaceOperations("ext2_aops_xip"),
)
