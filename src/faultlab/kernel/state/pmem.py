"""A persistent-memory device of 4 KiB blocks, as shared state.

Granularity: one cell per block (its contents) and one for the allocator (which blocks are free:
the order of allocations and frees decides which block a file gets, so it is a WRITE).  Block data
exists only once written; freed blocks are kept as sorted ranges and reused lowest first, so a
stale mapping to a freed block can be caught when the block is handed out again.

What is durable is kept apart from what the CPUs see (``lines``, faultlab.kernel.state.cachelines):
a cached store leaves its lines dirty, a non-temporal store or a flush puts them in flight, a fence
makes them durable.  Flushes and fences are steps on the cells of the blocks they touch.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING

from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE
from faultlab.kernel.state.cachelines import Cachelines
from faultlab.kernel.state.cell import READ, WRITE, Cell, CellMap, new_dict
from faultlab.sched.core import Access

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.page import Page
    from faultlab.sched.core import Scheduler


class PmemDevice:
    """The device.  Freeing a block leaves its contents in place, as on real media: whoever
    allocates it next zeroes it before the file can reach it (or maps it unwritten)."""

    def __init__(self, sched: Scheduler, size: int) -> None:
        self.nblocks = size >> PAGE_SHIFT
        self.cells: CellMap[int] = CellMap("pmem.block")
        self.allocator = Cell("pmem allocator")
        self.next_fresh = 0
        self.free_ranges: list[tuple[int, int]] = []  # sorted, disjoint [start, end)
        self.data: dict[int, bytearray] = new_dict(sched, "pmem", self.cells.__getitem__, self.allocator)
        # What the device held when the run began: (first block, count, contents of the i-th one).
        self.images: list[tuple[int, int, Callable[[int], bytes | None]]] = []
        self.allocated = 0
        self.freed_total = 0
        self.allocated_total = 0
        self.lines = Cachelines()
        self.sched = sched

    # -- the allocator -----------------------------------------------------------------------------
    def reserve(self, count: int, contents: Callable[[int], bytes | None], align: int = 1) -> int | None:
        """Contiguous blocks for a file created with contents (the scenario's set-up), starting on
        a multiple of ``align`` blocks; block ``base + i`` initially holds ``contents(i)``."""
        base = -(-self.next_fresh // align) * align
        if base + count > self.nblocks:
            return None
        self.next_fresh = base
        self.next_fresh += count
        self.allocated += count
        self.images.append((base, count, contents))
        return base

    def initial(self, block: int) -> bytes | None:
        """What ``block`` held when the run began (None: zeros)."""
        for base, count, contents in self.images:
            if base <= block < base + count:
                return contents(block - base)
        return None

    def alloc(self, k: Kernel) -> int | None:
        """One free block, lowest first; None when the device is full."""
        k.sched.point(self.allocator, WRITE, "allocate block")
        if self.free_ranges:
            start, end = self.free_ranges[0]
            if start + 1 == end:
                self.free_ranges.pop(0)
            else:
                self.free_ranges[0] = (start + 1, end)
            block = start
        elif self.next_fresh < self.nblocks:
            block = self.next_fresh
            self.next_fresh += 1
        else:
            return None
        self.allocated += 1
        self.allocated_total += 1
        self.lines.allocated(block)
        return block

    def alloc_aligned(self, k: Kernel, count: int) -> int | None:
        """``count`` contiguous blocks starting on a multiple of ``count`` (a 2 MiB extent for a
        PMD fault, ext4 with a 2 MiB stripe), from the never-used part of the device; None when it
        has no room (freed ranges are not searched: the caller falls back to 4 KiB blocks)."""
        k.sched.point(self.allocator, WRITE, "allocate blocks (aligned)")
        base = -(-self.next_fresh // count) * count
        if base + count > self.nblocks:
            return None
        self.next_fresh = base + count
        self.allocated += count
        self.allocated_total += count
        for b in range(base, base + count):
            self.lines.allocated(b)
        return base

    def zero_range(self, k: Kernel, base: int, count: int, label: str) -> None:
        """The driver's zeroing of ``count`` blocks (non-temporal stores and their fence), one step."""
        more = tuple((self.cells[b], WRITE) for b in range(base + 1, base + count))
        k.sched.point(self.cells[base], WRITE, label, more=more)
        for b in range(base, base + count):
            before = self.peek(b)
            self._store(b, bytearray(PAGE_SIZE))
            self._persist(k, b, 0, PAGE_SIZE, before, "durable")

    def free(self, k: Kernel, start: int, count: int = 1) -> None:
        k.sched.point(self.allocator, WRITE, "free blocks")
        end = start + count
        i = bisect.bisect_left(self.free_ranges, (start, end))
        self.free_ranges.insert(i, (start, end))
        merged: list[tuple[int, int]] = []
        for s, e in self.free_ranges:
            if merged and merged[-1][1] >= s:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        self.free_ranges = merged
        self.allocated -= count
        self.freed_total += count

    def is_free(self, block: int) -> bool:
        if block >= self.next_fresh:
            return True
        i = bisect.bisect_right(self.free_ranges, (block, 1 << 62)) - 1
        return i >= 0 and self.free_ranges[i][0] <= block < self.free_ranges[i][1]

    # -- contents ------------------------------------------------------------------------------------
    def read(self, k: Kernel, block: int, off: int, n: int, label: str = "read pmem") -> bytes:
        k.sched.point(self.cells[block], READ, label)
        return self.raw_read(block, off, n)

    def write(self, k: Kernel, block: int, off: int, data: bytes, label: str = "write pmem",
              how: str = "cached") -> None:
        """A copy into the block by the kernel: ``how`` is "cached" (memcpy: dirty lines), "nt"
        (memcpy_to_pmem, copy_from_iter_nocache: in flight until the thread's fence) or "durable"
        (non-temporal stores and their fence in one step, as the pmem driver's write path)."""
        self._point(k, block, label, how)
        before = self.peek(block)
        self._write(block, off, data)
        self._persist(k, block, off, len(data), before, how)

    def zero(self, k: Kernel, block: int, label: str = "clear_pmem", how: str = "cached") -> None:
        """Zero a whole block: clear_page/memset ("cached"), clear_pmem ("nt"), or the driver's
        zeroing ("durable"); see :meth:`write`."""
        self._point(k, block, label, how)
        before = self.peek(block)
        self._store(block, bytearray(PAGE_SIZE))
        self._persist(k, block, 0, PAGE_SIZE, before, how)

    def _point(self, k: Kernel, block: int, label: str, how: str) -> None:
        more: tuple[tuple[Cell, Access], ...] = ()
        if how == "durable":  # the fence also persists whatever else this thread has in flight
            more = tuple((self.cells[b], WRITE) for b in self.lines.unfenced_blocks(k.tid()) if b != block)
        k.sched.point(self.cells[block], WRITE, label, more=more)

    def _audit_lines(self, block: int) -> None:
        """Audit: the cache lines of a block are its state, so the step must have announced the
        block (for writing)."""
        if self.sched.audit:
            self.sched.check_announced(self.cells[block], WRITE, f"the cache lines of pmem block {block}")

    def _persist(self, k: Kernel, block: int, off: int, n: int, before: bytes, how: str) -> None:
        self._audit_lines(block)
        if how == "durable":
            for b in self.lines.unfenced_blocks(k.tid()):
                self._audit_lines(b)
        if how == "cached":
            self.lines.stored(block, off, n, before)
            return
        self.lines.stored_nt(k.tid(), block, off, n, before, self.peek(block))
        if how == "durable":
            self.lines.fence(k.tid())

    # -- the cache protocol ----------------------------------------------------------------------------
    def flush(self, k: Kernel, block: int, label: str = "arch_wb_cache_pmem", off: int = 0,
              n: int = PAGE_SIZE) -> int:
        """clwb over a whole block (wb_cache_pmem, dax_flush), or over the lines of bytes
        [off, off+n) of it: its dirty lines go in flight for this thread.  Returns how many lines
        were dirty."""
        k.sched.point(self.cells[block], WRITE, label)
        self._audit_lines(block)
        return self.lines.flush(k.tid(), block, self.peek(block), off, n)

    def fence(self, k: Kernel, label: str = "wmb_pmem") -> None:
        """sfence (wmb_pmem, pmem_wmb, nvdimm_flush): this thread's in-flight lines become durable.
        One step on every block it makes lines of durable (none: not a step)."""
        blocks = self.lines.unfenced_blocks(k.tid())
        if blocks:
            k.sched.point(self.cells[blocks[0]], WRITE, label, more=tuple((self.cells[b], WRITE) for b in blocks[1:]))
        for b in blocks:
            self._audit_lines(b)
        self.lines.fence(k.tid())

    def copy_to_page(self, k: Kernel, block: int, page: Page, label: str) -> None:
        """Copy a whole block into a page, one step (copy_user_bh(), copy_user_dax(), a COW of a
        pfn through the user mapping)."""
        from faultlab.kernel.state.page import page_fill

        k.sched.point(self.cells[block], READ, label, more=((page.data, WRITE),))
        k.events.emit("block_access", block=block, write=False, user=False)
        page_fill(page, self.raw_read(block, 0, PAGE_SIZE))

    # -- for an access the caller has announced (the CPU's load or store through a PTE) ----------------
    def raw_read(self, block: int, off: int, n: int) -> bytes:
        buf = self.data.get(block)
        if buf is not None:
            return bytes(buf[off : off + n])
        initial = self.initial(block)
        if initial is not None:
            return initial[off : off + n]
        return bytes(n)

    def raw_write(self, block: int, off: int, data: bytes) -> None:
        """A cached store: the lines it touches are dirty in the CPU cache."""
        before = self.peek(block)
        self._write(block, off, data)
        self._audit_lines(block)
        self.lines.stored(block, off, len(data), before)

    def _write(self, block: int, off: int, data: bytes) -> None:
        buf = self.data.get(block)
        if buf is None:
            initial = self.initial(block)
            buf = bytearray(initial) if initial is not None else bytearray(PAGE_SIZE)
            self._store(block, buf)
        buf[off : off + len(data)] = data

    def _store(self, block: int, buf: bytearray) -> None:
        """Give a block a buffer of its own.  Whether a block has one is how the device stores
        it (until written, a block holds its initial image), not state anyone can observe: only the
        block's own cell, which the caller announced, stands for its contents."""
        self.data.get(block)  # audited: the caller announced this block
        dict.__setitem__(self.data, block, buf)

    # -- for checks and reports --------------------------------------------------------------------
    def peek(self, block: int) -> bytes:
        buf = dict.get(self.data, block)
        if buf is not None:
            return bytes(buf)
        initial = self.initial(block)
        return initial if initial is not None else bytes(PAGE_SIZE)
