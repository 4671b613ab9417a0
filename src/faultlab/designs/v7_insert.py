"""``v7-insert``: Jan Kara's suggestion in the seed review -- the handler installs the COW page
itself with ``vm_insert_page()`` and returns VM_FAULT_NOPAGE, so no lock leaks into mm code.

The handler keeps ``i_mmap_mutex`` from the i_size re-check through the insert (the v8-era
do_dax_fault).  What goes wrong is what Jan's own 2016 changelog says: vm_insert_page maps the page
as a *file* page (MM_FILEPAGES, file rmap) with the private VMA's read-only protection, while a COW
page must be anonymous ("we rely on generic code to do proper accounting of the cowed page").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.designs.v7 import DESIGN as V7
from faultlab.fs.dax import v7 as dax_v7
from faultlab.fs.dax.v4_0 import buffer_written
from faultlab.kernel.flags import PAGE_SIZE, VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, size_in_pages
from faultlab.kernel.memory import i_mmap_lock_read, i_mmap_unlock_read, vm_insert_page
from faultlab.kernel.state.page import Page, SetPageUptodate, clear_page, put_page, unlock_page

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.mm import VmFault
    from faultlab.kernel.state.inode import Extent


def dax_cow_fault(k: Kernel, vmf: VmFault, ext: Extent | None, page: Page | None) -> int:
    """``if (vmf->cow_page) { copy; vm_insert_page(vma, vaddr, new_page); unlock; return
    VM_FAULT_NOPAGE; }``, with i_mmap_mutex held (or the hole page locked) throughout."""
    new_page = vmf.cow_page
    assert new_page is not None
    mapping = vmf.vma.file.mapping
    if page is None:
        i_mmap_lock_read(k, mapping)
        if vmf.pgoff >= size_in_pages(vmf.vma.file.i_size_read(k)):
            i_mmap_unlock_read(k, mapping)
            return VM_FAULT_SIGBUS
    if ext is not None and buffer_written(ext):
        k.pmem.copy_to_page(k, ext.block, new_page, "copy_user_bh")
        k.count("bytes_copied", PAGE_SIZE)
    else:
        clear_page(k, new_page, "clear_user_highpage")
    SetPageUptodate(k, new_page)
    vm_insert_page(k, vmf.vma, vmf.address, new_page, anon=False)
    if page is not None:
        unlock_page(k, page)
        put_page(k, page)
    else:
        i_mmap_unlock_read(k, mapping)
    return VM_FAULT_NOPAGE


DESIGN = V7.variant(
    "v7-insert",
    "Jan Kara's review: handler installs the COW page with vm_insert_page and returns VM_FAULT_NOPAGE",
    "Re: [PATCH v7 02/22] (Jan Kara, 8 Apr 2014); v8-era do_dax_fault COW branch",
    {dax_v7.dax_cow_fault: dax_cow_fault},
)
