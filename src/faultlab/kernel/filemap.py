"""mm/filemap.c and mm/shmem.c: the page cache, its fault handlers (filemap_fault, shmem_fault),
fault-around (filemap_map_pages), page_mkwrite, and buffered read(2)/write(2).

Follows Linux 3.15/4.0 mm/filemap.c (``filemap_fault`` with the i_size re-check under the page
lock, ``filemap_map_pages`` under the PTL with ``trylock_page``) and 4.x mm/shmem.c
(``shmem_fault`` -> ``shmem_getpage_gfp``).  A fault never returns VM_FAULT_RETRY here: the
model's arch fault handler does not pass FAULT_FLAG_ALLOW_RETRY, so ``lock_page_or_retry`` is a
plain ``lock_page``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE, VmFault, size_in_pages
from faultlab.kernel.fs import AddressSpace, DaxEntry, Inode
from faultlab.kernel.memory import do_set_pte, pte_read
from faultlab.kernel.mm import VmFaultData
from faultlab.kernel.page import Page, lock_page, trylock_page, unlock_page
from faultlab.sched import Access

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel


# -- the page tree ------------------------------------------------------------------------------------------
def _lookup(k: Kernel, mapping: AddressSpace, index: int) -> Page | DaxEntry | None:
    """radix_tree_lookup(), materialising an untouched page of the scenario's initial contents."""
    k.sched.point(mapping.slot(index), Access.READ, f"find_get_page({mapping.host.name}, {index})",
                  more=((("initial", mapping), Access.READ),))
    entry = mapping.page_tree.get(index)
    inode = mapping.host
    if entry is None and inode.fs != "dax" and index < inode.initial_pages:
        page = k.alloc.alloc_page(k)
        if page is None:
            return None
        page.copy_from(inode.initial_contents(index))
        page.uptodate = True
        page.mapping = mapping
        page.index = index
        mapping.page_tree[index] = page
        entry = page
    return entry


def find_get_page(k: Kernel, mapping: AddressSpace, index: int) -> Page | None:
    entry = _lookup(k, mapping, index)
    if isinstance(entry, Page):
        k.alloc.get_page(entry)
        return entry
    return None


def find_lock_page(k: Kernel, mapping: AddressSpace, index: int) -> Page | None:
    """find_lock_page(): look up, lock, and re-check that the page was not truncated meanwhile."""
    while True:
        page = find_get_page(k, mapping, index)
        if page is None:
            return None
        lock_page(k, page)
        if page.mapping is mapping:
            return page
        unlock_page(k, page)
        k.alloc.put_page(k, page)


def add_to_page_cache_lru(k: Kernel, page: Page, mapping: AddressSpace, index: int) -> int:
    """Insert a new page, locked, with the page cache's reference; -EEXIST if the slot is taken.
    A DAX design may let a hole page replace its locked empty entry (page_cache_tree_insert)."""
    k.sched.point(mapping.slot(index), Access.WRITE, f"add_to_page_cache({mapping.host.name}, {index})")
    existing = mapping.page_tree.get(index)
    if isinstance(existing, DaxEntry):
        if not k.design.can_replace_dax_entry(existing):
            return -17
    elif _occupied(mapping, index):
        return -17
    page.lock.owner = k.tid()
    k.lock_acquired(page.lock, "W", trylock=True)  # a new page is inserted locked: never blocks
    page.mapping = mapping
    page.index = index
    k.alloc.get_page(page)
    mapping.page_tree[index] = page
    if isinstance(existing, DaxEntry):
        k.design.dax_entry_replaced(k, mapping, index, existing)
    return 0


def _occupied(mapping: AddressSpace, index: int) -> bool:
    """A page or entry is in the slot (an untouched initial page counts as present)."""
    inode = mapping.host
    if index in mapping.page_tree:
        return True
    return inode.fs != "dax" and index < inode.initial_pages


def delete_from_page_cache(k: Kernel, page: Page) -> None:
    """delete_from_page_cache(): the caller holds the page lock; drops the cache's reference."""
    mapping = page.mapping
    assert mapping is not None
    k.sched.point(mapping.slot(page.index), Access.WRITE,
                  f"delete_from_page_cache({mapping.host.name}, {page.index})")
    if mapping.page_tree.get(page.index) is page:
        del mapping.page_tree[page.index]
    page.mapping = None
    k.alloc.put_page(k, page)


def find_or_create_page(k: Kernel, mapping: AddressSpace, index: int) -> Page | None:
    """find_or_create_page(..., __GFP_ZERO): a locked page, zero-filled if new; None on OOM."""
    while True:
        page = find_lock_page(k, mapping, index)
        if page is not None:
            return page
        page = k.alloc.alloc_page(k)
        if page is None:
            return None
        k.count("pages_zeroed")
        err = add_to_page_cache_lru(k, page, mapping, index)
        if err == 0:
            page.uptodate = True
            return page
        k.alloc.put_page(k, page)


# -- fault handlers -------------------------------------------------------------------------------------------
def page_cache_read(k: Kernel, inode: Inode, index: int) -> int:
    """page_cache_read() + ->readpage: bring one page in from the disk (zeros for a hole)."""
    page = k.alloc.alloc_page(k)
    if page is None:
        return -12
    err = add_to_page_cache_lru(k, page, inode.mapping, index)
    if err == 0:
        page.copy_from(inode.initial_contents(index))
        page.uptodate = True
        unlock_page(k, page)
    k.alloc.put_page(k, page)
    return 0


def filemap_fault(k: Kernel, vmf: VmFaultData) -> VmFault:
    """filemap_fault() (3.15/4.0): i_size check, find (or read in: a major fault), lock, re-check
    the mapping and -- under the page lock -- i_size again; return the page locked."""
    inode = vmf.vma.file
    mapping = inode.mapping
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return VmFault.SIGBUS
    ret = VmFault.NONE
    page = find_get_page(k, mapping, vmf.pgoff)
    if page is None:
        ret = VmFault.MAJOR
    while True:
        if page is None:
            page = find_get_page(k, mapping, vmf.pgoff)
        if page is None:
            err = page_cache_read(k, inode, vmf.pgoff)
            if err == -12:
                return VmFault.OOM
            continue
        lock_page(k, page)
        if page.mapping is not mapping:
            unlock_page(k, page)
            k.alloc.put_page(k, page)
            page = None
            continue
        break
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        unlock_page(k, page)
        k.alloc.put_page(k, page)
        return VmFault.SIGBUS
    vmf.page = page
    return ret | VmFault.LOCKED


def shmem_fault(k: Kernel, vmf: VmFaultData) -> VmFault:
    """shmem_fault() -> shmem_getpage_gfp(SGP_CACHE) (4.x mm/shmem.c): find and lock the page, or
    allocate a zeroed one for a hole; past EOF (checked before and after) is SIGBUS."""
    inode = vmf.vma.file
    mapping = inode.mapping
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return VmFault.SIGBUS
    while True:  # repeat: (shmem_getpage_gfp)
        page = find_lock_page(k, mapping, vmf.pgoff)
        if page is not None:
            break
        page = k.alloc.alloc_page(k)
        if page is None:
            return VmFault.OOM
        if add_to_page_cache_lru(k, page, mapping, vmf.pgoff) == 0:
            k.count("pages_zeroed")
            page.uptodate = True
            break
        k.alloc.put_page(k, page)  # -EEXIST: another fault added it first; look again
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        if page.mapping is mapping:
            delete_from_page_cache(k, page)
        unlock_page(k, page)
        k.alloc.put_page(k, page)
        return VmFault.SIGBUS
    vmf.page = page
    return VmFault.LOCKED


def filemap_map_pages(k: Kernel, vmf: VmFaultData, start_pgoff: int, end_pgoff: int) -> None:
    """filemap_map_pages() (3.15): with the PTL held, map read-only every page of the window that
    is cached, uptodate, not locked (trylock), still in this mapping, below EOF, and whose PTE is
    none.  It never sleeps and never reads a page in."""
    vma = vmf.vma
    inode = vma.file
    mapping = inode.mapping
    for index in range(start_pgoff, end_pgoff + 1):
        entry = _lookup(k, mapping, index)
        if not isinstance(entry, Page) or not entry.uptodate or entry.hwpoison:
            continue
        page = entry
        k.alloc.get_page(page)
        if not trylock_page(k, page):
            k.alloc.put_page(k, page)
            continue
        if page.mapping is not mapping or not page.uptodate:
            unlock_page(k, page)
            k.alloc.put_page(k, page)
            continue
        if page.index >= size_in_pages(inode.i_size_read(k)):
            unlock_page(k, page)
            k.alloc.put_page(k, page)
            continue
        address = vma.address_of(index)
        if pte_read(k, vma.mm, address) is not None:
            unlock_page(k, page)
            k.alloc.put_page(k, page)
            continue
        if address != vmf.address:
            k.count("fault_around_pages")
        around = VmFaultData(vma=vma, address=address, pgoff=index, flags=vmf.flags)
        do_set_pte(k, around, page, write=False, anon=False)
        unlock_page(k, page)


def filemap_page_mkwrite(k: Kernel, vmf: VmFaultData) -> VmFault:
    """filemap_page_mkwrite() (ext4's block_page_mkwrite has the same locking): update the file
    time, lock the page, give up with NOPAGE if it was truncated, dirty it, return it locked."""
    page = vmf.page
    assert page is not None
    inode = vmf.vma.file
    inode.file_update_time(k)
    lock_page(k, page)
    if page.mapping is not inode.mapping:
        unlock_page(k, page)
        return VmFault.NOPAGE
    page.dirty = True
    return VmFault.LOCKED


# -- read(2) and write(2) through the page cache -----------------------------------------------------------------
def page_read(k: Kernel, page: Page, off: int, n: int) -> bytes:
    k.sched.point(page, Access.READ, f"copy_page_to_iter({page!r})")
    k.events.emit("page_access", page=page, write=False)
    return page.read(off, n)


def page_write(k: Kernel, page: Page, off: int, data: bytes) -> None:
    k.sched.point(page, Access.WRITE, f"copy_page_from_iter({page!r})")
    k.events.emit("page_access", page=page, write=True)
    page.write(off, data)


def generic_file_read(k: Kernel, inode: Inode, pos: int, count: int) -> bytes:
    """do_generic_file_read(): page by page, bounded by i_size read after the page is found.
    tmpfs reads holes through the zero page without allocating; ext4 reads them into the cache."""
    out = bytearray()
    mapping = inode.mapping
    while count > 0:
        index = pos >> PAGE_SHIFT
        offset = pos & (PAGE_SIZE - 1)
        page = find_get_page(k, mapping, index)
        if page is None and inode.fs == "ext4" and pos < inode.i_size:
            if page_cache_read(k, inode, index) == -12:
                break
            continue
        isize = inode.i_size_read(k)
        if pos >= isize:
            if page is not None:
                k.alloc.put_page(k, page)
            break
        nr = min(PAGE_SIZE - offset, count, isize - pos)
        out += page_read(k, page, offset, nr) if page is not None else bytes(nr)
        if page is not None:
            k.alloc.put_page(k, page)
        pos += nr
        count -= nr
    return bytes(out)


def grab_cache_page_write_begin(k: Kernel, inode: Inode, index: int) -> Page | None:
    """grab_cache_page_write_begin(): find and lock the page, or add a new one (its old contents
    read in from the disk, zeros for a hole)."""
    while True:
        page = find_lock_page(k, inode.mapping, index)
        if page is not None:
            return page
        page = k.alloc.alloc_page(k)
        if page is None:
            return None
        if add_to_page_cache_lru(k, page, inode.mapping, index) == 0:
            page.copy_from(inode.initial_contents(index))
            page.uptodate = True
            return page
        k.alloc.put_page(k, page)


def generic_perform_write(k: Kernel, inode: Inode, pos: int, data: bytes) -> int:
    """generic_perform_write() with simple_write_end()/generic_write_end(): copy into each locked
    page and extend i_size under the page lock.  Returns bytes written or -ENOMEM."""
    written = 0
    while written < len(data):
        index = pos >> PAGE_SHIFT
        offset = pos & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - offset, len(data) - written)
        page = grab_cache_page_write_begin(k, inode, index)
        if page is None:
            return written if written else -12
        page_write(k, page, offset, data[written : written + n])
        page.dirty = True
        k.events.emit("store_done", kind="write", inode=inode, offset=pos, data=data[written : written + n])
        if pos + n > inode.i_size:
            inode.i_size_write(k, pos + n)
        unlock_page(k, page)
        k.alloc.put_page(k, page)
        written += n
        pos += n
    inode.file_update_time(k)
    return written
