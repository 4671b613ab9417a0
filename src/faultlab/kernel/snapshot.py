"""What a file holds, read straight from the model's state without scheduling: for the checks
and for a run's result, once the run is over (or from inside an event, where reads are free)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE
from faultlab.kernel.state.page import Page, page_bytes
from faultlab.kernel.state.pagecache import DaxEntry

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode

SNAPSHOT_LIMIT = 64 << 20


def backing_bytes(k: Kernel, inode: Inode, index: int) -> bytes:
    """What the file holds at page ``index`` right now: its page-cache page, or for DAX its pmem
    block (a hole or an unwritten extent reads as zeros)."""
    if inode.fs.dax:
        ext = inode.peek_extent(index)
        if ext is None or ext.unwritten:
            return bytes(PAGE_SIZE)
        return k.pmem.peek(ext.block)
    entry = inode.mapping.peek(index)
    if isinstance(entry, Page):
        return page_bytes(entry, 0, PAGE_SIZE)
    if isinstance(entry, DaxEntry) or not inode.mapping.peek_is_initial(index):
        return bytes(PAGE_SIZE)
    return inode.initial_contents(index) or bytes(PAGE_SIZE)


def file_snapshot(k: Kernel, inode: Inode) -> bytes | None:
    """The file's contents as read(2) would return them; None for a file larger than
    SNAPSHOT_LIMIT, which would not fit in a report (the model itself keeps only what was
    touched)."""
    size = inode.peek_size()
    if size > SNAPSHOT_LIMIT:
        return None
    out = bytearray()
    for index in range((size + PAGE_SIZE - 1) >> PAGE_SHIFT):
        n = min(PAGE_SIZE, size - (index << PAGE_SHIFT))
        out += backing_bytes(k, inode, index)[:n]
    return bytes(out)
