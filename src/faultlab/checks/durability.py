"""What a crash may leave on persistent memory, checked against what fsync and msync promised.

A crash (the ``crash`` op, or ``explore --crash`` after every step) keeps each pmem cache line
that is not yet durable at its media value, at a value in flight, or (dirty) at its current value,
independently of the others (faultlab.kernel.state.cachelines).  Two invariants are checked over
every such image, one line choice at a time -- exact, since both are per byte:

- ``durability``: once an fsync or msync of a file has returned, every store through a shared
  mapping and every write(2) to the file that completed before the sync began is durable: after
  the crash each such byte below EOF holds what the last of them wrote, or what a store not
  covered by the sync wrote.  Likewise once a ``persist`` of a range of a MAP_SYNC mapping has
  returned, for the stores through that mapping into the range;
- ``torn-metadata``: a block the file's block map reaches holds, after the crash, a line that was
  never zeroed or written durably since the block was allocated (stale data of a freed block).

Only DAX files are checked.  The file a crash leaves has the block map and i_size of its last
commit (faultlab.kernel.state.journal): a covered byte on a block allocated after that commit, or
past the committed i_size, is lost (``durability``).  ``torn-metadata`` looks at the current map:
a background commit may have made any block reachable.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faultlab.kernel.events import Event
from faultlab.kernel.flags import PAGE_SHIFT, VM_SYNC, size_in_pages
from faultlab.kernel.state.cachelines import LINE, LINES_PER_BLOCK

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode

STATS = {"crash_points": 0, "line_choices": 0}
"""Crash points checked and line choices tried, in this process (read by bench/crash_cost.py)."""


@dataclass(slots=True)
class Store:
    offset: int
    data: bytes
    done: int | None  # sequence number at completion (None: its write(2) has not returned)
    vma: Any = None  # the mapping a store went through (None: write(2))


@dataclass(slots=True)
class Guard:
    begin: int  # stores completed before this sequence number are covered
    step: int  # the step at which the sync returned
    what: str
    vma: Any = None  # a persist: only stores through this MAP_SYNC mapping ...
    lo: int = 0  # ... into file offsets [lo, hi)
    hi: int = 0

    def covers(self, st: Store, off: int) -> bool:
        if st.done is None or st.done >= self.begin:
            return False
        return self.vma is None or (st.vma is self.vma and self.lo <= off < self.hi)

Need = tuple[int, frozenset[int], int, Guard]
"""Per covered byte: what the last covered store wrote, what stores not covered wrote, the covered
store's sequence number, and the guard that covers it."""


class DurabilityChecker:
    """Follows the stores and syncs of one run; :meth:`crash` checks a crash at the current point
    and returns the violations as (id, message)."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.seq = 0
        self.stores: dict[Inode, list[Store]] = {}
        self.open_writes: dict[int, list[Store]] = {}
        self.syncing: dict[int, tuple[Inode, int, str]] = {}
        self.guards: dict[Inode, Guard] = {}
        # persist on a MAP_SYNC mapping: the guards it left, and the ones under way per thread
        self.persists: dict[Inode, list[Guard]] = {}
        self.persisting: dict[int, Guard] = {}
        k.events.subscribe(self.on_event, ("store_done", "syscall_exit", "sync_begin", "sync_end", "isize",
                                           "persist_begin", "persist_end"))

    # -- following the run ----------------------------------------------------------------------------
    def on_event(self, ev: Event) -> None:
        d = ev.data
        if ev.kind == "store_done":
            self.on_store(ev.tid, d)
        elif ev.kind == "syscall_exit":
            for st in self.open_writes.pop(ev.tid, []):
                self.seq += 1
                st.done = self.seq
        elif ev.kind == "sync_begin":
            self.syncing[ev.tid] = (d["inode"], self.seq + 1, d["what"])
        elif ev.kind == "sync_end":
            inode, begin, what = self.syncing.pop(ev.tid)
            old = self.guards.get(inode)
            if d["ok"] and (old is None or old.begin <= begin):
                self.guards[inode] = Guard(begin, ev.step, what)
        elif ev.kind == "persist_begin":
            vma = d["vma"]
            if vma.file.fs.dax and vma.flags & VM_SYNC:
                lo = (vma.pgoff << PAGE_SHIFT) + d["offset"]
                self.persisting[ev.tid] = Guard(self.seq + 1, 0, "persist", vma, lo, lo + d["length"])
        elif ev.kind == "persist_end":
            guard = self.persisting.pop(ev.tid, None)
            if guard is not None:
                guard.step = ev.step
                self.persists.setdefault(guard.vma.file, []).append(guard)
        elif ev.kind == "isize" and d["new"] < d["old"]:
            for st in self.stores.get(d["inode"], ()):
                if st.offset + len(st.data) > d["new"]:
                    st.data = st.data[: max(d["new"] - st.offset, 0)]

    def on_store(self, tid: int, d: dict[str, Any]) -> None:
        inode: Inode = d["inode"]
        if d["kind"] == "private-map" or not inode.fs.dax:
            return
        st = Store(d["offset"], bytes(d["data"]), None, d.get("vma"))
        self.stores.setdefault(inode, []).append(st)
        if d["kind"] == "write":
            self.open_writes.setdefault(tid, []).append(st)
        else:
            self.seq += 1
            st.done = self.seq

    # -- a crash here ------------------------------------------------------------------------------------
    def crash(self, where: str) -> list[tuple[str, str]]:
        """Check every durable image a crash at this point can leave (``where`` names the point)."""
        STATS["crash_points"] += 1
        found: dict[str, str] = {}
        lines = self.k.pmem.lines
        if not lines.pending and not lines.stale_blocks and not self.guards and not self.persists:
            return []
        hot = lines.pending.keys() | lines.stale_blocks  # the blocks check_block looks at
        for inode in sorted(self.k.inodes.values(), key=lambda i: i.name):
            if not inode.fs.dax:
                continue
            size = inode.peek_size()
            required = {off: need for off, need in self.required(inode).items() if off < size}
            if required and "durability" not in found:
                self.check_committed(inode, required, where, found)
            for index in _pages_maybe_on(inode, hot, size_in_pages(size)):
                ext = inode.peek_extent(index)
                if ext is None or ext.unwritten or ext.block not in hot:
                    continue
                self.check_block(inode, index, ext.block, required, where, found)
        return sorted(found.items())

    def required(self, inode: Inode) -> dict[int, Need]:
        """Per covered byte offset: what it must hold after a crash (see :data:`Need`).  A store is
        covered by the file's last fsync/msync if it completed before that began, and by a persist
        of a MAP_SYNC mapping if it went through that mapping into the persisted range and
        completed before the persist began."""
        guards = ([self.guards[inode]] if inode in self.guards else []) + self.persists.get(inode, [])
        if not guards:
            return {}
        last: dict[int, tuple[int, int, Guard]] = {}
        later: dict[int, set[int]] = {}
        for st in self.stores.get(inode, ()):
            for i, b in enumerate(st.data):
                off = st.offset + i
                guard = next((g for g in guards if g.covers(st, off)), None)
                if guard is not None:
                    assert st.done is not None
                    if off not in last or last[off][1] < st.done:
                        last[off] = (b, st.done, guard)
                else:
                    later.setdefault(off, set()).add(b)
        return {off: (b, frozenset(later.get(off, ())), seq, g) for off, (b, seq, g) in last.items()}

    def check_committed(self, inode: Inode, required: dict[int, Need], where: str,
                        found: dict[str, str]) -> None:
        """A covered byte on a block the journal has not committed (allocated after the file's last
        commit), or past the committed i_size, is not in the file after the crash: it reads as a
        hole's zero, or not at all."""
        journal = self.k.journal
        csize = journal.committed_size(inode)
        for off in sorted(required):
            want, later, _seq, guard = required[off]
            index = off >> PAGE_SHIFT
            ext = inode.peek_extent(index)
            if ext is None:  # no block now (punched): what the crash keeps of it is not modelled
                continue
            committed = journal.committed_extent(inode, index)
            if off >= csize:
                how = f"past the committed i_size {csize}"
            elif committed is None:
                if want == 0 or 0 in later:
                    continue
                how = f"its block is not in the committed block map (page {index} is a hole after the crash)"
            else:
                continue
            line = (off & ((1 << PAGE_SHIFT) - 1)) // LINE
            found["durability"] = self.lost(guard, inode, ext.block, line, off, 0, want, where, how)
            return

    def check_block(self, inode: Inode, index: int, block: int, required: dict[int, Need],
                    where: str, found: dict[str, str]) -> None:
        lines = self.k.pmem.lines
        pending = lines.pending_lines(block)
        stale = block in lines.stale_blocks
        if not pending and not stale:
            return
        visible = self.k.pmem.peek(block)
        for line in (range(LINES_PER_BLOCK) if stale else pending):
            st = lines.state(block, line)
            cur = visible[line * LINE : (line + 1) * LINE]
            if st is None or not st.pending():
                if not lines.durable_ok(block, line) and "torn-metadata" not in found:
                    found["torn-metadata"] = self.torn(inode, index, block, line, where, "never zeroed or written")
                continue
            choices: list[tuple[str, bytes, bool]] = [
                ("lost (media keeps its old value)", st.media or cur, st.media_ok)]
            for tid, (value, ok) in sorted(st.inflight.items()):
                choices.append((f"flushed by {self.thread(tid)} but not fenced", value, ok))
            if st.dirty:
                choices.append(("evicted from the cache", cur, st.visible_ok))
            STATS["line_choices"] += len(choices)
            base = (index << PAGE_SHIFT) + line * LINE
            for how, value, ok in choices:
                if not ok and "torn-metadata" not in found:
                    found["torn-metadata"] = self.torn(inode, index, block, line, where, how)
                if "durability" in found or not required:
                    continue
                for j, b in enumerate(value):
                    need = required.get(base + j)
                    if need is not None and b != need[0] and b not in need[1]:
                        found["durability"] = self.lost(need[3], inode, block, line, base + j, b, need[0], where, how)
                        break

    def thread(self, tid: int) -> str:
        threads = self.k.sched.threads
        return threads[tid].name if 0 <= tid < len(threads) else "set-up"

    def torn(self, inode: Inode, index: int, block: int, line: int, where: str, how: str) -> str:
        return (f"crash {where}: page {index} of {inode.name} (pmem block {block}) is reachable, but its line {line} "
                f"(bytes {line * LINE}-{line * LINE + LINE - 1}) can hold data never zeroed or written durably since "
                f"the block was allocated: {how}")

    def lost(self, guard: Guard, inode: Inode, block: int, line: int, off: int, got: int, want: int, where: str,
             how: str) -> str:
        what = f"{guard.what} of {inode.name}" if guard.vma is None else \
            f"persist of {inode.name} offsets {guard.lo}-{guard.hi - 1} (a MAP_SYNC mapping)"
        return (f"crash {where}: {what} returned at step {guard.step}, but offset {off} can "
                f"read {got:#04x} after the crash where a store completed before it wrote {want:#04x}; lost line: "
                f"pmem block {block} line {line} (offsets {off - off % LINE}-{off - off % LINE + LINE - 1} of "
                f"{inode.name}), {how}")


def _pages_maybe_on(inode: Inode, blocks: Set[int], npages: int) -> list[int]:
    """The pages below ``npages`` of ``inode`` that may be on one of ``blocks``, in order: those with
    an extent of their own, and those of its initial extent on one of them (a crash costs what is
    dirty, not the size of the files)."""
    pages = {i for i in dict.keys(inode.extents) if i < npages}
    base, count = inode.initial_base, min(inode.peek_initial_blocks(), npages)
    pages.update(b - base for b in blocks if base <= b < base + count)
    return sorted(pages)
