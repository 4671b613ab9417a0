"""4.0's COW branch without "Check we didn't race with truncate" under i_mmap_rwsem: the i_size
test at the top of the fault is stale by the time the PTE goes in (the copied page is installed
after the file shrank)."""

from __future__ import annotations

from faultlab.designs.v4_0 import DESIGN as V40
from faultlab.fs.dax import v4_0 as dax
from faultlab.kernel.flags import PAGE_SIZE, VM_FAULT_LOCKED
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.memory import i_mmap_lock_read
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.inode import Extent
from faultlab.kernel.state.page import Page, clear_page


def dax_cow_fault(k: Kernel, vmf: VmFault, ext: Extent | None, page: Page | None) -> int:
    """The COW branch, taking i_mmap for read but not re-checking i_size under it."""
    assert vmf.cow_page is not None
    if ext is not None and dax.buffer_written(ext):
        k.pmem.copy_to_page(k, ext.block, vmf.cow_page, "copy_user_bh")
        k.count("bytes_copied", PAGE_SIZE)
    else:
        clear_page(k, vmf.cow_page, "clear_user_highpage")
    vmf.page = page
    if page is None:
        i_mmap_lock_read(k, vmf.vma.file.mapping)
    return VM_FAULT_LOCKED


DESIGN = V40.variant(
    "v4.0-no-isize-recheck",
    "known bug: v4.0 COW branch without the i_size re-check under i_mmap_rwsem",
    "v4.0 do_dax_fault minus the recheck added with 283307c7607d; scenario: seed cow-vs-truncate",
    {dax.dax_cow_fault: dax_cow_fault},
    scenario="scenarios/seed/cow-vs-truncate.toml", fixed_by="v4.0", expected_violation="stale-pte-after-truncate",
)
