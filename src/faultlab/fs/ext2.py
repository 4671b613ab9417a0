"""ext2's block map, as its XIP (3.14) and DAX (4.0) files use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.state.inode import Extent

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode

ENOSPC = -28


def ext2_get_block(k: Kernel, inode: Inode, index: int, create: bool) -> tuple[Extent | None, bool, int]:
    """ext2_get_block() -> ext2_get_blocks(): (mapping, buffer_new, error).  With create, a hole
    gets a block under truncate_mutex (the map is walked again under it), zeroed *before*
    ext2_splice_branch() puts it in the tree -- ext2_clear_xip_target() in 3.14, dax_clear_blocks()
    from 4.0: "block must be initialised before we put it in the tree so that it's not found by
    another thread before it's initialised" -- so no other thread finds it uninitialised."""
    ext = inode.lookup_extent(k, index)
    if ext is not None or not create:
        return ext, False, 0
    inode.truncate_mutex.lock(k)
    ext = inode.lookup_extent(k, index)
    if ext is not None:
        inode.truncate_mutex.unlock(k)
        return ext, False, 0
    block = k.pmem.alloc(k)
    if block is None:
        inode.truncate_mutex.unlock(k)
        return None, False, ENOSPC
    k.count("blocks_allocated")
    k.events.emit("block_alloc", inode=inode, index=index, block=block)
    clear_pmem(k, block, "zero new block")
    ext = Extent(block)
    inode.set_extent(k, index, ext, "ext2_splice_branch")
    inode.truncate_mutex.unlock(k)
    return ext, True, 0


def clear_pmem(k: Kernel, block: int, label: str = "clear_page", how: str = "cached") -> None:
    """clear_page() / dax_clear_blocks() on a whole block: through the CPU cache, unflushed, as
    4.0's dax_clear_blocks() did (``how``: see PmemDevice.write)."""
    k.pmem.zero(k, block, label, how)
    k.count("pages_zeroed")
    k.events.emit("block_zero", block=block)
