"""``xip``: Linux 3.14 mm/filemap_xip.c under the 3.15 generic fault code.

COW is the two-step the seed patch set out to remove: ``xip_file_fault`` maps the pmem block (or
the global sparse page for a hole) read-only and returns VM_FAULT_NOPAGE, so ``do_cow_fault``
gives up its pre-allocated page; the retried access write-faults on the read-only PTE and
``do_wp_page`` copies.  i_size is read once, with no lock, so a racing truncate can leave a PTE
past EOF (fixed in 4.0 by 283307c7607d "mm: fix XIP fault vs truncate race").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.designs.base import Design
from faultlab.kernel import dax_common as dax
from faultlab.kernel.filemap import filemap_page_mkwrite
from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE, VmFault, VmFlag, size_in_pages
from faultlab.kernel.locking import Mutex
from faultlab.kernel.memory import (
    ERR_NOPAGE_RETRY,
    __do_fault,
    do_set_pte,
    i_mmap_lock_write,
    i_mmap_unlock_write,
    page_remove_rmap,
    pte_clear,
    pte_offset_map_lock,
    pte_read,
    pte_unmap_unlock,
    vm_insert_mixed,
    vm_insert_page,
)
from faultlab.kernel.mm import FaultHandler, VmFaultData
from faultlab.kernel.page import Page, unlock_page
from faultlab.kernel.truncate import truncate_setsize

if TYPE_CHECKING:
    from faultlab.kernel.fs import Inode
    from faultlab.kernel.kernel import Kernel


def xip_sparse_mutex(k: Kernel) -> Mutex:
    m = k.design_state.get("xip_sparse_mutex")
    if m is None:
        m = Mutex("xip_sparse_mutex", "xip_sparse_mutex")
        k.design_state["xip_sparse_mutex"] = m
    assert isinstance(m, Mutex)
    return m


def xip_sparse_page(k: Kernel) -> Page | None:
    """The one global zero-filled page XIP maps for holes (an ordinary page in no page cache)."""
    page = k.design_state.get("xip_sparse_page")
    if page is None:
        page = k.alloc.alloc_page(k)
        if page is None:
            return None
        page.uptodate = True
        page.label = "xip sparse page"
        k.count("pages_zeroed")
        k.design_state["xip_sparse_page"] = page
    assert isinstance(page, Page)
    return page


def do_cow_fault_315(k: Kernel, vmf: VmFaultData, pass_cow_page: bool = False) -> VmFault:
    """do_cow_fault() of Linux 3.15 mm/memory.c.  With ``pass_cow_page`` it is the v8 form of the
    seed patch, which only adds ``vmf->cow_page = new_page``."""
    k.count("fault.cow")
    new_page = k.alloc.alloc_page(k)
    if new_page is None:
        return VmFault.OOM
    new_page.cow = True
    if pass_cow_page:
        vmf.cow_page = new_page
    ret = __do_fault(k, vmf)
    if ret & ERR_NOPAGE_RETRY:
        k.alloc.put_page(k, new_page)
        return ret
    fault_page = vmf.page
    assert fault_page is not None
    new_page.copy_from(fault_page.contents())
    k.count("bytes_copied", PAGE_SIZE)
    new_page.uptodate = True
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vmf.vma.mm, vmf.address) != vmf.orig_pte:
        pte_unmap_unlock(k, vmf)
        unlock_page(k, fault_page)
        k.alloc.put_page(k, fault_page)
        k.alloc.put_page(k, new_page)
        return ret
    do_set_pte(k, vmf, new_page, write=True, anon=True)
    pte_unmap_unlock(k, vmf)
    unlock_page(k, fault_page)
    k.alloc.put_page(k, fault_page)
    return ret


def __xip_unmap(k: Kernel, inode: Inode, pgoff: int) -> None:
    """__xip_unmap(): remove every PTE that maps the sparse page at ``pgoff`` (under i_mmap).
    The seqcount retry against a concurrent zero-page insert is not modelled."""
    page = k.design_state.get("xip_sparse_page")
    if not isinstance(page, Page):
        return
    mapping = inode.mapping
    i_mmap_lock_write(k, mapping)
    for vma in list(mapping.i_mmap):
        if not (vma.pgoff <= pgoff < vma.pgoff + ((vma.end - vma.start) >> PAGE_SHIFT)):
            continue
        address = vma.address_of(pgoff)
        ptl = vma.mm.pte_lockptr(address)
        ptl.lock(k)
        pte = pte_read(k, vma.mm, address)
        if pte is not None and pte.page is page:
            pte_clear(k, vma, address)
            page_remove_rmap(k, page)
            vma.mm.rss_file -= 1
            k.alloc.put_page(k, page)
        ptl.unlock(k)
    i_mmap_unlock_write(k, mapping)


# Called from inside class Xip, where Python would mangle a name that starts with two underscores.
xip_unmap = __xip_unmap


class Xip(Design):
    name = "xip"
    summary = "3.14 XIP: COW by read-only map, retry, copy; i_size read once, no lock against truncate"
    source = "Linux 3.14 mm/filemap_xip.c (xip_file_fault, __xip_unmap, xip_truncate_page); 3.15 mm/memory.c"
    i_mmap_is_mutex = True

    def do_cow_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        return do_cow_fault_315(k, vmf)

    def dax_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        """xip_file_fault() (3.14)."""
        vma = vmf.vma
        inode = vma.file
        while True:  # again:
            if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
                return VmFault.SIGBUS
            ext, _new, _err = dax.get_block(k, inode, vmf.pgoff, create=False)
            if ext is not None:
                return self._found(k, vmf, ext.block)
            shared_writable = (vma.flags & (VmFlag.WRITE | VmFlag.MAYWRITE)) and vma.shared
            if shared_writable:
                mutex = xip_sparse_mutex(k)
                mutex.lock(k)
                ext, new, err = dax.get_block(k, inode, vmf.pgoff, create=True)
                if ext is not None and new:
                    dax.clear_pmem(k, ext.block)  # ext2_clear_xip_target()
                mutex.unlock(k)
                if err or ext is None:
                    return VmFault.SIGBUS
                xip_unmap(k, inode, vmf.pgoff)
                return self._found(k, vmf, ext.block)
            mutex = xip_sparse_mutex(k)
            mutex.lock(k)
            ext, _new, _err = dax.get_block(k, inode, vmf.pgoff, create=False)
            if ext is not None:
                mutex.unlock(k)
                continue  # a block appeared: goto again
            page = xip_sparse_page(k)
            if page is None:
                mutex.unlock(k)
                return VmFault.OOM
            vm_insert_page(k, vma, vmf.address, page)
            mutex.unlock(k)
            return VmFault.NOPAGE

    def _found(self, k: Kernel, vmf: VmFaultData, block: int) -> VmFault:
        err = vm_insert_mixed(k, vmf.vma, vmf.address, block)
        if err == -12:
            return VmFault.OOM
        return VmFault.NOPAGE  # -EBUSY: another thread mapped it first

    def dax_page_mkwrite_handler(self) -> FaultHandler | None:
        return filemap_page_mkwrite

    def dax_setattr_size(self, k: Kernel, inode: Inode, newsize: int) -> None:
        """ext2_setsize() on an XIP file: xip_truncate_page, truncate_setsize, free the blocks."""
        oldsize = inode.i_size
        if newsize < oldsize:
            dax.dax_zero_page_range(k, inode, newsize)  # xip_truncate_page()
        truncate_setsize(k, inode, newsize)
        if newsize < oldsize:
            dax.dax_free_blocks(k, inode, newsize)

    def dax_write(self, k: Kernel, inode: Inode, pos: int, data: bytes) -> int:
        """__xip_file_write(): allocate holes under xip_sparse_mutex, unmap the sparse page, copy."""
        written = 0
        while written < len(data):
            index = pos >> PAGE_SHIFT
            off = pos & (PAGE_SIZE - 1)
            n = min(PAGE_SIZE - off, len(data) - written)
            ext, _new, _err = dax.get_block(k, inode, index, create=False)
            if ext is None:
                mutex = xip_sparse_mutex(k)
                mutex.lock(k)
                ext, new, err = dax.get_block(k, inode, index, create=True)
                if ext is not None and new:
                    dax.clear_pmem(k, ext.block)
                mutex.unlock(k)
                if err or ext is None:
                    return written if written else err
                xip_unmap(k, inode, index)
            dax.dax_write_block(k, inode, ext.block, index, off, data[written : written + n])
            k.events.emit("store_done", kind="write", inode=inode, offset=pos, data=data[written : written + n])
            written += n
            pos += n
        if pos > inode.i_size:
            inode.i_size_write(k, pos)
        inode.file_update_time(k)
        return written
