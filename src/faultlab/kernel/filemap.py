"""mm/filemap.c of the 3.15-4.x eras: the page cache, filemap_fault and filemap_map_pages, and
buffered read(2)/write(2).

Follows Linux 3.15/4.0 mm/filemap.c (``filemap_fault`` with the i_size re-check under the page
lock, ``filemap_map_pages`` under the PTL with ``trylock_page``) and 4.7 ``page_cache_tree_insert``
(a DAX hole page replacing a locked empty entry).  A fault never returns VM_FAULT_RETRY here: the
model's arch fault handler does not pass FAULT_FLAG_ALLOW_RETRY, so ``lock_page_or_retry`` is a
plain ``lock_page``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.flags import (
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_LOCKED,
    VM_FAULT_MAJOR,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    size_in_pages,
)
from faultlab.kernel.memory import do_set_pte, page_mkclean, pte_read
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.page import (
    Page,
    PageHWPoison,
    PageUptodate,
    SetPageDirty,
    SetPageUptodate,
    TestClearPageDirty,
    get_page,
    lock_new_page,
    lock_page,
    page_index,
    page_mapping,
    page_read,
    page_write,
    put_page,
    set_page_mapping,
    trylock_page,
    unlock_page,
)
from faultlab.kernel.state.pagecache import DaxEntry

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode
    from faultlab.kernel.state.pagecache import AddressSpace, Entry

EEXIST = -17
ENOMEM = -12


# -- the page tree ------------------------------------------------------------------------------------------
def find_get_entry(k: Kernel, mapping: AddressSpace, index: int) -> Entry | None:
    """find_get_entry() (4.x): the page at ``index`` with a reference, or a DAX entry.  The
    look-up holds no lock (RCU): radix_tree_lookup_slot(), page_cache_get_speculative() and "Has
    the page moved?", repeated until they agree, are one step of the model
    (:meth:`AddressSpace.lookup_get`)."""
    return mapping.lookup_get(k, index, "find_get_entry")


def find_get_page(k: Kernel, mapping: AddressSpace, index: int) -> Page | None:
    entry = find_get_entry(k, mapping, index)
    return entry if isinstance(entry, Page) else None


def find_lock_page(k: Kernel, mapping: AddressSpace, index: int) -> Page | None:
    """find_lock_page(): look up, lock, and re-check that the page was not truncated meanwhile."""
    while True:
        page = find_get_page(k, mapping, index)
        if page is None:
            return None
        lock_page(k, page)
        if page_mapping(k, page) is mapping:
            return page
        unlock_page(k, page)
        put_page(k, page)
        k.retry("find_lock_page")


def page_cache_tree_insert(k: Kernel, mapping: AddressSpace, page: Page, index: int) -> int:
    """page_cache_tree_insert() (4.7 mm/filemap.c, ac401cc78242, with 965d004af540), tree_lock
    held: "DAX can replace empty locked entry with a hole", and then every waiter on that entry
    is woken (before 965d004af540, only one of them)."""
    inserted, old = mapping.insert(k, index, page, "page_cache_tree_insert", replaces=_empty_locked_dax_entry)
    if not inserted:
        return EEXIST
    if old is not None:  # the hole page took the place of the fault's own locked empty entry
        dax.dax_entry_handed_to_page(k, mapping, index)  # its lock goes on as the page lock
        dax.dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=True)
    return 0


def _empty_locked_dax_entry(entry: Entry) -> bool:
    return isinstance(entry, DaxEntry) and entry.empty and entry.locked


def add_to_page_cache_lru(k: Kernel, page: Page, mapping: AddressSpace, index: int) -> int:
    """add_to_page_cache_lru() -> __add_to_page_cache_locked(): the new page is locked
    (__SetPageLocked, while no one else can reach it) and goes in under tree_lock with the page
    cache's reference; -EEXIST if the index is taken."""
    lock_new_page(k, page)
    get_page(k, page)  # the page cache's reference
    set_page_mapping(k, page, mapping, index)
    mapping.tree_lock.lock(k)
    err = page_cache_tree_insert(k, mapping, page, index)
    mapping.tree_lock.unlock(k)
    if err:
        set_page_mapping(k, page, None, 0)
        put_page(k, page)
        page.lock.clear_fresh(k)  # __ClearPageLocked
        return err
    return 0


def __delete_from_page_cache(k: Kernel, page: Page) -> None:
    """__delete_from_page_cache(): tree_lock and the page lock held; the page cache's reference
    is dropped by the caller."""
    mapping = page_mapping(k, page)
    assert mapping is not None
    index = page_index(k, page)
    mapping.delete(k, index, page, "__delete_from_page_cache")
    set_page_mapping(k, page, None, 0)
    k.events.emit("page_cache_delete", page=page, mapping=mapping, index=index)


def delete_from_page_cache(k: Kernel, page: Page) -> None:
    """delete_from_page_cache(): the caller holds the page lock; under tree_lock, then the page
    cache's reference goes."""
    mapping = page_mapping(k, page)
    assert mapping is not None
    mapping.tree_lock.lock(k)
    __delete_from_page_cache(k, page)
    mapping.tree_lock.unlock(k)
    put_page(k, page)


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
        if add_to_page_cache_lru(k, page, mapping, index) == 0:
            SetPageUptodate(k, page)
            return page
        put_page(k, page)
        k.retry("find_or_create_page")


# -- fault handlers -------------------------------------------------------------------------------------------
def page_cache_read(k: Kernel, inode: Inode, index: int) -> int:
    """page_cache_read() + ->readpage: bring one page in from the disk (zeros for a hole).  The
    read's completion marks the page uptodate before unlocking it (4.0 mpage_end_io(), or
    block_read_full_page() for a page with no blocks), as every ->readpage does on success."""
    page = k.alloc.alloc_page(k)
    if page is None:
        return ENOMEM
    if add_to_page_cache_lru(k, page, inode.mapping, index) == 0:
        readpage = inode.fs.a_ops.readpage
        assert readpage is not None
        readpage(k, inode, page)
        SetPageUptodate(k, page)
        unlock_page(k, page)
    put_page(k, page)
    return 0


def filemap_fault(k: Kernel, vmf: VmFault) -> int:
    """filemap_fault() (3.15/4.0): i_size check, find (or read in: a major fault), lock, re-check
    the mapping and -- under the page lock -- i_size again; return the page locked."""
    inode = vmf.vma.file
    mapping = inode.mapping
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return VM_FAULT_SIGBUS
    ret = 0
    page = find_get_page(k, mapping, vmf.pgoff)
    if page is None:
        ret = VM_FAULT_MAJOR
    while True:
        if page is None:
            page = find_get_page(k, mapping, vmf.pgoff)
        if page is None:
            if page_cache_read(k, inode, vmf.pgoff) == ENOMEM:
                return VM_FAULT_OOM
            k.retry("filemap_fault")  # "we'll just come back here and read it again"
            continue
        lock_page(k, page)
        if page_mapping(k, page) is not mapping:  # "Did it get truncated?"
            unlock_page(k, page)
            put_page(k, page)
            page = None
            k.retry("filemap_fault")
            continue
        break
    # "We must recheck i_size under page lock"
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        unlock_page(k, page)
        put_page(k, page)
        return VM_FAULT_SIGBUS
    vmf.page = page
    return ret | VM_FAULT_LOCKED


def filemap_map_pages(k: Kernel, vmf: VmFault, start_pgoff: int, end_pgoff: int) -> None:
    """filemap_map_pages() (3.15): with the PTL held, map read-only every page of the window that
    is cached, uptodate, not locked (trylock), still in this mapping, below EOF, and whose PTE is
    none.  It never sleeps and never reads a page in."""
    vma = vmf.vma
    inode = vma.file
    mapping = inode.mapping
    for index in range(start_pgoff, end_pgoff + 1):
        entry = mapping.lookup_get(k, index, "radix_tree_for_each_slot")  # with the speculative reference
        if not isinstance(entry, Page):
            continue
        page = entry
        if not PageUptodate(k, page) or PageHWPoison(k, page):
            put_page(k, page)
            continue
        if not trylock_page(k, page):
            put_page(k, page)
            continue
        if page_mapping(k, page) is not mapping or not PageUptodate(k, page):
            unlock_page(k, page)
            put_page(k, page)
            continue
        if index >= size_in_pages(inode.i_size_read(k)):
            unlock_page(k, page)
            put_page(k, page)
            continue
        address = vma.address_of(index)
        if pte_read(k, vma, address) is not None:
            unlock_page(k, page)
            put_page(k, page)
            continue
        if address != vmf.address:
            k.count("fault_around_pages")
        around = VmFault(vma, address, index, vmf.flags)
        do_set_pte(k, around, page, write=False, anon=False)
        unlock_page(k, page)


def filemap_page_mkwrite(k: Kernel, vmf: VmFault) -> int:
    """filemap_page_mkwrite() (ext4's block_page_mkwrite has the same locking): update the file
    time, lock the page, give up with NOPAGE if it was truncated, dirty it, return it locked."""
    from faultlab.kernel.flags import VM_FAULT_NOPAGE

    page = vmf.page
    assert page is not None
    inode = vmf.vma.file
    inode.file_update_time(k)
    lock_page(k, page)
    if page_mapping(k, page) is not inode.mapping:
        unlock_page(k, page)
        return VM_FAULT_NOPAGE
    SetPageDirty(k, page)
    return VM_FAULT_LOCKED


# -- read(2) and write(2) through the page cache -----------------------------------------------------------------
def do_generic_file_read(k: Kernel, inode: Inode, pos: int, count: int) -> bytes:
    """do_generic_file_read(): page by page, bounded by i_size read after the page is found.
    A file system without a disk (tmpfs) reads holes through the zero page without allocating;
    one with a disk reads them into the cache."""
    out = bytearray()
    mapping = inode.mapping
    while count > 0:
        index = pos >> PAGE_SHIFT
        offset = pos & (PAGE_SIZE - 1)
        page = find_get_page(k, mapping, index)
        if page is None and inode.fs.disk and pos < inode.i_size_read(k):
            if page_cache_read(k, inode, index) == ENOMEM:
                break
            continue
        isize = inode.i_size_read(k)
        if pos >= isize:
            if page is not None:
                put_page(k, page)
            break
        nr = min(PAGE_SIZE - offset, count, isize - pos)
        out += page_read(k, page, offset, nr, "copy_page_to_iter") if page is not None else bytes(nr)
        if page is not None:
            put_page(k, page)
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
            readpage = inode.fs.a_ops.readpage
            if readpage is not None:
                readpage(k, inode, page)
            SetPageUptodate(k, page)
            return page
        put_page(k, page)
        k.retry("grab_cache_page_write_begin")


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
            return written if written else ENOMEM
        chunk = data[written : written + n]
        page_write(k, page, offset, chunk, "copy_page_from_iter")
        SetPageDirty(k, page)
        k.events.emit("store_done", kind="write", inode=inode, offset=pos, data=chunk)
        if pos + n > inode.i_size_read(k):
            inode.i_size_write(k, pos + n)
        unlock_page(k, page)
        put_page(k, page)
        written += n
        pos += n
    inode.file_update_time(k)
    return written


def filemap_write_and_wait(k: Kernel, inode: Inode) -> int:
    """filemap_write_and_wait() -> write_cache_pages(WB_SYNC_ALL): lock each cached page,
    clear_page_dirty_for_io() (page_mkclean: the next store write-faults again), write it back,
    unlock."""
    mapping = inode.mapping
    for index in mapping.scan(k, 0):
        page = find_get_page(k, mapping, index)
        if page is None:
            continue
        lock_page(k, page)
        if page_mapping(k, page) is mapping:
            page_mkclean(k, mapping, page, index)
            if TestClearPageDirty(k, page):
                k.count("pages_written_back")
        unlock_page(k, page)
        put_page(k, page)
    return 0


# Last: fs/dax.c itself imports this module.  Linked per design to the design's own fs/dax.c.
from faultlab.fs.dax import v4_10 as dax  # noqa: E402
