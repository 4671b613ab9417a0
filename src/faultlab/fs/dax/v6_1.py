"""fs/dax.c of Linux 6.1 (PTE faults), with ext4's DAX side (fs/ext4/file.c, fs/ext4/inode.c).

Read next to v6.1 fs/dax.c ``dax_iomap_pte_fault`` -> ``dax_fault_iter``:

* the entry is locked (``grab_mapping_entry``) before ``->iomap_begin``, as since 4.10;
* a private write copies into ``vmf->cow_page`` and calls ``finish_fault()`` under the entry lock
  (``dax_fault_cow_page``, VM_FAULT_DONE_COW), as 4.10;
* a read of a hole maps the shared zero page and records a DAX_ZERO_PAGE entry (4.17, Ross
  Zwisler, 91d25ba8a6b0 "dax: use common 4k zero page for dax mmap reads") -- no page-cache page;
* a block replacing a zero entry first unmaps the zero page (``dax_insert_entry``);
* a write maps the pfn writable and dirty at once (``vmf_insert_mixed_mkwrite``, 4.15, Ross
  Zwisler, "dax: fix write-protection of DAX PTEs"): one fault where 4.x took two, and
  ``->pfn_mkwrite`` is the whole fault again (ext4_dax_fault).

ext4 (6.1) serialises faults with truncate and hole punch by ``mapping->invalidate_lock`` (5.15),
and ``ext4_setattr`` calls ``ext4_break_layouts()`` -> ``dax_layout_busy_page()`` first, which
unmaps every page of the file from every mapping (4.18, Dan Williams, 5fac7408d828) -- also below
the new EOF.  Entry locking and deletion are 4.7's, writeback 4.10's (write-protect, dax_flush,
clean DIRTY, under the entry lock).

PMD faults (``ext4_dax_huge_fault(PE_SIZE_PMD)`` -> ``dax_iomap_pmd_fault``), where the scenario's
extents are 2 MiB aligned: the i_size check, ``dax_fault_check_fallback`` (colour, COW, VMA,
EOF), the PMD entry (a PTE entry in the range: fallback), the re-check that no PTE table got
there first, then ``dax_fault_iter`` for a PMD: the huge zero page for a read of a hole
(``dax_pmd_load_hole``), or the block's pfn (``vmf_insert_pfn_pmd``).  A fallback splits the PMD.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.fs.dax.v4_0 import (
    EIO,
    buffer_written,
    dax_fault_return,
    dax_free_blocks,
    dax_truncate_page,
)
from faultlab.fs.dax.v4_7 import (
    dax_entry_handed_to_page,
    dax_unlock_mapping_entry,
    dax_wake_mapping_entry_waiter,
    ext4_dax_get_block,
    get_unlocked_mapping_entry,
    lock_slot,
    put_locked_mapping_entry,
    put_unlocked_mapping_entry,
)
from faultlab.fs.dax.v4_10 import (  # unchanged in 6.1
    dax_delete_mapping_entry,
    dax_pte_fault_raced_pmd,
    dax_writeback_mapping_range,
    dax_writeback_one,
    ext4_dax_read,
    ext4_iomap_begin_pmd,
    grab_mapping_entry,
    grab_mapping_entry_pmd,
)
from faultlab.fs.ops import AddressSpaceOperations, FileOperations, FileSystemType, InodeOperations, VmOperations
from faultlab.kernel.eras.v6_1 import finish_fault, insert_pfn_pmd
from faultlab.kernel.flags import (
    MAP_SYNC,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SIZE,
    VM_FAULT_DONE_COW,
    VM_FAULT_FALLBACK,
    VM_FAULT_MAJOR,
    VM_FAULT_NEEDDSYNC,
    VM_FAULT_NOPAGE,
    VM_FAULT_SIGBUS,
    VM_MIXEDMAP,
    VM_SHARED,
    VM_SYNC,
    size_in_pages,
)
from faultlab.kernel.flags import PTRS_PER_PTE as PMD_PAGES
from faultlab.kernel.huge_memory import is_huge, pmd_lock, pmd_unlock, split_huge_pmd
from faultlab.kernel.memory import unmap_mapping_range, vmf_insert_mixed
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.inode import Extent
from faultlab.kernel.state.journal import ext4_inode_datasync_dirty, jbd2_complete_transaction
from faultlab.kernel.state.page import SetPageUptodate, clear_page
from faultlab.kernel.state.pagecache import DaxEntry, Entry
from faultlab.kernel.state.pagetable import HugePmd
from faultlab.kernel.truncate import invalidate_inode_pages2_range, truncate_pagecache

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode
    from faultlab.kernel.state.pagecache import AddressSpace

__all__ = ["FS", "dax_delete_mapping_entry", "dax_entry_handed_to_page", "dax_free_blocks", "dax_unlock_mapping_entry",
           "dax_wake_mapping_entry_waiter"]


PMD_ORDER = PMD_PAGES.bit_length() - 1


def dax_insert_entry(k: Kernel, mapping: AddressSpace, index: int, entry: Entry, block: int | None,
                     write: bool, pmd: bool = False) -> Entry:
    """dax_insert_entry() (6.1): a block replacing a zero entry unmaps the zero page (the 2 MiB of
    a PMD entry) first; an empty or zero entry is replaced by the new (locked) one, a block entry
    kept; DIRTY on a write.  ``pmd``: DAX_PMD, ``index`` 2 MiB aligned."""
    assert isinstance(entry, DaxEntry)
    if entry.zero and block is not None:  # "we are replacing a zero page with block mapping"
        unmap_mapping_range(k, mapping, index << PAGE_SHIFT, PMD_SIZE if entry.pmd else PAGE_SIZE, even_cows=False)
    mapping.tree_lock.lock(k)
    if entry.zero or entry.empty:
        new = DaxEntry(block, locked=True, zero=block is None, pmd=pmd)
        mapping.modify(k, index, lambda _e: new, "dax_lock_entry (new entry)")
        entry = new
    if write:
        mapping.tag_dirty(k, index)
    mapping.tree_lock.unlock(k)
    return entry


def dax_load_hole(k: Kernel, mapping: AddressSpace, index: int, entry: Entry, vmf: VmFault) -> int:
    """dax_load_hole() (6.1): a DAX_ZERO_PAGE entry, and the zero pfn mapped read-only."""
    dax_insert_entry(k, mapping, index, entry, None, write=False)
    return vmf_insert_mixed(k, vmf.vma, vmf.address, None)


def dax_fault_cow_page(k: Kernel, vmf: VmFault, ext: Extent | None) -> int:
    """dax_fault_cow_page() (6.1): copy pmem (or zeros for a hole or unwritten extent) into the COW
    page, then finish_fault() with the entry still locked; VM_FAULT_DONE_COW if it mapped."""
    cow_page = vmf.cow_page
    assert cow_page is not None
    if buffer_written(ext):
        assert ext is not None
        k.pmem.copy_to_page(k, ext.block, cow_page, "copy_cow_page_dax")
        k.count("bytes_copied", PAGE_SIZE)
    else:
        clear_page(k, cow_page, "clear_user_highpage")
        k.count("pages_zeroed")
    SetPageUptodate(k, cow_page)
    ret = finish_fault(k, vmf)
    return VM_FAULT_DONE_COW if ret == 0 else ret


def dax_fault_is_synchronous(vmf: VmFault, write: bool, iomap_dirty: bool) -> bool:
    """dax_fault_is_synchronous() (4.15, 6.1 fs/dax.c): "(flags & IOMAP_WRITE) && (vma->vm_flags &
    VM_SYNC) && (iomap->flags & IOMAP_F_DIRTY)" -- a write through a MAP_SYNC mapping to a file
    whose metadata is not yet committed."""
    return write and bool(vmf.vma.flags & VM_SYNC) and iomap_dirty


def ext4_iomap_dirty(k: Kernel, inode: Inode, index: int, count: int) -> bool:
    """IOMAP_F_DIRTY as ext4_iomap_begin() -> ext4_set_iomap() sets it (6.1 fs/ext4/inode.c):
    "if (ext4_inode_datasync_dirty(inode) || offset + length > i_size_read(inode))"."""
    if ext4_inode_datasync_dirty(k, inode):
        return True
    return (index + count) << PAGE_SHIFT > inode.i_size_read(k)


def dax_fault_iter(k: Kernel, vmf: VmFault, ext: Extent | None, entry: Entry, write: bool,
                   iomap_dirty: bool = False, pfnp: list[int] | None = None) -> int:
    """dax_fault_iter() (6.1), for a PTE: COW, hole, or insert the block's pfn.  A synchronous
    fault (MAP_SYNC, metadata not committed) inserts the entry clean ("dirty = write &&
    !dax_fault_is_synchronous()" in dax_insert_entry) and returns VM_FAULT_NEEDDSYNC with the pfn
    in ``pfnp`` instead of mapping it (dax_fault_synchronous_pfnp)."""
    mapping = vmf.vma.file.mapping
    if vmf.cow_page is not None:
        return dax_fault_cow_page(k, vmf, ext)
    if not write and not buffer_written(ext):  # "if we are reading UNWRITTEN and HOLE, return a hole"
        return dax_load_hole(k, mapping, vmf.pgoff, entry, vmf)
    if ext is None:  # not IOMAP_MAPPED: "WARN_ON_ONCE(1)"
        return VM_FAULT_SIGBUS
    sync = dax_fault_is_synchronous(vmf, write, iomap_dirty)
    dax_insert_entry(k, mapping, vmf.pgoff, entry, ext.block, write and not sync)
    if sync:
        return dax_fault_synchronous_pfnp(pfnp, ext.block)
    return vmf_insert_mixed(k, vmf.vma, vmf.address, ext.block, mkwrite=write)


def dax_fault_synchronous_pfnp(pfnp: list[int] | None, block: int) -> int:
    """dax_fault_synchronous_pfnp() (6.1): "if (WARN_ON_ONCE(!pfnp)) return VM_FAULT_SIGBUS;
    *pfnp = pfn; return VM_FAULT_NEEDDSYNC"."""
    if pfnp is None:
        return VM_FAULT_SIGBUS
    pfnp.append(block)
    return VM_FAULT_NEEDDSYNC


def dax_iomap_pte_fault(k: Kernel, vmf: VmFault, pfnp: list[int] | None = None) -> int:
    """dax_iomap_pte_fault() (6.1): the i_size check ("Caller is supposed to hold locks serializing
    us with truncate / punch hole so this is a reliable test"), lock the entry, ->iomap_begin
    (IOMAP_WRITE for a write that is not a COW: ext4 allocates a zeroed block, IOMAP_F_NEW, a
    major fault), dax_fault_iter(), unlock the entry.  ->iomap_begin's IOMAP_F_DIRTY is computed
    (ext4_iomap_dirty) only where dax_fault_is_synchronous() reads it: a write through a VM_SYNC
    mapping."""
    inode = vmf.vma.file
    mapping = inode.mapping
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return VM_FAULT_SIGBUS
    write = vmf.write and vmf.cow_page is None
    entry = grab_mapping_entry(k, mapping, vmf.pgoff)
    if mapping.huge and dax_pte_fault_raced_pmd(k, vmf):  # "we have raced with a PMD fault"
        put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
        return VM_FAULT_NOPAGE
    ext, new, error = ext4_dax_get_block(k, inode, vmf.pgoff, write)  # ext4_iomap_begin()
    if error:
        ret = dax_fault_return(error, 0)
    else:
        dirty = write and bool(vmf.vma.flags & VM_SYNC) and ext4_iomap_dirty(k, inode, vmf.pgoff, 1)
        ret = dax_fault_iter(k, vmf, ext, entry, write, dirty, pfnp)
        if ret != VM_FAULT_SIGBUS and new:
            ret |= VM_FAULT_MAJOR
    put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)  # dax_unlock_entry()
    return ret


def ext4_dax_fault(k: Kernel, vmf: VmFault) -> int:
    """ext4_dax_huge_fault(PE_SIZE_PTE) (6.1): a shared write updates the file time (and starts a
    journal handle, not modelled); the fault runs under invalidate_lock shared.  "Handling
    synchronous page fault?": VM_FAULT_NEEDDSYNC -> dax_finish_sync_fault(), still under
    invalidate_lock."""
    inode = vmf.vma.file
    write = vmf.write and vmf.vma.shared
    if write:
        inode.file_update_time(k)
    inode.invalidate_lock.down_read(k)
    pfn: list[int] = []
    ret = dax_iomap_pte_fault(k, vmf, pfn)
    if write and ret & VM_FAULT_NEEDDSYNC:
        ret = dax_finish_sync_fault(k, vmf, 0, pfn[0])
    inode.invalidate_lock.up_read(k)
    return ret


def dax_finish_sync_fault(k: Kernel, vmf: VmFault, order: int, block: int) -> int:
    """dax_finish_sync_fault() (4.15, 6.1 fs/dax.c): "err = vfs_fsync_range(vmf->vma->vm_file,
    start, start + len - 1, 1); if (err) return VM_FAULT_SIGBUS; return dax_insert_pfn_mkwrite(vmf,
    pfn, order)" -- the allocation is committed before the block is mapped writable."""
    index = vmf.pgoff & ~((1 << order) - 1)
    if ext4_sync_file_range(k, vmf.vma.file, index, index + (1 << order) - 1) < 0:
        return VM_FAULT_SIGBUS
    return dax_insert_pfn_mkwrite(k, vmf, block, order)


def ext4_sync_file_range(k: Kernel, inode: Inode, start: int, end: int) -> int:
    """vfs_fsync_range() -> ext4_sync_file() (6.1) over pages [start, end]: the DIRTY entries of the
    range written back (file_write_and_wait_range), the flush request, and the journal commit
    (ext4_fsync_journal -> jbd2_complete_transaction).  A PMD entry covering ``start`` sits at
    its aligned index ("the 'index' we use needs to be aligned to the start of the PMD")."""
    mapping = inode.mapping
    first = start & ~(PMD_PAGES - 1) if mapping.huge else start
    for index in mapping.tagged_dirty(k):
        if start <= index <= end or index == first:
            dax_writeback_one(k, mapping, index)
    k.pmem.fence(k, "blkdev_issue_flush (nvdimm_flush)")
    jbd2_complete_transaction(k, inode)
    return 0


def dax_insert_pfn_mkwrite(k: Kernel, vmf: VmFault, block: int, order: int) -> int:
    """dax_insert_pfn_mkwrite() (6.1): under the tree lock, wait for the entry to be unlocked; "Did
    we race with someone splitting entry or so?" (gone, or a PMD entry for a PTE) -> NOPAGE; else
    tag it DIRTY, lock it, and map the pfn writable (vmf_insert_mixed_mkwrite, or
    vmf_insert_pfn_pmd for a PMD); unlock the entry."""
    mapping = vmf.vma.file.mapping
    index = vmf.pgoff & ~((1 << order) - 1)
    mapping.tree_lock.lock(k)
    entry = get_unlocked_mapping_entry(k, mapping, index)
    if not isinstance(entry, DaxEntry) or (order == 0 and entry.pmd):
        mapping.tree_lock.unlock(k)
        put_unlocked_mapping_entry(k, mapping, index, entry)
        return VM_FAULT_NOPAGE
    mapping.tag_dirty(k, index)
    lock_slot(k, mapping, index)
    mapping.tree_lock.unlock(k)
    if order == 0:
        ret = vmf_insert_mixed(k, vmf.vma, vmf.address, block, mkwrite=True)
    else:
        ret = insert_pfn_pmd(k, vmf, block, True)
    dax_unlock_mapping_entry(k, mapping, index)
    return ret


# -- PMD faults ------------------------------------------------------------------------------------------
def dax_fault_check_fallback(vmf: VmFault, index: int, max_pgoff: int) -> bool:
    """dax_fault_check_fallback() (inline in 6.1's dax_iomap_pmd_fault), in its order."""
    vma = vmf.vma
    pmd_addr = vmf.address & ~(PMD_SIZE - 1)
    # "Make sure that the faulting address's PMD offset (color) matches the PMD offset from the
    # start of the file."
    if vmf.pgoff & (PMD_PAGES - 1) != (vmf.address >> PAGE_SHIFT) & (PMD_PAGES - 1):
        return True
    if vmf.write and not vma.flags & VM_SHARED:  # "Fall back to PTEs if we're going to COW"
        return True
    if pmd_addr < vma.start or pmd_addr + PMD_SIZE > vma.end:  # "If the PMD would extend outside the VMA"
        return True
    return index | (PMD_PAGES - 1) >= max_pgoff  # "If the PMD would extend beyond the file size"


def dax_iomap_pmd_fault(k: Kernel, vmf: VmFault, pfnp: list[int] | None = None) -> int:
    """dax_iomap_pmd_fault() (6.1): i_size (past it SIGBUS), dax_fault_check_fallback(), the PMD
    entry (VM_FAULT_FALLBACK on a conflict with PTE entries), then "if (!pmd_none(*vmf->pmd) &&
    !pmd_trans_huge(*vmf->pmd) && !pmd_devmap(*vmf->pmd)) { ret = 0; goto unlock_entry; }" (a
    PTE fault got there first: retry), ->iomap_begin for 2 MiB (a shorter extent breaks out, a
    fallback) and dax_fault_iter() for a PMD.  A fallback splits the PMD and counts
    THP_FAULT_FALLBACK.  A write over a 2 MiB hole has ext4 allocate a 2 MiB extent
    (ext4_iomap_begin_pmd).  A write through a VM_SYNC mapping reads IOMAP_F_DIRTY, as for a PTE."""
    vma = vmf.vma
    inode = vma.file
    mapping = inode.mapping
    index = vmf.pgoff & ~(PMD_PAGES - 1)  # XA_STATE_ORDER(..., PMD_ORDER)
    ret = VM_FAULT_FALLBACK
    max_pgoff = size_in_pages(inode.i_size_read(k))
    if index >= max_pgoff:
        return VM_FAULT_SIGBUS
    if not dax_fault_check_fallback(vmf, index, max_pgoff):
        entry = grab_mapping_entry_pmd(k, mapping, index)
        if entry is not None:
            pmd = vma.mm.pt.pmd_read(k, vmf.address, "!pmd_none && !pmd_trans_huge && !pmd_devmap")
            if pmd is not None and not is_huge(pmd):
                ret = 0
            else:
                ext, length, _new = ext4_iomap_begin_pmd(k, inode, index, vmf.write)  # iomap_iter()
                if length >= PMD_PAGES and not (vmf.write and ext is None):
                    dirty = vmf.write and bool(vma.flags & VM_SYNC) and ext4_iomap_dirty(k, inode, index, PMD_PAGES)
                    ret = dax_fault_iter_pmd(k, vmf, index, ext, entry, dirty, pfnp)
            put_locked_mapping_entry(k, mapping, index, entry)  # dax_unlock_entry()
    if ret == VM_FAULT_FALLBACK:
        split_huge_pmd(k, vma, vmf.address)
        k.count("thp_fault_fallback")
    return ret


def dax_fault_iter_pmd(k: Kernel, vmf: VmFault, index: int, ext: Extent | None, entry: DaxEntry,
                       iomap_dirty: bool = False, pfnp: list[int] | None = None) -> int:
    """dax_fault_iter(..., pmd=true) (6.1): a read of a hole maps the huge zero page
    (dax_pmd_load_hole); a block must be 2 MiB aligned (dax_iomap_direct_access: "if
    (pfn_t_to_pfn(*pfnp) & (PHYS_PFN(size)-1)) goto out" -> VM_FAULT_FALLBACK), gets a PMD entry
    (DIRTY on a write) and is mapped by vmf_insert_pfn_pmd(); a synchronous fault returns
    VM_FAULT_NEEDDSYNC instead, the entry clean (see dax_fault_iter)."""
    mapping = vmf.vma.file.mapping
    if not vmf.write and not buffer_written(ext):
        return dax_pmd_load_hole(k, vmf, index, entry)
    if ext is None or ext.block & (PMD_PAGES - 1):
        return VM_FAULT_FALLBACK
    sync = dax_fault_is_synchronous(vmf, vmf.write, iomap_dirty)
    dax_insert_entry(k, mapping, index, entry, ext.block, vmf.write and not sync, pmd=True)
    if sync:
        return dax_fault_synchronous_pfnp(pfnp, ext.block)
    return insert_pfn_pmd(k, vmf, ext.block, vmf.write)


def dax_pmd_load_hole(k: Kernel, vmf: VmFault, index: int, entry: DaxEntry) -> int:
    """dax_pmd_load_hole() (6.1): a DAX_PMD|DAX_ZERO_PAGE entry, then under the PMD lock "if
    (!pmd_none(*(vmf->pmd))) { spin_unlock(ptl); goto fallback; }" and set_pmd_at() of the huge
    zero page (vm_page_prot: never writable)."""
    vma = vmf.vma
    dax_insert_entry(k, vma.file.mapping, index, entry, None, write=False, pmd=True)
    pmd_lock(k, vma)
    if vma.mm.pt.pmd_read(k, vmf.address, "dax_pmd_load_hole: pmd_none") is not None:
        pmd_unlock(k, vma)
        return VM_FAULT_FALLBACK
    vma.mm.pt.set_huge(k, vma, vmf.address, HugePmd(k.alloc.zero_page, None, False, False),
                       "dax_pmd_load_hole: set_pmd_at")
    pmd_unlock(k, vma)
    return VM_FAULT_NOPAGE


def ext4_dax_huge_fault_pmd(k: Kernel, vmf: VmFault) -> int:
    """ext4_dax_huge_fault(vmf, PE_SIZE_PMD) (6.1): as for a PTE, a shared write updates the file
    time; the fault runs under invalidate_lock shared, and a synchronous one is finished by
    dax_finish_sync_fault(PMD_ORDER)."""
    inode = vmf.vma.file
    write = vmf.write and vmf.vma.shared
    if write:
        inode.file_update_time(k)
    inode.invalidate_lock.down_read(k)
    pfn: list[int] = []
    ret = dax_iomap_pmd_fault(k, vmf, pfn)
    if write and ret & VM_FAULT_NEEDDSYNC:
        ret = dax_finish_sync_fault(k, vmf, PMD_ORDER, pfn[0])
    inode.invalidate_lock.up_read(k)
    return ret


def dax_invalidate_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> bool:
    """invalidate_inode_pages2_range() meeting a DAX entry (6.1,
    dax_invalidate_mapping_entry_sync -> __dax_invalidate_entry): wait for it to be unlocked,
    delete it unless it is dirty.  The page tables are unmapped by the caller (4.18+)."""
    mapping.tree_lock.lock(k)
    entry = get_unlocked_mapping_entry(k, mapping, index)
    if isinstance(entry, DaxEntry) and not mapping.tagged(k, index):
        mapping.delete(k, index, entry, "__dax_invalidate_entry")
    mapping.tree_lock.unlock(k)
    dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=True)
    return False


def ext4_dax_write(k: Kernel, inode: Inode, pos: int, data: bytes) -> int:
    """ext4_dax_write_iter() -> dax_iomap_rw() (6.1), under i_rwsem: a block that is new drops the
    entries over it and unmaps their zero pages ("Write can allocate block for an area which has a
    hole page mapped into page tables"); i_size grows at the end."""
    inode.i_rwsem.lock(k)
    written = 0
    while written < len(data):
        index, off = pos >> PAGE_SHIFT, pos & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - off, len(data) - written)
        ext, new, err = ext4_dax_get_block(k, inode, index, True)
        if err or ext is None:
            inode.i_rwsem.unlock(k)
            return written if written else (err or EIO)
        if new:
            invalidate_inode_pages2_range(k, inode.mapping, index, index)
            unmap_mapping_range(k, inode.mapping, index << PAGE_SHIFT, PAGE_SIZE, even_cows=False)
        chunk = data[written : written + n]
        # dax_copy_from_iter() -> pmem's _copy_from_iter_flushcache (movnt, clwb for the edges); its
        # fence comes with the next REQ_PREFLUSH, taken here as part of the copy
        k.pmem.write(k, ext.block, off, chunk, "dax_iomap_iter (copy_from_iter)", how="durable")
        k.events.emit("store_done", kind="write", inode=inode, offset=pos, data=chunk)
        written += n
        pos += n
    if pos > inode.i_size_read(k):
        inode.i_size_write(k, pos)
    inode.file_update_time(k)
    inode.i_rwsem.unlock(k)
    return written


def ext4_dax_setattr(k: Kernel, inode: Inode, newsize: int) -> None:
    """ext4_setattr() for ATTR_SIZE on a DAX file (6.1): under filemap_invalidate_lock(),
    ext4_break_layouts() unmaps the whole file; then i_size, the page cache and DAX entries
    (truncate_pagecache), the partial block zeroed and the blocks freed (ext4_truncate)."""
    oldsize = inode.i_size_read(k)
    inode.invalidate_lock.down_write(k)
    if inode.mapping.vmas(k):  # dax_layout_busy_page(): "!mapping_mapped(mapping)" returns early
        unmap_mapping_range(k, inode.mapping, 0, 0, even_cows=False)
    inode.i_size_write(k, newsize)
    if newsize < oldsize:
        truncate_pagecache(k, inode, newsize)
        dax_truncate_page(k, inode, newsize, ext4_dax_get_block)
        dax_free_blocks(k, inode, newsize)
    inode.invalidate_lock.up_write(k)


def ext4_dax_fsync(k: Kernel, inode: Inode) -> int:
    """ext4_sync_file() (6.1): file_write_and_wait_range() -> dax_writeback_mapping_range(), then
    the flush request (blkdev_issue_flush; pmem_submit_bio -> nvdimm_flush) fences the lines, and
    ext4_fsync_journal() -> jbd2_complete_transaction() commits the block map and i_size (the
    commit record goes out after the flush: data before metadata)."""
    ret = dax_writeback_mapping_range(k, inode.mapping)
    k.pmem.fence(k, "blkdev_issue_flush (nvdimm_flush)")
    jbd2_complete_transaction(k, inode)
    return ret


def ext4_dax_mmap(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    return ext4_dax_vm_ops, VM_MIXEDMAP


ext4_dax_vm_ops = VmOperations("ext4_dax_vm_ops", fault=ext4_dax_fault, page_mkwrite=ext4_dax_fault,
                               pfn_mkwrite=ext4_dax_fault, huge_fault=ext4_dax_huge_fault_pmd)

FS = FileSystemType(
    "ext4 (dax)",
    dax=True,
    disk=True,
    i_op=InodeOperations("ext4_file_inode_operations", setattr=ext4_dax_setattr),
    f_op=FileOperations("ext4_dax_file_operations", read_iter=ext4_dax_read, write_iter=ext4_dax_write,
                        fsync=ext4_dax_fsync, mmap=ext4_dax_mmap, mmap_supported_flags=MAP_SYNC),
    a_ops=AddressSpaceOperations("ext4_dax_aops"),
)
