"""``v4.7``: DAX radix-tree entry locks (Jan Kara, ac401cc78242 and bc2466e42573).

The COW branch returns VM_FAULT_DAX_LOCKED with the entry locked; ``do_cow_fault`` copies nothing,
installs the anon page and calls ``dax_unlock_mapping_entry()``.  Faults are serialised against
truncate by ext4's ``i_mmap_sem`` and by truncate's ``dax_delete_mapping_entry()``, which waits for
a locked entry.  Includes 965d004af540 (wake every waiter when a hole page replaces an empty entry),
tagged for 4.7 stable.
"""

from faultlab.designs.base import PAGE_CACHE_4_5, Design
from faultlab.fs.dax import v4_7 as dax_v4_7
from faultlab.kernel.eras import v4_7

DESIGN = Design(
    name="v4.7",
    summary="4.7: DAX entry locks; COW returns VM_FAULT_DAX_LOCKED, do_cow_fault unlocks the entry",
    source="Linux 4.7 fs/dax.c (ac401cc78242, bc2466e42573, 4d9a2c874667) + 965d004af540; ext4 i_mmap_sem",
    version=(4, 7),
    era=v4_7,
    filesystems={**PAGE_CACHE_4_5, "dax": dax_v4_7.FS},
    dax=dax_v4_7,
)
