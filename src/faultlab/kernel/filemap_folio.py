"""mm/filemap.c of the folio kernels: ``filemap_fault`` and ``filemap_map_pages`` as Linux 6.1 has
them, and 6.18's ``filemap_map_pages`` (which no longer maps past i_size).

The model's folios are single pages (order 0), so ``folio`` and ``page`` name the same object.
``mapping->invalidate_lock`` (5.15, Jan Kara, 730633f0b7f9 "mm: Protect operations adding pages to
page cache with invalidate_lock") is taken shared by a fault that has to bring a page in, and
exclusively by truncate and hole punch (ext4, from 5.15: it replaced ext4's i_mmap_sem).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.filemap import add_to_page_cache_lru, find_get_page
from faultlab.kernel.flags import (
    VM_FAULT_LOCKED,
    VM_FAULT_MAJOR,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    size_in_pages,
)
from faultlab.kernel.memory import ENOMEM, __pte_alloc, do_set_pte, pte_read
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.page import (
    Page,
    PageHWPoison,
    PageUptodate,
    SetPageUptodate,
    lock_page,
    page_mapping,
    put_page,
    trylock_page,
    unlock_page,
)

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode
    from faultlab.kernel.state.pagecache import AddressSpace


def filemap_create_folio(k: Kernel, inode: Inode, index: int) -> int:
    """__filemap_get_folio(FGP_CREAT | FGP_FOR_MMAP) for a page not in the cache, with the read
    that page_not_uptodate then starts (filemap_read_folio -> ->read_folio, which sets the page
    uptodate and unlocks it when the I/O completes).  The caller holds invalidate_lock shared."""
    page = k.alloc.alloc_page(k)
    if page is None:
        return ENOMEM
    if add_to_page_cache_lru(k, page, inode.mapping, index) == 0:
        readpage = inode.fs.a_ops.readpage
        if readpage is not None:
            readpage(k, inode, page)
        SetPageUptodate(k, page)
        unlock_page(k, page)
    put_page(k, page)
    return 0


def filemap_fault(k: Kernel, vmf: VmFault) -> int:
    """filemap_fault() (6.1): i_size check; a cached uptodate page is locked without the
    invalidate_lock; a missing one (a major fault) is created and read under invalidate_lock
    shared; "Did it get truncated?" after the page lock; "We must recheck i_size under page lock"
    after the invalidate_lock is dropped."""
    inode = vmf.vma.file
    mapping = inode.mapping
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return VM_FAULT_SIGBUS
    ret = 0
    mapping_locked = False
    page = find_get_page(k, mapping, vmf.pgoff)  # filemap_get_folio()
    if page is None:
        ret = VM_FAULT_MAJOR  # "No page in the page cache at all"
    elif not PageUptodate(k, page):
        inode.invalidate_lock.down_read(k)
        mapping_locked = True
    while True:
        if page is None:  # retry_find:
            if not mapping_locked:
                inode.invalidate_lock.down_read(k)
                mapping_locked = True
            page = find_get_page(k, mapping, vmf.pgoff)
            if page is None:
                if filemap_create_folio(k, inode, vmf.pgoff) == ENOMEM:
                    inode.invalidate_lock.up_read(k)
                    return VM_FAULT_OOM
                k.retry("filemap_fault")
                continue
        lock_page(k, page)
        if page_mapping(k, page) is not mapping or not PageUptodate(k, page):  # truncated, or not read
            unlock_page(k, page)
            put_page(k, page)
            page = None
            k.retry("filemap_fault")
            continue
        break
    if mapping_locked:
        inode.invalidate_lock.up_read(k)
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        unlock_page(k, page)
        put_page(k, page)
        return VM_FAULT_SIGBUS
    vmf.page = page
    return ret | VM_FAULT_LOCKED


def next_uptodate_page(k: Kernel, mapping: AddressSpace, index: int) -> Page | None:
    """next_uptodate_page() (6.1): the page at ``index`` with a reference and its lock, if it is
    cached, uptodate, unlocked (trylock), still in this mapping and below EOF; else None."""
    entry = mapping.lookup_get(k, index, "xas_next_entry")  # folio_try_get_rcu() + xas_reload()
    if not isinstance(entry, Page):
        return None
    page = entry
    if not PageUptodate(k, page) or not trylock_page(k, page):
        put_page(k, page)
        return None
    if page_mapping(k, page) is not mapping or not PageUptodate(k, page) or \
            index >= size_in_pages(mapping.host.i_size_read(k)):
        unlock_page(k, page)
        put_page(k, page)
        return None
    return page


def filemap_map_pages(k: Kernel, vmf: VmFault, start_pgoff: int, end_pgoff: int) -> int:
    """filemap_map_pages() (6.1): the first mappable page is found and locked before anything else;
    filemap_map_pmd() installs the pre-allocated table if the PMD is none; then, under the PTL,
    each page of the window whose PTE is none is mapped read-only.  VM_FAULT_NOPAGE if the faulting
    address was among them."""
    return _map_pages(k, vmf, start_pgoff, end_pgoff, None)


def filemap_map_pages_6_18(k: Kernel, vmf: VmFault, start_pgoff: int, end_pgoff: int) -> int:
    """filemap_map_pages() (6.18): as 6.1, with end_pgoff clipped to the last page of the file, and
    -- "mm/memory: do not populate page table entries beyond i_size" (2025) -- filemap_map_pmd()
    (and with it the install of the pre-allocated table) skipped unless the first page found is not
    the file's last or the file is shmem: with no table, nothing is mapped around the fault."""
    inode = vmf.vma.file
    file_end = size_in_pages(inode.i_size_read(k)) - 1
    shmem_mapping = bool(inode.fs.option("shmem_mapping", False))
    return _map_pages(k, vmf, start_pgoff, min(end_pgoff, file_end), None if shmem_mapping else file_end)


def _map_pages(k: Kernel, vmf: VmFault, start_pgoff: int, end_pgoff: int, file_end: int | None) -> int:
    """The body of filemap_map_pages(); ``file_end`` (6.18, not shmem): the file's last page, for
    the can_map_large test."""
    vma = vmf.vma
    mapping = vma.file.mapping
    index = start_pgoff
    first = None
    while index <= end_pgoff and first is None:  # first_map_page()
        first = next_uptodate_page(k, mapping, index)
        index += 1
    if first is None:
        return 0
    index -= 1
    can_map_large = file_end is None or file_end >= index + 1
    if vma.mm.pt.pmd_none(k, vmf.address):
        if not can_map_large:  # no filemap_map_pmd(): pte_offset_map_lock() finds no table
            unlock_page(k, first)
            put_page(k, first)
            return 0
        __pte_alloc(k, vma, vmf.address)  # filemap_map_pmd() -> pmd_install(prealloc_pte)
    ret = 0
    ptl = vma.mm.pt.ptl(vmf.address)
    ptl.lock(k)
    page: Page | None = first
    while True:
        if page is not None:
            address = vma.address_of(index)
            if PageHWPoison(k, page) or pte_read(k, vma, address) is not None:
                unlock_page(k, page)
                put_page(k, page)
            else:
                if address == vmf.address:
                    ret = VM_FAULT_NOPAGE
                else:
                    k.count("fault_around_pages")
                do_set_pte(k, VmFault(vma, address, index, vmf.flags), page, write=False, anon=False)
                unlock_page(k, page)
        index += 1
        if index > end_pgoff:
            break
        page = next_uptodate_page(k, mapping, index)
    ptl.unlock(k)
    return ret
