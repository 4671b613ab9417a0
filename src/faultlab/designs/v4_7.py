"""``v4.7``: DAX radix-tree entry locks (Jan Kara, ac401cc78242 and bc2466e42573).

The COW branch returns VM_FAULT_DAX_LOCKED with ``vmf->entry`` locked; ``do_cow_fault`` copies
nothing, installs the anon page and calls ``dax_unlock_mapping_entry()``.  Faults are serialised
against truncate by ext4's ``i_mmap_sem`` (read in the fault, write in truncate) plus truncate's
``dax_delete_mapping_entry()``, which waits for a locked entry; i_mmap_rwsem is no longer taken
(4d9a2c874667).  Includes 965d004af540 (wake all waiters when a hole page replaces an empty entry),
tagged for 4.7 stable.  Sources: 4.7-rc1 fs/dax.c (__dax_fault, grab_mapping_entry, dax_load_hole,
dax_pfn_mkwrite), mm/memory.c do_cow_fault, ext4_dax_fault / ext4_setattr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.designs import entry_locks as el
from faultlab.designs.v4_0 import EIO, V40, dax_fault_return
from faultlab.kernel import dax_common as dax
from faultlab.kernel.filemap import find_or_create_page
from faultlab.kernel.flags import FaultFlag, VmFault, size_in_pages
from faultlab.kernel.fs import AddressSpace, DaxEntry
from faultlab.kernel.memory import vm_insert_mixed
from faultlab.kernel.mm import FaultHandler, VmFaultData
from faultlab.kernel.page import Page, unlock_page
from faultlab.kernel.truncate import truncate_pagecache

if TYPE_CHECKING:
    from faultlab.kernel.fs import Inode
    from faultlab.kernel.kernel import Kernel


class V47(V40):
    name = "v4.7"
    summary = "4.7: DAX entry locks; COW returns VM_FAULT_DAX_LOCKED, do_cow_fault unlocks the entry"
    source = "Linux 4.7 fs/dax.c (ac401cc78242, bc2466e42573, 4d9a2c874667) + 965d004af540; ext4 i_mmap_sem"
    hole_wake_all = True  # 965d004af540

    # -- mm/memory.c do_cow_fault (4.7) -----------------------------------------------------------
    def copies_page(self, ret: VmFault, have_page: bool) -> bool:
        """``if (!(ret & VM_FAULT_DAX_LOCKED)) copy_user_highpage(...)``."""
        return not ret & VmFault.DAX_LOCKED

    def release_after_cow(self, k: Kernel, vmf: VmFaultData, ret: VmFault, mapping: AddressSpace) -> None:
        if ret & VmFault.DAX_LOCKED:
            el.dax_unlock_mapping_entry(k, mapping, vmf.pgoff)
            return
        fault_page = vmf.page
        assert fault_page is not None
        unlock_page(k, fault_page)
        k.alloc.put_page(k, fault_page)

    # -- the ext4 wrappers ------------------------------------------------------------------------
    def dax_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        """ext4_dax_fault() (4.7): file_update_time on writes; i_mmap_sem held for read around
        the DAX fault -- and dropped before do_cow_fault installs the PTE, which is why the COW
        page needs the entry lock."""
        inode = vmf.vma.file
        if vmf.write:
            inode.file_update_time(k)
        inode.i_mmap_sem.down_read(k)
        ret = self.dax_handle_fault(k, vmf)
        inode.i_mmap_sem.up_read(k)
        return ret

    def dax_handle_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        return self.dax_fault_47(k, vmf)

    def dax_fault_47(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        """__dax_fault() (4.7): one i_size check ("Caller is supposed to hold locks serializing us
        with truncate"), then everything under the entry lock."""
        inode = vmf.vma.file
        mapping = inode.mapping
        if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
            return VmFault.SIGBUS
        entry = el.grab_mapping_entry(k, mapping, vmf.pgoff)
        ext, _new, error = dax.get_block(k, inode, vmf.pgoff, create=False)
        major = VmFault.NONE
        if error:
            el.put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
            return dax_fault_return(error, major)
        if vmf.cow_page is not None:
            if dax.buffer_written(ext):
                assert ext is not None
                dax.copy_user_bh(k, vmf.cow_page, inode, ext, vmf.pgoff)
            else:
                dax.clear_user_highpage(k, vmf.cow_page)
            if isinstance(entry, Page):
                vmf.page = entry
                return VmFault.LOCKED
            vmf.entry = entry
            return VmFault.DAX_LOCKED
        if ext is None:
            if not vmf.write:
                return self.dax_load_hole_47(k, mapping, entry, vmf)
            ext, _new, error = dax.get_block(k, inode, vmf.pgoff, create=True, zero=True)
            major = VmFault.MAJOR
            if error or ext is None:
                el.put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
                return dax_fault_return(error or EIO, major)
        entry = el.dax_insert_mapping_entry(k, mapping, vmf.pgoff, entry, ext.block, vmf.write)
        error = vm_insert_mixed(k, vmf.vma, vmf.address, ext.block)
        el.put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
        return dax_fault_return(error, major)

    def dax_load_hole_47(self, k: Kernel, mapping: AddressSpace, entry: el.Entry, vmf: VmFaultData) -> VmFault:
        """dax_load_hole() (4.7): a hole page replaces the locked empty entry (waking its waiters);
        no i_size re-check, the fs lock serialises with truncate."""
        if isinstance(entry, Page):
            vmf.page = entry
            return VmFault.LOCKED
        page = find_or_create_page(k, mapping, vmf.pgoff)
        if page is None:
            el.put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
            return VmFault.OOM
        vmf.page = page
        return VmFault.LOCKED

    def can_replace_dax_entry(self, entry: DaxEntry) -> bool:
        return entry.empty and entry.locked

    def dax_entry_replaced(self, k: Kernel, mapping: AddressSpace, index: int, entry: DaxEntry) -> None:
        el.empty_entry_replaced_by_page(k, mapping, index, entry, wake_all=self.hole_wake_all)

    # -- mkwrite ----------------------------------------------------------------------------------
    def dax_mkwrite(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        """ext4_dax_vm_ops.page_mkwrite = ext4_dax_fault: a write to a hole page re-enters."""
        vmf.flags |= FaultFlag.WRITE
        vmf.write = True
        vmf.page = None
        return self.dax_fault(k, vmf)

    def dax_page_mkwrite_handler(self) -> FaultHandler | None:
        return self.dax_mkwrite

    def dax_pfn_mkwrite_handler(self) -> FaultHandler | None:
        return self.ext4_dax_pfn_mkwrite

    def ext4_dax_pfn_mkwrite(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        """ext4_dax_pfn_mkwrite() -> dax_pfn_mkwrite() (4.7): under i_mmap_sem, re-check i_size,
        tag the entry DIRTY (waiting for it to be unlocked), return NOPAGE."""
        inode = vmf.vma.file
        mapping = inode.mapping
        inode.file_update_time(k)
        inode.i_mmap_sem.down_read(k)
        if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
            inode.i_mmap_sem.up_read(k)
            return VmFault.SIGBUS
        mapping.tree_lock.lock(k)
        entry = el.get_unlocked_mapping_entry(k, mapping, vmf.pgoff)
        if isinstance(entry, DaxEntry):
            entry.dirty = True
        mapping.tree_lock.unlock(k)
        el.put_unlocked_mapping_entry(k, mapping, vmf.pgoff, entry)
        inode.i_mmap_sem.up_read(k)
        return VmFault.NOPAGE

    # -- truncate, invalidation, fsync ------------------------------------------------------------
    def dax_setattr_size(self, k: Kernel, inode: Inode, newsize: int) -> None:
        """ext4_setattr() (4.7): i_size first; then, under i_mmap_sem for write, the page cache
        and DAX entries (dax_delete_mapping_entry waits for faults holding an entry), the partial
        block zeroed, the blocks freed."""
        oldsize = inode.i_size
        inode.i_size_write(k, newsize)
        if newsize >= oldsize:
            return
        inode.i_mmap_sem.down_write(k)
        truncate_pagecache(k, inode, newsize)
        dax.dax_zero_page_range(k, inode, newsize)
        dax.dax_free_blocks(k, inode, newsize)
        inode.i_mmap_sem.up_write(k)

    def clear_exceptional_entry(self, k: Kernel, mapping: AddressSpace, index: int) -> None:
        el.dax_delete_mapping_entry(k, mapping, index)

    def dax_fsync(self, k: Kernel, inode: Inode) -> None:
        el.dax_writeback_mapping_range(k, inode.mapping)

