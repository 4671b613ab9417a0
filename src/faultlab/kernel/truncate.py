"""mm/truncate.c of the 3.15-4.x eras: truncate as Linux does it, and invalidation.

``truncate_setsize`` writes i_size first; ``truncate_pagecache`` then unmaps with even_cows=1,
removes the pages (keeping and zeroing the partial last page), and unmaps again to catch private
pages COWed meanwhile (Linux 3.15 mm/truncate.c, unchanged in this respect through 4.10).  DAX
entries met on the way go to the kernel's fs/dax.c (``dax_delete_mapping_entry``, 4.7+).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.filemap import delete_from_page_cache, find_get_entry, find_lock_page
from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE
from faultlab.kernel.memory import unmap_mapping_range
from faultlab.kernel.state.page import (
    Page,
    TestClearPageDirty,
    lock_page,
    page_mapcount,
    page_mapping,
    page_zero_range,
    put_page,
    trylock_page,
    unlock_page,
)
from faultlab.kernel.state.pagecache import DaxEntry

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode
    from faultlab.kernel.state.pagecache import AddressSpace


def round_up_page(n: int) -> int:
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def truncate_inode_page(k: Kernel, mapping: AddressSpace, page: Page, index: int) -> None:
    """truncate_inode_page(): the page is locked; unmap its shared PTEs, then drop it."""
    if page_mapcount(k, page) > 0:
        unmap_mapping_range(k, mapping, index << PAGE_SHIFT, PAGE_SIZE, even_cows=False)
    if page_mapping(k, page) is not mapping:
        return
    TestClearPageDirty(k, page)  # cancel_dirty_page()
    delete_from_page_cache(k, page)


def truncate_inode_pages_range(k: Kernel, mapping: AddressSpace, lstart: int, lend: int = -1,
                               restart: bool = True) -> None:
    """truncate_inode_pages_range(mapping, lstart, lend) (4.10 mm/truncate.c): a non-blocking pass
    (trylock, skipping locked pages) over the whole pages of [lstart, lend] (lend -1: to the end),
    the partial pages at either end zeroed in place, then blocking passes until none is left.
    DAX entries are deleted by dax_delete_mapping_entry() (clear_exceptional_entry, 4.7).
    ``restart`` False is shmem_undo_range() punching a hole: one blocking pass ("If all gone or
    hole-punch or unfalloc, we're done"); truncate_inode_pages_range() goes round until a pass
    from the start finds nothing, for a hole as for a truncate."""
    partial_start = lstart & (PAGE_SIZE - 1)
    partial_end = 0 if lend == -1 else (lend + 1) & (PAGE_SIZE - 1)
    start = (lstart + PAGE_SIZE - 1) >> PAGE_SHIFT
    end = None if lend == -1 else (lend + 1) >> PAGE_SHIFT  # exclusive
    last = None if end is None else end - 1
    if end is None:
        mapping.drop_initial(k, start)
    elif start < end:
        mapping.punch_initial(k, start, end - 1)
    for index in mapping.scan(k, start, last) if last is None or start <= last else ():
        entry = find_get_entry(k, mapping, index)
        if isinstance(entry, DaxEntry):
            dax.dax_delete_mapping_entry(k, mapping, index)
            continue
        if entry is None:
            continue
        if trylock_page(k, entry):
            truncate_inode_page(k, mapping, entry, index)
            unlock_page(k, entry)
        put_page(k, entry)
    if partial_start:
        page = find_lock_page(k, mapping, start - 1)
        top = PAGE_SIZE
        if end is not None and start > end:  # "Truncation within a single page"
            top, partial_end = partial_end, 0
        if page is not None:
            page_zero_range(k, page, partial_start, top, "zero_user_segment")
            unlock_page(k, page)
            put_page(k, page)
    if partial_end and end is not None:
        page = find_lock_page(k, mapping, end)
        if page is not None:
            page_zero_range(k, page, 0, partial_end, "zero_user_segment")
            unlock_page(k, page)
            put_page(k, page)
    if end is not None and start >= end:
        return
    while True:
        left = mapping.scan(k, start, last)
        if not left:
            return
        if restart:
            k.retry("truncate_inode_pages_range")  # "restart to make sure all gone"
        for index in left:
            entry = find_get_entry(k, mapping, index)
            if isinstance(entry, DaxEntry):
                dax.dax_delete_mapping_entry(k, mapping, index)
                continue
            if entry is None:
                continue
            lock_page(k, entry)
            truncate_inode_page(k, mapping, entry, index)
            unlock_page(k, entry)
            put_page(k, entry)
        if not restart:
            return


def truncate_pagecache(k: Kernel, inode: Inode, newsize: int) -> None:
    """truncate_pagecache(): unmap (even_cows), drop the pages, unmap again ("private pages can
    be COWed" between the first unmap and the end of truncate_inode_pages)."""
    mapping = inode.mapping
    holebegin = round_up_page(newsize)
    unmap_mapping_range(k, mapping, holebegin, 0, even_cows=True)
    truncate_inode_pages_range(k, mapping, newsize)
    unmap_mapping_range(k, mapping, holebegin, 0, even_cows=True)


def truncate_pagecache_range(k: Kernel, inode: Inode, lstart: int, lend: int) -> None:
    """truncate_pagecache_range() (4.10): unmap the whole pages of [lstart, lend] with
    even_cows=0 (a hole punch leaves private COW pages alone), then drop them and zero the
    partial ones."""
    mapping = inode.mapping
    unmap_start = round_up_page(lstart)
    unmap_end = ((1 + lend) & ~(PAGE_SIZE - 1)) - 1
    if unmap_end > unmap_start:
        unmap_mapping_range(k, mapping, unmap_start, 1 + unmap_end - unmap_start, even_cows=False)
    truncate_inode_pages_range(k, mapping, lstart, lend)


def truncate_setsize(k: Kernel, inode: Inode, newsize: int) -> None:
    """truncate_setsize(): i_size first, then the page cache."""
    oldsize = inode.i_size_read(k)
    inode.i_size_write(k, newsize)
    if newsize < oldsize:
        truncate_pagecache(k, inode, newsize)


def invalidate_inode_pages2_range(k: Kernel, mapping: AddressSpace, start: int, end: int) -> None:
    """invalidate_inode_pages2_range(): lock each page in range, unmap it (even_cows=0: private
    copies are kept) and delete it.  A DAX entry goes to the kernel's
    dax_invalidate_mapping_entry(), which may ask for the index to be looked at again."""
    for index in range(start, end + 1):
        entry = find_get_entry(k, mapping, index)
        if isinstance(entry, DaxEntry) and dax.dax_invalidate_mapping_entry(k, mapping, index):
            entry = find_get_entry(k, mapping, index)
        if entry is None or isinstance(entry, DaxEntry):
            continue
        page = entry
        lock_page(k, page)
        if page_mapping(k, page) is not mapping:
            unlock_page(k, page)
            put_page(k, page)
            continue
        if page_mapcount(k, page) > 0:
            unmap_mapping_range(k, mapping, index << PAGE_SHIFT, PAGE_SIZE, even_cows=False)
        delete_from_page_cache(k, page)
        unlock_page(k, page)
        put_page(k, page)


# Last: fs/dax.c itself imports this module.  Linked per design to the design's own fs/dax.c.
from faultlab.fs.dax import v4_10 as dax  # noqa: E402
