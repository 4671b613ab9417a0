"""An mm's page tables: PTE slots, the split page-table locks, and the CPU's access through them.

Granularity: one cell per PTE slot (two faults on different pages never depend on each other
through the page table), plus one cell for the *set* of present PTEs.  Installing or clearing a PTE
is a WRITE of its slot and an UPDATE of the set, so installs commute with each other but not with
a scan: ``zap_pte_range`` walking a range READs the set, and an install that lands just after the
walk is a dependent step, as it is in Linux, where both happen under the page-table lock.

The PMD level (DAX PMD faults, 4.10+): where a scenario allows 2 MiB mappings (``pmds``), each
2 MiB range also has a PMD cell.  A PMD is none, a page table (``tables``) or a huge mapping
(``huge``: a 2 MiB pfn range, or the huge zero page).  Making a table, setting or clearing a huge
PMD WRITE the PMD cell; reading the PMD (pmd_none(), pmd_trans_huge()/pmd_devmap()) READs it.
Without ``pmds`` no PMD cell is ever announced, and the page table is what it was before PMDs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from faultlab.kernel.flags import PAGE_SHIFT, PMD_SIZE, PTRS_PER_PTE
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


class HugePmd(NamedTuple):
    """A huge (devmap) PMD: 512 pmem blocks from ``block`` (2 MiB aligned), or the huge zero page
    (``block`` None, ``page`` the zero page); write and dirty bits as a PTE's."""

    page: Page | None
    block: int | None
    write: bool
    dirty: bool

    def pte_at(self, i: int) -> Pte:
        """What the 4 KiB page ``i`` of the range looks like to a load or store: a pfn entry (or
        the zero page) with the PMD's bits."""
        return Pte(self.page, None if self.block is None else self.block + i, self.write, self.dirty)

    def describe(self) -> str:
        target = "huge zero page" if self.block is None else f"pfn(blocks {self.block}-{self.block + PTRS_PER_PTE - 1})"
        return f"PMD {target} {'rw' if self.write else 'ro'}{' dirty' if self.dirty else ''}"


PMD_TABLE = "table"
"""What pmd_read() returns for a PMD that points to a page table."""

PmdVal = HugePmd | str | None


class PageTable:
    """The PTEs of one mm, by virtual address; one split page-table lock per 2 MiB."""

    __slots__ = ("name", "cells", "present", "ptes", "ptls", "tables", "pmds", "pmd_cells", "huge", "pmd_ptl")

    def __init__(self, sched: Scheduler, name: str) -> None:
        self.name = name
        self.cells: CellMap[int] = CellMap(f"{name}.pte")
        self.present = Cell(f"{name}.ptes")
        self.ptes: dict[int, Pte] = new_dict(sched, f"{name} page table", self.cells.__getitem__, self.present)
        self.ptls: dict[int, SpinLock] = {}
        # The page tables that exist (every 2 MiB range that ever had an entry; the model never
        # frees one), part of the ``present`` cell's state.
        self.tables: set[int] = set()
        # The PMD level, used only where 2 MiB mappings are possible (see the module docstring).
        self.pmds = False
        self.pmd_cells: CellMap[int] = CellMap(f"{name}.pmd")
        self.huge: dict[int, HugePmd] = new_dict(sched, f"{name} huge pmds", self.pmd_cells.__getitem__, self.present)
        self.pmd_ptl = SpinLock("&mm->page_table_lock", f"{name}.page_table_lock")

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
        if self.pmds:  # under the PMD lock: "if (likely(pmd_none(*pmd)))" -- a huge PMD is left alone
            k.sched.point(self.present, UPDATE, "__pte_alloc", more=((self.pmd_cells[table], WRITE),))
            if table not in self.huge:
                self.tables.add(table)
            return
        k.sched.point(self.present, UPDATE, "__pte_alloc")
        self.tables.add(table)

    def pmd_none(self, k: Kernel, address: int) -> bool:
        """pmd_none(*pmd): whether no page table (or huge PMD) covers ``address`` yet.  A present
        table stays present (no step); finding none is a read that a racing __pte_alloc() depends
        on."""
        table = address & _PMD_MASK
        if table in self.tables:
            return False
        if self.pmds:
            k.sched.point(self.present, READ, "pmd_none", more=((self.pmd_cells[table], READ),))
            return table not in self.tables and table not in self.huge
        k.sched.point(self.present, READ, "pmd_none")
        return table not in self.tables

    # -- the PMD level (2 MiB mappings) ----------------------------------------------------------------
    def pmd_read(self, k: Kernel, address: int, label: str = "read pmd") -> PmdVal:
        """*pmd: none (None), a page table (PMD_TABLE) or a huge PMD.  A huge PMD set over a table
        (the pmd-pte-collision bug) is what the PMD holds: the table pointer was overwritten."""
        table = address & _PMD_MASK
        if not self.pmds:
            return PMD_TABLE if table in self.tables or not self.pmd_none(k, address) else None
        k.sched.point(self.pmd_cells[table], READ, label, more=((self.present, READ),))
        huge = self.huge.get(table)
        if huge is not None:
            return huge
        return PMD_TABLE if table in self.tables else None

    def set_huge(self, k: Kernel, vma: VmaLike, address: int, pmd: HugePmd, label: str = "set_pmd_at") -> None:
        """set_pmd_at() of a huge PMD, the caller holding the PMD lock; the checks hear of it
        (``pmd_set``), and of the page table it lands on if one is there."""
        table = address & _PMD_MASK
        k.sched.point(self.pmd_cells[table], WRITE, label, more=((self.present, UPDATE),))
        self.huge[table] = pmd
        k.events.emit("pmd_set", mm=vma.mm, vma=vma, addr=table, pmd=pmd, over_table=table in self.tables)

    def clear_huge(self, k: Kernel, address: int, label: str = "pmdp_huge_get_and_clear") -> HugePmd | None:
        """pmdp_huge_get_and_clear(): remove a huge PMD and return what it was."""
        table = address & _PMD_MASK
        k.sched.point(self.pmd_cells[table], WRITE, label, more=((self.present, UPDATE),))
        return self.huge.pop(table, None)

    def huge_in(self, k: Kernel, start: int, end: int) -> list[int]:
        """The huge PMDs (their first address) under [start, end): a walk of the PMD level."""
        if not self.pmds:
            return []
        k.sched.point(self.present, READ, "walk pmds")
        return sorted(t for t in self.huge if t < end and t + PMD_SIZE > start)

    def read(self, k: Kernel, address: int) -> Pte | None:
        """*pte: one read of the entry (pte_none(), pte_same())."""
        k.sched.point(self.cells[address], READ, "read pte")
        return self.ptes.get(address)

    def write(self, k: Kernel, vma: VmaLike, address: int, pte: Pte, label: str = "set_pte_at") -> None:
        """set_pte_at() of an entry's new bits; the checks hear of it (``pte_set``)."""
        k.sched.point(self.cells[address], WRITE, label, more=((self.present, UPDATE), *_pmd_more(self, address)))
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
        if self.pmds:
            return self._cpu_access_pmd(k, address, write, target_cell)
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


    def _cpu_access_pmd(self, k: Kernel, address: int, write: bool, target_cell: TargetCell) -> Pte | None:
        """cpu_access() where the PMD may be huge: the walk reads the PMD first; a huge one maps
        the page directly (a store sets the PMD's dirty bit), else the PTE as usual."""
        table = address & _PMD_MASK
        cell, pcell = self.cells[address], self.pmd_cells[table]
        mode = WRITE if write else READ
        label = "store" if write else "load"
        i = (address - table) >> PAGE_SHIFT
        while True:
            hpeek = dict.get(self.huge, table)
            peek = hpeek.pte_at(i) if hpeek is not None else dict.get(self.ptes, address)
            more: tuple[tuple[Cell, Access], ...] = ((pcell, mode),)
            if peek is not None:
                more = (*more, (target_cell(peek), mode))
            k.sched.point(cell, mode, label, more=more)
            huge = self.huge.get(table)
            if huge is not None:
                pte: Pte | None = huge.pte_at(i)
                if write and not huge.write:
                    return None
                if pte != peek:
                    continue
                if write and not huge.dirty:
                    self.huge[table] = huge._replace(dirty=True)  # the CPU sets D in the PMD
                    pte = Pte(pte.page, pte.block, pte.write, True) if pte is not None else None
                return pte
            pte = self.ptes.get(address)
            if pte is None or (write and not pte.write):
                return None
            if pte == peek:
                if write and not pte.dirty:
                    pte = self.ptes[address] = Pte(pte.page, pte.block, pte.write, True)
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
        k.sched.point(pt.cells[address], WRITE, label, more=((pt.present, UPDATE), *_pmd_more(pt, address)))
        pt.ptes[address] = pte
        pt.tables.add(address & _PMD_MASK)
        k.events.emit("pte_set", mm=mm, vma=vma, addr=address, pte=pte)
        return
    more: tuple[tuple[Cell, Access], ...] = ((pt.present, UPDATE), (mm.rss_cell, UPDATE), (page.maps, UPDATE),
                                             *_pmd_more(pt, address))
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


def _pmd_more(pt: PageTable, address: int) -> tuple[tuple[Cell, Access], ...]:
    """A PTE write also reads the PMD above it (to find its table), where PMDs can be huge."""
    return ((pt.pmd_cells[address & _PMD_MASK], READ),) if pt.pmds else ()


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
