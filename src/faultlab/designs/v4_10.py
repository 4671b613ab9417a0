"""``v4.10``: the handler finishes the COW itself (Jan Kara, 3917048d4572 + b1aa812b2108) -- Jan's
2014 suggestion, with ``finish_fault()`` in place of ``vm_insert_page()``.

``dax_iomap_fault`` copies into ``vmf->cow_page``, calls ``finish_fault()`` (which maps it as an
anonymous page under the PTL) while still holding the DAX entry lock, unlocks its own entry and
returns VM_FAULT_DONE_COW; ``do_cow_fault`` just returns.  Generic code knows nothing about DAX
locks.  The entry is locked before ``->iomap_begin`` (the order of b1aa812b, and again after
13e451fdc1af, tagged for stable); the 4.10 release's reverse order (9f141d6ef625) is the known
bug ``v4.10-iomap-first``.  Holes are loaded through finish_fault (f449b936).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.designs import entry_locks as el
from faultlab.designs.v4_0 import EIO, dax_fault_return
from faultlab.designs.v4_7 import V47
from faultlab.kernel import dax_common as dax
from faultlab.kernel.filemap import find_or_create_page
from faultlab.kernel.flags import PAGE_SIZE, VmFault, size_in_pages
from faultlab.kernel.fs import AddressSpace, DaxEntry, Extent
from faultlab.kernel.memory import (
    ERR_NOPAGE_RETRY,
    __do_fault,
    finish_fault,
    finish_mkwrite_fault,
    vm_insert_mixed,
)
from faultlab.kernel.mm import VmFaultData
from faultlab.kernel.page import Page, unlock_page

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel


class V410(V47):
    name = "v4.10"
    summary = "4.10: handler finishes the COW with finish_fault under its entry lock, returns VM_FAULT_DONE_COW"
    source = "Linux 4.10 mm/memory.c (9118c0cbd442, 3917048d4572) + fs/dax.c dax_iomap_fault (b1aa812b2108, f449b936)"
    iomap_before_entry_lock = False
    pfn_mkwrite_finishes_fault = True

    # -- mm/memory.c do_cow_fault (4.10) ----------------------------------------------------------
    def do_cow_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        return do_cow_fault(k, vmf)

    # -- fs/dax.c dax_iomap_fault -----------------------------------------------------------------
    def dax_handle_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        return self.dax_iomap_fault(k, vmf)

    def iomap_begin(self, k: Kernel, vmf: VmFaultData) -> tuple[Extent | None, bool, int]:
        """ext4_iomap_begin(): a write (not a COW) allocates a zeroed block (IOMAP_F_NEW)."""
        create = vmf.write and vmf.cow_page is None
        return dax.get_block(k, vmf.vma.file, vmf.pgoff, create=create, zero=True)

    def dax_iomap_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        inode = vmf.vma.file
        mapping = inode.mapping
        if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
            return VmFault.SIGBUS
        if self.iomap_before_entry_lock:
            ext, new, error = self.iomap_begin(k, vmf)
            if error:
                return dax_fault_return(error, VmFault.NONE)
            entry = el.grab_mapping_entry(k, mapping, vmf.pgoff)
        else:
            entry = el.grab_mapping_entry(k, mapping, vmf.pgoff)
            ext, new, error = self.iomap_begin(k, vmf)
            if error:
                el.put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
                return dax_fault_return(error, VmFault.NONE)
        major = VmFault.NONE
        if vmf.cow_page is not None:
            if dax.buffer_written(ext):
                assert ext is not None
                dax.copy_user_bh(k, vmf.cow_page, inode, ext, vmf.pgoff)
            else:
                dax.clear_user_highpage(k, vmf.cow_page)
            vmf.cow_page.uptodate = True
            vmf_ret = finish_fault(k, vmf)
            if vmf_ret == VmFault.NONE:
                vmf_ret = VmFault.DONE_COW
            el.put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
            return vmf_ret
        if ext is None:
            if vmf.write:  # the fs did not allocate: "WARN_ON_ONCE(1); error = -EIO"
                el.put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
                return dax_fault_return(EIO, major)
            return self.dax_load_hole_410(k, mapping, entry, vmf)
        if new:
            major = VmFault.MAJOR
        entry = el.dax_insert_mapping_entry(k, mapping, vmf.pgoff, entry, ext.block, vmf.write)
        error = vm_insert_mixed(k, vmf.vma, vmf.address, ext.block)
        el.put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
        return dax_fault_return(error, major)

    def dax_load_hole_410(self, k: Kernel, mapping: AddressSpace, entry: el.Entry, vmf: VmFaultData) -> VmFault:
        """dax_load_hole() after f449b936: install the hole page with finish_fault() and return
        NOPAGE; the caller's entry (now the page) is unlocked by put_locked_mapping_entry."""
        page = entry if isinstance(entry, Page) else find_or_create_page(k, mapping, vmf.pgoff)
        if page is None:
            el.put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
            return VmFault.OOM
        vmf.page = page
        k.alloc.get_page(page)  # the PTE's reference
        ret = finish_fault(k, vmf)
        vmf.page = None
        if ret != VmFault.NONE:
            k.alloc.put_page(k, page)
        el.put_locked_mapping_entry(k, mapping, vmf.pgoff, page)
        return VmFault.NOPAGE if ret == VmFault.NONE else ret

    # -- mkwrite (f449b936: under the entry lock) ------------------------------------------------
    def ext4_dax_pfn_mkwrite(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        """ext4_dax_pfn_mkwrite() -> dax_pfn_mkwrite() (4.10): tag DIRTY and make the PTE writable
        (finish_mkwrite_fault) with the entry locked, so writeback can clean race-free."""
        inode = vmf.vma.file
        mapping = inode.mapping
        inode.file_update_time(k)
        inode.i_mmap_sem.down_read(k)
        if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
            inode.i_mmap_sem.up_read(k)
            return VmFault.SIGBUS
        mapping.tree_lock.lock(k)
        entry = el.get_unlocked_mapping_entry(k, mapping, vmf.pgoff)
        if not isinstance(entry, DaxEntry):
            mapping.tree_lock.unlock(k)
            el.put_unlocked_mapping_entry(k, mapping, vmf.pgoff, entry)
            inode.i_mmap_sem.up_read(k)
            return VmFault.NOPAGE
        entry.dirty = True
        el.lock_slot(k, mapping, vmf.pgoff, entry)
        mapping.tree_lock.unlock(k)
        finish_mkwrite_fault(k, vmf)
        el.put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
        inode.i_mmap_sem.up_read(k)
        return VmFault.NOPAGE

    def invalidate_exceptional_entry(self, k: Kernel, mapping: AddressSpace, index: int) -> bool:
        """With 13e451fdc1af a write's invalidation waits for a fault holding the entry."""
        el.dax_invalidate_wait(k, mapping, index)
        return True


def do_cow_fault(k: Kernel, vmf: VmFaultData) -> VmFault:
    """do_cow_fault() (4.10): DONE_COW means the handler installed the page; otherwise copy,
    finish_fault(), unlock the source page."""
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
    if ret & VmFault.DONE_COW:
        return ret
    fault_page = vmf.page
    assert fault_page is not None
    new_page.copy_from(fault_page.contents())
    k.count("bytes_copied", PAGE_SIZE)
    new_page.uptodate = True
    ret |= finish_fault(k, vmf)
    unlock_page(k, fault_page)
    k.alloc.put_page(k, fault_page)
    if ret & ERR_NOPAGE_RETRY:
        k.alloc.put_page(k, new_page)
    return ret
