"""struct page and the page allocator, as shared state.

A page's fields sit behind cells of their own, so that accesses that commute in Linux commute for
the explorer too:

* ``ref``: the refcount.  get_page() and put_page() are UPDATEs: atomic increments and
  decrements commute, and no caller branches on the value.  The put that brings the count to
  zero frees the page, whichever thread it is.  That is sound because Linux's rule is the
  model's: get_page() is only for a caller that already holds a reference, so it cannot meet a
  count of zero.  A reference taken from a look-up, with none held, is taken in the step that
  finds the page in the page cache (:meth:`AddressSpace.lookup_get`), whose own reference
  guarantees the same.  A design that breaks the rule (get_page() with no reference held) may
  have a resurrection explored in one order only; the end-of-run refcount check still reports
  every count that does not match the references held.
* ``maps``: the mapcount; page_add_*_rmap()/page_remove_rmap() are UPDATEs, page_mapped() a READ.
* one cell per flag: PG_uptodate, PG_dirty, PG_hwpoison, PageAnon (whose cell also holds
  PageAnonExclusive, 5.19+: both are set together by page_add_new_anon_rmap()).
* ``owner``: ->mapping and ->index (set and cleared only by the page cache, under the page lock).
* ``data``: the contents.

PG_locked is the page's :class:`~faultlab.kernel.locking.BitLock`, itself an explorer object.
Kernel code never touches the fields: it calls the functions below, named as in Linux.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from faultlab.kernel.flags import PAGE_SIZE
from faultlab.kernel.locking import BitLock
from faultlab.kernel.state.cell import READ, UPDATE, WRITE, Cell, audited_subclass

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.pagecache import AddressSpace
    from faultlab.sched.core import Scheduler

class PageCell(Cell):
    """A cell of one page field (named lazily: pages are made on every fault)."""

    __slots__ = ("page", "what")

    def __init__(self, page: Page, what: str) -> None:
        self.page = page
        self.what = what

    def __repr__(self) -> str:
        return f"{self.page.name}.{self.what}"


class Page:
    """struct page.  ``cow`` (allocated by a COW fault to receive the copy), ``zero`` (the shared
    zero page) and ``label`` (what a special page is, for reports) are fixed at allocation."""

    __slots__ = (
        "pfn", "name", "zero", "cow", "label", "lock",
        "_count", "_freed", "_mapcount", "_uptodate", "_dirty", "_hwpoison", "_anon", "_anon_exclusive", "_mapping",
        "_index",
        "_data",
        "ref", "maps", "uptodate", "dirty", "hwpoison", "anon", "owner", "data",
    )

    def __init__(self, pfn: int, name: str) -> None:
        self.pfn = pfn
        self.name = name
        self.zero = False
        self.cow = False
        self.label = ""
        self.lock = BitLock("page lock", name)
        self._count = 1
        self._freed = False
        self._mapcount = 0
        self._uptodate = False
        self._dirty = False
        self._hwpoison = False
        self._anon = False
        self._anon_exclusive = False
        self._mapping: AddressSpace | None = None
        self._index = 0
        self._data: bytearray | None = None
        self.ref = PageCell(self, "count")
        self.maps = PageCell(self, "mapcount")
        self.uptodate = PageCell(self, "PG_uptodate")
        self.dirty = PageCell(self, "PG_dirty")
        self.hwpoison = PageCell(self, "PG_hwpoison")
        self.anon = PageCell(self, "PageAnon")
        self.owner = PageCell(self, "mapping")
        self.data = PageCell(self, "data")

    def __repr__(self) -> str:
        if self.label:
            return f"{self.name}({self.label})"
        if _RAW_ANON.__get__(self):
            return f"{self.name}(anon)"
        if self.cow:
            return f"{self.name}(cow)"
        if self.zero:
            return self.name
        index = _RAW_INDEX.__get__(self)
        return f"{self.name}(idx{index})" if _RAW_MAPPING.__get__(self) is not None else self.name


_RAW_ANON = Page.__dict__["_anon"]
_RAW_INDEX = Page.__dict__["_index"]
_RAW_MAPPING = Page.__dict__["_mapping"]

AuditedPage = audited_subclass(
    Page,
    {
        "_count": lambda p: p.ref,
        "_freed": lambda p: p.ref,
        "_mapcount": lambda p: p.maps,
        "_uptodate": lambda p: p.uptodate,
        "_dirty": lambda p: p.dirty,
        "_hwpoison": lambda p: p.hwpoison,
        "_anon": lambda p: p.anon,
        "_anon_exclusive": lambda p: p.anon,
        "_mapping": lambda p: p.owner,
        "_index": lambda p: p.owner,
        "_data": lambda p: p.data,
    },
    counters=("_count", "_freed", "_mapcount"),
)


# -- refcount ----------------------------------------------------------------------------------------
def get_page(k: Kernel, page: Page) -> None:
    """get_page(): take a reference."""
    if page.zero:
        return
    k.sched.point(page.ref, UPDATE, "get_page " + page.name)
    page._count += 1


def put_page(k: Kernel, page: Page) -> None:
    """put_page(): drop a reference; the last one frees the page (back to the allocator)."""
    if page.zero:
        return
    alloc = k.alloc
    k.sched.point(page.ref, UPDATE, "put_page " + page.name, more=((alloc.cell, alloc.mode),))
    page._count -= 1
    count = page._count
    if count < 0:
        k.events.emit("refcount", page=page, count=count)
    if count == 0:
        page._freed = True
        k.alloc.freed(k, page)
        k.events.emit("page_free", page=page)


# -- rmap --------------------------------------------------------------------------------------------
def page_add_file_rmap(k: Kernel, page: Page) -> None:
    k.sched.point(page.maps, UPDATE, "page_add_file_rmap " + page.name)
    page._mapcount += 1


def page_add_new_anon_rmap(k: Kernel, page: Page) -> None:
    """page_add_new_anon_rmap(): the page becomes anonymous and mapped once."""
    k.sched.point(page.maps, UPDATE, "page_add_new_anon_rmap " + page.name, more=((page.anon, WRITE),))
    page._anon = True
    page._mapcount += 1


def page_dup_rmap(k: Kernel, page: Page) -> None:
    """page_dup_rmap() (fork's copy of a PTE, 4.x; page_dup_file_rmap() in 6.1): mapcount++."""
    k.sched.point(page.maps, UPDATE, "page_dup_rmap " + page.name)
    page._mapcount += 1


def page_try_dup_anon_rmap(k: Kernel, page: Page) -> None:
    """page_try_dup_anon_rmap() (6.1, no pinned pages in the model): the page stops being
    exclusive to one mm (ClearPageAnonExclusive) and gains a mapping."""
    k.sched.point(page.maps, UPDATE, "page_try_dup_anon_rmap " + page.name, more=((page.anon, WRITE),))
    page._anon_exclusive = False
    page._mapcount += 1


def page_remove_rmap(k: Kernel, page: Page) -> None:
    k.sched.point(page.maps, UPDATE, "page_remove_rmap " + page.name)
    page._mapcount -= 1


def page_count(k: Kernel, page: Page) -> int:
    """page_count() / folio_ref_count(): a READ of the refcount (6.1's do_wp_page branches on it)."""
    k.sched.point(page.ref, READ, "page_count " + page.name)
    return page._count


def page_mapcount(k: Kernel, page: Page) -> int:
    k.sched.point(page.maps, READ, "page_mapcount " + page.name)
    return page._mapcount


# -- flags ---------------------------------------------------------------------------------------------
def _test(k: Kernel, page: Page, flag: str, what: str) -> bool:
    k.sched.point(getattr(page, flag), READ, what + " " + page.name)
    return bool(getattr(page, "_" + flag))


def _set(k: Kernel, page: Page, flag: str, what: str) -> None:
    k.sched.point(getattr(page, flag), WRITE, what + " " + page.name)
    setattr(page, "_" + flag, True)


def _clear(k: Kernel, page: Page, flag: str, what: str) -> bool:
    k.sched.point(getattr(page, flag), WRITE, what + " " + page.name)
    old = bool(getattr(page, "_" + flag))
    setattr(page, "_" + flag, False)
    return old


def PageUptodate(k: Kernel, page: Page) -> bool:  # noqa: N802 - the kernel's name
    return _test(k, page, "uptodate", "PageUptodate")


def SetPageUptodate(k: Kernel, page: Page) -> None:  # noqa: N802
    _set(k, page, "uptodate", "SetPageUptodate")


def PageDirty(k: Kernel, page: Page) -> bool:  # noqa: N802
    return _test(k, page, "dirty", "PageDirty")


def SetPageDirty(k: Kernel, page: Page) -> None:  # noqa: N802
    _set(k, page, "dirty", "set_page_dirty")


def TestClearPageDirty(k: Kernel, page: Page) -> bool:  # noqa: N802
    return _clear(k, page, "dirty", "clear_page_dirty")


def PageAnonExclusive(k: Kernel, page: Page) -> bool:  # noqa: N802
    """PageAnonExclusive() (5.19+): the anonymous page is mapped by one mm only."""
    k.sched.point(page.anon, READ, "PageAnonExclusive " + page.name)
    return bool(page._anon_exclusive)


def SetPageAnonExclusive(k: Kernel, page: Page) -> None:  # noqa: N802
    k.sched.point(page.anon, WRITE, "SetPageAnonExclusive " + page.name)
    page._anon_exclusive = True


def PageHWPoison(k: Kernel, page: Page) -> bool:  # noqa: N802
    return _test(k, page, "hwpoison", "PageHWPoison")


def PageAnon(k: Kernel, page: Page) -> bool:  # noqa: N802
    return _test(k, page, "anon", "PageAnon")


# -- ->mapping and ->index -------------------------------------------------------------------------------
def lock_new_page(k: Kernel, page: Page) -> None:
    """__SetPageLocked(): lock a page no one else can reach yet (before it goes into the cache)."""
    page.lock.seize(k, fresh=True)


def page_mapping(k: Kernel, page: Page) -> AddressSpace | None:
    """page->mapping (a truncated page has none); read under the page lock in Linux."""
    k.sched.point(page.owner, READ, "page->mapping " + page.name)
    return page._mapping


def page_index(k: Kernel, page: Page) -> int:
    k.sched.point(page.owner, READ, "page->index " + page.name)
    return page._index


def set_page_mapping(k: Kernel, page: Page, mapping: AddressSpace | None, index: int) -> None:
    """page->mapping = mapping; page->index = index (adding to or deleting from the page cache)."""
    k.sched.point(page.owner, WRITE, "page->mapping = " + ("NULL" if mapping is None else mapping.name))
    page._mapping = mapping
    page._index = index


# -- PG_locked -------------------------------------------------------------------------------------------
def lock_page(k: Kernel, page: Page) -> None:
    """lock_page(): sleep until PG_locked is clear, then set it (include/linux/pagemap.h)."""
    page.lock.acquire(k, "lock_page " + page.name)


def trylock_page(k: Kernel, page: Page) -> bool:
    return page.lock.try_acquire(k, "trylock_page " + page.name)


def unlock_page(k: Kernel, page: Page) -> None:
    page.lock.release(k, "unlock_page " + page.name)


# -- contents --------------------------------------------------------------------------------------------
def page_read(k: Kernel, page: Page, off: int, n: int, label: str = "read") -> bytes:
    """Copy ``n`` bytes out of the page (a kernel copy: copy_page_to_iter, copy_user_highpage)."""
    k.sched.point(page.data, READ, label + " " + page.name)
    k.events.emit("page_access", page=page, write=False)
    return page_bytes(page, off, n)


def page_write(k: Kernel, page: Page, off: int, data: bytes, label: str = "write") -> None:
    k.sched.point(page.data, WRITE, label + " " + page.name)
    k.events.emit("page_access", page=page, write=True)
    page_store(page, off, data)


def page_zero_range(k: Kernel, page: Page, start: int, end: int, label: str = "zero_user_segment") -> None:
    k.sched.point(page.data, WRITE, label + " " + page.name)
    if page._data is not None:
        page._data[start:end] = bytes(end - start)


def copy_page(k: Kernel, dst: Page, src: Page, label: str = "copy_user_highpage") -> None:
    """Copy the whole of ``src`` into ``dst`` (both announced: one step)."""
    k.sched.point(src.data, READ, label + " " + src.name, more=((dst.data, WRITE),))
    k.events.emit("page_access", page=src, write=False)
    page_fill(dst, page_bytes(src, 0, PAGE_SIZE) if src._data is not None else None)


def clear_page(k: Kernel, page: Page, label: str = "clear_user_highpage") -> None:
    k.sched.point(page.data, WRITE, label + " " + page.name)
    page._data = None


# -- the raw side, for the state layer and for pages no other thread can reach yet -----------------------
def page_bytes(page: Page, off: int, n: int) -> bytes:
    """The page's bytes, for the state layer (its callers have announced ``page.data``)."""
    data = page._data
    return bytes(n) if data is None else bytes(data[off : off + n])


def page_store(page: Page, off: int, data: bytes) -> None:
    buf = page._data
    if buf is None:
        if not any(data):
            return
        buf = page._data = bytearray(PAGE_SIZE)
    buf[off : off + len(data)] = data


def page_fill(page: Page, contents: bytes | None) -> None:
    """Set the whole contents (None: zeros)."""
    page._data = None if contents is None or not any(contents) else bytearray(contents)


class PageAllocator:
    """alloc_page() with a limit in pages, like a memory cgroup's; failure means VM_FAULT_OOM.

    Allocation is an UPDATE of the allocator (allocations commute: only the page names differ),
    except under a limit, where the order decides who gets VM_FAULT_OOM and it is a WRITE.  Page
    names carry the allocating thread (``page#t1.3``: thread 1's third), so an interleaving does not
    rename pages."""

    def __init__(self, sched: Scheduler, limit_pages: int | None) -> None:
        self.sched = sched
        self.limit = limit_pages
        self.mode = UPDATE if limit_pages is None else WRITE
        self.cell = Cell("page allocator")
        self.page_cls: type[Page] = AuditedPage if sched.audit else Page
        self.next_pfn = 1
        self.seq: dict[int, int] = {}
        self.in_use = 0
        self.peak = 0
        self.live: dict[int, Page] = {}
        self.zero_page = Page(0, "zero page")
        self.zero_page.zero = True
        self.zero_page._uptodate = True
        self.zero_page._count = 1 << 30

    def try_new_page(self, tid: int, init: Callable[[Page], None]) -> Page | None:
        """A page for the state layer's own use within a step that announced the allocator (an
        untouched page of a file, made the first time it is looked up), set up by ``init`` before
        anyone can reach it; None over the limit."""
        if self.limit is not None and self.in_use >= self.limit:
            return None
        return self.new_page(tid, init)

    def new_page(self, tid: int, init: Callable[[Page], None] | None = None) -> Page:
        seq = self.seq.get(tid, 0) + 1
        self.seq[tid] = seq
        page = self.page_cls(self.next_pfn, f"page#{'s' if tid < 0 else f't{tid}'}.{seq}")
        if init is not None:
            init(page)
        if self.sched.audit:
            page._audit_sched = self.sched  # type: ignore[attr-defined]
        self.next_pfn += 1
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)
        self.live[page.pfn] = page
        return page

    def alloc_page(self, k: Kernel) -> Page | None:
        """alloc_page(): a new page (refcount 1, zero-filled), or None over the limit."""
        k.sched.point(self.cell, self.mode, "alloc_page")
        if self.limit is not None and self.in_use >= self.limit:
            return None
        return self.new_page(k.tid())

    def freed(self, k: Kernel, page: Page) -> None:
        """The last reference went: back to the allocator (called from put_page's step)."""
        self.in_use -= 1
        self.live.pop(page.pfn, None)
