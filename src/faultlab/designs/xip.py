"""``xip``: Linux 3.14 execute-in-place (mm/filemap_xip.c, ext2) on 3.15's generic fault code.

A private write to a DAX file is the two-step the seed patch set out to remove: map the pmem block
(or the sparse page) read-only, retry, copy in do_wp_page.  i_size is read once, with no lock, so a
racing truncate can leave a PTE past EOF: the race 283307c7607d fixed in 4.0.
"""

from faultlab.designs.base import PAGE_CACHE, Design
from faultlab.fs import xip
from faultlab.kernel.eras import v3_15

DESIGN = Design(
    name="xip",
    summary="3.14 XIP: COW by read-only map, retry, copy; i_size read once, no lock against truncate",
    source="Linux 3.14 mm/filemap_xip.c (xip_file_fault, __xip_unmap, xip_truncate_page); 3.15 mm/memory.c",
    version=(3, 15),
    era=v3_15,
    filesystems={**PAGE_CACHE, "dax": xip.FS},
)
