"""struct page, the page allocator with a memcg-like limit, and the shared zero page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.flags import PAGE_SIZE
from faultlab.kernel.locking import BitLock
from faultlab.sched import Access

if TYPE_CHECKING:
    from faultlab.kernel.fs import AddressSpace
    from faultlab.kernel.kernel import Kernel


class Page:
    """struct page: refcount (_count), mapcount, PG_locked, PG_uptodate, PG_dirty, PG_hwpoison,
    PageAnon, ->mapping and ->index.  Contents are allocated on first write (sparse)."""

    __slots__ = (
        "pfn", "count", "mapcount", "lock", "uptodate", "dirty", "hwpoison", "anon",
        "mapping", "index", "data", "freed", "zero", "cow", "label",
    )

    def __init__(self, pfn: int) -> None:
        self.pfn = pfn
        self.count = 1
        self.mapcount = 0
        self.lock = BitLock("page lock", f"page#{pfn}")
        self.uptodate = False
        self.dirty = False
        self.hwpoison = False
        self.anon = False
        self.mapping: AddressSpace | None = None
        self.index = 0
        self.data: bytearray | None = None
        self.freed = False
        self.zero = False
        self.cow = False  # allocated by a COW fault to receive the copy
        self.label = ""  # what a special page is, for reports (e.g. XIP's sparse page)

    def __repr__(self) -> str:
        if self.label:
            return f"page#{self.pfn}({self.label})"
        what = "zero" if self.zero else ("anon" if self.anon else ("cow" if self.cow else f"idx{self.index}"))
        return f"page#{self.pfn}({what})"

    # -- contents ---------------------------------------------------------------------------------
    def read(self, off: int, n: int) -> bytes:
        if self.data is None:
            return bytes(n)
        return bytes(self.data[off : off + n])

    def write(self, off: int, data: bytes) -> None:
        if self.data is None:
            if not any(data):
                return
            self.data = bytearray(PAGE_SIZE)
        self.data[off : off + len(data)] = data

    def zero_range(self, start: int, end: int) -> None:
        if self.data is not None:
            self.data[start:end] = bytes(end - start)

    def copy_from(self, src: bytes | None) -> None:
        self.data = None if src is None or not any(src) else bytearray(src)

    def contents(self) -> bytes | None:
        return None if self.data is None else bytes(self.data)


def lock_page(k: Kernel, page: Page) -> None:
    """lock_page(): sleep until PG_locked is clear, then set it (include/linux/pagemap.h)."""
    lk = page.lock
    k.sched.point(lk, Access.WRITE, f"lock_page({page!r})", ready=lambda: lk.owner is None)
    lk.owner = k.tid()
    k.lock_acquired(lk, "W")


def trylock_page(k: Kernel, page: Page) -> bool:
    lk = page.lock
    k.sched.point(lk, Access.WRITE, f"trylock_page({page!r})")
    if lk.owner is not None:
        return False
    lk.owner = k.tid()
    k.lock_acquired(lk, "W", trylock=True)
    return True


def unlock_page(k: Kernel, page: Page) -> None:
    lk = page.lock
    k.sched.point(lk, Access.WRITE, f"unlock_page({page!r})")
    if lk.owner != k.tid():
        k.lock_bad_release(lk, "W", "unlock_page of a page this thread has not locked")
        return
    lk.owner = None
    k.lock_released(lk, "W")


class PageAllocator:
    """alloc_page() with a limit in pages, like a memory cgroup's; failure means VM_FAULT_OOM."""

    def __init__(self, limit_pages: int | None) -> None:
        self.limit = limit_pages
        self.next_pfn = 1
        self.in_use = 0
        self.peak = 0
        self.live: dict[int, Page] = {}
        self.zero_page = Page(0)
        self.zero_page.zero = True
        self.zero_page.uptodate = True
        self.zero_page.count = 1 << 30

    def alloc_page(self, k: Kernel) -> Page | None:
        if self.limit is not None and self.in_use >= self.limit:
            return None
        page = Page(self.next_pfn)
        self.next_pfn += 1
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)
        self.live[page.pfn] = page
        return page

    def get_page(self, page: Page) -> None:
        page.count += 1

    def put_page(self, k: Kernel, page: Page) -> None:
        """put_page(): drop a reference; the last one frees the page."""
        if page.zero:
            return
        page.count -= 1
        if page.count < 0:
            k.events.emit("refcount", page=page, count=page.count)
        if page.count == 0:
            page.freed = True
            self.in_use -= 1
            self.live.pop(page.pfn, None)
            k.events.emit("page_free", page=page)
