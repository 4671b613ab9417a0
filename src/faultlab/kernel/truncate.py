"""mm/truncate.c and the page-cache filesystems' setattr: truncate as Linux does it.

``truncate_setsize`` writes i_size first; ``truncate_pagecache`` then unmaps with even_cows=1,
removes the pages (keeping and zeroing the partial last page), and unmaps again to catch private
pages COWed meanwhile (Linux 3.15 mm/truncate.c, unchanged in this respect through 4.10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.filemap import delete_from_page_cache, find_lock_page
from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE
from faultlab.kernel.fs import AddressSpace, DaxEntry, Inode
from faultlab.kernel.memory import unmap_mapping_range
from faultlab.kernel.page import Page, lock_page, trylock_page, unlock_page
from faultlab.sched import Access

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel


def round_up_page(n: int) -> int:
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def truncate_inode_page(k: Kernel, mapping: AddressSpace, page: Page) -> None:
    """truncate_inode_page(): the page is locked; unmap its shared PTEs, then drop it."""
    if page.mapcount > 0:
        unmap_mapping_range(k, mapping, page.index << PAGE_SHIFT, PAGE_SIZE, even_cows=False)
    if page.mapping is not mapping:
        return
    page.dirty = False  # cancel_dirty_page()
    delete_from_page_cache(k, page)


def drop_initial_pages(k: Kernel, mapping: AddressSpace, start: int) -> None:
    """The untouched initial pages at and past ``start`` leave the cache (and the disk) too."""
    inode = mapping.host
    k.sched.point(("initial", mapping), Access.WRITE, f"drop untouched pages >= {start}")
    inode.initial_pages = min(inode.initial_pages, start)


def truncate_inode_pages_range(k: Kernel, mapping: AddressSpace, lstart: int) -> None:
    """truncate_inode_pages_range(mapping, lstart, -1): a non-blocking pass (trylock, skipping
    locked pages), the partial page zeroed in place, then blocking passes until none is left.
    DAX entries go to the design's clear_exceptional_entry()."""
    partial_start = lstart & (PAGE_SIZE - 1)
    start = (lstart + PAGE_SIZE - 1) >> PAGE_SHIFT
    if mapping.host.fs != "dax":
        drop_initial_pages(k, mapping, start)
    for index in sorted(i for i in mapping.page_tree if i >= start):
        entry = mapping.page_tree.get(index)
        if isinstance(entry, DaxEntry):
            k.design.clear_exceptional_entry(k, mapping, index)
            continue
        if entry is None or not trylock_page(k, entry):
            continue
        truncate_inode_page(k, mapping, entry)
        unlock_page(k, entry)
    if partial_start:
        page = find_lock_page(k, mapping, start - 1)
        if page is not None:
            k.sched.point(page, Access.WRITE, f"zero_user_segment({page!r}, {partial_start})")
            page.zero_range(partial_start, PAGE_SIZE)
            unlock_page(k, page)
            k.alloc.put_page(k, page)
    while True:
        left = sorted(i for i in mapping.page_tree if i >= start)
        if not left:
            return
        for index in left:
            entry = mapping.page_tree.get(index)
            if isinstance(entry, DaxEntry):
                k.design.clear_exceptional_entry(k, mapping, index)
                continue
            if entry is None:
                continue
            k.alloc.get_page(entry)
            lock_page(k, entry)
            truncate_inode_page(k, mapping, entry)
            unlock_page(k, entry)
            k.alloc.put_page(k, entry)


def truncate_pagecache(k: Kernel, inode: Inode, newsize: int) -> None:
    """truncate_pagecache(): unmap (even_cows), drop the pages, unmap again ("private pages can
    be COWed" between the first unmap and the end of truncate_inode_pages)."""
    mapping = inode.mapping
    holebegin = round_up_page(newsize)
    unmap_mapping_range(k, mapping, holebegin, 0, even_cows=True)
    truncate_inode_pages_range(k, mapping, newsize)
    unmap_mapping_range(k, mapping, holebegin, 0, even_cows=True)


def truncate_setsize(k: Kernel, inode: Inode, newsize: int) -> None:
    """truncate_setsize(): i_size first, then the page cache."""
    oldsize = inode.i_size
    inode.i_size_write(k, newsize)
    if newsize < oldsize:
        truncate_pagecache(k, inode, newsize)


def zero_tail_of_last_page(k: Kernel, inode: Inode, old_size: int) -> None:
    """What ext4 (6.x, measured on this machine's kernel) does when a file grows past a partial
    last page: the bytes past the old EOF in that page are zeroed, so a store made through a
    mapping past EOF does not reappear.  tmpfs keeps them."""
    if old_size & (PAGE_SIZE - 1) == 0:
        return
    page = find_lock_page(k, inode.mapping, old_size >> PAGE_SHIFT)
    if page is None:
        return
    k.sched.point(page, Access.WRITE, f"zero tail of {page!r}")
    page.zero_range(old_size & (PAGE_SIZE - 1), PAGE_SIZE)
    unlock_page(k, page)
    k.alloc.put_page(k, page)


def pagecache_setattr_size(k: Kernel, inode: Inode, newsize: int) -> None:
    """shmem_setattr() / ext4_setattr() for ATTR_SIZE, called with i_rwsem held."""
    oldsize = inode.i_size
    if newsize > oldsize and inode.fs == "ext4":
        zero_tail_of_last_page(k, inode, oldsize)
    truncate_setsize(k, inode, newsize)
