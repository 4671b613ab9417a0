"""struct inode as shared state: i_size, the times, the block map of a DAX file, and the locks.

Granularity: i_size is one cell; mtime is one cell that file_update_time() UPDATEs (updates
commute); the block map has one cell per file block, one for the set of mapped blocks (a walk
READs it, mapping or unmapping a block UPDATEs it) and one for the *initial* watermark: blocks
below it that were never remapped are the ones the scenario created the file with, at
``initial_base + index`` on the device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE
from faultlab.kernel.locking import Mutex, RWSem
from faultlab.kernel.state.cell import READ, UPDATE, WRITE, Cell, CellMap, audited_subclass, new_dict

if TYPE_CHECKING:
    from faultlab.fs.ops import FileSystemType
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.pagecache import AddressSpace
    from faultlab.sched.core import Scheduler


def pattern_bytes(fill: bytes | None, offset: int, n: int) -> bytes | None:
    """Bytes [offset, offset+n) of ``fill`` repeated; None for an all-zero result."""
    if not fill or not any(fill):
        return None
    start = offset % len(fill)
    reps = (start + n) // len(fill) + 1
    return (fill * reps)[start : start + n]


class Extent(NamedTuple):
    """A file block's mapping: the pmem block, and whether it is unwritten (allocated, its data
    not yet valid: it reads as zeros)."""

    block: int
    unwritten: bool = False


class Inode:
    """struct inode of one scenario file, with the fs-private parts the model needs (the DAX block
    map, ext4's i_mmap_sem) and its operations (``i_op``, ``i_fop``, from the file system type)."""

    __slots__ = (
        "name", "fs", "fill", "initial_size", "initial_base", "mapping",
        "size_cell", "time_cell", "blocks", "mapped", "initial_cell",
        "_i_size", "_mtime", "_initial_blocks", "extents",
        "i_rwsem", "i_mmap_sem", "invalidate_lock", "truncate_mutex", "i_data_sem",
    )

    def __init__(self, sched: Scheduler, name: str, fs: FileSystemType, size: int, fill: bytes | None,
                 initial_pages: int) -> None:
        self.name = name
        self.fs = fs
        self.fill = fill
        self.initial_size = size
        self.initial_base = 0
        self.size_cell = Cell(f"{name}.i_size")
        self.time_cell = Cell(f"{name}.mtime")
        self.blocks: CellMap[int] = CellMap(f"{name}.block")
        self.mapped = Cell(f"{name}.blocks")
        self.initial_cell = Cell(f"{name}.initial-blocks")
        self._i_size = size
        self._mtime = 0
        self._initial_blocks = initial_pages if fs.dax else 0
        self.extents: dict[int, Extent] = new_dict(sched, f"{name} block map", self.blocks.__getitem__, self.mapped)
        self.i_rwsem = Mutex("&inode->i_rwsem", f"{name}.i_rwsem")
        self.i_mmap_sem = RWSem("&ei->i_mmap_sem", f"{name}.i_mmap_sem")  # ext4, 4.5-5.14
        self.invalidate_lock = RWSem("&mapping->invalidate_lock", f"{name}.invalidate_lock")  # 5.15+
        self.truncate_mutex = Mutex("&ei->truncate_mutex", f"{name}.truncate_mutex")  # ext2's block map
        self.i_data_sem = RWSem("&ei->i_data_sem", f"{name}.i_data_sem")  # ext4's block map
        self.mapping: AddressSpace  # set by the kernel right after

    def __repr__(self) -> str:
        return f"inode({self.name})"

    def initial_contents(self, index: int) -> bytes | None:
        """Page ``index`` as the file was created: the fill pattern up to the initial size, zeros
        after it (a file written with write(2) has nothing past EOF)."""
        start = index << PAGE_SHIFT
        if start >= self.initial_size:
            return None
        n = min(PAGE_SIZE, self.initial_size - start)
        data = pattern_bytes(self.fill, start, n)
        if data is None or n == PAGE_SIZE:
            return data
        return data + bytes(PAGE_SIZE - n)

    # -- i_size and times --------------------------------------------------------------------------
    def i_size_read(self, k: Kernel) -> int:
        k.sched.point(self.size_cell, READ, "i_size_read")
        return self._i_size

    def i_size_write(self, k: Kernel, size: int) -> None:
        k.sched.point(self.size_cell, WRITE, "i_size_write")
        old = self._i_size
        self._i_size = size
        k.events.emit("isize", inode=self, old=old, new=size)

    def file_update_time(self, k: Kernel) -> None:
        k.sched.point(self.time_cell, UPDATE, "file_update_time")
        self._mtime += 1

    # -- the block map (DAX files) -------------------------------------------------------------------
    def lookup_extent(self, k: Kernel, index: int) -> Extent | None:
        """The mapping of file block ``index`` (None: a hole)."""
        k.sched.point(self.blocks[index], READ, "map block", more=((self.initial_cell, READ),))
        ext = self.extents.get(index)
        if ext is None and index < self._initial_blocks:
            ext = Extent(self.initial_base + index)
        return ext

    def map_range(self, k: Kernel, index: int, count: int) -> tuple[Extent | None, int]:
        """ext4_map_blocks() for ``count`` blocks from ``index``, in one look-up: the first block's
        mapping (None: a hole) and how many blocks from ``index`` continue it (contiguous mapped
        blocks of the same kind, or holes), as ->iomap_begin reports an extent's length."""
        cells = [self.blocks[i] for i in range(index, index + count)]
        k.sched.point(cells[0], READ, "map blocks", more=((self.initial_cell, READ), *((c, READ) for c in cells[1:])))

        def at(i: int) -> Extent | None:
            ext = self.extents.get(i)
            if ext is None and i < self._initial_blocks:
                ext = Extent(self.initial_base + i)
            return ext

        first = at(index)
        n = 1
        while n < count:
            ext = at(index + n)
            if first is None and ext is not None:
                break
            if first is not None and (ext is None or ext.block != first.block + n or ext.unwritten != first.unwritten):
                break
            n += 1
        return first, n

    def set_extents(self, k: Kernel, index: int, base: int, count: int, label: str) -> None:
        """Map ``count`` blocks from ``index`` to the pmem blocks from ``base``, one step (one
        extent spliced into the tree)."""
        cells = [self.blocks[i] for i in range(index, index + count)]
        k.sched.point(cells[0], WRITE, label,
                      more=((self.mapped, UPDATE), (self.initial_cell, READ), *((c, WRITE) for c in cells[1:])))
        for i in range(count):
            self.extents[index + i] = Extent(base + i)

    def set_extent(self, k: Kernel, index: int, ext: Extent, label: str = "splice block") -> None:
        k.sched.point(self.blocks[index], WRITE, label, more=((self.mapped, UPDATE), (self.initial_cell, READ)))
        self.extents[index] = ext

    def mapped_blocks(self, k: Kernel, start: int) -> list[tuple[int, Extent]]:
        """Every mapped block at or past ``start`` (a walk of the block map), and clears them from
        the map in the same step: truncate's block freeing (ext2_truncate_blocks, ext4_truncate)."""
        k.sched.point(self.mapped, WRITE, "truncate blocks", more=((self.initial_cell, WRITE),))
        # Every look-up of a block also reads the initial watermark, which this step writes: so
        # each block it unmaps need not be named (the step depends on every look-up anyway).
        gone = sorted(i for i in self.extents if i >= start)
        out = [(i, dict.pop(self.extents, i)) for i in gone]
        if self._initial_blocks > start:
            out += [(i, Extent(self.initial_base + i)) for i in range(start, self._initial_blocks)]
            self._initial_blocks = start
        return out

    # -- for checks and reports ----------------------------------------------------------------------
    def peek_size(self) -> int:
        return _RAW_SIZE.__get__(self)

    def peek_mtime(self) -> int:
        return _RAW_MTIME.__get__(self)

    def peek_initial_blocks(self) -> int:
        return _RAW_INITIAL.__get__(self)

    def peek_extent(self, index: int) -> Extent | None:
        ext = dict.get(self.extents, index)
        if ext is None and index < _RAW_INITIAL.__get__(self):
            ext = Extent(self.initial_base + index)
        return ext


_RAW_SIZE = Inode.__dict__["_i_size"]
_RAW_MTIME = Inode.__dict__["_mtime"]
_RAW_INITIAL = Inode.__dict__["_initial_blocks"]

AuditedInode = audited_subclass(
    Inode,
    {
        "_i_size": lambda i: i.size_cell,
        "_mtime": lambda i: i.time_cell,
        "_initial_blocks": lambda i: i.initial_cell,
    },
    counters=("_mtime",),
)
