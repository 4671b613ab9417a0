"""fork(2)'s copy of an address space and a process's exit: kernel/fork.c ``dup_mmap()`` and
mm/mmap.c ``exit_mmap()``.  Read next to Linux 4.x kernel/fork.c (the 4.0 i_mmap_lock_write()
conversion of dup_mmap, and the 4.x text: link into i_mmap, then ``__vma_link_rb``, then
``copy_page_range``; the order is the same in 6.1).  6.1 differs in the page table copy, which each
era provides as ``copy_page_range``, and in taking mmap_lock in exit_mmap, which no other thread
can contend for.

A child is a new process: its mm is the parent's VMAs copied (each linked into its file's i_mmap
next to the parent's, so truncate and page_mkclean reach it) and, where ``copy_page_range`` does
not skip the VMA, the parent's page table entries: private pages are then shared copy-on-write
(write-protected in both, mapcount > 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.eras import v4_10 as era  # linked per design: its copy_page_range
from faultlab.kernel.memory import i_mmap_lock_write, i_mmap_unlock_write, zap_pte_range
from faultlab.kernel.mm import MmStruct, Vma

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel


def dup_mmap(k: Kernel, mm: MmStruct, oldmm: MmStruct) -> dict[Vma, Vma]:
    """dup_mmap() (kernel/fork.c, 4.10): the parent's mmap_sem for write, then the child's
    (down_write_nested: "Not linked in yet - no deadlock potential"); for each VMA, a copy
    (``*tmp = *mpnt``, anon_vma_fork() keeps its anon_vma), linked into the file's i_mmap under
    i_mmap_lock_write ("insert tmp into the share list, just after mpnt") and into the child's VMA
    list, then copy_page_range().  Returns each parent VMA's copy."""
    oldmm.mmap_sem.down_write(k)
    mm.mmap_sem.down_write(k)
    copies: dict[Vma, Vma] = {}
    for mpnt in oldmm.vmas(k):
        tmp = Vma(mm, mpnt.start, mpnt.end, mpnt.pgoff, mpnt.file, mpnt.flags, mpnt.vm_ops)
        if mpnt.anon_vma:
            object.__setattr__(tmp, "anon_vma", True)  # anon_vma_fork()
        mapping = mpnt.file.mapping
        i_mmap_lock_write(k, mapping)
        mapping.vma_link(k, tmp)
        i_mmap_unlock_write(k, mapping)
        mm.set_vmas(k, (*mm.vmas(k), tmp), "__vma_link_rb")
        copies[mpnt] = tmp
        era.copy_page_range(k, tmp, mpnt)
    mm.mmap_sem.up_write(k)
    oldmm.mmap_sem.up_write(k)
    return copies


def exit_mmap(k: Kernel, mm: MmStruct) -> None:
    """exit_mmap() (mm/mmap.c, 4.10), when the last user of the mm goes: unmap_vmas() zaps every
    VMA's entries (private copies included), free_pgtables() unlinks each file VMA from its
    i_mmap (unlink_file_vma, under i_mmap_lock_write), then remove_vma() frees them.  No
    mmap_sem: nobody else can reach this mm."""
    vmas = mm.vmas(k)
    for vma in vmas:
        zap_pte_range(k, vma, vma.start, vma.end, None)
    for vma in vmas:
        mapping = vma.file.mapping
        i_mmap_lock_write(k, mapping)
        mapping.vma_unlink(k, vma)
        i_mmap_unlock_write(k, mapping)
    mm.set_vmas(k, (), "remove_vma")
