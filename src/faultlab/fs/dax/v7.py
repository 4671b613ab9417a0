"""fs/dax.c of the seed series (v7, March 2014), with ext2: 4.0's do_dax_fault with i_mmap still
a mutex and the COW branch returning VM_FAULT_COWED.

The v7 series' own fs/dax.c was not at hand; this is reconstructed from the v7 patch's
description ("the XIP code use the i_mmap_mutex instead. We must therefore unlock the i_mmap_mutex
after inserting the PTE") and the 4.0 shape that v8-v12 kept.  Everything but the COW branch is
4.0's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.fs.dax.v4_0 import (
    FS,
    buffer_written,
    dax_delete_mapping_entry,
    dax_entry_handed_to_page,
    dax_invalidate_mapping_entry,
    dax_wake_mapping_entry_waiter,
)
from faultlab.kernel.flags import PAGE_SIZE, VM_FAULT_COWED, VM_FAULT_LOCKED, VM_FAULT_SIGBUS, size_in_pages
from faultlab.kernel.memory import i_mmap_lock_read, i_mmap_unlock_read
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.inode import Extent
from faultlab.kernel.state.page import Page, clear_page

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

__all__ = [
    "FS",
    "dax_delete_mapping_entry",
    "dax_entry_handed_to_page",
    "dax_wake_mapping_entry_waiter",
    "dax_invalidate_mapping_entry",
]


def dax_cow_fault(k: Kernel, vmf: VmFault, ext: Extent | None, page: Page | None) -> int:
    """The COW branch of the v7 do_dax_fault: copy into cow_page; with no hole page, take
    i_mmap_mutex, re-check i_size and return VM_FAULT_COWED holding it (do_cow_fault unlocks it
    after the PTE); with a hole page, hand its lock over as VM_FAULT_LOCKED."""
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
    if page is not None:
        return VM_FAULT_LOCKED
    mapping = vmf.vma.file.mapping
    i_mmap_lock_read(k, mapping)  # i_mmap_mutex
    if vmf.pgoff >= size_in_pages(vmf.vma.file.i_size_read(k)):
        i_mmap_unlock_read(k, mapping)
        return VM_FAULT_SIGBUS
    return VM_FAULT_COWED
