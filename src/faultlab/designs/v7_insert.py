"""``v7-insert``: Jan Kara's suggestion in the seed review -- the handler installs the COW page
itself with ``vm_insert_page()`` and returns VM_FAULT_NOPAGE, so no lock leaks into mm code.

The handler keeps ``i_mmap_mutex`` from the i_size re-check through the insert (the intermediate
v8-era do_dax_fault).  What goes wrong is what Jan's own 2016 changelog says: vm_insert_page maps
the page as a *file* page (MM_FILEPAGES, file rmap), while a COW page must be an anonymous page
("we rely on generic code to do proper accounting of the cowed page") -- and the v11 changelog's
"the handler cannot insert the page itself if there is already a read-only mapping".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.designs.v7 import V7
from faultlab.designs.xip import do_cow_fault_315
from faultlab.kernel import dax_common as dax
from faultlab.kernel.flags import VmFault, size_in_pages
from faultlab.kernel.memory import vm_insert_page
from faultlab.kernel.page import Page, unlock_page

if TYPE_CHECKING:
    from faultlab.kernel.fs import Extent
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.mm import VmFaultData


class V7Insert(V7):
    name = "v7-insert"
    summary = "Jan Kara's review: handler installs the COW page with vm_insert_page and returns VM_FAULT_NOPAGE"
    source = "Re: [PATCH v7 02/22] (Jan Kara, 8 Apr 2014); v8-era do_dax_fault COW branch"

    def do_cow_fault(self, k: Kernel, vmf: VmFaultData) -> VmFault:
        """v8's mm side only passes cow_page; otherwise it is the 3.15 do_cow_fault."""
        return do_cow_fault_315(k, vmf, pass_cow_page=True)

    def dax_cow(self, k: Kernel, vmf: VmFaultData, ext: Extent | None, page: Page | None) -> VmFault:
        """``if (vmf->cow_page) { copy; vm_insert_page(vma, vaddr, new_page); unlock; return
        VM_FAULT_NOPAGE; }``, with i_mmap_mutex held (or the hole page locked) throughout."""
        new_page = vmf.cow_page
        assert new_page is not None
        mapping = vmf.vma.file.mapping
        if page is None:
            self.cow_lock(k, mapping)
            if vmf.pgoff >= size_in_pages(vmf.vma.file.i_size_read(k)):
                self.cow_unlock(k, mapping)
                return VmFault.SIGBUS
        if dax.buffer_written(ext):
            assert ext is not None
            dax.copy_user_bh(k, new_page, vmf.vma.file, ext, vmf.pgoff)
        else:
            dax.clear_user_highpage(k, new_page)
        new_page.uptodate = True
        vm_insert_page(k, vmf.vma, vmf.address, new_page)
        if page is not None:
            unlock_page(k, page)
            k.alloc.put_page(k, page)
        else:
            self.cow_unlock(k, mapping)
        return VmFault.NOPAGE
