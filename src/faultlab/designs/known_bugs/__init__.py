"""Deliberately broken designs: each a small variant of a correct one reproducing a real Linux bug,
with a scenario under scenarios/races/ (or the seed scenario) that exposes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.designs.base import Design
from faultlab.designs.v4_0 import V40
from faultlab.designs.v4_7 import V47
from faultlab.designs.v4_10 import V410
from faultlab.kernel.memory import i_mmap_unlock_write

if TYPE_CHECKING:
    from faultlab.kernel.fs import AddressSpace
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.mm import VmFaultData


class V40NoIsizeRecheck(V40):
    """4.0's COW branch without "Check we didn't race with truncate" under i_mmap_rwsem: the
    i_size test at the top of the fault is stale by the time the PTE goes in (bug 2 of the
    reference: the copied page is installed after the file shrank)."""

    name = "v4.0-no-isize-recheck"
    summary = "known bug: v4.0 COW branch without the i_size re-check under i_mmap_rwsem"
    source = "v4.0 do_dax_fault minus the recheck added with 283307c7607d; scenario: seed cow-vs-truncate"
    scenario = "scenarios/seed/cow-vs-truncate.toml"
    fixed_by = "v4.0"
    expected_violation = "stale-pte-after-truncate"

    def cow_recheck_isize(self, k: Kernel, vmf: VmFaultData) -> bool:
        return True


class V43CowUnlockMismatch(V40):
    """0f90cc6609c7 "mm, dax: fix DAX deadlocks" (4.3) left do_cow_fault calling
    i_mmap_unlock_write() while dax_fault took i_mmap_lock_read(); fixed by 0df9d41ab5d4."""

    name = "v4.3-cow-unlock-mismatch"
    summary = "known bug: 4.3 do_cow_fault releases i_mmap_rwsem for write; the handler took it for read"
    source = "Linux 4.3 0f90cc6609c7, fixed by 0df9d41ab5d4 (4.4); scenario: races/cow-unlock-mismatch"
    scenario = "scenarios/races/cow-unlock-mismatch.toml"
    fixed_by = "v4.0"
    expected_violation = "lock-pairing"

    def cow_unlock(self, k: Kernel, mapping: AddressSpace) -> None:
        i_mmap_unlock_write(k, mapping)


class V41HoleDoubleZero(V40):
    """Before the 4.7 entry locks, two write faults on one hole (ext4: unwritten extents) both
    zero the block; "the loser overwrite[s] their store with zeroes" (843172978bb9 changelog)."""

    name = "v4.1-hole-double-zero"
    summary = "known bug: two write faults on one hole both zero the block before 4.7 (lost write)"
    source = "Linux 4.1-4.6 ext4 DAX (unwritten extents + complete_unwritten); fixed by ac401cc78242 (4.7)"
    scenario = "scenarios/races/hole-double-zero.toml"
    fixed_by = "v4.7"
    expected_violation = "lost-write"
    unwritten_extents = True


class V47WakeOne(V47):
    """4.7 as released: replacing the locked empty entry with a hole page woke only one waiter;
    any other reader sleeping on that entry sleeps for ever (fixed by 965d004af540)."""

    name = "v4.7-wake-one"
    summary = "known bug: three read faults on one hole, only one waiter woken (deadlock) before 965d004af540"
    source = "Linux 4.7 mm/filemap.c page_cache_tree_insert (ac401cc78242); fixed by 965d004af540"
    scenario = "scenarios/races/three-hole-readers.toml"
    fixed_by = "v4.7"
    expected_violation = "deadlock"
    hole_wake_all = False


class V410IomapFirst(V410):
    """The 4.10 release's order (9f141d6ef625): ->iomap_begin before the entry lock, so a read
    fault can see a hole, lose the race with write(2), and map the hole page after write(2) has
    filled the block (fixed by 13e451fdc1af, 4.12)."""

    name = "v4.10-iomap-first"
    summary = "known bug: read fault vs write(2) leaves a hole page mapped over written data before 4.12"
    source = "Linux 4.10 9f141d6ef625; fixed by 13e451fdc1af (4.12, stable); scenario: races/read-fault-vs-write"
    scenario = "scenarios/races/read-fault-vs-write.toml"
    fixed_by = "v4.10"
    expected_violation = "stale-read"
    iomap_before_entry_lock = True


KNOWN_BUGS: tuple[type[Design], ...] = (
    V40NoIsizeRecheck,
    V43CowUnlockMismatch,
    V41HoleDoubleZero,
    V47WakeOne,
    V410IomapFirst,
)
