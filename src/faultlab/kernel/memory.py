"""The parts of mm/memory.c that every era of the model shares: PTE installation and clearing,
vm_insert_page()/vm_insert_mixed(), and zapping (unmap_mapping_range, zap_page_range).

The fault path itself (handle_mm_fault down to do_cow_fault, do_wp_page, finish_fault) differs
from era to era and lives in :mod:`faultlab.kernel.eras`.  Read next to Linux 4.0 mm/memory.c.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE, PMD_SIZE, VM_FAULT_NOPAGE, VM_MIXEDMAP, VM_WRITE
from faultlab.kernel.huge_memory import zap_huge_pmds
from faultlab.kernel.state.page import Page, SetPageDirty, get_page, page_mapping, put_page
from faultlab.kernel.state.pagetable import Pte, install_pte, remove_pte

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.mm import Vma, VmFault
    from faultlab.kernel.state.pagecache import AddressSpace

EINVAL = -22
EBUSY = -16
ENOMEM = -12


# -- the i_mmap lock (a mutex until 3.19, an rwsem from 4.0) -----------------------------------------
def i_mmap_lock_read(k: Kernel, mapping: AddressSpace) -> None:
    mapping.i_mmap_rwsem.down_read(k)  # type: ignore[attr-defined]


def i_mmap_unlock_read(k: Kernel, mapping: AddressSpace) -> None:
    mapping.i_mmap_rwsem.up_read(k)  # type: ignore[attr-defined]


def i_mmap_lock_write(k: Kernel, mapping: AddressSpace) -> None:
    mapping.i_mmap_rwsem.down_write(k)  # type: ignore[attr-defined]


def i_mmap_unlock_write(k: Kernel, mapping: AddressSpace) -> None:
    mapping.i_mmap_rwsem.up_write(k)  # type: ignore[attr-defined]


# -- page-table entries ---------------------------------------------------------------------------------
def pte_offset_map_lock(k: Kernel, vmf: VmFault) -> None:
    vmf.vma.mm.pt.ptl(vmf.address).lock(k)
    vmf.ptl_held = True


def pte_unmap_unlock(k: Kernel, vmf: VmFault) -> None:
    vmf.ptl_held = False
    vmf.vma.mm.pt.ptl(vmf.address).unlock(k)


def __pte_alloc(k: Kernel, vma: Vma, address: int) -> None:
    """__pte_alloc() (3.15-4.10 __handle_mm_fault, and get_locked_pte() for insert_pfn): the page
    table exists before any fault handler runs or its lock is taken."""
    vma.mm.pt.alloc_table(k, address)


def pte_read(k: Kernel, vma: Vma, address: int) -> Pte | None:
    """*pte: one read of the entry (pte_none(), pte_same())."""
    return vma.mm.pt.read(k, address)


def set_pte_at(k: Kernel, vma: Vma, address: int, pte: Pte, label: str = "set_pte_at") -> None:
    """Change an entry's bits (ptep_set_access_flags, write-protect): no rmap, no counters."""
    vma.mm.pt.write(k, vma, address, pte, label)


def do_set_pte(k: Kernel, vmf: VmFault, page: Page, write: bool, anon: bool, label: str = "do_set_pte") -> None:
    """do_set_pte() (3.15-4.9; the body of alloc_set_pte() in 4.10): the caller holds the PTL and
    hands its page reference over to the PTE."""
    vma = vmf.vma
    writable = (write and bool(vma.flags & VM_WRITE)) or (not anon and vma.page_prot_writable())
    pte = Pte(page, None, writable, write)
    install_pte(k, vma, vmf.address, pte, anon, label)


def vm_normal_page(vma: Vma, pte: Pte) -> Page | None:
    """vm_normal_page(): NULL for special (pfn) PTEs in a VM_MIXEDMAP VMA and for the zero page."""
    page = pte.page
    if page is None or page.zero:
        return None
    return page


def insert_page(k: Kernel, vma: Vma, address: int, page: Page) -> int:
    """insert_page() behind vm_insert_page(): a file-like PTE (MM_FILEPAGES, file rmap) for
    ``page`` with vma->vm_page_prot; -EBUSY when the slot is taken."""
    __pte_alloc(k, vma, address)  # get_locked_pte()
    ptl = vma.mm.pt.ptl(address)
    ptl.lock(k)
    if pte_read(k, vma, address) is not None:
        ptl.unlock(k)
        return EBUSY
    get_page(k, page)
    pte = Pte(page, None, vma.page_prot_writable(), False)
    install_pte(k, vma, address, pte, anon=False, label="insert_page")
    ptl.unlock(k)
    return 0


def vm_insert_page(k: Kernel, vma: Vma, address: int, page: Page, anon: bool) -> int:
    """vm_insert_page(): refuses anonymous pages (-EINVAL), else insert_page()."""
    if anon:
        return EINVAL
    return insert_page(k, vma, address, page)


def vm_insert_mixed(k: Kernel, vma: Vma, address: int, block: int, mkwrite: bool = False) -> int:
    """vm_insert_mixed() -> insert_pfn(): a special pfn PTE with vma->vm_page_prot; -EBUSY if the
    slot is taken.  ``mkwrite`` is vmf_insert_mixed_mkwrite() (4.15): young, dirty and writable."""
    assert vma.flags & VM_MIXEDMAP
    __pte_alloc(k, vma, address)  # get_locked_pte()
    ptl = vma.mm.pt.ptl(address)
    ptl.lock(k)
    if pte_read(k, vma, address) is not None:
        ptl.unlock(k)
        return EBUSY
    pte = Pte(None, block, vma.page_prot_writable() or mkwrite, mkwrite)
    install_pte(k, vma, address, pte, anon=False, label="insert_pfn")
    ptl.unlock(k)
    return 0


def vmf_insert_mixed(k: Kernel, vma: Vma, address: int, block: int | None, mkwrite: bool = False) -> int:
    """vmf_insert_mixed() / vmf_insert_mixed_mkwrite() -> insert_pfn() (6.1): VM_FAULT_NOPAGE
    whether the entry went in or the slot was taken (-EBUSY is not an error).  ``block`` None is
    the zero pfn (my_zero_pfn(), a DAX hole).  With ``mkwrite`` (4.15, "dax: fix write-protection
    of DAX PTEs" era), a present entry for the same pfn is made young, dirty and writable; one for
    another pfn (the zero page a racing write is replacing) is left alone."""
    assert vma.flags & VM_MIXEDMAP
    __pte_alloc(k, vma, address)  # get_locked_pte()
    ptl = vma.mm.pt.ptl(address)
    ptl.lock(k)
    old = pte_read(k, vma, address)
    if old is not None:
        if mkwrite and old.page is None and old.block == block:
            set_pte_at(k, vma, address, Pte(None, block, True, True), "ptep_set_access_flags")
        ptl.unlock(k)
        return VM_FAULT_NOPAGE
    if block is None:
        pte = Pte(k.alloc.zero_page, None, False, False)
    else:
        pte = Pte(None, block, vma.page_prot_writable() or mkwrite, mkwrite)
    install_pte(k, vma, address, pte, anon=False, label="insert_pfn")
    ptl.unlock(k)
    return VM_FAULT_NOPAGE


# -- unmapping ------------------------------------------------------------------------------------------
def zap_pte_range(k: Kernel, vma: Vma, start: int, end: int, check_mapping: AddressSpace | None) -> None:
    """unmap_page_range() -> zap_pte_range(): for each page table under [start, end) that exists
    (an unlocked pmd_none() test, as in Linux), walk its entries under its PTL and clear them.
    With ``check_mapping`` (even_cows == 0), pages of another mapping (anon COW copies) are kept;
    pfn entries are zapped regardless.  The pages are put after the walk, as tlb_finish_mmu() does
    after the TLB flush.  Huge PMDs under the range (where the scenario has them) are zapped first
    (zap_pmd_range(): zap_huge_pmd(), or __split_huge_pmd() for part of one)."""
    pt = vma.mm.pt
    if pt.pmds:
        zap_huge_pmds(k, vma, start, end)
    for table in pt.tables_in(k, start, end):
        lo, hi = max(start, table), min(end, table + PMD_SIZE)
        ptl = pt.ptl(table)
        ptl.lock(k)
        freed: list[Page] = []
        for address in pt.scan(k, lo, hi):
            ptent = pte_read(k, vma, address)
            if ptent is None:
                continue
            page = vm_normal_page(vma, ptent)
            if check_mapping is not None and page is not None and page_mapping(k, page) is not check_mapping:
                continue
            anon = remove_pte(k, vma.mm, address, ptent)
            k.events.emit("pte_clear", mm=vma.mm, vma=vma, addr=address, pte=ptent)
            if page is None:
                continue
            if ptent.dirty and not anon:
                SetPageDirty(k, page)
            freed.append(page)
        ptl.unlock(k)
        for page in freed:
            put_page(k, page)


def unmap_mapping_range(k: Kernel, mapping: AddressSpace, holebegin: int, holelen: int, even_cows: bool) -> None:
    """unmap_mapping_range() (4.0): under i_mmap (write), zap every VMA's view of the page range;
    holelen 0 means to the end of the file and beyond."""
    k.count("unmap_mapping_range")
    first = holebegin >> PAGE_SHIFT
    last = (1 << 62) if holelen == 0 else first + ((holelen + PAGE_SIZE - 1) >> PAGE_SHIFT) - 1
    i_mmap_lock_write(k, mapping)
    for vma in mapping.vmas(k):
        lo, hi = max(first, vma.pgoff), min(last, vma.pgoff + vma.npages() - 1)
        if lo > hi:
            continue
        zap_pte_range(k, vma, vma.address_of(lo), vma.address_of(hi) + PAGE_SIZE, None if even_cows else mapping)
    i_mmap_unlock_write(k, mapping)


# -- write-protecting (mm/rmap.c) -------------------------------------------------------------------------
def page_mkclean(k: Kernel, mapping: AddressSpace, page: Page, index: int) -> None:
    """page_mkclean(): write-protect and clean every shared PTE of the page, walking i_mmap (read);
    a dirty PTE dirties the page first."""
    i_mmap_lock_read(k, mapping)
    for vma in mapping.vmas(k):
        if not vma.shared or not vma.maps(index):
            continue
        address = vma.address_of(index)
        ptl = vma.mm.pt.ptl(address)
        ptl.lock(k)
        pte = pte_read(k, vma, address)
        if pte is not None and pte.page is page and (pte.write or pte.dirty):
            if pte.dirty:
                SetPageDirty(k, page)
            set_pte_at(k, vma, address, Pte(page, None, False, False), "page_mkclean_one")
            k.events.emit("pte_wrprotect", mm=vma.mm, addr=address)
        ptl.unlock(k)
    i_mmap_unlock_read(k, mapping)
