"""An mm's page tables: PTE slots, the split page-table locks, and the CPU's access through them.

Granularity: one cell per PTE slot (two faults on different pages never depend on each other
through the page table), plus one cell for the *set* of present PTEs.  Installing or clearing a PTE
is a WRITE of its slot and an UPDATE of the set, so installs commute with each other but not with
a scan: ``zap_pte_range`` walking a range READs the set, and an install that lands just after the
walk is a dependent step, as it is in Linux, where both happen under the page-table lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from faultlab.kernel.flags import PMD_SIZE
from faultlab.kernel.locking import SpinLock
from faultlab.kernel.state.cell import READ, UPDATE, WRITE, Cell, CellMap, new_dict

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.page import Page
    from faultlab.sched.core import Access, Scheduler


_PMD_MASK = ~(PMD_SIZE - 1)


class Pte(NamedTuple):
    """A present page-table entry: a struct page (file, anon, hole or zero page) or, for DAX, a
    special pfn entry naming a pmem block.  Equality is pte_same(): same target, same bits."""

    page: Page | None
    block: int | None  # the pmem block behind a special (pfn) PTE
    write: bool
    dirty: bool

    @property
    def special(self) -> bool:
        return self.page is None

    def describe(self) -> str:
        target = f"pfn(block {self.block})" if self.page is None else repr(self.page)
        return f"{target} {'rw' if self.write else 'ro'}{' dirty' if self.dirty else ''}"


class PageTable:
    """The PTEs of one mm, by virtual address; one split page-table lock per 2 MiB."""

    __slots__ = ("name", "cells", "present", "ptes", "ptls", "tables")

    def __init__(self, sched: Scheduler, name: str) -> None:
        self.name = name
        self.cells: CellMap[int] = CellMap(f"{name}.pte")
        self.present = Cell(f"{name}.ptes")
        self.ptes: dict[int, Pte] = new_dict(sched, f"{name} page table", self.cells.__getitem__, self.present)
        self.ptls: dict[int, SpinLock] = {}
        # The page tables that exist (every 2 MiB range that ever had an entry; the model never
        # frees one), part of the ``present`` cell's state.
        self.tables: set[int] = set()

    def ptl(self, address: int) -> SpinLock:
        """pte_lockptr(): the split lock of the page table covering ``address``."""
        key = address // PMD_SIZE
        lock = self.ptls.get(key)
        if lock is None:
            lock = self.ptls[key] = SpinLock("ptlock", f"{self.name}.ptl[{key:#x}]")
        return lock

    def alloc_table(self, k: Kernel, address: int) -> None:
        """__pte_alloc(): make the page table covering ``address`` if the PMD is none.  Tables
        are never freed in the model, so a table seen present stays present and the unlocked
        pmd_none() test that finds one needs no step; making one is a step that races with the
        PMD walks of zap_pte_range()."""
        table = address & _PMD_MASK
        if table in self.tables:
            return
        k.sched.point(self.present, UPDATE, "__pte_alloc")
        self.tables.add(table)

    def pmd_none(self, k: Kernel, address: int) -> bool:
        """pmd_none(*pmd): whether no page table covers ``address`` yet.  A present table stays
        present (no step); finding none is a read that a racing __pte_alloc() depends on."""
        if address & _PMD_MASK in self.tables:
            return False
        k.sched.point(self.present, READ, "pmd_none")
        return address & _PMD_MASK not in self.tables

    def read(self, k: Kernel, address: int) -> Pte | None:
        """*pte: one read of the entry (pte_none(), pte_same())."""
        k.sched.point(self.cells[address], READ, "read pte")
        return self.ptes.get(address)

    def write(self, k: Kernel, vma: VmaLike, address: int, pte: Pte, label: str = "set_pte_at") -> None:
        """set_pte_at() of an entry's new bits; the checks hear of it (``pte_set``)."""
        k.sched.point(self.cells[address], WRITE, label, more=((self.present, UPDATE),))
        self.ptes[address] = pte
        self.tables.add(address & _PMD_MASK)
        k.events.emit("pte_set", mm=vma.mm, vma=vma, addr=address, pte=pte)

    def clear(self, k: Kernel, address: int) -> Pte | None:
        """ptep_get_and_clear(): remove the entry and return what it was."""
        k.sched.point(self.cells[address], WRITE, "ptep_get_and_clear", more=((self.present, UPDATE),))
        return self.ptes.pop(address, None)

    def scan(self, k: Kernel, start: int, end: int) -> list[int]:
        """The addresses in [start, end) that have a PTE (a walk over the page table, which reads
        that none of the others does)."""
        k.sched.point(self.present, READ, "walk page table")
        return sorted(a for a in self.ptes if start <= a < end)

    def tables_in(self, k: Kernel, start: int, end: int) -> list[int]:
        """The page tables (their first address) that exist under [start, end): a walk of the PMD
        level, which Linux does without the page-table lock."""
        k.sched.point(self.present, READ, "walk pmds")
        return sorted(t for t in self.tables if t < end and t + PMD_SIZE > start)

    def cpu_access(self, k: Kernel, address: int, write: bool, target_cell: TargetCell) -> Pte | None:
        """What the CPU does for one load or store: read the PTE and touch what it maps, in one
        atomic step (the hardware walk and the access; a zap cannot fall between them).

        The step announces the slot and the target the slot held when the thread reached it; if a
        racing step changed the slot before this one ran, the step only read the slot, and the
        access is announced again.  Returns the PTE that allowed the access, or None when there is
        no PTE or a store meets a read-only one (a page fault)."""
        cell = self.cells[address]
        mode = WRITE if write else READ
        label = "store" if write else "load"
        while True:
            peek = dict.get(self.ptes, address)  # the state layer's own look, to name the target
            more = () if peek is None else ((target_cell(peek), mode),)
            k.sched.point(cell, mode, label, more=more)
            pte = self.ptes.get(address)
            if pte is None or (write and not pte.write):
                return None
            if pte == peek:
                if write and not pte.dirty:
                    pte = self.ptes[address] = Pte(pte.page, pte.block, pte.write, True)  # the CPU sets D
                return pte


class TargetCell(Protocol):
    """The cell a present PTE's target lives in (a page's contents, or a pmem block)."""

    def __call__(self, pte: Pte) -> Cell: ...


class MmLike(Protocol):
    """What install_pte/remove_pte need of an mm_struct (the state layer does not import mm.py)."""

    pt: PageTable
    rss_cell: Cell
    _rss_anon: int
    _rss_file: int


class VmaLike(Protocol):
    """What the PTE writers need of a vm_area_struct: its mm (and, for the checks, itself)."""

    @property
    def mm(self) -> MmLike: ...

    @property
    def anon_vma(self) -> bool: ...


def install_pte(k: Kernel, vma: VmaLike, address: int, pte: Pte, anon: bool, label: str) -> None:
    """One step under the page-table lock, as do_set_pte()/alloc_set_pte() is in Linux: count the
    page in the mm's rss, add its reverse mapping (a new anonymous one for a COW page), and write
    the entry.  A pfn entry (no struct page) is written alone.  Every new entry is reported to
    the checks (``pte_set``): a design cannot install one they do not see."""
    mm = vma.mm
    pt = mm.pt
    page = pte.page
    if page is None or page.zero:
        k.sched.point(pt.cells[address], WRITE, label, more=((pt.present, UPDATE),))
        pt.ptes[address] = pte
        pt.tables.add(address & _PMD_MASK)
        k.events.emit("pte_set", mm=mm, vma=vma, addr=address, pte=pte)
        return
    more: tuple[tuple[Cell, Access], ...] = ((pt.present, UPDATE), (mm.rss_cell, UPDATE), (page.maps, UPDATE))
    if anon:
        more = (*more, (page.anon, WRITE))
    k.sched.point(pt.cells[address], WRITE, label, more=more)
    if anon:
        mm._rss_anon += 1
        page._anon = True
        page._anon_exclusive = True  # page_add_new_anon_rmap() (5.19+ also SetPageAnonExclusive)
        if not vma.anon_vma:
            object.__setattr__(vma, "anon_vma", True)  # the anon_vma_prepare() of the fault
    else:
        mm._rss_file += 1
    page._mapcount += 1
    pt.ptes[address] = pte
    pt.tables.add(address & _PMD_MASK)
    k.events.emit("pte_set", mm=mm, vma=vma, addr=address, pte=pte)


def remove_pte(k: Kernel, mm: MmLike, address: int, pte: Pte, label: str = "zap pte") -> bool:
    """Clear the entry, known to be ``pte`` (read under the page-table lock just before), and undo
    its rss count and reverse mapping, in one step (zap_pte_range's body for one entry).  Returns
    whether the page was anonymous (PageAnon)."""
    pt = mm.pt
    page = pte.page
    if page is None or page.zero:
        k.sched.point(pt.cells[address], WRITE, label, more=((pt.present, UPDATE),))
        pt.ptes.pop(address, None)
        return False
    k.sched.point(pt.cells[address], WRITE, label,
                  more=((pt.present, UPDATE), (mm.rss_cell, UPDATE), (page.maps, UPDATE), (page.anon, READ)))
    pt.ptes.pop(address, None)
    anon = page._anon
    if anon:
        mm._rss_anon -= 1
    else:
        mm._rss_file -= 1
    page._mapcount -= 1
    return anon


def replace_pte(k: Kernel, vma: VmaLike, address: int, old: Pte, new: Pte) -> None:
    """wp_page_copy()'s switch, one step under the page-table lock: the new anonymous page gains
    its reverse mapping, the old page (if a struct page: not a pfn, not the zero page) loses its
    own, and the rss counters follow (a file page's count moves to anon)."""
    mm = vma.mm
    pt = mm.pt
    page = new.page
    assert page is not None
    more: tuple[tuple[Cell, Access], ...] = (
        (pt.present, UPDATE), (mm.rss_cell, UPDATE), (page.maps, UPDATE), (page.anon, WRITE))
    was = old.page if old.page is not None and not old.page.zero else None
    if was is not None:
        more = (*more, (was.maps, UPDATE), (was.anon, READ))
    k.sched.point(pt.cells[address], WRITE, "wp_page_copy: set_pte_at", more=more)
    if was is None:
        mm._rss_anon += 1
    elif not was._anon:
        mm._rss_file -= 1
        mm._rss_anon += 1
    if was is not None:
        was._mapcount -= 1
    page._anon = True
    page._anon_exclusive = True
    page._mapcount += 1
    if not vma.anon_vma:
        object.__setattr__(vma, "anon_vma", True)
    pt.ptes[address] = new
    k.events.emit("pte_set", mm=mm, vma=vma, addr=address, pte=new)
