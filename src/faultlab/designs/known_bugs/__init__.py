"""Deliberately broken designs: each a correct design with one function replaced, reproducing a
real Linux bug, with a scenario under scenarios/ that exposes it."""

from faultlab.designs.base import Design
from faultlab.designs.known_bugs import (
    v4_0_no_isize_recheck,
    v4_1_hole_double_zero,
    v4_3_cow_unlock_mismatch,
    v4_3_rc1,
    v4_7_wake_one,
    v4_10_iomap_first,
    v4_10_no_wrprotect,
    v4_10_pmd_pte_collision,
    v6_1_no_sync_fault,
)

KNOWN_BUGS: tuple[Design, ...] = (
    v4_0_no_isize_recheck.DESIGN,
    v4_3_rc1.DESIGN,
    v4_3_cow_unlock_mismatch.DESIGN,
    v4_1_hole_double_zero.DESIGN,
    v4_7_wake_one.DESIGN,
    v4_10_iomap_first.DESIGN,
    v4_10_no_wrprotect.DESIGN,
    v4_10_pmd_pte_collision.DESIGN,
    v6_1_no_sync_fault.DESIGN,
)
