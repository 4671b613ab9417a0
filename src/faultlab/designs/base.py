"""What a design is: the handful of functions in which the protocols of the seed's history differ.

A design supplies the generic side's ``do_cow_fault`` (how it treats what ``->fault`` returns and
which lock it releases after installing the PTE), the DAX filesystem's fault handlers
(``->fault``, ``->page_mkwrite``, ``->pfn_mkwrite``), and the DAX side of truncate, write(2) and
fsync.  Everything else (the rest of mm/memory.c, the page cache, truncate of page-cache files)
is shared by all designs.  See docs/designs.md for writing your own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from faultlab.kernel import dax_common as dax
from faultlab.kernel.flags import VmFault
from faultlab.kernel.mm import FaultHandler, VmFaultData, VmOps

if TYPE_CHECKING:
    from faultlab.kernel.fs import AddressSpace, DaxEntry, Inode
    from faultlab.kernel.kernel import Kernel


class Design:
    """Base class of every design.  Subclasses set the class attributes and override methods."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    source: ClassVar[str] = ""
    # Until 3.19 i_mmap was a mutex (i_mmap_mutex); from 4.0 an rwsem (i_mmap_rwsem).
    i_mmap_is_mutex: ClassVar[bool] = False
    # get_block(create=1) returns unwritten extents (ext4) rather than zeroed new blocks (ext2).
    unwritten_extents: ClassVar[bool] = False
    # From 4.10, ->pfn_mkwrite returning VM_FAULT_NOPAGE has finished the fault (wp_pfn_shared).
    pfn_mkwrite_finishes_fault: ClassVar[bool] = False

    # -- mm/memory.c ------------------------------------------------------------------------------
    def do_cow_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        raise NotImplementedError

    # -- fs/dax.c and the DAX filesystem's vm_ops -------------------------------------------------
    def dax_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        raise NotImplementedError

    def dax_page_mkwrite_handler(self) -> FaultHandler | None:
        return None

    def dax_pfn_mkwrite_handler(self) -> FaultHandler | None:
        return None

    def dax_vm_ops(self) -> VmOps:
        """The DAX file's vm_operations_struct: no ->map_pages, so DAX never faults around."""
        return VmOps(
            name=f"{self.name}.dax_vm_ops",
            fault=self.dax_fault,
            map_pages=None,
            page_mkwrite=self.dax_page_mkwrite_handler(),
            pfn_mkwrite=self.dax_pfn_mkwrite_handler(),
        )

    # -- truncate, read/write, fsync on a DAX file ------------------------------------------------
    def dax_setattr_size(self, k: Kernel, inode: Inode, newsize: int) -> None:
        raise NotImplementedError

    def clear_exceptional_entry(self, k: Kernel, mapping: AddressSpace, index: int) -> None:
        """truncate_inode_pages met a DAX entry (only designs with entries have any)."""
        mapping.page_tree.pop(index, None)

    def invalidate_exceptional_entry(self, k: Kernel, mapping: AddressSpace, index: int) -> bool:
        """invalidate_inode_pages2_range() met a DAX entry: leave it (pre-4.12 behaviour).
        Returns True when the slot should be looked at again."""
        return False

    def can_replace_dax_entry(self, entry: DaxEntry) -> bool:
        """page_cache_tree_insert() found a DAX entry where a page goes: only designs with entry
        locks can replace one (their empty locked entry, with a hole page)."""
        return False

    def dax_entry_replaced(self, k: Kernel, mapping: AddressSpace, index: int, entry: DaxEntry) -> None:
        """The hole page is in the slot now: hand the entry's lock over and wake its waiters."""

    def dax_read(self, k: Kernel, inode: Inode, pos: int, count: int) -> bytes:
        return dax.dax_file_read(k, inode, pos, count)

    def dax_write(self, k: Kernel, inode: Inode, pos: int, data: bytes) -> int:
        return dax.dax_file_write(k, inode, pos, data, unwritten=self.unwritten_extents)

    def dax_fsync(self, k: Kernel, inode: Inode) -> None:
        """fsync/msync of a DAX file before 4.5: stores went straight to pmem, nothing tracked."""
