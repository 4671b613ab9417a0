"""The invariants, checked from the model's event stream (and, at the end, from its final state).

Each violation has a stable id; ``INVARIANT_IDS`` lists them in the order a report headlines them
when one schedule breaks several."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faultlab.checks.pmd import PMD_PTE_COLLISION, pmd_over_table, pte_under_huge
from faultlab.kernel.events import Event
from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE, PMD_SIZE, size_in_pages
from faultlab.kernel.locking import SpinLock
from faultlab.kernel.mm import MmStruct, Vma
from faultlab.kernel.snapshot import backing_bytes
from faultlab.kernel.state.inode import Inode
from faultlab.kernel.state.page import Page
from faultlab.kernel.state.pagetable import Pte

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

INVARIANT_IDS = (
    "stale-pte-after-truncate",
    "pte-on-truncated-page",
    "use-after-free",
    "cow-leak",
    "lost-write",
    "durability",
    "torn-metadata",
    "stale-read",
    "cow-accounting",
    "pmd-pte-collision",
    "lock-pairing",
    "lock-order",
    "sleep-in-atomic",
    "refcount",
    "deadlock",
    "expected-outcome",
    "coherence",  # after the scenario's own expectations: it names the same wrong value more generally
    "livelock",
    "design-error",
    "model-error",
)


@dataclass(frozen=True, slots=True)
class Violation:
    id: str
    message: str
    step: int | None


_HANDLER_NAMES: dict[type, tuple[str, ...]] = {}


def _handler_names(cls: type) -> tuple[str, ...]:
    """The ``on_<event kind>`` methods of a checker class, sorted (a run makes a checker: dir() once)."""
    names = _HANDLER_NAMES.get(cls)
    if names is None:
        names = _HANDLER_NAMES[cls] = tuple(n for n in sorted(dir(cls)) if n.startswith("on_") and n != "on_event")
    return names


class InvariantChecker:
    """Subscribes to one Kernel's events; collects violations (each id reported once per run)."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.violations: list[Violation] = []
        self.truncating: dict[Inode, int] = {}
        self.shadow: dict[Inode, dict[int, int]] = {}
        self.deleted: set[Page] = set()  # pages that left a page cache (compared by identity)
        self._seen: set[str] = set()
        self._handlers = {name[3:]: getattr(self, name) for name in _handler_names(type(self))}
        k.events.subscribe(self.on_event, tuple(self._handlers))

    # -- reporting ---------------------------------------------------------------------------------
    def report(self, vid: str, message: str, step: int | None = None) -> None:
        if vid in self._seen:
            return
        self._seen.add(vid)
        if step is None:
            step = max(self.k.sched.nsteps - 1, 0)
        self.violations.append(Violation(vid, message, step))

    def on_event(self, ev: Event) -> None:
        handler = self._handlers.get(ev.kind)
        if handler is not None:
            handler(ev.data)

    # -- truncate and PTEs -------------------------------------------------------------------------
    def on_truncate_begin(self, d: dict[str, Any]) -> None:
        self.truncating[d["inode"]] = self.truncating.get(d["inode"], 0) + 1

    def on_truncate_end(self, d: dict[str, Any]) -> None:
        inode: Inode = d["inode"]
        self.truncating[inode] -= 1
        self.check_no_pte_past_eof(inode, "when truncate returned")

    def check_no_pte_past_eof(self, inode: Inode, when: str) -> None:
        """Every VMA of the file, in its i_mmap or (a fork that copies PTEs before it links the
        child's VMA there) only in an mm's VMA list, maps nothing past EOF."""
        eof_pages = size_in_pages(inode.peek_size())
        vmas = list(inode.mapping.peek_vmas())
        vmas += [v for mm in self.k.all_mms() for v in mm.peek_vmas() if v.file is inode and v not in vmas]
        for vma in vmas:
            for addr, pte in vma.mm.peek_ptes():
                if vma.start <= addr < vma.end and vma.linear_page_index(addr) >= eof_pages:
                    self.report("stale-pte-after-truncate",
                                f"{when}, {addr:#x} (page {vma.linear_page_index(addr)} of {inode.name}, "
                                f"EOF at {inode.peek_size()}) still maps {pte.describe()}")
                    return

    def on_pte_set(self, d: dict[str, Any]) -> None:
        vma: Vma = d["vma"]
        pte: Pte = d["pte"]
        addr: int = d["addr"]
        inode = vma.file
        pgoff = vma.linear_page_index(addr)
        if not self.truncating.get(inode) and pgoff >= size_in_pages(inode.peek_size()):
            self.report("stale-pte-after-truncate",
                        f"{addr:#x} (page {pgoff} of {inode.name}) mapped to {pte.describe()} "
                        f"after truncate to {inode.peek_size()} had finished")
        if pte.page is not None and pte.page._freed:
            self.report("use-after-free", f"PTE {addr:#x} set to freed {pte.page!r}")
        if pte.block is not None and self.k.pmem.is_free(pte.block):
            self.report("use-after-free", f"PTE {addr:#x} set to pmem block {pte.block}, which is free")
        self.check_cow_accounting(vma, pte, addr)
        self.check_stale_hole_mapping(vma, pte, pgoff)
        if (collision := pte_under_huge(d)) is not None:
            self.report(PMD_PTE_COLLISION, collision)
        if pte.page is not None and pte.page in self.deleted and pte.page._mapping is None:
            self.report("pte-on-truncated-page", f"PTE {addr:#x} (page {pgoff} of {inode.name}) set to "
                        f"{pte.page!r}, which is no longer in the page cache")

    def on_pmd_set(self, d: dict[str, Any]) -> None:
        if (collision := pmd_over_table(d)) is not None:
            self.report(PMD_PTE_COLLISION, collision)
        self.check_stale_huge_zero(d["vma"], d["pmd"], d["addr"])

    def check_stale_huge_zero(self, vma: Vma, pmd: Any, table: int) -> None:
        """The PMD form of check_stale_hole_mapping: the huge zero page mapped over a 2 MiB range
        where write(2) has put a block (the 4.12 fix fd96b8da68d3)."""
        inode = vma.file
        if pmd.block is not None or inode is None or not inode.fs.dax:
            return
        first = vma.linear_page_index(table)
        for pgoff in range(first, first + (PMD_SIZE >> PAGE_SHIFT)):
            if inode.peek_extent(pgoff) is not None and self.written_since_hole(inode, pgoff):
                self.report("stale-read", f"the huge zero page mapped at {table:#x} over page {pgoff} of "
                            f"{inode.name}, which write(2) has filled")
                return

    def on_page_cache_delete(self, d: dict[str, Any]) -> None:
        """A page leaves its page cache (truncate, punch hole, invalidation) only once no PTE
        maps it: each deleter unmaps it first under the page lock, which every fault that maps a
        cache page holds (or trylocks, fault-around) while it checks page->mapping."""
        page: Page = d["page"]
        self.deleted.add(page)
        for addr, pte in self.all_ptes():
            if pte.page is page:
                self.report("pte-on-truncated-page", f"{page!r} left the page cache of {d['mapping'].name} "
                            f"(page {d['index']}) while PTE {addr:#x} still maps it")
                return

    def on_punch_end(self, d: dict[str, Any]) -> None:
        """Stores into a punched range are forgotten: it reads as zeros after the punch, or holds
        what a store that raced with it put there."""
        shadow = self.shadow.get(d["inode"])
        if shadow:
            end = d["offset"] + d["length"]
            for off in [o for o in shadow if d["offset"] <= o < end]:
                del shadow[off]

    def check_cow_accounting(self, vma: Vma, pte: Pte, addr: int) -> None:
        page = pte.page
        if page is None or page.zero:
            return
        anon = bool(page._anon)
        if (page.cow or (not vma.shared and pte.write)) and not anon:
            self.report("cow-accounting",
                        f"private PTE {addr:#x} maps the COW copy {page!r} as a file page "
                        "(no anon rmap, counted in MM_FILEPAGES)")
        if vma.shared and anon:
            self.report("cow-accounting", f"shared PTE {addr:#x} maps anonymous {page!r}")

    def check_stale_hole_mapping(self, vma: Vma, pte: Pte, pgoff: int) -> None:
        """A DAX hole page mapped where the file already has a block: a read sees zeros where
        write(2) put data (the 4.12 fix 13e451fdc1af)."""
        inode = vma.file
        page = pte.page
        if not inode.fs.dax or page is None or page._anon or page._mapping is None:
            return
        if inode.peek_extent(pgoff) is not None and self.written_since_hole(inode, pgoff):
            self.report("stale-read",
                        f"hole page {page!r} mapped at page {pgoff} of {inode.name}, which write(2) has filled")

    def written_since_hole(self, inode: Inode, pgoff: int) -> bool:
        shadow = self.shadow.get(inode, {})
        lo = pgoff << PAGE_SHIFT
        return any(lo <= off < lo + PAGE_SIZE for off in shadow)

    def all_ptes(self) -> list[tuple[int, Pte]]:
        return [item for mm in self.k.all_mms() for item in mm.peek_ptes()]

    def on_page_free(self, d: dict[str, Any]) -> None:
        page: Page = d["page"]
        for addr, pte in self.all_ptes():
            if pte.page is page:
                self.report("use-after-free", f"{page!r} freed while PTE {addr:#x} maps it")
                return

    def on_block_free(self, d: dict[str, Any]) -> None:
        start, count = d["block"], d["count"]
        for addr, pte in self.all_ptes():
            if pte.block is not None and start <= pte.block < start + count:
                self.report("use-after-free", f"pmem block {pte.block} freed while PTE {addr:#x} maps it")
                return

    def on_page_access(self, d: dict[str, Any]) -> None:
        if d["page"]._freed:
            self.report("use-after-free", f"access to freed {d['page']!r}")

    def on_block_access(self, d: dict[str, Any]) -> None:
        # Only an access through a PTE counts: the kernel may read a block that truncate has just
        # freed (4.0's COW copies before it re-checks i_size) as long as it throws the copy away,
        # which stale-pte-after-truncate checks.
        if d["user"] and self.k.pmem.is_free(d["block"]):
            self.report("use-after-free", f"a {'store' if d['write'] else 'load'} through a PTE reached free pmem "
                        f"block {d['block']}")

    def on_refcount(self, d: dict[str, Any]) -> None:
        self.report("refcount", f"{d['page']!r} refcount went to {d['count']}")

    # -- stores and what they must (not) reach -----------------------------------------------------
    def on_store_done(self, d: dict[str, Any]) -> None:
        inode: Inode = d["inode"]
        offset: int = d["offset"]
        data: bytes = d["data"]
        if d["kind"] == "private-map":
            pte: Pte = d["pte"]
            if pte.page is None or not pte.page._anon:
                target = "pmem" if pte.page is None else repr(pte.page)
                self.report("cow-leak", f"a store through private mapping {d['vma'].start:#x} reached {target} "
                            f"of {inode.name} at offset {offset}")
            return
        shadow = self.shadow.setdefault(inode, {})
        size = inode.peek_size()
        for i, b in enumerate(data):
            if offset + i < size:
                shadow[offset + i] = b
        if d["kind"] == "write":
            self.check_mappings_current(inode, offset, len(data))

    def check_mappings_current(self, inode: Inode, offset: int, length: int) -> None:
        """After write(2), every non-COWed mapping of the range shows what the file holds."""
        first, last = offset >> PAGE_SHIFT, (offset + length - 1) >> PAGE_SHIFT
        for vma in inode.mapping.peek_vmas():
            for pgoff in range(first, last + 1):
                addr = vma.address_of(pgoff)
                if not vma.start <= addr < vma.end:
                    continue
                pte = dict.get(vma.mm.pt.ptes, addr)
                if pte is None and vma.mm.pt.pmds:
                    self.check_huge_current(inode, vma, pgoff, addr)
                if pte is None or (pte.page is not None and pte.page._anon):
                    continue
                if not self.is_current_backing(inode, pgoff, pte):
                    self.report("stale-read", f"after write(2) to {inode.name} page {pgoff}, {addr:#x} still "
                                f"maps {pte.describe()}")
                    return

    def check_huge_current(self, inode: Inode, vma: Any, pgoff: int, addr: int) -> None:
        """The same for a DAX huge PMD over ``addr``: the huge zero page, or another extent, where
        write(2) has put a block (fd96b8da68d3's race)."""
        table = addr & ~(PMD_SIZE - 1)
        huge = dict.get(vma.mm.pt.huge, table)
        ext = inode.peek_extent(pgoff)
        if huge is None or ext is None:
            return
        if huge.block is None or huge.block + ((addr - table) >> PAGE_SHIFT) != ext.block:
            what = "the huge zero page" if huge.block is None else f"pmem blocks {huge.block}+"
            self.report("stale-read", f"after write(2) to {inode.name} page {pgoff}, the huge PMD {table:#x} still "
                        f"maps {what}")

    def is_current_backing(self, inode: Inode, pgoff: int, pte: Pte) -> bool:
        if inode.fs.dax:
            ext = inode.peek_extent(pgoff)
            return pte.block is not None and ext is not None and ext.block == pte.block
        entry = inode.mapping.peek(pgoff)
        return isinstance(entry, Page) and pte.page is entry

    def on_isize(self, d: dict[str, Any]) -> None:
        inode: Inode = d["inode"]
        new = d["new"]
        shadow = self.shadow.get(inode)
        if shadow and new < d["old"]:
            for off in [o for o in shadow if o >= new]:
                del shadow[off]

    # -- locks ---------------------------------------------------------------------------------------
    def on_lock_bad_release(self, d: dict[str, Any]) -> None:
        self.report("lock-pairing", f"{d['why']}: {d['cls']} ({d['lock'].name}), mode {d['mode']}")

    def on_lock_acquire(self, d: dict[str, Any]) -> None:
        if d["lock"].sleeping and not d["trylock"]:
            for held, _mode in d["held"]:
                if isinstance(held, SpinLock):
                    self.report("sleep-in-atomic",
                                f"sleeping lock {d['cls']} taken while holding spinlock {held.cls} ({held.name})")
                    return

    # -- the end of a run ------------------------------------------------------------------------------
    def finish(self) -> None:
        k = self.k
        blocked = set() if k.sched.deadlock is None else {t.tid for t in k.sched.deadlock.blocked}
        for tid, held in sorted(k.held.items()):
            if held and tid >= 0 and tid not in blocked:
                names = ", ".join(f"{lk.cls} ({lk.name})" for lk, _ in held)
                self.report("lock-pairing", f"thread {k.sched.threads[tid].name} finished holding {names}")
        if k.sched.deadlock is None:
            self.check_rss()
            self.check_refcounts()
        self.check_lost_writes()

    def check_rss(self) -> None:
        for mm in self.k.all_mms():
            self.check_rss_of(mm)

    def check_rss_of(self, mm: MmStruct) -> None:
        pages = [p.page for _a, p in mm.peek_ptes() if p.page is not None and not p.page.zero]
        anon = sum(1 for page in pages if page._anon)
        file = len(pages) - anon
        rss_anon, rss_file = mm.peek_rss()
        if (anon, file) != (rss_anon, rss_file):
            self.report("cow-accounting", f"{mm.name}: rss counters anon={rss_anon} file={rss_file}, "
                        f"but the page table maps {anon} anonymous and {file} file pages")

    def check_refcounts(self) -> None:
        k = self.k
        refs: dict[int, int] = {}
        for _addr, pte in self.all_ptes():
            if pte.page is not None and not pte.page.zero:
                refs[pte.page.pfn] = refs.get(pte.page.pfn, 0) + 1
        for inode in k.inodes.values():
            for _index, entry in inode.mapping.peek_all():
                if isinstance(entry, Page):
                    refs[entry.pfn] = refs.get(entry.pfn, 0) + 1
        for page in k.pinned:  # held by a kernel global
            refs[page.pfn] = refs.get(page.pfn, 0) + 1
        for pfn, page in sorted(k.alloc.live.items()):
            want = refs.get(pfn, 0)
            if page._count != want:
                self.report("refcount", f"{page!r} has refcount {page._count} at the end, but {want} references "
                            "exist (page table entries, page cache and kernel globals)")
                return
            if page.lock.owner is not None:
                self.report("lock-pairing", f"{page!r} is still locked at the end")
                return

    def check_lost_writes(self) -> None:
        k = self.k
        for inode, shadow in sorted(self.shadow.items(), key=lambda kv: kv[0].name):
            cache: dict[int, bytes] = {}
            size = inode.peek_size()
            for off in sorted(shadow):
                if off >= size:
                    continue
                index = off >> PAGE_SHIFT
                if index not in cache:
                    cache[index] = backing_bytes(k, inode, index)
                if cache[index][off & (PAGE_SIZE - 1)] != shadow[off]:
                    self.report("lost-write", f"{inode.name} offset {off} holds "
                                f"{cache[index][off & (PAGE_SIZE - 1)]:#04x}, but a completed store wrote "
                                f"{shadow[off]:#04x} there")
                    return
