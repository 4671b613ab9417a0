"""``v7``: the seed patch, "[PATCH v7 02/22] Allow page fault handlers to perform the COW".

``->fault`` gets ``vmf->cow_page``; the DAX handler copies into it, takes ``i_mmap_mutex``,
re-checks i_size and returns VM_FAULT_COWED; ``do_cow_fault`` skips its own copy, installs the PTE
and calls ``mutex_unlock(&mapping->i_mmap_mutex)`` -- the "leaking of locking details about DAX
into generic fault code" Jan Kara objected to.  The rest of the handler is the 4.0 do_dax_fault
shape with i_mmap as a mutex (the v7 series' own fs/dax.c was not read; reconstructed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.designs.v4_0 import V40
from faultlab.kernel.flags import VmFault

if TYPE_CHECKING:
    from faultlab.kernel.fs import AddressSpace
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.mm import VmFaultData


class V7(V40):
    name = "v7"
    summary = "seed patch v7: handler COWs, returns VM_FAULT_COWED holding i_mmap_mutex; do_cow_fault unlocks it"
    source = "[PATCH v7 02/22] Allow page fault handlers to perform the COW (Wilcox, 23 Mar 2014), mm/memory.c"
    i_mmap_is_mutex = True

    def cow_return(self) -> VmFault:
        return VmFault.COWED

    def copies_page(self, ret: VmFault, have_page: bool) -> bool:
        """``if (!(ret & VM_FAULT_COWED)) copy_user_highpage(new_page, fault_page, ...)``."""
        return not ret & VmFault.COWED

    def release_after_cow(self, k: Kernel, vmf: VmFaultData, ret: VmFault, mapping: AddressSpace) -> None:
        """``if (ret & VM_FAULT_COWED) mutex_unlock(&...->i_mmap_mutex); else unlock_page...``."""
        if ret & VmFault.COWED:
            self.cow_unlock(k, mapping)
            return
        super().release_after_cow(k, vmf, ret, mapping)
