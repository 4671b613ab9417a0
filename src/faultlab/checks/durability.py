"""What a crash may leave on persistent memory, checked against what fsync and msync promised.

A crash (the ``crash`` op, or ``explore --crash`` after every step) keeps each pmem cache line
that is not yet durable at its media value, at a value in flight, or (dirty) at its current value,
independently of the others (faultlab.kernel.state.cachelines).  Two invariants are checked over
every such image, one line choice at a time -- exact, since both are per byte:

- ``durability``: once an fsync or msync of a file has returned, every store through a shared
  mapping and every write(2) to the file that completed before the sync began is durable: after
  the crash each such byte below EOF holds what the last of them wrote, or what a store not
  covered by the sync wrote;
- ``torn-metadata``: a block the file's block map reaches holds, after the crash, a line that was
  never zeroed or written durably since the block was allocated (stale data of a freed block).

Only DAX files are checked, and the block map itself is taken to be durable (the model has no
journal): the invariants are about data and the zeroing of new blocks.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faultlab.kernel.events import Event
from faultlab.kernel.flags import PAGE_SHIFT, size_in_pages
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


@dataclass(slots=True)
class Guard:
    begin: int  # stores completed before this sequence number are covered
    step: int  # the step at which the sync returned
    what: str


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
        k.events.subscribe(self.on_event, ("store_done", "syscall_exit", "sync_begin", "sync_end", "isize"))

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
        elif ev.kind == "isize" and d["new"] < d["old"]:
            for st in self.stores.get(d["inode"], ()):
                if st.offset + len(st.data) > d["new"]:
                    st.data = st.data[: max(d["new"] - st.offset, 0)]

    def on_store(self, tid: int, d: dict[str, Any]) -> None:
        inode: Inode = d["inode"]
        if d["kind"] == "private-map" or not inode.fs.dax:
            return
        st = Store(d["offset"], bytes(d["data"]), None)
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
        if not lines.pending and not lines.stale_blocks:
            return []
        hot = lines.pending.keys() | lines.stale_blocks  # the blocks check_block looks at
        for inode in sorted(self.k.inodes.values(), key=lambda i: i.name):
            if not inode.fs.dax:
                continue
            size = inode.peek_size()
            required = {off: need for off, need in self.required(inode).items() if off < size}
            for index in _pages_maybe_on(inode, hot, size_in_pages(size)):
                ext = inode.peek_extent(index)
                if ext is None or ext.unwritten or ext.block not in hot:
                    continue
                self.check_block(inode, index, ext.block, required, where, found)
        return sorted(found.items())

    def required(self, inode: Inode) -> dict[int, tuple[int, frozenset[int], int]]:
        """Per covered byte offset: (what the last covered store wrote, what later stores wrote,
        the covered store's sequence number)."""
        guard = self.guards.get(inode)
        if guard is None:
            return {}
        last: dict[int, tuple[int, int]] = {}
        later: dict[int, set[int]] = {}
        for st in self.stores.get(inode, ()):
            covered = st.done is not None and st.done < guard.begin
            for i, b in enumerate(st.data):
                off = st.offset + i
                if covered:
                    assert st.done is not None
                    if off not in last or last[off][1] < st.done:
                        last[off] = (b, st.done)
                else:
                    later.setdefault(off, set()).add(b)
        return {off: (b, frozenset(later.get(off, ())), seq) for off, (b, seq) in last.items()}

    def check_block(self, inode: Inode, index: int, block: int, required: dict[int, tuple[int, frozenset[int], int]],
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
                        found["durability"] = self.lost(inode, block, line, base + j, b, need[0], where, how)
                        break

    def thread(self, tid: int) -> str:
        threads = self.k.sched.threads
        return threads[tid].name if 0 <= tid < len(threads) else "set-up"

    def torn(self, inode: Inode, index: int, block: int, line: int, where: str, how: str) -> str:
        return (f"crash {where}: page {index} of {inode.name} (pmem block {block}) is reachable, but its line {line} "
                f"(bytes {line * LINE}-{line * LINE + LINE - 1}) can hold data never zeroed or written durably since "
                f"the block was allocated: {how}")

    def lost(self, inode: Inode, block: int, line: int, off: int, got: int, want: int, where: str, how: str) -> str:
        guard = self.guards[inode]
        return (f"crash {where}: {guard.what} of {inode.name} returned at step {guard.step}, but offset {off} can "
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
