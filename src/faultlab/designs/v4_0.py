"""``v4.0``: what landed in Linux 4.0 -- the seed's idea with Willy's v11 locking.

``do_dax_fault`` performs the COW into ``vmf->cow_page`` and returns VM_FAULT_LOCKED with a NULL
page, meaning "i_mmap_rwsem is held for read instead of a page lock"; ``do_cow_fault`` installs
the anon page and only then drops that lock, so truncate's unmap (which takes i_mmap for write)
cannot slip between the i_size re-check and the PTE.  Sources: 4.0 fs/dax.c (do_dax_fault,
dax_insert_mapping, dax_load_hole), 4.0.5 mm/memory.c (__do_fault, do_cow_fault), ext2_setsize.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.designs.base import Design
from faultlab.kernel import dax_common as dax
from faultlab.kernel.filemap import delete_from_page_cache, find_get_page, find_lock_page, find_or_create_page
from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE, FaultFlag, VmFault, size_in_pages
from faultlab.kernel.fs import AddressSpace, Extent
from faultlab.kernel.memory import (
    ERR_NOPAGE_RETRY,
    __do_fault,
    do_set_pte,
    i_mmap_lock_read,
    i_mmap_unlock_read,
    pte_offset_map_lock,
    pte_read,
    pte_unmap_unlock,
    unmap_mapping_range,
    vm_insert_mixed,
)
from faultlab.kernel.mm import FaultHandler, VmFaultData
from faultlab.kernel.page import Page, lock_page, unlock_page
from faultlab.kernel.truncate import truncate_setsize

if TYPE_CHECKING:
    from faultlab.kernel.fs import Inode
    from faultlab.kernel.kernel import Kernel

EIO = -5
ENOMEM = -12
EBUSY = -16


def ext2_setsize(k: Kernel, inode: Inode, newsize: int) -> None:
    """ext2_setsize() on a DAX file: dax_truncate_page, truncate_setsize, __ext2_truncate_blocks."""
    oldsize = inode.i_size
    if newsize < oldsize:
        dax.dax_zero_page_range(k, inode, newsize)
    truncate_setsize(k, inode, newsize)
    if newsize < oldsize:
        dax.dax_free_blocks(k, inode, newsize)


def dax_fault_return(error: int, major: VmFault) -> VmFault:
    if error == ENOMEM:
        return VmFault.OOM | major
    if error < 0 and error != EBUSY:
        return VmFault.SIGBUS | major
    return VmFault.NOPAGE | major


class V40(Design):
    name = "v4.0"
    summary = "4.0: handler does the COW and returns VM_FAULT_LOCKED with a NULL page, holding i_mmap_rwsem (read)"
    source = "Linux 4.0 fs/dax.c do_dax_fault + mm/memory.c do_cow_fault (2e4cdab0584f, 283307c7607d)"

    # -- the lock the COW branch hands to do_cow_fault --------------------------------------------
    def cow_lock(self, k: Kernel, mapping: AddressSpace) -> None:
        i_mmap_lock_read(k, mapping)

    def cow_unlock(self, k: Kernel, mapping: AddressSpace) -> None:
        """What do_cow_fault releases when ->fault returned no page."""
        i_mmap_unlock_read(k, mapping)

    def cow_return(self) -> VmFault:
        return VmFault.LOCKED

    def cow_recheck_isize(self, k: Kernel, vmf: VmFaultData) -> bool:
        """'Check we didn't race with truncate' under the lock: True if the fault may go on."""
        return vmf.pgoff < size_in_pages(vmf.vma.file.i_size_read(k))

    # -- mm/memory.c ------------------------------------------------------------------------------
    def do_cow_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        return do_cow_fault(k, vmf, self)

    def copies_page(self, ret: VmFault, have_page: bool) -> bool:
        return have_page

    def release_after_cow(self, k: Kernel, vmf: VmFaultData, ret: VmFault, mapping: AddressSpace) -> None:
        fault_page = vmf.page
        if fault_page is not None:
            unlock_page(k, fault_page)
            k.alloc.put_page(k, fault_page)
        else:
            self.cow_unlock(k, mapping)

    # -- fs/dax.c ---------------------------------------------------------------------------------
    def dax_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        """dax_fault(): file_update_time on a write fault (sb_start_pagefault not modelled)."""
        if vmf.write and not vmf.cow_page:
            vmf.vma.file.file_update_time(k)
        return self.do_dax_fault(k, vmf)

    def do_dax_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        """do_dax_fault() (4.0, with 4.1's complete_unwritten for unwritten extents)."""
        inode = vmf.vma.file
        mapping = inode.mapping
        if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
            return VmFault.SIGBUS
        page: Page | None = None
        while True:  # repeat:
            page = find_get_page(k, mapping, vmf.pgoff)
            if page is None:
                break
            lock_page(k, page)
            if page.mapping is not mapping:
                unlock_page(k, page)
                k.alloc.put_page(k, page)
                continue
            if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
                return self._unlock_page_out(k, page, EIO, VmFault.NONE)  # raced with a truncate
            break
        ext, new, error = dax.get_block(k, inode, vmf.pgoff, create=False)
        if error:
            return self._unlock_page_out(k, page, error, VmFault.NONE)
        major = VmFault.NONE
        if ext is None and not vmf.cow_page:
            if vmf.write:
                ext, new, error = dax.get_block(k, inode, vmf.pgoff, create=True, unwritten=self.unwritten_extents)
                major = VmFault.MAJOR
                if error or ext is None:
                    return self._unlock_page_out(k, page, error or EIO, major)
            else:
                return self.dax_load_hole(k, mapping, page, vmf)
        if vmf.cow_page is not None:
            return self.dax_cow(k, vmf, ext, page)
        if page is None and major:
            page = find_lock_page(k, mapping, vmf.pgoff)  # "we didn't race with a read fault"
        if page is not None:
            unmap_mapping_range(k, mapping, vmf.pgoff << PAGE_SHIFT, PAGE_SIZE, even_cows=False)
            delete_from_page_cache(k, page)
            unlock_page(k, page)
            k.alloc.put_page(k, page)
        assert ext is not None
        error = self.dax_insert_mapping(k, inode, ext, new, vmf)
        if ext.unwritten:
            dax.convert_unwritten(k, inode, vmf.pgoff)  # 4.1 ->complete_unwritten
        return dax_fault_return(error, major)

    def _unlock_page_out(self, k: Kernel, page: Page | None, error: int, major: VmFault) -> VmFault:
        if page is not None:
            unlock_page(k, page)
            k.alloc.put_page(k, page)
        return dax_fault_return(error, major)

    def dax_cow(self, k: Kernel, vmf: VmFaultData, ext: Extent | None, page: Page | None) -> VmFault:
        """The COW branch of do_dax_fault (4.0): copy pmem (or zeros) into cow_page; hand the
        hole page's lock, or i_mmap for read after re-checking i_size, to do_cow_fault."""
        new_page = vmf.cow_page
        assert new_page is not None
        if dax.buffer_written(ext):
            assert ext is not None
            dax.copy_user_bh(k, new_page, vmf.vma.file, ext, vmf.pgoff)
        else:
            dax.clear_user_highpage(k, new_page)
        vmf.page = page
        if vmf.page is None:
            mapping = vmf.vma.file.mapping
            self.cow_lock(k, mapping)
            if not self.cow_recheck_isize(k, vmf):
                self.cow_unlock(k, mapping)
                return VmFault.SIGBUS
            return self.cow_return()
        return VmFault.LOCKED

    def dax_insert_mapping(self, k: Kernel, inode: Inode, ext: Extent, new: bool, vmf: VmFaultData) -> int:
        """dax_insert_mapping() (4.0): under i_mmap (read), re-check i_size, zero a new or
        unwritten block before any PTE exists, insert the pfn."""
        mapping = inode.mapping
        i_mmap_lock_read(k, mapping)
        if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
            i_mmap_unlock_read(k, mapping)
            return EIO  # "truncate happened while we were allocating"
        if ext.unwritten or new:
            dax.clear_pmem(k, ext.block)
        error = vm_insert_mixed(k, vmf.vma, vmf.address, ext.block)
        i_mmap_unlock_read(k, mapping)
        return error

    def dax_load_hole(self, k: Kernel, mapping: AddressSpace, page: Page | None, vmf: VmFaultData) -> VmFault:
        """dax_load_hole() (4.0): a zeroed page-cache page, locked, re-checked against i_size."""
        hole = page if page is not None else find_or_create_page(k, mapping, vmf.pgoff)
        if hole is None:
            return VmFault.OOM
        if vmf.pgoff >= size_in_pages(mapping.host.i_size_read(k)):
            unlock_page(k, hole)
            k.alloc.put_page(k, hole)
            return VmFault.SIGBUS
        vmf.page = hole
        return VmFault.LOCKED

    def dax_mkwrite(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        """#define dax_mkwrite(vma, vmf, gb) dax_fault(vma, vmf, gb): page_mkwrite re-enters."""
        vmf.flags |= FaultFlag.WRITE
        vmf.write = True
        vmf.page = None
        return self.dax_fault(k, vmf)

    def dax_page_mkwrite_handler(self) -> FaultHandler | None:
        return self.dax_mkwrite

    def dax_setattr_size(self, k: Kernel, inode: Inode, newsize: int) -> None:
        ext2_setsize(k, inode, newsize)


def do_cow_fault(k: Kernel, vmf: VmFaultData, design: V40) -> VmFault:
    """do_cow_fault() (4.0): allocate the COW page before ->fault, copy only if a page came back,
    install under the PTL, then release the page lock -- or i_mmap when no page.  The v7 and 4.7
    forms differ only in ``design.copies_page`` and ``design.release_after_cow``."""
    k.count("fault.cow")
    new_page = k.alloc.alloc_page(k)
    if new_page is None:
        return VmFault.OOM
    new_page.cow = True
    vmf.cow_page = new_page
    ret = __do_fault(k, vmf)
    if ret & ERR_NOPAGE_RETRY:
        k.alloc.put_page(k, new_page)
        return ret
    fault_page = vmf.page
    if design.copies_page(ret, fault_page is not None):
        assert fault_page is not None
        new_page.copy_from(fault_page.contents())
        k.count("bytes_copied", PAGE_SIZE)
    new_page.uptodate = True
    mapping = vmf.vma.file.mapping
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vmf.vma.mm, vmf.address) != vmf.orig_pte:
        pte_unmap_unlock(k, vmf)
        design.release_after_cow(k, vmf, ret, mapping)
        k.alloc.put_page(k, new_page)
        return ret
    do_set_pte(k, vmf, new_page, write=True, anon=True)
    pte_unmap_unlock(k, vmf)
    design.release_after_cow(k, vmf, ret, mapping)
    return ret
