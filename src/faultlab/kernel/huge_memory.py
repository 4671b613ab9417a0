"""The parts of mm/huge_memory.c a DAX PMD needs, shared by the eras that have PMD faults (4.10,
6.1): the PMD lock, splitting and zapping a huge PMD of a file mapping, and write-protecting one.

A DAX PMD maps 512 pmem blocks (or the huge zero page) with no struct page accounting in the model
(as a pfn PTE has none).  Splitting a huge PMD of a file VMA only clears it: "if
(!vma_is_anonymous(vma)) { _pmd = pmdp_huge_clear_flush_notify(...); if (vma_is_dax(vma))
return; ...}" (__split_huge_pmd_locked, 4.10 and 6.1); the next access faults the PTEs in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.flags import PMD_SIZE
from faultlab.kernel.state.pagetable import HugePmd

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.mm import Vma


def transparent_hugepage_enabled(vma: Vma) -> bool:
    """Whether __handle_mm_fault tries a huge PMD: a DAX VMA ("khugepaged doesn't collapse DAX
    vma, but page fault is fine", hugepage_vma_check() 6.1) whose file system has a huge fault
    handler, where the scenario's extents are 2 MiB aligned (``pmem_align = "2m"``; elsewhere the
    model leaves the PMD attempt out, see docs/designs.md)."""
    return vma.vm_ops.huge_fault is not None and vma.mm.pt.pmds


def pmd_lock(k: Kernel, vma: Vma) -> None:
    """pmd_lock(): the lock of the PMD's table (here: the mm's page_table_lock)."""
    vma.mm.pt.pmd_ptl.lock(k)


def pmd_unlock(k: Kernel, vma: Vma) -> None:
    vma.mm.pt.pmd_ptl.unlock(k)


def is_huge(pmd: object) -> bool:
    """pmd_trans_huge(pmd) || pmd_devmap(pmd)."""
    return isinstance(pmd, HugePmd)


def split_huge_pmd(k: Kernel, vma: Vma, address: int) -> None:
    """split_huge_pmd(): an unlocked test "if (pmd_trans_huge(*pmd) || pmd_devmap(*pmd))", then
    __split_huge_pmd() under the PMD lock, which for a DAX VMA just clears the PMD."""
    pt = vma.mm.pt
    if not is_huge(pt.pmd_read(k, address, "split_huge_pmd: pmd_trans_huge")):
        return
    pmd_lock(k, vma)
    if is_huge(pt.pmd_read(k, address, "__split_huge_pmd: pmd_trans_huge")):
        k.count("thp_split_pmd")
        old = pt.clear_huge(k, address, "pmdp_huge_clear_flush_notify")
        k.events.emit("pmd_clear", mm=vma.mm, vma=vma, addr=address & ~(PMD_SIZE - 1), pmd=old)
    pmd_unlock(k, vma)


def zap_huge_pmd(k: Kernel, vma: Vma, table: int) -> None:
    """zap_pmd_range() meeting a huge PMD: zap_huge_pmd() for a whole one, __split_huge_pmd()
    for part of one -- for a DAX VMA both clear it, under the PMD lock."""
    pt = vma.mm.pt
    pmd_lock(k, vma)
    if is_huge(pt.pmd_read(k, table, "zap_huge_pmd: __pmd_trans_huge_lock")):
        old = pt.clear_huge(k, table)
        k.events.emit("pmd_clear", mm=vma.mm, vma=vma, addr=table, pmd=old)
    pmd_unlock(k, vma)


def zap_huge_pmds(k: Kernel, vma: Vma, start: int, end: int) -> None:
    """The huge PMDs zap_pmd_range() meets in [start, end) (a walk without the lock, as Linux's)."""
    for table in vma.mm.pt.huge_in(k, start, end):
        zap_huge_pmd(k, vma, table)


def huge_pmd_set_accessed(k: Kernel, vma: Vma, address: int, write: bool) -> None:
    """huge_pmd_set_accessed(): under the PMD lock, if the PMD is unchanged, young (and dirty on
    a write, which only reaches here through a writable PMD)."""
    pt = vma.mm.pt
    pmd_lock(k, vma)
    pmd = pt.pmd_read(k, address, "huge_pmd_set_accessed: pmd_same")
    if isinstance(pmd, HugePmd) and write and not pmd.dirty:
        pt.set_huge(k, vma, address, pmd._replace(dirty=True), "pmdp_set_access_flags")
    pmd_unlock(k, vma)


def pmd_wrprotect(k: Kernel, vma: Vma, address: int, block: int) -> bool:
    """The PMD half of dax_mapping_entry_mkclean() / pfn_mkclean_range(): under the PMD lock, a
    writable huge PMD of ``block`` is write-protected and cleaned.  Returns whether it was."""
    pt = vma.mm.pt
    done = False
    pmd_lock(k, vma)
    pmd = pt.pmd_read(k, address, "pfn_mkclean: pmd")
    if isinstance(pmd, HugePmd) and pmd.block == block and (pmd.write or pmd.dirty):
        pt.set_huge(k, vma, address, pmd._replace(write=False, dirty=False), "pmdp_invalidate; pmd_wrprotect")
        k.events.emit("pte_wrprotect", mm=vma.mm, addr=address)
        done = True
    pmd_unlock(k, vma)
    return done


def change_huge_pmd(k: Kernel, vma: Vma, table: int) -> None:
    """change_huge_pmd() (mprotect): a huge PMD takes the VMA's new vm_page_prot; a dirty one of a
    write-notify VMA stays writable, as a PTE does."""
    pt = vma.mm.pt
    pmd_lock(k, vma)
    pmd = pt.pmd_read(k, table, "change_huge_pmd")
    if isinstance(pmd, HugePmd) and pmd.block is not None:
        write = vma.page_prot_writable() or (vma.writenotify and pmd.dirty)
        if write != pmd.write:
            pt.set_huge(k, vma, table, pmd._replace(write=write), "change_huge_pmd")
    elif isinstance(pmd, HugePmd) and pmd.write:  # the huge zero page is never writable
        pt.set_huge(k, vma, table, pmd._replace(write=False), "change_huge_pmd")
    pmd_unlock(k, vma)
