"""``v6.1``: the kernel of the DAX VM.  ext4's ``invalidate_lock`` (5.15) against truncate and punch
hole, the zero page for DAX holes (4.17), ``vmf_insert_mixed_mkwrite`` (4.15), ``dax_iomap_fault``
with ``dax_fault_cow_page`` and ``finish_fault`` (VM_FAULT_DONE_COW, as 4.10), truncate unmapping
the whole DAX file first (``ext4_break_layouts``, 4.18), folio ``filemap_fault`` and
``filemap_map_pages``, no PTE table allocation before the handlers (4.11), PMD faults
(``ext4_dax_huge_fault`` -> ``dax_iomap_pmd_fault``) where a scenario's extents are 2 MiB aligned.
"""

from faultlab.designs.base import Design
from faultlab.fs.dax import v6_1 as dax_v6_1
from faultlab.fs.pagecache_v6 import EXT4_6_1, SHMEM_6_1
from faultlab.kernel.eras import v6_1

DESIGN = Design(
    name="v6.1",
    summary="6.1: invalidate_lock, zero-page holes, writable at the first write fault, truncate unmaps a DAX file",
    source="Linux v6.1 mm/memory.c, mm/filemap.c, fs/dax.c, fs/ext4/file.c (ext4_dax_huge_fault), inode.c (setattr)",
    version=(6, 1),
    era=v6_1,
    filesystems={"tmpfs": SHMEM_6_1, "ext4": EXT4_6_1, "dax": dax_v6_1.FS},
    dax=dax_v6_1,
)
