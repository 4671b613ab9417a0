"""The generic fault code of Linux 3.15 (mm/memory.c), the kernel XIP ran on before the seed patch.

Read next to 3.15 mm/memory.c: ``handle_mm_fault`` -> ``handle_pte_fault`` -> ``do_linear_fault``
-> ``do_read_fault`` (with 3.15's new fault-around) / ``do_cow_fault`` / ``do_shared_fault``, and
``do_wp_page`` for a write to a present read-only PTE.  3.15's ``do_wp_page`` is one function with
``reuse:`` and ``gotten:`` labels; it is written here as the 4.2 split (``wp_page_reuse``,
``wp_page_shared``, ``wp_pfn_shared``, ``wp_page_copy``), which keeps its checks and their order.
The later eras take what they did not change from here (``from .v3_15 import ...``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.flags import (
    ERROR_NOPAGE_RETRY,
    FAULT_AROUND_BYTES,
    FAULT_FLAG_MKWRITE,
    FAULT_FLAG_WRITE,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SIZE,
    PTRS_PER_PTE,
    VM_FAULT_ERROR,
    VM_FAULT_HWPOISON,
    VM_FAULT_LOCKED,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_FAULT_WRITE,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_SHARED,
    VM_WRITE,
)
from faultlab.kernel.memory import (
    __pte_alloc,
    do_set_pte,
    pte_offset_map_lock,
    pte_read,
    pte_unmap_unlock,
    set_pte_at,
    vm_normal_page,
)
from faultlab.kernel.mm import MmStruct, Vma, VmFault
from faultlab.kernel.state.page import (
    Page,
    PageAnon,
    PageHWPoison,
    SetPageDirty,
    SetPageUptodate,
    clear_page,
    copy_page,
    get_page,
    lock_page,
    page_dup_rmap,
    page_mapcount,
    page_mapping,
    put_page,
    unlock_page,
)
from faultlab.kernel.state.pagetable import Pte, replace_pte

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

I_MMAP_IS_MUTEX = True  # i_mmap_mutex until 3.19


# -- the fault entry points ----------------------------------------------------------------------------
def handle_mm_fault(k: Kernel, vma: Vma, address: int, flags: int) -> int:
    """handle_mm_fault() -> __handle_mm_fault() -> handle_pte_fault(); the caller holds mmap_sem
    for read.  The page table is allocated first (until 4.11 moved that into the handlers).  (No
    THP: file THP and DAX PMDs are not in this era.)"""
    k.count("faults")
    __pte_alloc(k, vma, address)  # "if (unlikely(pmd_none(*pmd)) && unlikely(__pte_alloc(...)))"
    return handle_pte_fault(k, VmFault(vma, address, vma.linear_page_index(address), flags))


def handle_pte_fault(k: Kernel, vmf: VmFault) -> int:
    """handle_pte_fault(): a none PTE goes to the fault handlers; a present one is re-read under
    the PTL and, on a write to a read-only entry, handed to do_wp_page() with the PTL held."""
    vma = vmf.vma
    entry = pte_read(k, vma, vmf.address)
    vmf.orig_pte = entry
    if entry is None:
        return do_linear_fault(k, vmf)
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vma, vmf.address) != entry:
        pte_unmap_unlock(k, vmf)
        return 0
    if vmf.write:
        if not entry.write:
            return do_wp_page(k, vmf)
        set_pte_at(k, vma, vmf.address, Pte(entry.page, entry.block, True, True), "pte_mkdirty")
    pte_unmap_unlock(k, vmf)
    return 0


def do_linear_fault(k: Kernel, vmf: VmFault) -> int:
    """do_linear_fault() (do_fault() from 3.16): route by write and VM_SHARED."""
    vma = vmf.vma
    if vma.vm_ops.fault is None:
        return VM_FAULT_SIGBUS
    if not vmf.write:
        return do_read_fault(k, vmf)
    if not vma.shared:
        return do_cow_fault(k, vmf)
    return do_shared_fault(k, vmf)


def __do_fault(k: Kernel, vmf: VmFault) -> int:
    """__do_fault() (3.15): call ->fault; make sure the returned page is locked."""
    fault = vmf.vma.vm_ops.fault
    assert fault is not None
    ret = fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        return ret
    return lock_fault_page(k, vmf, ret)


def lock_fault_page(k: Kernel, vmf: VmFault, ret: int) -> int:
    """The end of __do_fault(): a poisoned page is dropped (VM_FAULT_HWPOISON), otherwise it is
    locked unless ->fault returned it locked (VM_FAULT_LOCKED)."""
    page = vmf.page
    assert page is not None
    if PageHWPoison(k, page):
        if ret & VM_FAULT_LOCKED:
            unlock_page(k, page)
        put_page(k, page)
        vmf.page = None
        return VM_FAULT_HWPOISON
    if not ret & VM_FAULT_LOCKED:
        lock_page(k, page)
    return ret


def do_fault_around(k: Kernel, vmf: VmFault) -> None:
    """do_fault_around() (3.15): a window of fault_around_bytes aligned on the *virtual* address,
    clipped to the VMA and to the PTE table, handed to ->map_pages with the PTL held."""
    vma = vmf.vma
    nr_pages = FAULT_AROUND_BYTES >> PAGE_SHIFT
    mask = ~(nr_pages * PAGE_SIZE - 1)
    start_addr = max(vmf.address & mask, vma.start)
    off = ((vmf.address - start_addr) >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)
    start_pgoff = vmf.pgoff - off
    # end: min3(last pgoff of this page table, last pgoff of the VMA, start + nr_pages - 1)
    pt_last = start_pgoff + (PTRS_PER_PTE - 1 - ((start_addr >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)))
    vma_last = vma.linear_page_index(vma.end - PAGE_SIZE)
    end_pgoff = min(pt_last, vma_last, start_pgoff + nr_pages - 1)
    map_pages = vma.vm_ops.map_pages
    assert map_pages is not None
    map_pages(k, vmf, start_pgoff, end_pgoff)


def do_read_fault(k: Kernel, vmf: VmFault) -> int:
    """do_read_fault(): fault-around first when ->map_pages exists, then ->fault, then map the
    locked page read-only after the pte_same() re-check."""
    k.count("fault.read")
    vma = vmf.vma
    if vma.vm_ops.map_pages is not None and FAULT_AROUND_BYTES >> PAGE_SHIFT > 1:
        pte_offset_map_lock(k, vmf)
        do_fault_around(k, vmf)
        if pte_read(k, vma, vmf.address) != vmf.orig_pte:
            pte_unmap_unlock(k, vmf)
            return 0
        pte_unmap_unlock(k, vmf)
    ret = __do_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        return ret
    page = vmf.page
    assert page is not None
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vma, vmf.address) != vmf.orig_pte:
        pte_unmap_unlock(k, vmf)
        unlock_page(k, page)
        put_page(k, page)
        return ret
    do_set_pte(k, vmf, page, write=False, anon=False)
    unlock_page(k, page)
    pte_unmap_unlock(k, vmf)
    return ret


def alloc_cow_page(k: Kernel) -> Page | None:
    """alloc_page_vma() + mem_cgroup_charge(): the page a COW fault copies into."""
    page = k.alloc.alloc_page(k)
    if page is not None:
        page.cow = True
    return page


def do_cow_fault(k: Kernel, vmf: VmFault) -> int:
    """do_cow_fault() (3.15): allocate, ->fault, copy the page it returned, install the copy
    under the PTL after the pte_same() re-check, then release the source page."""
    k.count("fault.cow")
    new_page = alloc_cow_page(k)
    if new_page is None:
        return VM_FAULT_OOM
    ret = __do_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        put_page(k, new_page)
        return ret
    fault_page = vmf.page
    assert fault_page is not None
    copy_page(k, new_page, fault_page)
    k.count("bytes_copied", PAGE_SIZE)
    SetPageUptodate(k, new_page)
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vmf.vma, vmf.address) != vmf.orig_pte:
        pte_unmap_unlock(k, vmf)
        unlock_page(k, fault_page)
        put_page(k, fault_page)
        put_page(k, new_page)
        return ret
    do_set_pte(k, vmf, new_page, write=True, anon=True)
    pte_unmap_unlock(k, vmf)
    unlock_page(k, fault_page)
    put_page(k, fault_page)
    return ret


def do_page_mkwrite(k: Kernel, vmf: VmFault, page: Page) -> int:
    """do_page_mkwrite(): ->page_mkwrite with the page unlocked; returns with it locked, or 0
    when the page was truncated meanwhile (the fault is then retried)."""
    mk = VmFault(vmf.vma, vmf.address, vmf.pgoff, FAULT_FLAG_WRITE | FAULT_FLAG_MKWRITE)
    mk.page = page
    page_mkwrite = vmf.vma.vm_ops.page_mkwrite
    assert page_mkwrite is not None
    ret = page_mkwrite(k, mk)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
        return ret
    if not ret & VM_FAULT_LOCKED:
        lock_page(k, page)
        if page_mapping(k, page) is None:
            unlock_page(k, page)
            return 0
        ret |= VM_FAULT_LOCKED
    return ret


def do_shared_fault(k: Kernel, vmf: VmFault) -> int:
    """do_shared_fault(): ->fault, ->page_mkwrite, then a writable shared PTE."""
    k.count("fault.shared")
    vma = vmf.vma
    ret = __do_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        return ret
    page = vmf.page
    assert page is not None
    if vma.vm_ops.page_mkwrite is not None:
        unlock_page(k, page)
        tmp = do_page_mkwrite(k, vmf, page)
        if not tmp or tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            put_page(k, page)
            return tmp
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vma, vmf.address) != vmf.orig_pte:
        pte_unmap_unlock(k, vmf)
        unlock_page(k, page)
        put_page(k, page)
        return ret
    do_set_pte(k, vmf, page, write=True, anon=False)
    pte_unmap_unlock(k, vmf)
    SetPageDirty(k, page)
    unlock_page(k, page)
    if vma.vm_ops.page_mkwrite is None:
        vma.file.file_update_time(k)
    return ret


# -- write-protect faults ----------------------------------------------------------------------------------
def do_wp_page(k: Kernel, vmf: VmFault) -> int:
    """do_wp_page(): entered with the PTL held, releases it.  pfn and zero-page PTEs of a private
    mapping are copied; shared-writable ones are reused (after ->pfn_mkwrite or ->page_mkwrite);
    an exclusively mapped anon page is reused."""
    vma = vmf.vma
    orig = vmf.orig_pte
    assert orig is not None
    old_page = vm_normal_page(vma, orig)
    shared_writable = vma.shared and bool(vma.flags & VM_WRITE)
    if old_page is None:  # a pfn, or the zero page (a DAX hole from 4.17)
        if shared_writable:
            return wp_pfn_shared(k, vmf)
        pte_unmap_unlock(k, vmf)
        return wp_page_copy(k, vmf, None)
    if PageAnon(k, old_page):
        if page_mapcount(k, old_page) == 1:  # reuse_swap_page(): we are the only mapper
            return wp_page_reuse(k, vmf, old_page, page_mkwrite=False, dirty_shared=False)
    elif shared_writable:
        return wp_page_shared(k, vmf, old_page)
    get_page(k, old_page)
    pte_unmap_unlock(k, vmf)
    return wp_page_copy(k, vmf, old_page)


def wp_page_reuse(k: Kernel, vmf: VmFault, page: Page | None, page_mkwrite: bool, dirty_shared: bool) -> int:
    """The ``reuse:`` path: make the same entry writable and dirty; for a shared file page, dirty
    it and (with no ->page_mkwrite) update the file time."""
    k.count("fault.wp-reuse")
    orig = vmf.orig_pte
    assert orig is not None
    set_pte_at(k, vmf.vma, vmf.address, Pte(orig.page, orig.block, True, True), "ptep_set_access_flags")
    pte_unmap_unlock(k, vmf)
    if dirty_shared and page is not None:
        SetPageDirty(k, page)
        if page_mkwrite:
            unlock_page(k, page)
        else:
            vmf.vma.file.file_update_time(k)
        put_page(k, page)
    return VM_FAULT_WRITE


def wp_page_shared(k: Kernel, vmf: VmFault, old_page: Page) -> int:
    """Write-notify a shared file page through ->page_mkwrite, then reuse it."""
    get_page(k, old_page)
    vma = vmf.vma
    if vma.vm_ops.page_mkwrite is not None:
        pte_unmap_unlock(k, vmf)
        tmp = do_page_mkwrite(k, vmf, old_page)
        if not tmp or tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            put_page(k, old_page)
            return tmp
        pte_offset_map_lock(k, vmf)
        if pte_read(k, vma, vmf.address) != vmf.orig_pte:
            unlock_page(k, old_page)
            pte_unmap_unlock(k, vmf)
            put_page(k, old_page)
            return 0
        return wp_page_reuse(k, vmf, old_page, page_mkwrite=True, dirty_shared=True)
    return wp_page_reuse(k, vmf, old_page, page_mkwrite=False, dirty_shared=True)


def wp_pfn_shared(k: Kernel, vmf: VmFault) -> int:
    """A write to a read-only pfn in a shared-writable VMA: ->pfn_mkwrite (4.1, dd9061846a3b)
    with the PTL dropped, then re-take it, re-check and reuse; before 4.1 (no ->pfn_mkwrite)
    straight to ``reuse:``."""
    vma = vmf.vma
    pfn_mkwrite = vma.vm_ops.pfn_mkwrite
    if pfn_mkwrite is not None:
        mk = VmFault(vma, vmf.address, vmf.pgoff, FAULT_FLAG_WRITE | FAULT_FLAG_MKWRITE)
        mk.orig_pte = vmf.orig_pte
        pte_unmap_unlock(k, vmf)
        ret = pfn_mkwrite(k, mk)
        if ret & VM_FAULT_ERROR:
            return ret
        pte_offset_map_lock(k, vmf)
        if pte_read(k, vma, vmf.address) != vmf.orig_pte:
            pte_unmap_unlock(k, vmf)
            return 0
    return wp_page_reuse(k, vmf, None, page_mkwrite=False, dirty_shared=False)


def cow_user_page(k: Kernel, dst: Page, src: Page | None, vmf: VmFault) -> None:
    """cow_user_page(): copy from the struct page, or -- for a pfn without one -- through the user
    mapping with no lock held (__copy_from_user_inatomic); if that entry is gone, zero-fill (the
    pre-5.6 behaviour; the caller's pte_same() then discards the copy)."""
    k.count("bytes_copied", PAGE_SIZE)
    if src is not None:
        copy_page(k, dst, src)
        return
    pte = pte_read(k, vmf.vma, vmf.address)
    if pte is None or pte.block is None:
        clear_page(k, dst, "clear_page (source gone)")
        return
    k.pmem.copy_to_page(k, pte.block, dst, "__copy_from_user_inatomic")


def wp_page_copy(k: Kernel, vmf: VmFault, old_page: Page | None) -> int:
    """The ``gotten:`` path: allocate, copy (or zero for the zero page), then under the PTL
    replace the entry if it is unchanged; the old page's references are dropped afterwards."""
    k.count("fault.wp-copy")
    vma = vmf.vma
    orig = vmf.orig_pte
    assert orig is not None
    new_page = k.alloc.alloc_page(k)
    if new_page is None:
        if old_page is not None:
            put_page(k, old_page)
        return VM_FAULT_OOM
    if orig.page is not None and orig.page.zero:
        k.count("pages_zeroed")
    else:
        cow_user_page(k, new_page, old_page, vmf)
    SetPageUptodate(k, new_page)
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vma, vmf.address) == orig:
        new = Pte(new_page, None, True, True)
        replace_pte(k, vma, vmf.address, orig, new)
        if orig.page is not None and not orig.page.zero:
            put_page(k, orig.page)  # the reference the old PTE held
        pte_unmap_unlock(k, vmf)
        ret = VM_FAULT_WRITE
    else:
        pte_unmap_unlock(k, vmf)
        put_page(k, new_page)
        ret = 0
    if old_page is not None:
        put_page(k, old_page)
    return ret



# -- fork: copying a VMA's page table into the child (mm/memory.c, 3.15 to 4.x) -----------------------
def is_cow_mapping(flags: int) -> bool:
    """is_cow_mapping(): private and possibly writable ((flags & (VM_SHARED|VM_MAYWRITE)) == VM_MAYWRITE)."""
    return flags & (VM_SHARED | VM_MAYWRITE) == VM_MAYWRITE


def copy_page_range(k: Kernel, dst_vma: Vma, vma: Vma) -> None:
    """copy_page_range() (3.15-4.x; 6.1's vma_needs_copy() makes the same test): "Don't copy ptes
    where a page fault will fill them correctly" -- a VMA that is not VM_MIXEDMAP (DAX) and has no
    anon_vma (no COW page was ever installed in it: every page-cache mapping that is shared, and
    private ones never written) is skipped, and the child refaults.  Otherwise each page table
    under the VMA goes through copy_pte_range()."""
    if not vma.flags & VM_MIXEDMAP and not vma.anon_vma:
        return
    pt = vma.mm.pt
    for table in pt.tables_in(k, vma.start, vma.end):
        copy_pte_range(k, dst_vma, vma, max(vma.start, table), min(vma.end, table + PMD_SIZE))


def copy_pte_range(k: Kernel, dst_vma: Vma, vma: Vma, addr: int, end: int) -> None:
    """copy_pte_range() (4.x): the child's table is allocated and its PTL taken
    (pte_alloc_map_lock), then the parent's (spin_lock_nested(src_ptl, SINGLE_DEPTH_NESTING));
    each present entry goes through copy_one_pte(), and the child's rss counters are added at the
    end (add_mm_rss_vec) before its PTL is dropped.  (The need_resched() break every 32 entries
    is left out: the model's tables are small.)"""
    dst_mm, src_mm = dst_vma.mm, vma.mm
    dst_mm.pt.alloc_table(k, addr)
    dst_ptl = dst_mm.pt.ptl(addr)
    dst_ptl.lock(k)
    src_ptl = src_mm.pt.ptl(addr)
    src_ptl.lock(k)
    rss = [0, 0]  # MM_FILEPAGES, MM_ANONPAGES
    for address in src_mm.pt.scan(k, addr, end):
        pte = pte_read(k, vma, address)
        if pte is not None:
            copy_one_pte(k, dst_vma, vma, address, pte, rss)
    src_ptl.unlock(k)
    add_mm_rss_vec(k, dst_mm, rss)
    dst_ptl.unlock(k)


def copy_one_pte(k: Kernel, dst_vma: Vma, vma: Vma, addr: int, pte: Pte, rss: list[int]) -> None:
    """copy_one_pte() (3.15-4.x; read in the 4.5 text, ``page_dup_rmap(page, false)``): a COW
    mapping's entry is write-protected in the parent and the child (ptep_set_wrprotect: a no-op on
    an entry already read-only, not a step here); a shared one is marked clean in the child; a
    struct page gets a reference and a mapping (get_page, page_dup_rmap: an anonymous page is now
    mapped twice); a pfn or zero-page entry (vm_normal_page() NULL: DAX) is copied as is.  Then
    set_pte_at() in the child."""
    if is_cow_mapping(vma.flags) and pte.write:
        set_pte_at(k, vma, addr, pte._replace(write=False), "ptep_set_wrprotect")
        pte = pte._replace(write=False)
    if vma.flags & VM_SHARED:
        pte = pte._replace(dirty=False)  # pte_mkclean
    page = vm_normal_page(vma, pte)
    if page is not None:
        get_page(k, page)
        page_dup_rmap(k, page)
        rss[1 if PageAnon(k, page) else 0] += 1
    set_pte_at(k, dst_vma, addr, pte, "set_pte_at (child)")


def add_mm_rss_vec(k: Kernel, mm: MmStruct, rss: list[int]) -> None:
    """add_mm_rss_vec(): the copied entries' counts go to the child's counters."""
    for anon, n in ((False, rss[0]), (True, rss[1])):
        if n:
            mm.add_rss(k, anon, n)
