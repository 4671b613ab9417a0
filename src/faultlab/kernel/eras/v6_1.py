"""The generic fault code of Linux 6.1 (mm/memory.c at v6.1), the kernel of the DAX VM.

What changed since 4.10, read next to v6.1 mm/memory.c:

* ``__handle_mm_fault`` no longer allocates the PTE table (4.11, Kirill Shutemov, "mm: postpone
  page table allocation until we have page to map"): ``do_fault_around`` pre-allocates one
  (``vmf->prealloc_pte``) that ``->map_pages`` installs, and ``finish_fault`` allocates it when
  nobody did.
* ``do_read_fault`` returns whatever ``->map_pages`` returned: filemap_map_pages says
  VM_FAULT_NOPAGE itself when it mapped the faulting address (5.12, 9d3af4b4489a).
* ``finish_fault`` re-checks ``pte_none`` under the PTL and returns NOPAGE if another fault won.
* Fault accounting moved into ``handle_mm_fault`` (5.9, bce617edecad ``mm_account_fault``): faults
  that return an error or VM_FAULT_RETRY are not counted, a fault is major if it returned
  VM_FAULT_MAJOR or had been retried (FAULT_FLAG_TRIED).  The model's arch handler passes no
  FAULT_FLAG_ALLOW_RETRY, so this is what ``do_page_fault`` already counts.

``do_cow_fault``, ``do_shared_fault``, ``wp_pfn_shared`` and ``finish_mkwrite_fault`` read as 4.10's
(6.1 adds the memcg charge and ``anon_vma_prepare``, which the model does not have).

* ``do_wp_page`` decides reuse of an anonymous page by PageAnonExclusive (5.19) and then by the
  page's *refcount* (5.8-5.9, 09854ba94c6a "mm: do_wp_page() simplification"), no longer by its
  mapcount; fork's ``copy_present_pte`` (5.11 split of ``copy_one_pte``) clears
  PageAnonExclusive (``page_try_dup_anon_rmap``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.eras.v3_15 import (
    add_mm_rss_vec,
    copy_page_range,
    handle_pte_fault,
    is_cow_mapping,
    lock_fault_page,
    wp_page_copy,
    wp_page_reuse,
    wp_page_shared,
)
from faultlab.kernel.eras.v4_10 import (
    __do_fault,
    do_cow_fault,
    do_shared_fault,
    finish_mkwrite_fault,
    wp_pfn_shared,
)
from faultlab.kernel.flags import (
    ERROR_NOPAGE_RETRY,
    FAULT_AROUND_BYTES,
    PAGE_SHIFT,
    PAGE_SIZE,
    PTRS_PER_PTE,
    VM_FAULT_FALLBACK,
    VM_FAULT_NOPAGE,
    VM_FAULT_SIGBUS,
    VM_MAYSHARE,
    VM_SHARED,
    VM_WRITE,
)
from faultlab.kernel.huge_memory import (
    huge_pmd_set_accessed,
    is_huge,
    pmd_lock,
    pmd_unlock,
    split_huge_pmd,
    transparent_hugepage_enabled,
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
from faultlab.kernel.mm import Vma, VmFault
from faultlab.kernel.state.page import (
    PageAnon,
    PageAnonExclusive,
    SetPageAnonExclusive,
    get_page,
    page_count,
    page_dup_rmap,
    page_try_dup_anon_rmap,
    put_page,
    trylock_page,
    unlock_page,
)
from faultlab.kernel.state.pagetable import HugePmd, Pte

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

MAP_SHARED_VALIDATE = True
"""do_mmap() knows MAP_SHARED_VALIDATE (4.15, Jan Kara, "mm: Define MAP_SHARED_VALIDATE"):
a flag such as MAP_SYNC is checked against the file's ``mmap_supported_flags``.  Before it, the map
type 0x03 fell to the ``default: return -EINVAL`` of do_mmap's switch on ``flags & MAP_TYPE``."""

I_MMAP_IS_MUTEX = False
__all__ = ["copy_page_range", "do_cow_fault", "do_shared_fault", "do_wp_page", "finish_mkwrite_fault",
           "handle_mm_fault", "lock_fault_page", "wp_pfn_shared"]


def handle_mm_fault(k: Kernel, vma: Vma, address: int, flags: int) -> int:
    """handle_mm_fault() -> __handle_mm_fault() -> handle_pte_fault() (6.1): no PTE table is
    allocated on the way down (a none PMD reads as a none PTE).  Where PMDs are possible (a DAX
    VMA, see transparent_hugepage_enabled): "if (pmd_none(*vmf.pmd) && hugepage_vma_check(...))"
    create_huge_pmd(), going on to the PTEs only on VM_FAULT_FALLBACK; a huge PMD is made writable
    by wp_huge_pmd() or marked accessed; and handle_pte_fault() returns 0 on a PMD that turned huge
    ("if (pmd_devmap_trans_unstable(vmf->pmd)) return 0")."""
    k.count("faults")
    vmf = VmFault(vma, address, vma.linear_page_index(address), flags)
    if transparent_hugepage_enabled(vma):
        orig_pmd = vma.mm.pt.pmd_read(k, address, "__handle_mm_fault: *pmd")
        if orig_pmd is None:
            ret = create_huge_pmd(k, vmf)
            if not ret & VM_FAULT_FALLBACK:
                return ret
        elif isinstance(orig_pmd, HugePmd):
            if vmf.write and not orig_pmd.write:
                ret = wp_huge_pmd(k, vmf)
                if not ret & VM_FAULT_FALLBACK:
                    return ret
            else:
                huge_pmd_set_accessed(k, vma, address, vmf.write)
                return 0
        if is_huge(vma.mm.pt.pmd_read(k, address, "handle_pte_fault: pmd_devmap_trans_unstable")):
            return 0
    return handle_pte_fault(k, vmf)


def create_huge_pmd(k: Kernel, vmf: VmFault) -> int:
    """create_huge_pmd() (6.1): ``vma->vm_ops->huge_fault(vmf, PE_SIZE_PMD)``, else FALLBACK."""
    huge_fault = vmf.vma.vm_ops.huge_fault
    if huge_fault is None:
        return VM_FAULT_FALLBACK
    ret: int = huge_fault(k, vmf)
    if not ret & VM_FAULT_FALLBACK:
        k.count("fault.pmd")
    return ret


def wp_huge_pmd(k: Kernel, vmf: VmFault) -> int:
    """wp_huge_pmd() (6.1): a shared VMA's ->huge_fault; "COW or write-notify handled on pte
    level: split pmd" otherwise, or when it fell back."""
    vma = vmf.vma
    if vma.flags & (VM_SHARED | VM_MAYSHARE):
        ret = create_huge_pmd(k, vmf)
        if not ret & VM_FAULT_FALLBACK:
            return ret
    split_huge_pmd(k, vma, vmf.address)
    return VM_FAULT_FALLBACK


def insert_pfn_pmd(k: Kernel, vmf: VmFault, block: int, write: bool) -> int:
    """vmf_insert_pfn_pmd() -> insert_pfn_pmd() (6.1): under the PMD lock; a PMD already there is
    left alone, except that a write to the same pfn makes it young, dirty and writable
    (pmdp_set_access_flags) -- "if (!pmd_none(*pmd)) { if (write) { if (pmd_pfn(*pmd) !=
    pfn_t_to_pfn(pfn)) { WARN_ON_ONCE(!is_huge_zero_pmd(*pmd)); goto out_unlock; } ...}}"."""
    vma = vmf.vma
    pt = vma.mm.pt
    pmd_lock(k, vma)
    old = pt.pmd_read(k, vmf.address, "insert_pfn_pmd: pmd_none")
    if old is None:
        writable = (write and bool(vma.flags & VM_WRITE)) or vma.page_prot_writable()
        pt.set_huge(k, vma, vmf.address, HugePmd(None, block, writable, write), "insert_pfn_pmd: set_pmd_at")
    elif write and isinstance(old, HugePmd) and old.block == block:
        pt.set_huge(k, vma, vmf.address, old._replace(write=bool(vma.flags & VM_WRITE), dirty=True),
                    "pmdp_set_access_flags")
    pmd_unlock(k, vma)
    return VM_FAULT_NOPAGE


def do_fault(k: Kernel, vmf: VmFault) -> int:
    """do_fault() (6.1): route by write and VM_SHARED."""
    vma = vmf.vma
    if vma.vm_ops.fault is None:
        return VM_FAULT_SIGBUS
    if not vmf.write:
        return do_read_fault(k, vmf)
    if not vma.shared:
        return do_cow_fault(k, vmf)
    return do_shared_fault(k, vmf)


do_linear_fault = do_fault  # handle_pte_fault (unchanged in what the model has) calls it by its 3.15 name


def do_fault_around(k: Kernel, vmf: VmFault) -> int:
    """do_fault_around() (6.1): the same window as 3.15 (fault_around_bytes aligned on the virtual
    address, clipped to the VMA and the PTE table); pre-allocate a table if the PMD is none, then
    return what ->map_pages returns."""
    vma = vmf.vma
    nr_pages = FAULT_AROUND_BYTES >> PAGE_SHIFT
    address = max(vmf.address & ~(nr_pages * PAGE_SIZE - 1), vma.start)
    off = ((vmf.address - address) >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)
    start_pgoff = vmf.pgoff - off
    end_pgoff = start_pgoff - ((address >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)) + PTRS_PER_PTE - 1
    end_pgoff = min(end_pgoff, vma.linear_page_index(vma.end - PAGE_SIZE), start_pgoff + nr_pages - 1)
    if vma.mm.pt.pmd_none(k, vmf.address):
        vmf.prealloc_pte = True  # pte_alloc_one(): private until installed
    map_pages = vma.vm_ops.map_pages
    assert map_pages is not None
    return map_pages(k, vmf, start_pgoff, end_pgoff) or 0


def do_read_fault(k: Kernel, vmf: VmFault) -> int:
    """do_read_fault() (6.1): ->map_pages first ("use ->fault() as fallback"), returning at once if
    it reported anything (NOPAGE: it mapped the address); then ->fault, finish_fault(), unlock."""
    k.count("fault.read")
    if vmf.vma.vm_ops.map_pages is not None and FAULT_AROUND_BYTES >> PAGE_SHIFT > 1:
        ret = do_fault_around(k, vmf)
        if ret:
            return ret
    ret = __do_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        return ret
    page = vmf.page
    assert page is not None
    ret |= finish_fault(k, vmf)
    unlock_page(k, page)
    if ret & ERROR_NOPAGE_RETRY:
        put_page(k, page)
    return ret


def finish_fault(k: Kernel, vmf: VmFault) -> int:
    """finish_fault() (6.1): pick the COW page on a private write, else vmf->page; if the PMD is
    none, install the pre-allocated table or allocate one; then, under the PTL, "Re-check under
    ptl" that the PTE is none and map the page, else VM_FAULT_NOPAGE."""
    page = vmf.cow_page if (vmf.write and not vmf.vma.shared) else vmf.page
    assert page is not None
    if vmf.vma.mm.pt.pmd_none(k, vmf.address):
        __pte_alloc(k, vmf.vma, vmf.address)  # pmd_install(prealloc_pte) or pte_alloc()
    if transparent_hugepage_enabled(vmf.vma) and is_huge(vmf.vma.mm.pt.pmd_read(k, vmf.address)):
        return 0  # "See comment in handle_pte_fault()": pmd_devmap_trans_unstable()
    pte_offset_map_lock(k, vmf)
    ret = 0
    if pte_read(k, vmf.vma, vmf.address) is None:
        do_set_pte(k, vmf, page, vmf.write, anon=vmf.write and not vmf.vma.shared)
    else:
        ret = VM_FAULT_NOPAGE
    pte_unmap_unlock(k, vmf)
    return ret


# -- write-protect faults and fork (6.1) ---------------------------------------------------------------------
def do_wp_page(k: Kernel, vmf: VmFault) -> int:
    """do_wp_page() (6.1): entered with the PTL held, releases it.  A shared mapping never copies
    (no struct page: wp_pfn_shared(), else wp_page_shared()).  A private anonymous page is reused
    if PageAnonExclusive; else only if it holds the one reference ("folio_ref_count(folio) > 3",
    then "> 1 + swapcache", then folio_trylock() and "folio_ref_count(folio) != 1" under the lock),
    when page_move_anon_rmap() makes it exclusive again.  Everything else is copied.  (Read in the
    6.1-6.5 text, before 6.6 moved the anonymous checks into wp_can_reuse_anon_folio().)  (No KSM,
    swap cache or LRU pagevecs in the model: lru_add_drain() has nothing to drain.)"""
    vma = vmf.vma
    orig = vmf.orig_pte
    assert orig is not None
    page = vm_normal_page(vma, orig)
    if vma.shared:  # VM_SHARED | VM_MAYSHARE
        if page is None:
            return wp_pfn_shared(k, vmf)
        return wp_page_shared(k, vmf, page)
    if page is not None and PageAnon(k, page):
        if PageAnonExclusive(k, page):
            return wp_page_reuse(k, vmf, page, page_mkwrite=False, dirty_shared=False)
        if page_count(k, page) <= 1 and trylock_page(k, page):
            if page_count(k, page) != 1:
                unlock_page(k, page)
            else:
                SetPageAnonExclusive(k, page)  # page_move_anon_rmap()
                unlock_page(k, page)
                return wp_page_reuse(k, vmf, page, page_mkwrite=False, dirty_shared=False)
    # copy: "Ok, we need to copy. Oh, well.."
    if page is not None:
        get_page(k, page)
    pte_unmap_unlock(k, vmf)
    return wp_page_copy(k, vmf, page)


def copy_pte_range(k: Kernel, dst_vma: Vma, vma: Vma, addr: int, end: int) -> None:
    """copy_pte_range() (6.1): as 4.x -- the child's PTL, then the parent's nested -- each present
    entry through copy_present_pte() (no page needs copying: the model has no pinned pages)."""
    dst_mm, src_mm = dst_vma.mm, vma.mm
    dst_mm.pt.alloc_table(k, addr)
    dst_ptl = dst_mm.pt.ptl(addr)
    dst_ptl.lock(k)
    src_ptl = src_mm.pt.ptl(addr)
    src_ptl.lock(k)
    rss = [0, 0]
    for address in src_mm.pt.scan(k, addr, end):
        pte = pte_read(k, vma, address)
        if pte is not None:
            copy_present_pte(k, dst_vma, vma, address, pte, rss)
    src_ptl.unlock(k)
    add_mm_rss_vec(k, dst_mm, rss)
    dst_ptl.unlock(k)


def copy_present_pte(k: Kernel, dst_vma: Vma, src_vma: Vma, addr: int, pte: Pte, rss: list[int]) -> None:
    """copy_present_pte() (6.1): an anonymous page gets a reference and page_try_dup_anon_rmap()
    (no longer exclusive); a file page get_page() and page_dup_file_rmap(); a pfn or zero-page
    entry nothing.  Then "if (is_cow_mapping(vm_flags) && pte_write(pte))" the parent's entry is
    write-protected, a shared one is made clean in the child, and set_pte_at() in the child."""
    page = vm_normal_page(src_vma, pte)
    if page is not None and PageAnon(k, page):
        get_page(k, page)
        page_try_dup_anon_rmap(k, page)
        rss[1] += 1
    elif page is not None:
        get_page(k, page)
        page_dup_rmap(k, page)  # page_dup_file_rmap()
        rss[0] += 1
    if is_cow_mapping(src_vma.flags) and pte.write:
        set_pte_at(k, src_vma, addr, pte._replace(write=False), "ptep_set_wrprotect")
        pte = pte._replace(write=False)
    if src_vma.flags & VM_SHARED:
        pte = pte._replace(dirty=False)  # pte_mkclean
    set_pte_at(k, dst_vma, addr, pte, "set_pte_at (child)")
