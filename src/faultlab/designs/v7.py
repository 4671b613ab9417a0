"""``v7``: the seed patch, "[PATCH v7 02/22] Allow page fault handlers to perform the COW".

``->fault`` gets ``vmf->cow_page``; the DAX handler copies into it, takes ``i_mmap_mutex``,
re-checks i_size and returns VM_FAULT_COWED; ``do_cow_fault`` skips its own copy, installs the PTE
and calls ``mutex_unlock(&mapping->i_mmap_mutex)`` -- the "leaking of locking details about DAX
into generic fault code" Jan Kara objected to.
"""

from faultlab.designs.base import PAGE_CACHE, Design
from faultlab.fs.dax import v7 as dax_v7
from faultlab.kernel.eras import v7

DESIGN = Design(
    name="v7",
    summary="seed patch v7: handler COWs, returns VM_FAULT_COWED holding i_mmap_mutex; do_cow_fault unlocks it",
    source="[PATCH v7 02/22] Allow page fault handlers to perform the COW (Wilcox, 23 Mar 2014), mm/memory.c",
    version=(3, 17),
    era=v7,
    filesystems={**PAGE_CACHE, "dax": dax_v7.FS},
    dax=dax_v7,
)
