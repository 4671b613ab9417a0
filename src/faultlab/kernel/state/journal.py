"""What of a DAX file's metadata (its block map and i_size) a crash keeps: the last *committed* one.

A minimal model of ext4's jbd2 journal (and of ext2's synchronous metadata writeback, which plays
the same part for the 4.0 design): each file's block map and i_size as of its last commit.

- ``ext4_sync_file()`` -> ``ext4_fsync_journal()`` -> ``jbd2_complete_transaction()`` commits
  the running transaction (Linux 4.7-6.1 fs/ext4/fsync.c), and ext2's ``generic_file_fsync()``
  writes the inode and its indirect blocks (``sync_mapping_buffers()``, ``sync_inode_metadata()``,
  4.0 fs/libfs.c): :func:`jbd2_complete_transaction` records the file's current map and size,
  one step that READs them and WRITEs the file's journal cell;
- ``ext4_inode_datasync_dirty()`` (4.15+, fs/ext4/inode.c: the inode has metadata changes not yet
  committed; ``->iomap_begin`` turns it into ``IOMAP_F_DIRTY``) is :func:`ext4_inode_datasync_dirty`:
  the current map or size differs from the committed one.

What is not modelled: transactions spanning files (a commit here commits only the file synced;
jbd2 commits every file's changes of the running transaction), the periodic commit (every 5 s)
and the flusher's writeback of ext2's buffers.  Both can make a change durable at any time, so
the crash checks use the committed view only where it *loses* data (``durability``: data
reachable only through an uncommitted block is lost), and the current map where a reachable block
is the danger (``torn-metadata``: a background commit may have made it reachable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from faultlab.kernel.state.cell import READ, WRITE, Cell
from faultlab.kernel.state.inode import Extent

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode


@dataclass(frozen=True, slots=True)
class Committed:
    """A file's metadata as of its last commit: the blocks mapped (besides the initial ones), how
    many of the initial extent's blocks are still mapped, and i_size."""

    extents: tuple[tuple[int, Extent], ...]
    initial_blocks: int
    size: int


class Journal:
    """The committed metadata of every DAX file.  Each file has one cell (its place in the
    journal): a commit WRITEs it, a check of what is committed READs it."""

    def __init__(self) -> None:
        self.cells: dict[Inode, Cell] = {}
        self.committed: dict[Inode, Committed] = {}

    def register(self, inode: Inode) -> None:
        """A file as the scenario creates it: its set-up metadata is committed (mkfs and the
        file's creation happened before the run)."""
        self.cells[inode] = Cell(f"{inode.name}.journal")
        self.committed[inode] = Committed((), inode.peek_initial_blocks(), inode.peek_size())

    def cell(self, inode: Inode) -> Cell:
        return self.cells[inode]

    # -- for the crash checks ----------------------------------------------------------------------
    def committed_extent(self, inode: Inode, index: int) -> Extent | None:
        """The mapping of file block ``index`` a crash now would leave (None: a hole)."""
        c = self.committed[inode]
        for i, ext in c.extents:
            if i == index:
                return ext
        if index < c.initial_blocks:
            return Extent(inode.initial_base + index)
        return None

    def committed_size(self, inode: Inode) -> int:
        return self.committed[inode].size


def _announce(k: Kernel, inode: Inode, access: object, label: str) -> None:
    k.sched.point(k.journal.cell(inode), access, label,  # type: ignore[arg-type]
                  more=((inode.mapped, READ), (inode.initial_cell, READ), (inode.size_cell, READ)))


def _current(inode: Inode) -> Committed:
    """The file's metadata now (the caller announced the map, the initial watermark and i_size)."""
    extents = tuple(sorted(inode.extents.items()))
    return Committed(extents, inode._initial_blocks, inode._i_size)


def jbd2_complete_transaction(k: Kernel, inode: Inode, label: str = "jbd2_complete_transaction") -> None:
    """jbd2_complete_transaction() as ext4_fsync_journal() calls it (Linux 4.7-6.1 fs/ext4/fsync.c),
    or ext2's sync_inode_metadata() (4.0 fs/libfs.c __generic_file_fsync): the file's block map
    and i_size become the ones a crash keeps.  One step."""
    _announce(k, inode, WRITE, label)
    k.journal.committed[inode] = _current(inode)


def ext4_inode_datasync_dirty(k: Kernel, inode: Inode) -> bool:
    """ext4_inode_datasync_dirty() (Linux 4.15 and 6.1 fs/ext4/inode.c): whether the file has
    metadata a crash could still lose (its map or size differs from the committed one).  One
    step; ->iomap_begin reports it as IOMAP_F_DIRTY."""
    _announce(k, inode, READ, "ext4_inode_datasync_dirty")
    return k.journal.committed[inode] != _current(inode)
