"""Inodes, address spaces (page cache, i_mmap, i_mmap_rwsem) and the persistent-memory device
behind DAX files.  An ext4 file's disk holds its initial contents (holes read as zeros); pages
written back are not re-read, since the model never evicts the page cache.  All of it is sparse:
a page, block or byte exists only once touched; untouched file contents are computed from the
scenario's fill pattern."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING

from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE
from faultlab.kernel.locking import Mutex, RWSem, SpinLock
from faultlab.kernel.page import Page
from faultlab.sched import Access, WaitQueue

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.mm import Vma


def pattern_bytes(fill: bytes | None, offset: int, n: int) -> bytes | None:
    """Bytes [offset, offset+n) of ``fill`` repeated; None for an all-zero result."""
    if not fill or not any(fill):
        return None
    start = offset % len(fill)
    reps = (start + n) // len(fill) + 1
    return (fill * reps)[start : start + n]


@dataclass(slots=True)
class Extent:
    """A file block's mapping: the pmem block, and whether it is unwritten (allocated, not zeroed)."""

    block: int
    unwritten: bool = False


@dataclass(slots=True)
class DaxEntry:
    """A DAX exceptional radix-tree entry (4.7+): a block, or empty, with a lock bit; DIRTY tag."""

    block: int | None
    locked: bool = False
    owner: int | None = None
    dirty: bool = False

    @property
    def empty(self) -> bool:
        return self.block is None


class AddressSpace:
    """struct address_space: the page tree (pages and DAX entries), i_mmap and its lock, tree_lock."""

    def __init__(self, host: Inode, i_mmap_cls: str) -> None:
        self.host = host
        self.page_tree: dict[int, Page | DaxEntry] = {}
        self.i_mmap: list[Vma] = []
        self.i_mmap_rwsem = RWSem(i_mmap_cls, f"{host.name}.i_mmap")
        self.tree_lock = SpinLock("&mapping->tree_lock", f"{host.name}.tree_lock")
        self.entry_waitqueues: dict[int, WaitQueue] = {}

    def __repr__(self) -> str:
        return f"mapping({self.host.name})"

    def slot(self, index: int) -> tuple[str, AddressSpace, int]:
        return ("slot", self, index)

    def entry_waitqueue(self, index: int) -> WaitQueue:
        """dax_entry_waitqueue(): the wait queue for (mapping, index)."""
        wq = self.entry_waitqueues.get(index)
        if wq is None:
            wq = WaitQueue(f"{self.host.name}[{index}]")
            self.entry_waitqueues[index] = wq
        return wq


class Inode:
    """struct inode for one scenario file, plus what its filesystem keeps: the DAX extent map and
    ext4's i_mmap_sem (the fs fault lock the 4.7+ DAX code relies on)."""

    def __init__(self, name: str, fs: str, size: int, fill: bytes | None, hole: bool, i_mmap_cls: str) -> None:
        self.name = name
        self.fs = fs
        self.i_size = size
        self.fill = fill
        self.initial_size = size
        self.mapping = AddressSpace(self, i_mmap_cls)
        self.i_rwsem = Mutex("&inode->i_rwsem", f"{name}.i_rwsem")
        self.i_mmap_sem = RWSem("&ei->i_mmap_sem", f"{name}.i_mmap_sem")
        self.mtime = 0
        # Pages [0, initial_pages) hold the fill pattern until touched (page cache or disk or pmem).
        self.initial_pages = 0 if hole else (size + PAGE_SIZE - 1) >> PAGE_SHIFT
        # DAX: file block -> extent; blocks [0, initial_pages) live at initial_base + index.
        self.extents: dict[int, Extent] = {}
        self.initial_base = 0
        self.dropped_initial: set[int] = set()

    def __repr__(self) -> str:
        return f"inode({self.name})"

    def initial_contents(self, index: int) -> bytes | None:
        """Page ``index`` as the file was created: the fill pattern up to the initial size, zeros
        after it (a file written with write(2) has nothing past EOF)."""
        if index >= self.initial_pages:
            return None
        start = index << PAGE_SHIFT
        n = min(PAGE_SIZE, self.initial_size - start)
        data = pattern_bytes(self.fill, start, n)
        if data is None or n == PAGE_SIZE:
            return data
        return data + bytes(PAGE_SIZE - n)

    def i_size_read(self, k: Kernel) -> int:
        k.sched.point(("i_size", self), Access.READ, f"i_size_read({self.name})")
        return self.i_size

    def i_size_write(self, k: Kernel, size: int) -> None:
        k.sched.point(("i_size", self), Access.WRITE, f"i_size_write({self.name}, {size})")
        old = self.i_size
        self.i_size = size
        k.events.emit("isize", inode=self, old=old, new=size)

    def file_update_time(self, k: Kernel) -> None:
        self.mtime += 1


class PmemDevice:
    """A persistent-memory device of 4 KiB blocks: block data exists only once written; freed
    blocks are kept as sorted ranges and reused lowest first, so a stale mapping can be caught."""

    def __init__(self, size: int) -> None:
        self.nblocks = size >> PAGE_SHIFT
        self.next_fresh = 0
        self.free_ranges: list[tuple[int, int]] = []  # sorted, disjoint [start, end)
        self.data: dict[int, bytearray] = {}
        self.generation: dict[int, int] = {}
        self.allocated = 0
        self.freed_total = 0
        self.allocated_total = 0

    def reserve(self, count: int) -> int | None:
        """Contiguous blocks for a file created with contents (the scenario's set-up)."""
        if self.next_fresh + count > self.nblocks:
            return None
        base = self.next_fresh
        self.next_fresh += count
        self.allocated += count
        return base

    def alloc(self) -> int | None:
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
        self.generation[block] = self.generation.get(block, 0) + 1
        self.allocated += 1
        self.allocated_total += 1
        return block

    def free(self, start: int, count: int = 1) -> None:
        end = start + count
        for b in range(start, end) if count <= 64 else ():
            self.data.pop(b, None)
        if count > 64:
            for b in [b for b in self.data if start <= b < end]:
                del self.data[b]
        i = bisect.bisect_left(self.free_ranges, (start, end))
        self.free_ranges.insert(i, (start, end))
        self._merge()
        self.allocated -= count
        self.freed_total += count

    def _merge(self) -> None:
        merged: list[tuple[int, int]] = []
        for s, e in self.free_ranges:
            if merged and merged[-1][1] >= s:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        self.free_ranges = merged

    def is_free(self, block: int) -> bool:
        if block >= self.next_fresh:
            return True
        i = bisect.bisect_right(self.free_ranges, (block, 1 << 62)) - 1
        return i >= 0 and self.free_ranges[i][0] <= block < self.free_ranges[i][1]

    def read(self, block: int, off: int, n: int, initial: bytes | None) -> bytes:
        buf = self.data.get(block)
        if buf is not None:
            return bytes(buf[off : off + n])
        if initial is not None:
            return initial[off : off + n]
        return bytes(n)

    def write(self, block: int, off: int, data: bytes, initial: bytes | None) -> None:
        buf = self.data.get(block)
        if buf is None:
            buf = bytearray(initial) if initial is not None else bytearray(PAGE_SIZE)
            self.data[block] = buf
        buf[off : off + len(data)] = data

    def zero(self, block: int) -> None:
        self.data[block] = bytearray(PAGE_SIZE)
