"""Colliding PMD and PTE faults on a private DAX mapping (generic/437), before 4.12's "dax: Fix race
between colliding PMD & PTE entries" (Ross Zwisler): neither dax_iomap_pmd_fault nor
dax_iomap_fault looks at the PMD again once it holds the entry lock, so a PMD read fault sets its
PMD over the page table a racing COW fault made (4.10's insert_pfn_pmd does not look either), or
the COW fault goes on under the new PMD."""

from __future__ import annotations

from faultlab.designs.v4_10 import DESIGN as V410
from faultlab.fs.dax import v4_10 as dax
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.mm import VmFault


def dax_pte_fault_raced_pmd(k: Kernel, vmf: VmFault) -> bool:
    """Before the fix: no "raced with a PMD fault" check in dax_iomap_fault."""
    return False


def dax_pmd_fault_raced_pte(k: Kernel, vmf: VmFault) -> bool:
    """Before the fix: no "raced with a PTE fault" check in dax_iomap_pmd_fault."""
    return False


DESIGN = V410.variant(
    "v4.10-pmd-pte-collision",
    "known bug: a PMD fault and a COW PTE fault on a private DAX mapping collide before 4.12",
    "Linux 4.10 fs/dax.c dax_iomap_pmd_fault/dax_iomap_fault; fixed in 4.12 by \"dax: Fix race between colliding "
    "PMD & PTE entries\" (generic/437); scenario: races/pmd-pte-collision-private",
    {dax.dax_pte_fault_raced_pmd: dax_pte_fault_raced_pmd, dax.dax_pmd_fault_raced_pte: dax_pmd_fault_raced_pte},
    scenario="scenarios/races/pmd-pte-collision-private.toml", fixed_by="v4.10", expected_violation="pmd-pte-collision",
)
