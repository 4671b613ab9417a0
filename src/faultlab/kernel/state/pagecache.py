"""struct address_space: the page-cache tree (pages and DAX entries), its dirty tags, i_mmap, and
the file's untouched initial pages.

Granularity: one cell per tree index; one cell for the set of occupied indices (a walk READs it,
an insertion or deletion UPDATEs it, so insertions at different indices commute); one cell for the
set of DIRTY-tagged indices (tagging is an UPDATE of it and a WRITE of the index); one cell for
the *initial* watermark: indices below it that were never touched still hold the file's initial
contents, a page being made for them the first time they are looked up.  That materialisation is
not a change of the file's state (the page was, in effect, already cached), so a lookup READs the
watermark and the slot; truncate lowering the watermark WRITEs it.

A DAX mapping whose extents are 2 MiB aligned (``huge``) may hold PMD entries (4.10+: one
multi-order entry for 512 indices), stored at the range's first index.  There, every access to an
index also touches the cell of its range's first index, with the same access, and finds the PMD
entry if one covers the index: so a PTE-sized look-up depends on a PMD entry coming or going, and
a PMD entry's insertion on every entry in its range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from faultlab.kernel.flags import PTRS_PER_PTE as PMD_PAGES
from faultlab.kernel.locking import Lock, SpinLock
from faultlab.kernel.state.cell import READ, UPDATE, WRITE, Cell, CellMap, audited_subclass, new_dict, new_set
from faultlab.kernel.state.page import Page
from faultlab.sched import WaitQueue

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.mm import Vma
    from faultlab.kernel.state.inode import Inode
    from faultlab.sched.core import Access, Accesses, Scheduler


class DaxEntry(NamedTuple):
    """A DAX exceptional radix-tree entry (4.7+): a pmem block, or empty; with the lock bit.
    ``zero``: a DAX_ZERO_PAGE entry (4.17+: a hole mapped to the zero page, no block)."""

    block: int | None
    locked: bool = False
    zero: bool = False
    pmd: bool = False  # RADIX_DAX_PMD / DAX_PMD: covers the 512 indices from its (aligned) index

    @property
    def empty(self) -> bool:
        return self.block is None and not self.zero


Entry = Page | DaxEntry


class AddressSpace:
    """struct address_space."""

    __slots__ = (
        "host", "name", "cells", "members", "dirty", "initial_cell", "i_mmap_cell", "pages", "tags",
        "_initial", "_i_mmap", "i_mmap_rwsem", "tree_lock", "invalidate_lock", "waitqueues",
        "entry_locks", "materialise", "_punched", "huge",
    )

    def __init__(self, sched: Scheduler, host: Inode, i_mmap_lock: Lock, initial: int,
                 materialise: Callable[[AddressSpace, int], Page | None]) -> None:
        name = host.name
        self.host = host
        self.name = name
        self.cells: CellMap[int] = CellMap(f"{name}.i_pages")
        self.members = Cell(f"{name}.i_pages")
        self.dirty = Cell(f"{name}.dirty-tags")
        self.initial_cell = Cell(f"{name}.initial-pages")
        self.i_mmap_cell = Cell(f"{name}.i_mmap")
        self.pages: dict[int, Entry] = new_dict(sched, f"{name} page cache", self.cells.__getitem__, self.members)
        self.tags: set[int] = new_set(sched, f"{name} dirty tags", self.cells.__getitem__, self.dirty)
        self._initial = initial
        self._punched: frozenset[int] = frozenset()  # initial pages whose blocks a punch freed
        self._i_mmap: tuple[Vma, ...] = ()
        self.i_mmap_rwsem = i_mmap_lock
        self.tree_lock = SpinLock("&mapping->tree_lock", f"{name}.tree_lock")
        self.invalidate_lock = _new_rwsem("&mapping->invalidate_lock", f"{name}.invalidate_lock")
        self.waitqueues: dict[int, WaitQueue] = {}
        self.entry_locks: dict[int, Lock] = {}
        self.materialise = materialise
        self.huge = False  # PMD entries possible (see the module docstring)

    def __repr__(self) -> str:
        return f"mapping({self.name})"

    # -- PMD entries ---------------------------------------------------------------------------
    def _range(self, index: int, access: Access) -> Accesses:
        """Where PMD entries are possible: the cell of the first index of ``index``'s 2 MiB range."""
        if not self.huge:
            return ()
        first = index & ~(PMD_PAGES - 1)
        return () if first == index else ((self.cells[first], access),)

    def entry_index(self, index: int) -> int:
        """The index the entry for ``index`` lives at: the first of its range if a PMD entry covers
        it.  For a step that announced :meth:`_range` (or the caller holds tree_lock)."""
        if self.huge:
            first = index & ~(PMD_PAGES - 1)
            entry = dict.get(self.pages, first)
            if isinstance(entry, DaxEntry) and entry.pmd:
                return first
        return index

    def insert_pmd(self, k: Kernel, index: int, entry: DaxEntry, label: str, more: Accesses = ()) -> bool:
        """__radix_tree_insert() of a PMD entry at ``index`` (2 MiB aligned): fails (-EEXIST) if
        any index of the range holds an entry.  Every access to an index of the range WRITEs or
        READs this index's cell too, so the occupancy read here needs no cell of its own."""
        k.sched.point(self.cells[index], WRITE, label, more=(*more, (self.members, UPDATE)))
        if any(dict.__contains__(self.pages, i) for i in range(index, index + PMD_PAGES)):
            return False
        self.pages[index] = entry
        return True

    # -- the tree --------------------------------------------------------------------------------
    def lookup(self, k: Kernel, index: int, label: str = "find_get_entry",
               more: Accesses = ()) -> Entry | None:
        """radix_tree_lookup(): the page or DAX entry at ``index``, if any.  ``more``: further
        objects the caller touches in the same step (the wait queue it may go on to join)."""
        more = (*more, (self.initial_cell, READ), *self._range(index, READ))
        if self.peek_is_initial(index):  # may make the page: the allocator is touched too
            more = (*more, (k.alloc.cell, k.alloc.mode))
        k.sched.point(self.cells[index], READ, label, more=more)
        index = self.entry_index(index)
        entry = self.pages.get(index)
        if entry is None and index < self._initial and index not in self._punched:
            entry = self.materialise(self, index)  # None: no memory for it now
            if entry is not None:
                dict.__setitem__(self.pages, index, entry)  # not a change of state: see the module docstring
        return entry

    def lookup_get(self, k: Kernel, index: int, label: str = "find_get_entry") -> Entry | None:
        """The RCU look-up of find_get_entry() and filemap_map_pages(): the entry at ``index`` and,
        if it is a page, a reference to it, in one step.  Linux reads the slot, takes the
        reference unless the count is zero (page_cache_get_speculative) and reads the slot again
        ("Has the page moved?"), going round again when either fails: what another thread does in
        between can only send it round.  In one step the tree's own reference guarantees the count
        is not zero, so the reference is an UPDATE like get_page(): it commutes with every put,
        none of which can be the last while the page is in the tree.  (tests/test_lookup_get.py
        explores Linux's three steps against this one.)  The step announces the page it sees in
        the slot; if another thread changed the slot before the step ran, the step only read the
        slot, and is announced again.
        """
        while True:
            seen = dict.get(self.pages, index)
            more: Accesses = ((self.initial_cell, READ),)
            if isinstance(seen, Page):
                more = (*more, (seen.ref, UPDATE))
            if self.peek_is_initial(index):
                more = (*more, (k.alloc.cell, k.alloc.mode))
            k.sched.point(self.cells[index], READ, label, more=(*more, *self._range(index, READ)))
            entry = self.pages.get(self.entry_index(index))  # a PMD entry covering ``index`` (4.10+)
            if entry is None and index < self._initial and index not in self._punched:
                made = self.materialise(self, index)  # None: no memory for it now
                if made is None:
                    return None
                dict.__setitem__(self.pages, index, made)
                k.sched.exempt += 1  # made in this step: no one else can reach it, its count is ours
                made._count += 1
                k.sched.exempt -= 1
                return made
            if not isinstance(entry, Page):
                return entry
            if entry is seen:
                entry._count += 1
                return entry

    def insert(self, k: Kernel, index: int, entry: Entry, label: str = "page_cache_tree_insert",
               more: Accesses = (),
               replaces: Callable[[Entry], bool] | None = None) -> tuple[bool, Entry | None]:
        """Insert ``entry`` at ``index`` if it is empty, or if ``replaces(occupant)`` says the
        occupant may be replaced (an untouched initial page counts as an occupant).  Returns
        (inserted, what was there).  ``more``: further objects the caller touches in the same step
        (a new page's lock bit)."""
        more = (*more, (self.members, UPDATE), (self.initial_cell, READ), *self._range(index, WRITE))
        if self.peek_is_initial(index):
            more = (*more, (k.alloc.cell, k.alloc.mode))
        k.sched.point(self.cells[index], WRITE, label, more=more)
        index = self.entry_index(index)
        old = self.pages.get(index)
        if old is None and index < self._initial and index not in self._punched:
            old = self.materialise(self, index)
            if old is None:  # the file's page is there, but there is no memory to hold it
                return False, None
            dict.__setitem__(self.pages, index, old)
        if old is not None and (replaces is None or not replaces(old)):
            return False, old
        self.pages[index] = entry
        return True, old

    def modify(self, k: Kernel, index: int, change: Callable[[Entry | None], Entry | None], label: str,
               more: Accesses = ()) -> tuple[Entry | None, Entry | None]:
        """Read the entry at ``index`` and replace it by ``change(entry)`` in one step (what
        tree_lock makes atomic: lock_slot(), unlock_slot()); returns (old, new)."""
        k.sched.point(self.cells[index], WRITE, label, more=(*more, *self._range(index, WRITE)))
        index = self.entry_index(index)
        old = self.pages.get(index)
        new = change(old)
        if new is not old and new is not None:
            self.pages[index] = new
        return old, new

    def tagged(self, k: Kernel, index: int) -> bool:
        """radix_tree_tag_get(DIRTY) for one index."""
        k.sched.point(self.cells[index], READ, "radix_tree_tag_get DIRTY", more=self._range(index, READ))
        return self.entry_index(index) in self.tags

    def replace(self, k: Kernel, index: int, entry: Entry, label: str = "radix_tree_replace_slot") -> Entry | None:
        """Put ``entry`` at ``index`` whatever is there; returns what was."""
        k.sched.point(self.cells[index], WRITE, label, more=((self.members, UPDATE), *self._range(index, WRITE)))
        index = self.entry_index(index)
        old = self.pages.get(index)
        self.pages[index] = entry
        return old

    def delete(self, k: Kernel, index: int, expect: Entry | None = None, label: str = "radix_tree_delete") -> bool:
        """Remove the entry at ``index`` (only if it is ``expect``, when given), and its tags."""
        k.sched.point(self.cells[index], WRITE, label,
                      more=((self.members, UPDATE), (self.dirty, UPDATE), *self._range(index, WRITE)))
        index = self.entry_index(index)
        old = self.pages.get(index)
        if old is None or (expect is not None and old is not expect and old != expect):
            return False
        del self.pages[index]
        if index in self.tags:
            self.tags.discard(index)
        return True

    def scan(self, k: Kernel, start: int, end: int | None = None, label: str = "pagevec_lookup") -> list[int]:
        """The cached indices in [start, end] (end None: to the end), in order; untouched initial
        pages are not listed (see :meth:`drop_initial`)."""
        k.sched.point(self.members, READ, label)
        found = sorted(i for i in self.pages if i >= start and (end is None or i <= end))
        first = start & ~(PMD_PAGES - 1)
        if self.huge and first != start and start not in found:
            # A look-up from inside a PMD entry's 2 MiB finds the multi-order entry (4.10's
            # radix_tree_next_chunk, 6.1's xas_find): listed at ``start``, where truncate deletes it.
            entry = dict.get(self.pages, first)
            if isinstance(entry, DaxEntry) and entry.pmd:
                found.insert(0, start)
        return found

    def initial_pages(self, k: Kernel) -> int:
        k.sched.point(self.initial_cell, READ, "initial pages")
        return self._initial

    def drop_initial(self, k: Kernel, start: int) -> None:
        """The untouched initial pages at and past ``start`` leave the cache (and the disk)."""
        if _RAW_INITIAL.__get__(self) <= start:
            return  # none there; and the watermark only ever goes down, so none will be
        k.sched.point(self.initial_cell, WRITE, "drop untouched pages", more=((self.members, UPDATE),))
        if start < self._initial:
            self._initial = start

    def punch_initial(self, k: Kernel, first: int, last: int) -> None:
        """The untouched initial pages in [first, last] leave the cache and the disk (a hole
        punch frees their blocks): a later look-up finds a hole there."""
        initial = _RAW_INITIAL.__get__(self)
        punched = _RAW_PUNCHED.__get__(self)
        gone = frozenset(range(first, min(last + 1, initial))) - punched
        if not gone:
            return
        k.sched.point(self.initial_cell, WRITE, "free punched blocks", more=((self.members, UPDATE),))
        self._punched = self._punched | gone

    # -- DIRTY tags ------------------------------------------------------------------------------
    def tag_dirty(self, k: Kernel, index: int) -> None:
        k.sched.point(self.cells[index], WRITE, "radix_tree_tag_set DIRTY",
                      more=((self.dirty, UPDATE), *self._range(index, WRITE)))
        self.tags.add(self.entry_index(index))

    def clear_dirty(self, k: Kernel, index: int) -> None:
        k.sched.point(self.cells[index], WRITE, "radix_tree_tag_clear DIRTY",
                      more=((self.dirty, UPDATE), *self._range(index, WRITE)))
        self.tags.discard(self.entry_index(index))

    def tagged_dirty(self, k: Kernel) -> list[int]:
        """The DIRTY-tagged indices, in order (tag_pages_for_writeback / a tagged lookup)."""
        k.sched.point(self.dirty, READ, "tagged lookup DIRTY")
        return sorted(self.tags)

    # -- i_mmap ------------------------------------------------------------------------------------
    def vmas(self, k: Kernel) -> tuple[Vma, ...]:
        """vma_interval_tree_foreach(): the VMAs mapping this file (under the i_mmap lock)."""
        k.sched.point(self.i_mmap_cell, READ, "walk i_mmap")
        return self._i_mmap

    def vma_link(self, k: Kernel, vma: Vma) -> None:
        k.sched.point(self.i_mmap_cell, WRITE, "vma_interval_tree_insert")
        self._i_mmap = (*self._i_mmap, vma)

    def vma_unlink(self, k: Kernel, vma: Vma) -> None:
        k.sched.point(self.i_mmap_cell, WRITE, "vma_interval_tree_remove")
        self._i_mmap = tuple(v for v in self._i_mmap if v is not vma)

    # -- wait queues -------------------------------------------------------------------------------
    def waitqueue(self, index: int) -> WaitQueue:
        """dax_entry_waitqueue(): the wait queue for (mapping, index)."""
        wq = self.waitqueues.get(index)
        if wq is None:
            wq = self.waitqueues[index] = WaitQueue(f"{self.name}[{index}]")
        return wq

    # -- for checks and reports, once a run is over or from an event --------------------------------
    def peek(self, index: int) -> Entry | None:
        """The slot's entry, outside any step.  Model code may use it only to decide what its next
        step announces, holding the lock that guards the slot (see get_unlocked_mapping_entry)."""
        return dict.get(self.pages, index)

    def peek_all(self) -> list[tuple[int, Entry]]:
        return sorted(dict.items(self.pages), key=lambda kv: kv[0])

    def peek_vmas(self) -> tuple[Vma, ...]:
        return _RAW_I_MMAP.__get__(self)

    def peek_initial(self) -> int:
        return _RAW_INITIAL.__get__(self)

    def peek_is_initial(self, index: int) -> bool:
        """Whether a look-up of ``index`` would make the page from the file's initial contents."""
        return index < _RAW_INITIAL.__get__(self) and index not in _RAW_PUNCHED.__get__(self)


def _new_rwsem(cls: str, name: str) -> Lock:
    from faultlab.kernel.locking import RWSem

    return RWSem(cls, name)


_RAW_INITIAL = AddressSpace.__dict__["_initial"]
_RAW_I_MMAP = AddressSpace.__dict__["_i_mmap"]
_RAW_PUNCHED = AddressSpace.__dict__["_punched"]

AuditedAddressSpace = audited_subclass(
    AddressSpace,
    {"_initial": lambda m: m.initial_cell, "_punched": lambda m: m.initial_cell, "_i_mmap": lambda m: m.i_mmap_cell},
)
