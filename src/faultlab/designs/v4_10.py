"""``v4.10``: the handler finishes the COW itself (Jan Kara, 3917048d4572 + b1aa812b2108) -- Jan's
2014 suggestion, with ``finish_fault()`` in place of ``vm_insert_page()``.

``dax_iomap_fault`` copies into ``vmf->cow_page``, calls ``finish_fault()`` (which maps it as an
anonymous page under the PTL) while still holding the DAX entry lock, and returns
VM_FAULT_DONE_COW; ``do_cow_fault`` just returns.  Includes 13e451fdc1af (the entry is locked
before ->iomap_begin), tagged for stable.  PMD faults (``->pmd_fault`` -> ``dax_iomap_pmd_fault``,
where a scenario's extents are 2 MiB aligned) with 4.12's "dax: Fix race between colliding PMD &
PTE entries"; the release without it is the known bug ``v4.10-pmd-pte-collision``.
"""

from faultlab.designs.base import PAGE_CACHE_4_5, Design
from faultlab.fs.dax import v4_10 as dax_v4_10
from faultlab.kernel.eras import v4_10

DESIGN = Design(
    name="v4.10",
    summary="4.10: handler finishes the COW with finish_fault under its entry lock, returns VM_FAULT_DONE_COW",
    source="Linux 4.10 mm/memory.c (9118c0cbd442, 3917048d4572) + fs/dax.c dax_iomap_fault (b1aa812b2108, f449b936)",
    version=(4, 10),
    era=v4_10,
    filesystems={**PAGE_CACHE_4_5, "dax": dax_v4_10.FS},
    dax=dax_v4_10,
)
