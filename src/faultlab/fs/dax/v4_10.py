"""fs/dax.c of Linux 4.10: ``dax_iomap_fault`` finishes the COW itself (Jan Kara, b1aa812b2108
"mm: move handling of COW faults into DAX code"), with ext4's iomap side.

The COW branch copies into ``vmf->cow_page`` and calls ``finish_fault()`` while still holding the
entry lock, then returns VM_FAULT_DONE_COW.  Holes are loaded through finish_fault() too, and
->pfn_mkwrite dirties the entry and makes the PTE writable under the entry lock (f449b936).  The
entry is locked *before* ``->iomap_begin`` (b1aa812b's order, and again after 13e451fdc1af, tagged
for stable; the 4.10 release's reverse order, 9f141d6ef625, is the known bug
``v4.10-iomap-first``), and invalidation waits for a locked entry and deletes a clean one (4.12,
with that fix).  Entry locking and writeback are 4.7's; truncate's dax_delete_mapping_entry is
4.10's, which finds and deletes a PMD entry from any index inside it.  The PMD fault (below) was
checked against a copy of the v4.10 fs/dax.c.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.fs.dax.v4_0 import EIO, buffer_written, dax_do_io_read, dax_fault_return, dax_free_blocks
from faultlab.fs.dax.v4_7 import (
    dax_entry_handed_to_page,
    dax_insert_mapping_entry,
    dax_io_write,
    dax_unlock_mapping_entry,
    dax_wake_mapping_entry_waiter,
    entry_lock,
    ext4_dax_get_block,
    ext4_dax_setattr,
    get_unlocked_mapping_entry,
    lock_slot,
    put_locked_mapping_entry,
    put_unlocked_mapping_entry,
)
from faultlab.fs.ops import AddressSpaceOperations, FileOperations, FileSystemType, InodeOperations, VmOperations
from faultlab.kernel.eras.v4_10 import finish_fault, finish_mkwrite_fault, insert_pfn_pmd
from faultlab.kernel.filemap import find_or_create_page
from faultlab.kernel.flags import (
    FAULT_FLAG_WRITE,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SIZE,
    VM_FAULT_DONE_COW,
    VM_FAULT_FALLBACK,
    VM_FAULT_MAJOR,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_MIXEDMAP,
    size_in_pages,
)
from faultlab.kernel.flags import PTRS_PER_PTE as PMD_PAGES
from faultlab.kernel.huge_memory import is_huge, pmd_lock, pmd_unlock, pmd_wrprotect, split_huge_pmd
from faultlab.kernel.locking import BitLock
from faultlab.kernel.memory import (
    i_mmap_lock_read,
    i_mmap_unlock_read,
    pte_read,
    set_pte_at,
    unmap_mapping_range,
    vm_insert_mixed,
)
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.cell import WRITE
from faultlab.kernel.state.inode import Extent
from faultlab.kernel.state.journal import jbd2_complete_transaction
from faultlab.kernel.state.page import (
    Page,
    SetPageUptodate,
    clear_page,
    get_page,
    lock_page,
    page_mapping,
    put_page,
    unlock_page,
)
from faultlab.kernel.state.pagecache import DaxEntry, Entry
from faultlab.kernel.state.pagetable import HugePmd, Pte

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode
    from faultlab.kernel.state.pagecache import AddressSpace

__all__ = [
    "dax_delete_mapping_entry",
    "dax_entry_handed_to_page",
    "dax_wake_mapping_entry_waiter",
    "dax_free_blocks",
    "ext4_dax_setattr",
]


def ext4_iomap_begin(k: Kernel, vmf: VmFault) -> tuple[Extent | None, bool, int]:
    """ext4_iomap_begin() for a fault: a write that is not a COW (IOMAP_WRITE) allocates a zeroed
    block (EXT4_GET_BLOCKS_CREATE_ZERO; IOMAP_F_NEW); a COW never allocates."""
    return ext4_dax_get_block(k, vmf.vma.file, vmf.pgoff, vmf.write and vmf.cow_page is None)


def dax_fault_lookup(k: Kernel, vmf: VmFault) -> tuple[Entry | None, Extent | None, bool, int]:
    """The start of dax_iomap_fault (inline in 4.10): lock the entry, then ask ->iomap_begin for
    the block (13e451fdc1af's order: invalidation after write(2) waits for us, or we see its
    block).  Returns (the locked entry or None on an early error, the block, IOMAP_F_NEW, error)."""
    entry = grab_mapping_entry(k, vmf.vma.file.mapping, vmf.pgoff)
    ext, new, error = ext4_iomap_begin(k, vmf)
    return entry, ext, new, error


def dax_iomap_fault(k: Kernel, vmf: VmFault) -> int:
    """dax_iomap_fault() (4.10)."""
    inode = vmf.vma.file
    mapping = inode.mapping
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return VM_FAULT_SIGBUS
    entry, ext, new, error = dax_fault_lookup(k, vmf)
    if error or entry is None:
        if entry is not None:
            put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
        return dax_fault_return(error, 0)
    if mapping.huge and dax_pte_fault_raced_pmd(k, vmf):
        put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
        return VM_FAULT_NOPAGE
    if vmf.cow_page is not None:
        ret = dax_fault_cow_page(k, vmf, ext)
        put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
        return ret
    if ext is None:
        if vmf.write:  # the file system did not allocate: "WARN_ON_ONCE(1); error = -EIO"
            put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
            return dax_fault_return(EIO, 0)
        return dax_load_hole(k, mapping, entry, vmf)
    major = VM_FAULT_MAJOR if new else 0
    entry = dax_insert_mapping_entry(k, mapping, vmf.pgoff, entry, ext.block, vmf.write)
    error = vm_insert_mixed(k, vmf.vma, vmf.address, ext.block)
    put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
    return dax_fault_return(error, major)


def dax_fault_cow_page(k: Kernel, vmf: VmFault, ext: Extent | None) -> int:
    """The COW branch of dax_iomap_fault (dax_fault_cow_page() in later kernels): copy pmem or
    zeros into cow_page, then finish_fault() with the entry still locked; DONE_COW if it mapped."""
    cow_page = vmf.cow_page
    assert cow_page is not None
    if buffer_written(ext):
        assert ext is not None
        k.pmem.copy_to_page(k, ext.block, cow_page, "copy_user_dax")
        k.count("bytes_copied", PAGE_SIZE)
    else:
        clear_page(k, cow_page, "clear_user_highpage")
        k.count("pages_zeroed")
    SetPageUptodate(k, cow_page)
    ret = finish_fault(k, vmf)
    return VM_FAULT_DONE_COW if ret == 0 else ret


def dax_load_hole(k: Kernel, mapping: AddressSpace, entry: Entry, vmf: VmFault) -> int:
    """dax_load_hole() after f449b936: map the hole page with finish_fault() and return NOPAGE;
    the page (now the entry) is unlocked by put_locked_mapping_entry."""
    page = entry if isinstance(entry, Page) else find_or_create_page(k, mapping, vmf.pgoff)
    if page is None:
        put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
        return VM_FAULT_OOM
    vmf.page = page
    get_page(k, page)  # the PTE's reference
    ret = finish_fault(k, vmf)
    vmf.page = None
    if ret != 0:
        put_page(k, page)
    put_locked_mapping_entry(k, mapping, vmf.pgoff, page)
    return VM_FAULT_NOPAGE if ret == 0 else ret


def dax_invalidate_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> bool:
    """invalidate_inode_pages2_range() meeting a DAX entry, as 4.12 has it with Jan Kara's
    "mm: Fix data corruption due to stale mmap reads" (cd656375f946, stable, the series of
    13e451fdc1af): invalidate_exceptional_entry2() -> dax_invalidate_mapping_entry_sync() ->
    __dax_invalidate_mapping_entry(mapping, index, false): wait for a fault that holds the entry
    (it may be about to map a hole), then delete it unless it is DIRTY ("if (!trunc &&
    (radix_tree_tag_get(..., PAGECACHE_TAG_DIRTY) || ...TOWRITE)) goto out"),
    put_unlocked_mapping_entry() under tree_lock.  That change also has
    invalidate_inode_pages2_range() unmap the range of a DAX mapping afterwards ("For DAX we
    invalidate page tables after invalidating radix tree"): done here for the index whose entry
    was deleted, which is what clears a huge zero PMD that write(2) has put a block under.
    Returns True: have the index looked at again (a hole page is a page-cache page in 4.x)."""
    mapping.tree_lock.lock(k)
    entry = get_unlocked_mapping_entry(k, mapping, index)
    deleted = isinstance(entry, DaxEntry) and not mapping.tagged(k, index)
    if deleted:
        mapping.delete(k, index, entry, "radix_tree_delete (dax_invalidate_mapping_entry_sync)")
    put_unlocked_mapping_entry(k, mapping, index, entry)
    mapping.tree_lock.unlock(k)
    if deleted:
        unmap_mapping_range(k, mapping, index << PAGE_SHIFT, PAGE_SIZE, even_cows=False)
    return True


def dax_delete_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> None:
    """dax_delete_mapping_entry() -> __dax_invalidate_mapping_entry(mapping, index, true) (v4.10
    fs/dax.c; 6.1's __dax_invalidate_entry is the same with the XArray): wait out a fault holding
    the entry, delete it, wake its waiters.  ``index`` may lie inside a PMD entry (truncate to a
    size inside its 2 MiB, whose look-up from ``start`` finds the multi-order entry): the delete
    of any index of it removes the whole entry (4.10's radix_tree_delete of a multi-order entry,
    6.1's xas_store(NULL) over its siblings), and the waiters are on the entry's queue, keyed by
    its aligned index (dax_entry_waitqueue: "if (dax_is_pmd_entry(entry)) index &= ~PG_PMD_COLOUR").
    The wake is 6.1's WAKE_ALL; 4.10's put_unlocked_mapping_entry() woke one (not modelled, as
    ``v4.7``'s truncate does not)."""
    mapping.tree_lock.lock(k)
    entry = get_unlocked_mapping_entry(k, mapping, index)
    key = index
    if isinstance(entry, DaxEntry):
        if entry.pmd:
            key = index & ~(PMD_PAGES - 1)
        mapping.delete(k, index, entry, "radix_tree_delete (dax entry)")
    mapping.tree_lock.unlock(k)
    dax_wake_mapping_entry_waiter(k, mapping, key, wake_all=True)


def ext4_dax_fault(k: Kernel, vmf: VmFault) -> int:
    """ext4_dax_fault() (4.10): file_update_time on writes; i_mmap_sem for read around the fault."""
    inode = vmf.vma.file
    if vmf.write:
        inode.file_update_time(k)
    inode.i_mmap_sem.down_read(k)
    ret = dax_iomap_fault(k, vmf)
    inode.i_mmap_sem.up_read(k)
    return ret


def ext4_dax_mkwrite(k: Kernel, vmf: VmFault) -> int:
    vmf.flags |= FAULT_FLAG_WRITE
    vmf.write = True
    vmf.page = None
    return ext4_dax_fault(k, vmf)


def ext4_dax_pfn_mkwrite(k: Kernel, vmf: VmFault) -> int:
    """ext4_dax_pfn_mkwrite() -> dax_pfn_mkwrite() (4.10, f449b936): tag DIRTY and make the PTE
    writable (finish_mkwrite_fault) with the entry locked, so writeback can clean race-free."""
    inode = vmf.vma.file
    mapping = inode.mapping
    inode.file_update_time(k)
    inode.i_mmap_sem.down_read(k)
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        inode.i_mmap_sem.up_read(k)
        return VM_FAULT_SIGBUS
    mapping.tree_lock.lock(k)
    entry = get_unlocked_mapping_entry(k, mapping, vmf.pgoff)
    if not isinstance(entry, DaxEntry):
        mapping.tree_lock.unlock(k)
        put_unlocked_mapping_entry(k, mapping, vmf.pgoff, entry)
        inode.i_mmap_sem.up_read(k)
        return VM_FAULT_NOPAGE
    mapping.tag_dirty(k, vmf.pgoff)
    entry = lock_slot(k, mapping, vmf.pgoff)
    mapping.tree_lock.unlock(k)
    finish_mkwrite_fault(k, vmf)
    put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
    inode.i_mmap_sem.up_read(k)
    return VM_FAULT_NOPAGE


def ext4_dax_read(k: Kernel, inode: Inode, pos: int, count: int) -> bytes:
    """dax_iomap_rw() for reads."""
    return dax_do_io_read(k, inode, pos, count, ext4_dax_get_block)


def ext4_dax_write(k: Kernel, inode: Inode, pos: int, data: bytes) -> int:
    """dax_iomap_rw() for writes, under i_rwsem: IOMAP_F_NEW blocks get their hole pages invalidated."""
    inode.i_rwsem.lock(k)
    ret = dax_io_write(k, inode, pos, data, ext4_dax_get_block)
    inode.i_rwsem.unlock(k)
    return ret


# -- fsync ---------------------------------------------------------------------------------------------
def dax_writeback_mapping_range(k: Kernel, mapping: AddressSpace) -> int:
    """dax_writeback_mapping_range() (4.10, Jan Kara's "dax: Make cache flushing protected by entry
    lock" and 4b4bb46d00b3 "dax: clear dirty entry tags on cache flush"): per DIRTY entry
    (tag_pages_for_writeback), dax_writeback_one()."""
    for index in mapping.tagged_dirty(k):
        dax_writeback_one(k, mapping, index)
    return 0


def dax_writeback_one(k: Kernel, mapping: AddressSpace, index: int) -> None:
    """dax_writeback_one() (4.10): wait for the entry to be unlocked and lock it (a fault holding
    it finishes first); write-protect every PTE of its pfn (dax_mapping_entry_mkclean), flush the
    block (wb_cache_pmem), clear DIRTY, unlock.  Write-protecting before the flush is what makes
    clearing DIRTY safe: the next store faults (->pfn_mkwrite) and dirties the entry again."""
    mapping.tree_lock.lock(k)
    entry = get_unlocked_mapping_entry(k, mapping, index)
    if not isinstance(entry, DaxEntry) or entry.block is None or not mapping.tagged(k, index):
        mapping.tree_lock.unlock(k)
        put_unlocked_mapping_entry(k, mapping, index, entry)
        return
    block = entry.block
    entry = lock_slot(k, mapping, index)
    mapping.tree_lock.unlock(k)
    dax_mapping_entry_mkclean(k, mapping, index, entry)
    if entry.pmd:  # "size = PAGE_SIZE << dax_radix_order(entry)": the whole 2 MiB
        for b in range(block, block + PMD_PAGES):
            k.pmem.flush(k, b, "wb_cache_pmem")
    else:
        k.pmem.flush(k, block, "wb_cache_pmem")
    k.count("dax_flushes")
    mapping.clear_dirty(k, index)
    dax_unlock_mapping_entry(k, mapping, index)


def dax_mapping_entry_mkclean(k: Kernel, mapping: AddressSpace, index: int, entry: DaxEntry) -> None:
    """dax_mapping_entry_mkclean() (4.10): write-protect and clean every shared PTE mapping the
    entry's pfn (i_mmap for read, each PTE under its PTL)."""
    i_mmap_lock_read(k, mapping)
    for vma in mapping.vmas(k):
        if not vma.shared or not vma.maps(index):
            continue
        address = vma.address_of(index)
        if entry.pmd:  # follow_pte_pmd() finds the huge PMD: pmdp_huge_clear_flush, pmd_wrprotect
            assert entry.block is not None
            pmd_wrprotect(k, vma, address, entry.block)
            continue
        ptl = vma.mm.pt.ptl(address)
        ptl.lock(k)
        pte = pte_read(k, vma, address)
        if pte is not None and pte.block == entry.block and pte.write:
            set_pte_at(k, vma, address, Pte(None, pte.block, False, False), "pfn_mkclean")
            k.events.emit("pte_wrprotect", mm=vma.mm, addr=address)
        ptl.unlock(k)
    i_mmap_unlock_read(k, mapping)


def ext4_dax_fsync(k: Kernel, inode: Inode) -> int:
    """ext4_sync_file(): filemap_write_and_wait_range() -> dax_writeback_mapping_range(), then the
    flush request to the device (blkdev_issue_flush; the pmem driver's nvdimm_flush() fences the
    flushed lines), and ext4_sync_file() -> jbd2_complete_transaction() commits the block map and
    i_size."""
    ret = dax_writeback_mapping_range(k, inode.mapping)
    k.pmem.fence(k, "blkdev_issue_flush (nvdimm_flush)")
    jbd2_complete_transaction(k, inode)
    return ret


def ext4_dax_mmap(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    return ext4_dax_vm_ops, VM_MIXEDMAP


# -- PMD faults (4.9/4.10: Ross Zwisler's dax_iomap_pmd_fault, ext4 from 4.10) -------------------------
def grab_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> Entry:
    """grab_mapping_entry(mapping, index, 0), as in the v4.10 release's fs/dax.c (read: a copy of
    the v4.10 file; Ross Zwisler's "dax: add struct iomap based DAX PMD support" v5 and Jan Kara's
    review of it).  4.7's, plus the "PMD downgrade": a PTE request meeting a PMD entry with no
    block (RADIX_DAX_EMPTY, or RADIX_DAX_HZP) locks it (lock_slot), drops tree_lock, unmaps a
    zero PMD ("unmap_mapping_range(mapping, (index << PAGE_SHIFT) & PMD_MASK, PMD_SIZE, 0)"),
    then, in ONE tree_lock section, deletes the PMD entry (radix_tree_delete, wake all) and
    inserts the empty locked PTE entry in its place.  A PMD entry with a block is locked and
    returned: the PTE fault then works under the PMD's entry lock.  A PTE insertion losing a race
    (-EEXIST) restarts."""
    while True:  # restart:
        mapping.tree_lock.lock(k)
        entry = get_unlocked_mapping_entry(k, mapping, index)
        pmd_downgrade = isinstance(entry, DaxEntry) and entry.pmd and entry.block is None
        if entry is None or pmd_downgrade:
            if pmd_downgrade:
                entry = lock_slot(k, mapping, index)  # "Make sure 'entry' remains valid"
            mapping.tree_lock.unlock(k)
            if pmd_downgrade and isinstance(entry, DaxEntry) and entry.zero:
                unmap_mapping_range(k, mapping, (index & ~(PMD_PAGES - 1)) << PAGE_SHIFT, PMD_SIZE,
                                    even_cows=False)
            mapping.tree_lock.lock(k)  # after radix_tree_preload()
            if pmd_downgrade:
                first = index & ~(PMD_PAGES - 1)
                lk = entry_lock(mapping, first)
                mapping.delete(k, index, None, "radix_tree_delete (pmd downgrade)")
                assert isinstance(lk, BitLock)
                lk.drop(k)
                dax_wake_mapping_entry_waiter(k, mapping, first, wake_all=True)
            lk = entry_lock(mapping, index)
            new = DaxEntry(None, locked=True)
            inserted, _old = mapping.insert(k, index, new, "__radix_tree_insert (empty locked entry)",
                                            more=((lk, WRITE),))
            if not inserted:
                mapping.tree_lock.unlock(k)
                k.retry("grab_mapping_entry")
                continue  # -EEXIST: restart
            assert isinstance(lk, BitLock)
            lk.seize(k, mapping.tree_lock)
            mapping.tree_lock.unlock(k)
            return new
        if isinstance(entry, Page):
            get_page(k, entry)
            mapping.tree_lock.unlock(k)
            lock_page(k, entry)
            if page_mapping(k, entry) is not mapping:
                unlock_page(k, entry)
                put_page(k, entry)
                k.retry("grab_mapping_entry")
                continue
            return entry
        entry = lock_slot(k, mapping, index)
        mapping.tree_lock.unlock(k)
        return entry


def grab_mapping_entry_pmd(k: Kernel, mapping: AddressSpace, index: int) -> DaxEntry | None:
    """grab_mapping_entry(mapping, index, RADIX_DAX_PMD) (4.10), ``index`` 2 MiB aligned: the PMD
    entry, locked -- or None (-EEXIST, the caller falls back) when a page or PTE entry is at
    ``index`` or anywhere in the range (the multi-order insertion fails)."""
    mapping.tree_lock.lock(k)
    entry = get_unlocked_mapping_entry(k, mapping, index)
    if entry is not None:
        if not isinstance(entry, DaxEntry) or not entry.pmd:
            put_unlocked_mapping_entry(k, mapping, index, entry)
            mapping.tree_lock.unlock(k)
            return None
        entry = lock_slot(k, mapping, index)
        mapping.tree_lock.unlock(k)
        return entry
    mapping.tree_lock.unlock(k)  # radix_tree_preload()
    mapping.tree_lock.lock(k)
    lk = entry_lock(mapping, index)
    new = DaxEntry(None, locked=True, pmd=True)
    if not mapping.insert_pmd(k, index, new, "__radix_tree_insert (empty locked PMD entry)", more=((lk, WRITE),)):
        mapping.tree_lock.unlock(k)
        return None
    assert isinstance(lk, BitLock)
    lk.seize(k, mapping.tree_lock)
    mapping.tree_lock.unlock(k)
    return new


def dax_pte_fault_raced_pmd(k: Kernel, vmf: VmFault) -> bool:
    """In dax_iomap_fault, after grab_mapping_entry(): Ross Zwisler's "dax: Fix race between
    colliding PMD & PTE entries" (2017, Cc stable, Message-ID
    20170517171639.14501-2-ross.zwisler@linux.intel.com; 4.12), in the form fs/dax.c kept after
    the follow-up that also checks pmd_trans_huge() for the huge zero page: "It is possible,
    particularly with mixed reads & writes to private mappings, that we have raced with a PMD fault
    that overlaps with the PTE we need to set up.  If so just return and the fault will be
    retried."  (v1 of the patch split the PMD here instead.)
    """
    return is_huge(vmf.vma.mm.pt.pmd_read(k, vmf.address, "pmd_trans_huge || pmd_devmap"))


def dax_pmd_fault_raced_pte(k: Kernel, vmf: VmFault) -> bool:
    """In dax_iomap_pmd_fault, after grab_mapping_entry() (the same 4.12 fix): a PTE table under the
    PMD means a PTE fault got there first -- "just return and the fault will be retried"."""
    pmd = vmf.vma.mm.pt.pmd_read(k, vmf.address, "!pmd_none && !pmd_trans_huge && !pmd_devmap")
    return pmd is not None and not is_huge(pmd)


def dax_iomap_pmd_fault(k: Kernel, vmf: VmFault) -> int:
    """dax_iomap_pmd_fault() of the v4.10 release (read: a copy of the v4.10 fs/dax.c, and the
    context lines of Dave Jiang's 4.11 "mm, dax: make pmd_fault() and friends be the same as
    fault()", which quote it), with the two 4.12 fixes tagged for stable that ``v4.10`` carries:
    Ross Zwisler's "dax: Fix PMD data corruption when fault races with write" (fd96b8da68d3,
    Message-ID 20170510172700.18991-1-ross.zwisler@linux.intel.com, "Fixes: 9f141d6ef625": the
    entry is locked BEFORE ->iomap_begin, as 13e451fdc1af does for the PTE fault) and "dax: Fix
    race between colliding PMD & PTE entries" (the re-check of the PMD).  In that order:

    "Fall back to PTEs if we're going to COW"; "If the PMD would extend outside the VMA"
    (``pmd_addr < vm_start``, ``pmd_addr + PMD_SIZE > vm_end``); then ``pgoff`` and ``max_pgoff =
    (i_size_read(inode) - 1) >> PAGE_SHIFT`` (i_size read here, after the VMA checks: "Caller is
    supposed to hold locks serializing us with truncate / punch hole"), ``pgoff > max_pgoff``
    returns VM_FAULT_SIGBUS at once (no fallback, no split), ``(pgoff | PG_PMD_COLOUR) >
    max_pgoff`` falls back; ``grab_mapping_entry(mapping, pgoff, RADIX_DAX_PMD)`` (an error
    falls back); the PTE-table re-check (result 0: "the fault will be retried");
    ``->iomap_begin(pos, PMD_SIZE)`` (an error: ``goto unlock_entry``); "if (iomap.offset +
    iomap.length < pos + PMD_SIZE) goto finish_iomap"; IOMAP_MAPPED -> dax_pmd_insert_mapping,
    a hole -> "if (WARN_ON_ONCE(write)) break;" else dax_pmd_load_hole; ``finish_iomap:``
    ->iomap_end; ``unlock_entry:`` put_locked_mapping_entry; ``fallback:`` split_huge_pmd and
    THP_FAULT_FALLBACK.  The v4.10 release itself called ->iomap_begin first ("if (error) goto
    fallback"), and grabbed the entry after the length check ("if (IS_ERR(entry)) goto
    finish_iomap"); the known bug ``v4.10-iomap-first`` has that order for the PTE fault only."""
    vma = vmf.vma
    inode = vma.file
    mapping = inode.mapping
    pmd_addr = vmf.address & ~(PMD_SIZE - 1)
    write = vmf.write
    result = VM_FAULT_FALLBACK
    if write and not vma.shared:  # "Fall back to PTEs if we're going to COW"
        return dax_pmd_fallback(k, vmf, result)
    if pmd_addr < vma.start or pmd_addr + PMD_SIZE > vma.end:  # "If the PMD would extend outside the VMA"
        return dax_pmd_fallback(k, vmf, result)
    pgoff = vma.linear_page_index(pmd_addr)
    max_pgoff = (inode.i_size_read(k) - 1) >> PAGE_SHIFT
    if pgoff > max_pgoff:
        return VM_FAULT_SIGBUS
    if pgoff | (PMD_PAGES - 1) > max_pgoff:  # "If the PMD would extend beyond the file size"
        return dax_pmd_fallback(k, vmf, result)
    entry = dax_pmd_fault_lookup_entry(k, mapping, pgoff)
    if entry is None:  # IS_ERR(entry): -EEXIST, a PTE entry or a page in the range
        return dax_pmd_fallback(k, vmf, result)
    if dax_pmd_fault_raced_pte(k, vmf):
        result = 0
    else:
        ext, length, _new = ext4_iomap_begin_pmd(k, inode, pgoff, write)  # ->iomap_begin(pos, PMD_SIZE, ...)
        if length >= PMD_PAGES:  # else "goto finish_iomap"
            if ext is not None:  # IOMAP_MAPPED
                result = dax_pmd_insert_mapping(k, vmf, pgoff, ext.block, write, entry)
            elif not write:  # IOMAP_HOLE; "if (WARN_ON_ONCE(write)) break;"
                result = dax_pmd_load_hole(k, vmf, pgoff, entry)
        # finish_iomap: ->iomap_end (ext4's has nothing to undo for a fault: not modelled)
    put_locked_mapping_entry(k, mapping, pgoff, entry)  # unlock_entry:
    return dax_pmd_fallback(k, vmf, result)


def dax_pmd_fault_lookup_entry(k: Kernel, mapping: AddressSpace, pgoff: int) -> DaxEntry | None:
    """The PMD fault's grab_mapping_entry(mapping, pgoff, RADIX_DAX_PMD), before ->iomap_begin
    (fd96b8da68d3's order)."""
    return grab_mapping_entry_pmd(k, mapping, pgoff)


def ext4_iomap_begin_pmd(k: Kernel, inode: Inode, index: int, write: bool) -> tuple[Extent | None, int, bool]:
    """ext4_iomap_begin(pos, PMD_SIZE, IOMAP_WRITE?) for a PMD fault (4.10 and 6.1): the extent at
    ``index`` and how many of the 512 blocks it covers, and whether it is new (IOMAP_F_NEW).  A
    write over a whole 2 MiB hole allocates one extent, zeroed before it is reachable
    (EXT4_GET_BLOCKS_CREATE_ZERO): ext4 made with a 2 MiB stripe (``pmem_align = "2m"``) gives
    it 2 MiB aligned.  A partly mapped range is reported as it is (the caller falls back)."""
    ext, length = inode.map_range(k, index, PMD_PAGES)
    if ext is not None or not write or length < PMD_PAGES:
        return ext, length, False
    inode.i_data_sem.down_write(k)
    ext, length = inode.map_range(k, index, PMD_PAGES)
    if ext is not None or length < PMD_PAGES:
        inode.i_data_sem.up_write(k)
        return ext, length, False
    base = k.pmem.alloc_aligned(k, PMD_PAGES)
    if base is None:  # no aligned room: ext4 would map something shorter
        inode.i_data_sem.up_write(k)
        return None, 0, False
    k.count("blocks_allocated", PMD_PAGES)
    for i in range(PMD_PAGES):
        k.events.emit("block_alloc", inode=inode, index=index + i, block=base + i)
    k.pmem.zero_range(k, base, PMD_PAGES, "ext4_issue_zeroout")
    k.count("pages_zeroed", PMD_PAGES)
    for i in range(PMD_PAGES):
        k.events.emit("block_zero", block=base + i)
    inode.set_extents(k, index, base, PMD_PAGES, "ext4_ext_map_blocks")
    inode.i_data_sem.up_write(k)
    return Extent(base), PMD_PAGES, True


def dax_pmd_fallback(k: Kernel, vmf: VmFault, result: int) -> int:
    """The ``fallback:`` label: "if (result == VM_FAULT_FALLBACK) { split_huge_pmd(vma, pmd,
    address); count_vm_event(THP_FAULT_FALLBACK); }"."""
    if result == VM_FAULT_FALLBACK:
        split_huge_pmd(k, vmf.vma, vmf.address)
        k.count("thp_fault_fallback")
    return result


def dax_pmd_insert_mapping(k: Kernel, vmf: VmFault, pgoff: int, block: int, write: bool, entry: DaxEntry) -> int:
    """dax_pmd_insert_mapping() (v4.10 fs/dax.c, as read for dax_iomap_pmd_fault): dax_map_atomic()
    of PMD_SIZE, the pfn must be 2 MiB aligned ("if (pfn_t_to_pfn(dax.pfn) & PG_PMD_COLOUR) goto
    unmap_fallback"); dax_insert_mapping_entry(..., RADIX_DAX_PMD): a huge-zero-page entry is
    unmapped first ("replacing huge zero page with PMD block mapping": unmap_mapping_range of the
    2 MiB, before tree_lock), then under tree_lock a zero or empty entry is replaced by the
    block's PMD entry and a write tags it DIRTY; then vmf_insert_pfn_pmd()."""
    if block & (PMD_PAGES - 1):
        return VM_FAULT_FALLBACK
    mapping = vmf.vma.file.mapping
    if entry.block is None:  # an empty or huge-zero-page entry: replaced ("hole_fill" unmaps a zero PMD)
        if entry.zero:
            unmap_mapping_range(k, mapping, pgoff << PAGE_SHIFT, PMD_SIZE, even_cows=False)
        mapping.tree_lock.lock(k)
        mapping.modify(k, pgoff, lambda _e: DaxEntry(block, locked=True, pmd=True), "__radix_tree_replace (pmd)")
    else:
        mapping.tree_lock.lock(k)
    if write:
        mapping.tag_dirty(k, pgoff)
    mapping.tree_lock.unlock(k)
    return insert_pfn_pmd(k, vmf, block, write)


def dax_pmd_load_hole(k: Kernel, vmf: VmFault, pgoff: int, entry: DaxEntry) -> int:
    """dax_pmd_load_hole() (v4.10 fs/dax.c, as read for dax_iomap_pmd_fault): mm_get_huge_zero_page(),
    a huge-zero-page entry (RADIX_DAX_HZP) through dax_insert_mapping_entry(), then under the PMD
    lock "if (!pmd_none(*pmd)) { spin_unlock(ptl); return VM_FAULT_FALLBACK; }" and set_pmd_at()
    of the huge zero page (mk_pmd(zero_page, vma->vm_page_prot): read-only in the model)."""
    vma = vmf.vma
    mapping = vma.file.mapping
    # dax_insert_mapping_entry(mapping, vmf, entry, 0, RADIX_DAX_PMD | RADIX_DAX_HZP): a zero
    # entry meeting the HZP flag is not unmapped; "else if (dax_is_zero_entry(entry) ||
    # dax_is_empty_entry(entry))" it is replaced under tree_lock, a zero entry by a zero entry.
    mapping.tree_lock.lock(k)
    if entry.block is None:
        mapping.modify(k, pgoff, lambda _e: DaxEntry(None, locked=True, zero=True, pmd=True),
                       "__radix_tree_replace (huge zero page)")
    mapping.tree_lock.unlock(k)
    pmd_lock(k, vma)
    if vma.mm.pt.pmd_read(k, vmf.address, "dax_pmd_load_hole: pmd_none") is not None:
        pmd_unlock(k, vma)
        return VM_FAULT_FALLBACK
    vma.mm.pt.set_huge(k, vma, vmf.address, HugePmd(k.alloc.zero_page, None, False, False),
                       "dax_pmd_load_hole: set_pmd_at")
    pmd_unlock(k, vma)
    return VM_FAULT_NOPAGE


def ext4_dax_pmd_fault(k: Kernel, vmf: VmFault) -> int:
    """ext4_dax_pmd_fault() (4.10): as ext4_dax_fault, i_mmap_sem for read around the PMD fault
    (sb_start_pagefault and the journal handle of a write are not modelled)."""
    inode = vmf.vma.file
    if vmf.write:
        inode.file_update_time(k)
    inode.i_mmap_sem.down_read(k)
    ret = dax_iomap_pmd_fault(k, vmf)
    inode.i_mmap_sem.up_read(k)
    return ret


ext4_dax_vm_ops = VmOperations("ext4_dax_vm_ops", fault=ext4_dax_fault, page_mkwrite=ext4_dax_mkwrite,
                               pfn_mkwrite=ext4_dax_pfn_mkwrite, huge_fault=ext4_dax_pmd_fault)

FS = FileSystemType(
    "ext4 (dax)",
    dax=True,
    disk=True,
    i_op=InodeOperations("ext4_file_inode_operations", setattr=ext4_dax_setattr),
    f_op=FileOperations("ext4_dax_file_operations", read_iter=ext4_dax_read, write_iter=ext4_dax_write,
                        fsync=ext4_dax_fsync, mmap=ext4_dax_mmap),
    a_ops=AddressSpaceOperations("ext4_dax_aops"),
)
