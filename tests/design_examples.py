"""Design files as a user writes them (docs/designs.md, "Writing your own"), for the tests."""

NO_RECHECK = '''
"""my-no-recheck: v4.0 without the i_size re-check in the COW branch."""
from faultlab.designs.v4_0 import DESIGN as V40
from faultlab.fs.dax import v4_0 as dax
from faultlab.kernel.flags import PAGE_SIZE, VM_FAULT_LOCKED
from faultlab.kernel.memory import i_mmap_lock_read
from faultlab.kernel.state.page import clear_page


def dax_cow_fault(k, vmf, ext, page):
    """4.0's COW branch, without "Check we didn't race with truncate"."""
    if dax.buffer_written(ext):
        k.pmem.copy_to_page(k, ext.block, vmf.cow_page, "copy_user_bh")
        k.count("bytes_copied", PAGE_SIZE)
    else:
        clear_page(k, vmf.cow_page)
        k.count("pages_zeroed")
    vmf.page = page
    if page is None:
        i_mmap_lock_read(k, vmf.vma.file.mapping)
    return VM_FAULT_LOCKED


DESIGN = V40.variant("my-no-recheck", "v4.0 without the i_size re-check in the COW branch", "an experiment",
                     {dax.dax_cow_fault: dax_cow_fault})
'''

SAME_AS_V40 = '''
"""v4.0 with its COW branch replaced by itself: the replacement mechanism alone changes nothing."""
from faultlab.designs.v4_0 import DESIGN as V40
from faultlab.fs.dax import v4_0 as dax

DESIGN = V40.variant("same-as-v4.0", "v4.0, relinked", "a test", {dax.dax_cow_fault: dax.dax_cow_fault})
'''
