"""Writeback that clears DIRTY without write-protecting: 4b4bb46d00b3's tag clearing without the
dax_mapping_entry_mkclean() its changelog says it needs ("similarly to page_mkclean() we also have
to write-protect pages to get a page fault when the page is next written to").  A store through
the still-writable PTE never dirties the entry again; the next msync flushes nothing."""

from __future__ import annotations

from faultlab.designs.v4_10 import DESIGN as V410
from faultlab.fs.dax import v4_10 as dax
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.state.pagecache import AddressSpace, DaxEntry


def dax_writeback_one(k: Kernel, mapping: AddressSpace, index: int) -> None:
    """dax_writeback_one() with the write-protect step left out."""
    mapping.tree_lock.lock(k)
    entry = dax.get_unlocked_mapping_entry(k, mapping, index)
    if not isinstance(entry, DaxEntry) or entry.block is None or not mapping.tagged(k, index):
        mapping.tree_lock.unlock(k)
        dax.put_unlocked_mapping_entry(k, mapping, index, entry)
        return
    dax.lock_slot(k, mapping, index)
    mapping.tree_lock.unlock(k)
    k.pmem.flush(k, entry.block, "wb_cache_pmem")
    mapping.clear_dirty(k, index)
    dax.dax_unlock_mapping_entry(k, mapping, index)


DESIGN = V410.variant(
    "v4.10-no-wrprotect",
    "known bug: fsync/msync clears DIRTY without write-protecting; a later store is never flushed",
    "Linux 4.10 fs/dax.c dax_writeback_one (4b4bb46d00b3) without dax_mapping_entry_mkclean",
    {dax.dax_writeback_one: dax_writeback_one},
    scenario="scenarios/crash/store-msync-store-msync.toml", fixed_by="v4.10", expected_violation="durability",
)
