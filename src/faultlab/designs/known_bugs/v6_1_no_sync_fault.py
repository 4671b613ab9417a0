"""MAP_SYNC without the synchronous fault: ``dax_fault_is_synchronous()`` always false, so a write
fault through a MAP_SYNC mapping maps the block it allocated writable at once, without committing
the allocation first (``dax_finish_sync_fault()`` never runs).  User space flushes its stores
(clwb + sfence) and takes them to be durable, as MAP_SYNC promises ("While a block is writeably
mapped into page tables of this mapping, it is guaranteed to be visible in the file at that offset
also after a crash"), but after a crash the block is not in the file: its allocation was never
committed.  This is the state before Jan Kara's 4.15 series ("dax: Implement
dax_finish_sync_fault()", "ext4: Support for synchronous DAX faults") with only the mmap flag."""

from __future__ import annotations

from faultlab.designs.v6_1 import DESIGN as V61
from faultlab.fs.dax import v6_1 as dax
from faultlab.kernel.mm import VmFault


def dax_fault_is_synchronous(vmf: VmFault, write: bool, iomap_dirty: bool) -> bool:
    """dax_fault_is_synchronous() that never is: no VM_FAULT_NEEDDSYNC, no commit at fault time."""
    return False


DESIGN = V61.variant(
    "v6.1-no-sync-fault",
    "known bug: MAP_SYNC write faults map a new block without committing its allocation",
    "Linux 6.1 fs/dax.c with dax_fault_is_synchronous() always false (no dax_finish_sync_fault)",
    {dax.dax_fault_is_synchronous: dax_fault_is_synchronous},
    scenario="scenarios/crash/map-sync-hole-store.toml", fixed_by="v6.1", expected_violation="durability",
)
