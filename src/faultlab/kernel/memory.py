"""mm/memory.c: the generic fault path for file-backed mappings, write-protect faults, PTE
installation and zapping.

Read next to Linux 4.0 mm/memory.c (``handle_pte_fault``, ``do_fault`` -> ``do_read_fault`` /
``do_cow_fault`` / ``do_shared_fault``, ``do_wp_page``, ``unmap_mapping_range``) and 4.7/4.10 for
the pieces later designs use (``wp_pfn_shared``, ``finish_fault``/``alloc_set_pte``).  What differs
between the designs of the seed's history -- ``do_cow_fault`` and the DAX handlers -- lives in
``faultlab.designs``; everything here is shared by all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.flags import (
    FAULT_AROUND_BYTES,
    PAGE_SHIFT,
    PAGE_SIZE,
    PTRS_PER_PTE,
    VM_FAULT_ERROR,
    FaultFlag,
    VmFault,
    VmFlag,
)
from faultlab.kernel.mm import MmStruct, Pte, Vma, VmFaultData
from faultlab.kernel.page import Page, lock_page, unlock_page
from faultlab.sched import Access

if TYPE_CHECKING:
    from faultlab.kernel.fs import AddressSpace
    from faultlab.kernel.kernel import Kernel

ERR_NOPAGE_RETRY = VM_FAULT_ERROR | VmFault.NOPAGE | VmFault.RETRY


# -- page-table entries -------------------------------------------------------------------------------
def pte_read(k: Kernel, mm: MmStruct, address: int) -> Pte | None:
    """*pte (or a pte_same()/pte_none() test): one read of the entry."""
    k.sched.point(("pte", mm, address), Access.READ, f"read pte {address:#x}")
    return mm.ptes.get(address)


def set_pte_at(k: Kernel, vma: Vma, address: int, pte: Pte) -> None:
    mm = vma.mm
    k.sched.point(("pte", mm, address), Access.WRITE, f"set_pte_at {address:#x} -> {pte.describe()}")
    mm.ptes[address] = pte
    k.events.emit("pte_set", mm=mm, vma=vma, addr=address, pte=pte)


def pte_clear(k: Kernel, vma: Vma, address: int) -> Pte | None:
    """ptep_get_and_clear(): remove the entry, return what it was."""
    mm = vma.mm
    k.sched.point(("pte", mm, address), Access.WRITE, f"pte_clear {address:#x}")
    old = mm.ptes.pop(address, None)
    if old is not None:
        k.events.emit("pte_clear", mm=mm, vma=vma, addr=address, pte=old)
    return old


def pte_offset_map_lock(k: Kernel, vmf: VmFaultData) -> None:
    vmf.vma.mm.pte_lockptr(vmf.address).lock(k)


def pte_unmap_unlock(k: Kernel, vmf: VmFaultData) -> None:
    vmf.vma.mm.pte_lockptr(vmf.address).unlock(k)


# -- i_mmap lock (a mutex until 3.19, an rwsem from 4.0) ---------------------------------------------
def i_mmap_lock_read(k: Kernel, mapping: AddressSpace) -> None:
    if k.design.i_mmap_is_mutex:
        mapping.i_mmap_rwsem.down_write(k)
    else:
        mapping.i_mmap_rwsem.down_read(k)


def i_mmap_unlock_read(k: Kernel, mapping: AddressSpace) -> None:
    if k.design.i_mmap_is_mutex:
        mapping.i_mmap_rwsem.up_write(k)
    else:
        mapping.i_mmap_rwsem.up_read(k)


def i_mmap_lock_write(k: Kernel, mapping: AddressSpace) -> None:
    mapping.i_mmap_rwsem.down_write(k)


def i_mmap_unlock_write(k: Kernel, mapping: AddressSpace) -> None:
    mapping.i_mmap_rwsem.up_write(k)


# -- installing PTEs -----------------------------------------------------------------------------------
def page_add_new_anon_rmap(k: Kernel, page: Page) -> None:
    page.anon = True
    page.mapcount += 1


def page_add_file_rmap(k: Kernel, page: Page) -> None:
    page.mapcount += 1


def page_remove_rmap(k: Kernel, page: Page) -> None:
    page.mapcount -= 1


def do_set_pte(k: Kernel, vmf: VmFaultData, page: Page, write: bool, anon: bool) -> None:
    """do_set_pte() (3.15-4.9; alloc_set_pte() in 4.10): the caller holds the PTL and hands its
    page reference over to the PTE."""
    vma = vmf.vma
    writable = (write and bool(vma.flags & VmFlag.WRITE)) or (not anon and vma.page_prot_writable())
    if anon:
        vma.mm.rss_anon += 1
        page_add_new_anon_rmap(k, page)
    else:
        vma.mm.rss_file += 1
        page_add_file_rmap(k, page)
    set_pte_at(k, vma, vmf.address, Pte(page, None, writable, write))


def alloc_set_pte(k: Kernel, vmf: VmFaultData, page: Page) -> VmFault:
    """alloc_set_pte() (4.10): with the PTL held, "re-check under ptl" that the slot is still none,
    then map ``page`` (anon when it is the COW page of a private write)."""
    if pte_read(k, vmf.vma.mm, vmf.address) is not None:
        return VmFault.NOPAGE
    write = vmf.write
    anon = write and not vmf.vma.shared
    do_set_pte(k, vmf, page, write, anon)
    return VmFault.NONE


def finish_fault(k: Kernel, vmf: VmFaultData) -> VmFault:
    """finish_fault() (4.10, 9118c0cbd442): pick the COW page on a private write, else vmf->page,
    and install it under the PTL."""
    page = vmf.cow_page if (vmf.write and not vmf.vma.shared) else vmf.page
    assert page is not None
    pte_offset_map_lock(k, vmf)
    ret = alloc_set_pte(k, vmf, page)
    pte_unmap_unlock(k, vmf)
    return ret


def insert_page(k: Kernel, vma: Vma, address: int, page: Page) -> int:
    """insert_page() behind vm_insert_page(): a file-like PTE (MM_FILEPAGES, file rmap) for
    ``page``; -EBUSY when the slot is taken."""
    if page.anon:
        return -22  # -EINVAL: vm_insert_page refuses anonymous pages
    ptl = vma.mm.pte_lockptr(address)
    ptl.lock(k)
    if pte_read(k, vma.mm, address) is not None:
        ptl.unlock(k)
        return -16  # -EBUSY
    k.alloc.get_page(page)
    vma.mm.rss_file += 1
    page_add_file_rmap(k, page)
    set_pte_at(k, vma, address, Pte(page, None, vma.page_prot_writable(), False))
    ptl.unlock(k)
    return 0


def vm_insert_page(k: Kernel, vma: Vma, address: int, page: Page) -> int:
    return insert_page(k, vma, address, page)


def vm_insert_mixed(k: Kernel, vma: Vma, address: int, block: int, write: bool = False) -> int:
    """vm_insert_mixed() -> insert_pfn(): a special pfn PTE with vma->vm_page_prot; -EBUSY if the
    slot is taken.  ``write`` is 4.10's vm_insert_mixed_mkwrite (pte_mkyoung+mkdirty+mkwrite)."""
    assert vma.flags & VmFlag.MIXEDMAP
    ptl = vma.mm.pte_lockptr(address)
    ptl.lock(k)
    if pte_read(k, vma.mm, address) is not None:
        ptl.unlock(k)
        return -16
    writable = vma.page_prot_writable() or write
    set_pte_at(k, vma, address, Pte(None, block, writable, write))
    ptl.unlock(k)
    return 0


def vm_normal_page(vma: Vma, pte: Pte) -> Page | None:
    """vm_normal_page(): NULL for special (pfn) PTEs in a VM_MIXEDMAP VMA and for the zero page."""
    if pte.page is None or pte.page.zero:
        return None
    return pte.page


# -- the fault entry points ----------------------------------------------------------------------------
def handle_mm_fault(k: Kernel, vma: Vma, address: int, flags: FaultFlag) -> VmFault:
    """handle_mm_fault() -> __handle_mm_fault() -> handle_pte_fault(); the caller holds mmap_sem
    for read.  (No THP or PMD faults: file THP and 2 MiB DAX PMDs are outside the model.)"""
    k.count("faults")
    vmf = VmFaultData(vma=vma, address=address, pgoff=vma.linear_page_index(address), flags=flags)
    return handle_pte_fault(k, vmf)


def handle_pte_fault(k: Kernel, vmf: VmFaultData) -> VmFault:
    """handle_pte_fault(): a none PTE goes to do_fault(); a present one is re-read under the PTL
    and, on a write to a read-only entry, handed to do_wp_page() with the PTL held."""
    mm = vmf.vma.mm
    entry = pte_read(k, mm, vmf.address)
    vmf.orig_pte = entry
    if entry is None:
        return do_fault(k, vmf)
    pte_offset_map_lock(k, vmf)
    if pte_read(k, mm, vmf.address) != entry:
        pte_unmap_unlock(k, vmf)
        return VmFault.NONE
    if vmf.write:
        if not entry.write:
            return do_wp_page(k, vmf)
        entry = Pte(entry.page, entry.block, entry.write, True)
        set_pte_at(k, vmf.vma, vmf.address, entry)
    pte_unmap_unlock(k, vmf)
    return VmFault.NONE


def do_fault(k: Kernel, vmf: VmFaultData) -> VmFault:
    """do_fault() (4.x; do_linear_fault() in 3.15): route by write and VM_SHARED."""
    vma = vmf.vma
    if vma.vm_ops.fault is None:
        return VmFault.SIGBUS
    if not vmf.write:
        return do_read_fault(k, vmf)
    if not vma.shared:
        return k.design.do_cow_fault(k, vmf)
    return do_shared_fault(k, vmf)


def __do_fault(k: Kernel, vmf: VmFaultData) -> VmFault:
    """__do_fault(): call ->fault and make sure the returned page is locked.

    One body serves every design, because each era's early exits are for return codes only that
    era's handlers produce: ERROR/NOPAGE/RETRY (all), VM_FAULT_COWED (the seed's v7), a NULL page
    meaning i_mmap is held instead of a page lock (4.0), VM_FAULT_DAX_LOCKED (4.7) and
    VM_FAULT_DONE_COW (4.10)."""
    assert vmf.vma.vm_ops.fault is not None
    ret = vmf.vma.vm_ops.fault(k, vmf)
    if ret & (ERR_NOPAGE_RETRY | VmFault.DONE_COW):
        return ret
    if ret & (VmFault.COWED | VmFault.DAX_LOCKED):
        return ret
    page = vmf.page
    if page is None:  # 4.0: "The fault handler has no page to lock, so it holds i_mmap_lock"
        return ret
    if page.hwpoison:
        if ret & VmFault.LOCKED:
            unlock_page(k, page)
        k.alloc.put_page(k, page)
        vmf.page = None
        return VmFault.HWPOISON
    if not ret & VmFault.LOCKED:
        lock_page(k, page)
    return ret


def do_fault_around(k: Kernel, vmf: VmFaultData) -> None:
    """do_fault_around() (3.16-4.9 form): a window of fault_around_bytes aligned on the *virtual*
    address, clipped to the VMA and to the PTE table, handed to ->map_pages with the PTL held."""
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
    assert vma.vm_ops.map_pages is not None
    vma.vm_ops.map_pages(k, vmf, start_pgoff, end_pgoff)


def do_read_fault(k: Kernel, vmf: VmFaultData) -> VmFault:
    """do_read_fault() (4.0): fault-around first when ->map_pages exists, then ->fault, then map
    the locked page read-only after the pte_same() re-check."""
    k.count("fault.read")
    vma = vmf.vma
    if vma.vm_ops.map_pages is not None and FAULT_AROUND_BYTES >> PAGE_SHIFT > 1:
        pte_offset_map_lock(k, vmf)
        do_fault_around(k, vmf)
        if pte_read(k, vma.mm, vmf.address) != vmf.orig_pte:
            pte_unmap_unlock(k, vmf)
            return VmFault.NONE
        pte_unmap_unlock(k, vmf)
    ret = __do_fault(k, vmf)
    if ret & ERR_NOPAGE_RETRY:
        return ret
    page = vmf.page
    assert page is not None
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vma.mm, vmf.address) != vmf.orig_pte:
        pte_unmap_unlock(k, vmf)
        unlock_page(k, page)
        k.alloc.put_page(k, page)
        return ret
    do_set_pte(k, vmf, page, write=False, anon=False)
    unlock_page(k, page)
    pte_unmap_unlock(k, vmf)
    return ret


def do_page_mkwrite(k: Kernel, vmf: VmFaultData, page: Page) -> VmFault:
    """do_page_mkwrite(): ->page_mkwrite with the page unlocked; returns with it locked, or 0 when
    the page was truncated meanwhile (the fault is then retried)."""
    mk = VmFaultData(vma=vmf.vma, address=vmf.address, pgoff=page.index,
                     flags=FaultFlag.WRITE | FaultFlag.MKWRITE, page=page)
    assert vmf.vma.vm_ops.page_mkwrite is not None
    ret = vmf.vma.vm_ops.page_mkwrite(k, mk)
    if ret & (VM_FAULT_ERROR | VmFault.NOPAGE):
        return ret
    if not ret & VmFault.LOCKED:
        lock_page(k, page)
        if page.mapping is None:
            unlock_page(k, page)
            return VmFault.NONE
        ret |= VmFault.LOCKED
    return ret


def do_shared_fault(k: Kernel, vmf: VmFaultData) -> VmFault:
    """do_shared_fault() (4.0): ->fault, ->page_mkwrite, then a writable shared PTE."""
    k.count("fault.shared")
    vma = vmf.vma
    ret = __do_fault(k, vmf)
    if ret & ERR_NOPAGE_RETRY:
        return ret
    page = vmf.page
    assert page is not None
    if vma.vm_ops.page_mkwrite is not None:
        unlock_page(k, page)
        tmp = do_page_mkwrite(k, vmf, page)
        if not tmp or tmp & (VM_FAULT_ERROR | VmFault.NOPAGE):
            k.alloc.put_page(k, page)
            return tmp
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vma.mm, vmf.address) != vmf.orig_pte:
        pte_unmap_unlock(k, vmf)
        unlock_page(k, page)
        k.alloc.put_page(k, page)
        return ret
    do_set_pte(k, vmf, page, write=True, anon=False)
    pte_unmap_unlock(k, vmf)
    page.dirty = True  # set_page_dirty()
    unlock_page(k, page)
    if vma.vm_ops.page_mkwrite is None:
        vma.file.file_update_time(k)
    return ret


# -- write-protect faults -------------------------------------------------------------------------------
def do_wp_page(k: Kernel, vmf: VmFaultData) -> VmFault:
    """do_wp_page() (4.7 split): entered with the PTL held, releases it.  pfn and zero-page PTEs
    of a private mapping are copied; shared-writable ones are reused (after ->pfn_mkwrite or
    ->page_mkwrite); an exclusively mapped anon page is reused."""
    vma = vmf.vma
    orig = vmf.orig_pte
    assert orig is not None
    old_page = vm_normal_page(vma, orig)
    shared_writable = vma.shared and bool(vma.flags & VmFlag.WRITE)
    if old_page is None:
        if shared_writable and orig.page is None:
            return wp_pfn_shared(k, vmf)
        pte_unmap_unlock(k, vmf)
        return wp_page_copy(k, vmf, None)
    if old_page.anon:
        if old_page.mapcount == 1:  # reuse_swap_page(): we are the only mapper
            return wp_page_reuse(k, vmf, old_page, page_mkwrite=False, dirty_shared=False)
    elif shared_writable:
        return wp_page_shared(k, vmf, old_page)
    k.alloc.get_page(old_page)
    pte_unmap_unlock(k, vmf)
    return wp_page_copy(k, vmf, old_page)


def wp_page_reuse(k: Kernel, vmf: VmFaultData, page: Page | None, page_mkwrite: bool,
                  dirty_shared: bool) -> VmFault:
    """wp_page_reuse(): make the same entry writable and dirty; for a shared file page, dirty it
    and (with no ->page_mkwrite) update the file time."""
    k.count("fault.wp-reuse")
    orig = vmf.orig_pte
    assert orig is not None
    set_pte_at(k, vmf.vma, vmf.address, Pte(orig.page, orig.block, True, True))
    pte_unmap_unlock(k, vmf)
    if dirty_shared and page is not None:
        page.dirty = True
        if page_mkwrite:
            unlock_page(k, page)
        else:
            vmf.vma.file.file_update_time(k)
        k.alloc.put_page(k, page)
    return VmFault.WRITE


def wp_page_shared(k: Kernel, vmf: VmFaultData, old_page: Page) -> VmFault:
    """wp_page_shared(): write-notify a shared file page through ->page_mkwrite, then reuse it."""
    k.alloc.get_page(old_page)
    vma = vmf.vma
    if vma.vm_ops.page_mkwrite is not None:
        pte_unmap_unlock(k, vmf)
        tmp = do_page_mkwrite(k, vmf, old_page)
        if not tmp or tmp & (VM_FAULT_ERROR | VmFault.NOPAGE):
            k.alloc.put_page(k, old_page)
            return tmp
        pte_offset_map_lock(k, vmf)
        if pte_read(k, vma.mm, vmf.address) != vmf.orig_pte:
            unlock_page(k, old_page)
            pte_unmap_unlock(k, vmf)
            k.alloc.put_page(k, old_page)
            return VmFault.NONE
        return wp_page_reuse(k, vmf, old_page, page_mkwrite=True, dirty_shared=True)
    return wp_page_reuse(k, vmf, old_page, page_mkwrite=False, dirty_shared=True)


def wp_pfn_shared(k: Kernel, vmf: VmFaultData) -> VmFault:
    """wp_pfn_shared() (4.1+, dd9061846a3b): ->pfn_mkwrite with the PTL dropped, then reuse.  Up to
    4.9 the generic code re-takes the PTL, re-checks and reuses the entry; from 4.10 a NOPAGE from
    ->pfn_mkwrite means it made the entry writable itself (finish_mkwrite_fault), and otherwise the
    generic code calls finish_mkwrite_fault().  In 4.0 there is no ->pfn_mkwrite at all."""
    vma = vmf.vma
    if vma.vm_ops.pfn_mkwrite is not None:
        mk = VmFaultData(vma=vma, address=vmf.address, pgoff=vmf.pgoff,
                         flags=FaultFlag.WRITE | FaultFlag.MKWRITE, orig_pte=vmf.orig_pte)
        pte_unmap_unlock(k, vmf)
        ret = vma.vm_ops.pfn_mkwrite(k, mk)
        if k.design.pfn_mkwrite_finishes_fault:
            if ret & (VM_FAULT_ERROR | VmFault.NOPAGE):
                return ret
            finish_mkwrite_fault(k, vmf)
            return VmFault.NONE
        if ret & VM_FAULT_ERROR:
            return ret
        pte_offset_map_lock(k, vmf)
        if pte_read(k, vma.mm, vmf.address) != vmf.orig_pte:
            pte_unmap_unlock(k, vmf)
            return VmFault.NONE
    return wp_page_reuse(k, vmf, None, page_mkwrite=False, dirty_shared=False)


def finish_mkwrite_fault(k: Kernel, vmf: VmFaultData) -> None:
    """finish_mkwrite_fault() (4.10): under the PTL, if the entry is unchanged, make it writable."""
    pte_offset_map_lock(k, vmf)
    pte = pte_read(k, vmf.vma.mm, vmf.address)
    if pte is not None and pte == vmf.orig_pte:
        set_pte_at(k, vmf.vma, vmf.address, Pte(pte.page, pte.block, True, True))
        k.count("fault.wp-reuse")
    pte_unmap_unlock(k, vmf)


def cow_user_page(k: Kernel, dst: Page, src: Page | None, vmf: VmFaultData) -> None:
    """cow_user_page(): copy from the struct page, or -- for a pfn without one -- through the user
    mapping with no lock held (__copy_from_user_inatomic); if that entry is gone, zero-fill (the
    pre-5.6 behaviour; the caller's pte_same() then discards the copy)."""
    k.count("bytes_copied", PAGE_SIZE)
    if src is not None:
        k.sched.point(src, Access.READ, f"copy_user_highpage from {src!r}")
        dst.copy_from(src.contents())
        k.events.emit("page_access", page=src, write=False)
        return
    pte = pte_read(k, vmf.vma.mm, vmf.address)
    if pte is None or pte.block is None:
        dst.copy_from(None)
        return
    inode = vmf.vma.file
    from faultlab.kernel.dax_common import dax_read_block  # dax_common imports this module

    dst.copy_from(dax_read_block(k, inode, pte.block, vmf.pgoff))


def wp_page_copy(k: Kernel, vmf: VmFaultData, old_page: Page | None) -> VmFault:
    """wp_page_copy(): allocate, copy (or zero for the zero page), then under the PTL replace the
    entry if it is unchanged; the old page's references are dropped afterwards."""
    k.count("fault.wp-copy")
    vma = vmf.vma
    orig = vmf.orig_pte
    assert orig is not None
    new_page = k.alloc.alloc_page(k)
    if new_page is None:
        if old_page is not None:
            k.alloc.put_page(k, old_page)
        return VmFault.OOM
    if orig.page is not None and orig.page.zero:
        k.count("pages_zeroed")
    else:
        cow_user_page(k, new_page, old_page, vmf)
    new_page.uptodate = True
    pte_offset_map_lock(k, vmf)
    if pte_read(k, vma.mm, vmf.address) == orig:
        if old_page is not None and not old_page.anon:
            vma.mm.rss_file -= 1
            vma.mm.rss_anon += 1
        elif old_page is None:  # a pfn or the zero page: neither is counted in rss
            vma.mm.rss_anon += 1
        pte_clear(k, vma, vmf.address)
        page_add_new_anon_rmap(k, new_page)
        set_pte_at(k, vma, vmf.address, Pte(new_page, None, True, True))
        if orig.page is not None and not orig.page.zero:
            page_remove_rmap(k, orig.page)
            k.alloc.put_page(k, orig.page)  # the reference the old PTE held
        pte_unmap_unlock(k, vmf)
        ret = VmFault.WRITE
    else:
        pte_unmap_unlock(k, vmf)
        k.alloc.put_page(k, new_page)
        ret = VmFault.NONE
    if old_page is not None:
        k.alloc.put_page(k, old_page)
    return ret


# -- unmapping ------------------------------------------------------------------------------------------
def zap_pte_range(k: Kernel, vma: Vma, start: int, end: int, check_mapping: AddressSpace | None) -> None:
    """zap_pte_range(): clear the PTEs of [start, end) under their PTL.  With ``check_mapping``
    (even_cows == 0), pages whose ->mapping differs (anon COW copies, the zero page) are kept;
    pfn entries are zapped regardless."""
    mm = vma.mm
    addrs = sorted(a for a in mm.ptes if start <= a < end)
    if not addrs:
        return
    ptl = mm.pte_lockptr(addrs[0])
    ptl.lock(k)
    for addr in addrs:
        if mm.pte_lockptr(addr) is not ptl:
            ptl.unlock(k)
            ptl = mm.pte_lockptr(addr)
            ptl.lock(k)
        ptent = pte_read(k, mm, addr)
        if ptent is None:
            continue
        page = vm_normal_page(vma, ptent)
        if check_mapping is not None and page is not None and page.mapping is not check_mapping:
            continue
        pte_clear(k, vma, addr)
        if ptent.page is None:
            continue
        if ptent.page.zero:  # vm_normal_page() is NULL: nothing counted, nothing to put
            continue
        if ptent.page.anon:
            mm.rss_anon -= 1
        else:
            mm.rss_file -= 1
            if ptent.dirty:
                ptent.page.dirty = True
        page_remove_rmap(k, ptent.page)
        k.alloc.put_page(k, ptent.page)
    ptl.unlock(k)


def unmap_mapping_range(k: Kernel, mapping: AddressSpace, holebegin: int, holelen: int,
                        even_cows: bool) -> None:
    """unmap_mapping_range() (4.0): under i_mmap (write), zap every VMA's view of the page range;
    holelen 0 means to the end of the file and beyond."""
    k.count("unmap_mapping_range")
    first = holebegin >> PAGE_SHIFT
    last = (1 << 62) if holelen == 0 else first + ((holelen + PAGE_SIZE - 1) >> PAGE_SHIFT) - 1
    i_mmap_lock_write(k, mapping)
    for vma in list(mapping.i_mmap):
        vma_first = vma.pgoff
        vma_last = vma.pgoff + ((vma.end - vma.start) >> PAGE_SHIFT) - 1
        lo, hi = max(first, vma_first), min(last, vma_last)
        if lo > hi:
            continue
        zap_pte_range(k, vma, vma.address_of(lo), vma.address_of(hi) + PAGE_SIZE,
                      None if even_cows else mapping)
    i_mmap_unlock_write(k, mapping)
