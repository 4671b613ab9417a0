"""``v6.18``: the page cache of this machine's kernel -- 6.1's fault path with 6.18's
``filemap_map_pages``, which does not populate page-table entries beyond i_size ("mm/memory: do not
populate page table entries beyond i_size", 2025): fault-around stops at the file's last page and,
for a file that is not shmem, installs no page table when the first page it finds is the last one.
DAX files run 6.1's fs/dax.c (6.18's folio-based DAX insertion behaves the same for PTE faults).
"""

from faultlab.designs.base import Design
from faultlab.fs.dax import v6_1 as dax_v6_1
from faultlab.fs.pagecache_v6 import EXT4_6_18, SHMEM_6_18
from faultlab.kernel.eras import v6_1

DESIGN = Design(
    name="v6.18",
    summary="6.18: 6.1's fault path, fault-around never maps past i_size",
    source="Linux v6.18 mm/filemap.c filemap_map_pages (no PTEs beyond i_size); the rest as v6.1",
    version=(6, 18),
    era=v6_1,
    filesystems={"tmpfs": SHMEM_6_18, "ext4": EXT4_6_18, "dax": dax_v6_1.FS},
    dax=dax_v6_1,
)
