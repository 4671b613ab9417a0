"""The ``pmd-pte-collision`` invariant: one 2 MiB range of an mm is mapped either by a huge PMD or
through a PTE table, never both.  A huge PMD set over a page table leaks the table and its
entries' rss counts ("non-zero nr_ptes on freeing mm", "BUG: Bad rss-counter state"); a PTE
written under a huge PMD writes into what is not a page table ("bad pmd").  generic/437's two
races (4.12, "dax: Fix race between colliding PMD & PTE entries")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faultlab.kernel.flags import PMD_SIZE

if TYPE_CHECKING:
    from faultlab.kernel.mm import Vma

PMD_PTE_COLLISION = "pmd-pte-collision"


def pmd_over_table(d: dict[str, Any]) -> str | None:
    """From a ``pmd_set`` event: what is wrong, if the PMD landed on a page table."""
    if not d["over_table"]:
        return None
    vma: Vma = d["vma"]
    return (f"{d['mm'].name}: {d['pmd'].describe()} set at {d['addr']:#x} ({vma.file.name}) over a PTE table "
            "that is still there (its entries and their counts are lost)")


def pte_under_huge(d: dict[str, Any]) -> str | None:
    """From a ``pte_set`` event: what is wrong, if the PTE went under a huge PMD."""
    vma: Vma = d["vma"]
    pt = vma.mm.pt
    if not pt.pmds:
        return None
    table = d["addr"] & ~(PMD_SIZE - 1)
    huge = dict.get(pt.huge, table)
    if huge is None:
        return None
    return (f"{vma.mm.name}: PTE {d['addr']:#x} ({vma.file.name}) set to {d['pte'].describe()} under "
            f"{huge.describe()} at {table:#x}")
