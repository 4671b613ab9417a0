"""4.1-4.6 ext4 DAX: get_block() maps a hole as an *unwritten* extent, reachable before it is
zeroed; two write faults on one hole both see it "new" and zero it, and "the loser overwrite[s]
their store with zeroes" (843172978bb9 changelog).  Fixed by the 4.7 entry locks (ac401cc78242)
and ext4 zeroing before the block is reachable."""

from __future__ import annotations

from faultlab.designs.v4_0 import DESIGN as V40
from faultlab.fs import ext2
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.state.inode import Extent, Inode


def ext4_get_block(k: Kernel, inode: Inode, index: int, create: bool) -> tuple[Extent | None, bool, int]:
    """ext4_get_block() for DAX (4.1): a hole gets an unwritten extent under i_data_sem, not zeroed."""
    ext = inode.lookup_extent(k, index)
    if ext is not None or not create:
        return ext, False, 0
    inode.i_data_sem.down_write(k)
    ext = inode.lookup_extent(k, index)
    block = k.pmem.alloc(k) if ext is None else None
    if ext is None and block is not None:
        k.count("blocks_allocated")
        k.events.emit("block_alloc", inode=inode, index=index, block=block)
        ext = Extent(block, unwritten=True)
        inode.set_extent(k, index, ext, "ext4_ext_map_blocks (unwritten)")
    inode.i_data_sem.up_write(k)
    return ext, block is not None, 0 if ext is not None else -28


DESIGN = V40.variant(
    "v4.1-hole-double-zero",
    "known bug: two write faults on one hole both zero the block before 4.7 (lost write)",
    "Linux 4.1-4.6 ext4 DAX (unwritten extents + complete_unwritten); fixed by ac401cc78242 (4.7)",
    {ext2.ext2_get_block: ext4_get_block},
    scenario="scenarios/races/hole-double-zero.toml", fixed_by="v4.7", expected_violation="lost-write",
)
