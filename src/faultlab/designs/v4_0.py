"""``v4.0``: what landed in Linux 4.0 -- the seed's idea with Willy's v11 locking.

``do_dax_fault`` performs the COW into ``vmf->cow_page`` and returns VM_FAULT_LOCKED with a NULL
page, meaning "i_mmap_rwsem is held for read instead of a page lock"; ``do_cow_fault`` installs the
anon page and only then drops that lock, so truncate's unmap (which takes i_mmap for write) cannot
slip between the i_size re-check and the PTE.
"""

from faultlab.designs.base import PAGE_CACHE, Design
from faultlab.fs.dax import v4_0 as dax_v4_0
from faultlab.kernel.eras import v4_0

DESIGN = Design(
    name="v4.0",
    summary="4.0: handler does the COW and returns VM_FAULT_LOCKED with a NULL page, holding i_mmap_rwsem (read)",
    source="Linux 4.0 fs/dax.c do_dax_fault + mm/memory.c do_cow_fault (2e4cdab0584f, 283307c7607d)",
    version=(4, 0),
    era=v4_0,
    filesystems={**PAGE_CACHE, "dax": dax_v4_0.FS},
    dax=dax_v4_0,
)
