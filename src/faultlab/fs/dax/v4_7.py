"""fs/dax.c of Linux 4.7: radix-tree entry locks (Jan Kara, ac401cc78242 "dax: New fault locking",
bc2466e42573, 4d9a2c874667), with ext4's DAX side.

An exceptional entry carries a lock bit; waiters sleep exclusively on a per-(mapping, index) wait
queue.  A DAX *hole page* in the page cache stands in for an entry, its page lock for the lock
bit.  The COW branch returns VM_FAULT_DAX_LOCKED with the entry locked and ``do_cow_fault`` unlocks
it after the PTE.  Faults are serialised against truncate by ext4's ``i_mmap_sem`` (read in the
fault, write in truncate) and by ``dax_delete_mapping_entry()``, which waits for a locked entry;
i_mmap_rwsem is no longer taken (4d9a2c874667).  ext4 hands DAX pre-zeroed blocks
(EXT4_GET_BLOCKS_CREATE_ZERO: zeroed before they are reachable) and dax_io no longer zeroes
("dax: Remove zeroing from dax_io()").  Entry locks are a lock class here, so lockdep orders them
(real lockdep cannot see them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.errors import AuditError
from faultlab.fs.dax.v4_0 import (
    EIO,
    GetBlock,
    buffer_written,
    dax_do_io_read,
    dax_fault_return,
    dax_free_blocks,
    dax_truncate_page,
)
from faultlab.fs.ext2 import clear_pmem
from faultlab.fs.ops import AddressSpaceOperations, FileOperations, FileSystemType, InodeOperations, VmOperations
from faultlab.kernel.filemap import __delete_from_page_cache, find_or_create_page
from faultlab.kernel.flags import (
    FAULT_FLAG_WRITE,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_DAX_LOCKED,
    VM_FAULT_LOCKED,
    VM_FAULT_MAJOR,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_MIXEDMAP,
    size_in_pages,
)
from faultlab.kernel.flags import PTRS_PER_PTE as PMD_PAGES
from faultlab.kernel.locking import BitLock, Lock
from faultlab.kernel.memory import (
    unmap_mapping_range,
    vm_insert_mixed,
)
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.cell import UPDATE, WRITE
from faultlab.kernel.state.inode import Extent
from faultlab.kernel.state.journal import jbd2_complete_transaction
from faultlab.kernel.state.page import Page, clear_page, get_page, lock_page, page_mapping, put_page, unlock_page
from faultlab.kernel.state.pagecache import DaxEntry, Entry
from faultlab.kernel.truncate import invalidate_inode_pages2_range, truncate_pagecache

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode
    from faultlab.kernel.state.pagecache import AddressSpace


# -- entry locks -----------------------------------------------------------------------------------------
def entry_lock(mapping: AddressSpace, index: int) -> Lock:
    """The lock bit of slot ``index``, as a lock the checks follow (class "dax entry lock").  A PMD
    entry (4.10+) has one lock bit for its whole range: the slot of its first index."""
    index = mapping.entry_index(index)
    lk = mapping.entry_locks.get(index)
    if lk is None:
        lk = mapping.entry_locks[index] = BitLock("dax entry lock", f"{mapping.name}[{index}]")
    return lk


def lock_slot(k: Kernel, mapping: AddressSpace, index: int) -> DaxEntry:
    """lock_slot(): set the lock bit of the (unlocked) entry at ``index``, under tree_lock."""
    lk = entry_lock(mapping, index)
    _old, new = mapping.modify(k, index, _locked, "lock_slot", more=((lk, WRITE),))
    assert isinstance(lk, BitLock) and isinstance(new, DaxEntry)
    lk.seize(k, mapping.tree_lock)
    return new


def _locked(entry: Entry | None) -> Entry | None:
    return entry._replace(locked=True) if isinstance(entry, DaxEntry) else entry


def _unlocked(entry: Entry | None) -> Entry | None:
    return entry._replace(locked=False) if isinstance(entry, DaxEntry) else entry


def dax_wake_mapping_entry_waiter(k: Kernel, mapping: AddressSpace, index: int, wake_all: bool) -> None:
    """A wake-up of the entry's waiters.  Wake-ups of one queue commute with each other (either
    order wakes every non-exclusive sleeper and the same first exclusive ones, and no waker reads
    what it woke), so the step is an UPDATE of the queue: it conflicts with a look-up that queues
    a thread there and with the sleep, not with another wake-up."""
    wq = mapping.waitqueue(index)
    k.sched.point(wq, UPDATE, "wake all" if wake_all else "wake one")
    k.sched.wake_up(wq, 0 if wake_all else 1)


def get_unlocked_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> Entry | None:
    """Called and returns with tree_lock held: the entry at ``index`` once it is not locked (a
    page is returned without waiting on its page lock)."""
    wq = mapping.waitqueue(index)
    # Where PMD entries are possible, the queue is the PMD's if one covers the index (4.9+ keys a
    # PMD entry's waiters by its aligned index).
    pmd_wq = mapping.waitqueue(index & ~(PMD_PAGES - 1)) if mapping.huge else wq
    while True:
        # The look-up goes on to queue us on the entry's wait queue (prepare_to_wait_exclusive) when
        # the entry is locked, and only then touches the queue.  An entry is locked, unlocked,
        # inserted and deleted only under tree_lock, which we hold: what the slot holds now is what
        # the look-up will see, so the step announces the queue only if it will wait.  (Checked
        # below: a look-up that finds otherwise stops the run.)
        peeked = mapping.peek(mapping.entry_index(index))
        waits = isinstance(peeked, DaxEntry) and peeked.locked
        queues = ((wq, WRITE),) if pmd_wq is wq else ((wq, WRITE), (pmd_wq, WRITE))
        entry = mapping.lookup(k, index, "__radix_tree_lookup", more=queues if waits else ())
        if (isinstance(entry, DaxEntry) and entry.locked) != waits:
            raise AuditError(f"__radix_tree_lookup of {mapping.name}[{index}] found {entry!r} where {peeked!r} "
                             "was announced: an entry changed without tree_lock held")
        if entry is None or isinstance(entry, Page) or not entry.locked:
            return entry
        wq = mapping.waitqueue(mapping.entry_index(index))
        k.sched.prepare_to_wait(wq, exclusive=True)
        mapping.tree_lock.unlock(k)
        k.sched.schedule("schedule (locked dax entry)")
        k.sched.finish_wait(wq)
        mapping.tree_lock.lock(k)
        wq = mapping.waitqueue(index)
        k.retry("get_unlocked_mapping_entry")


def grab_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> Entry:
    """grab_mapping_entry() (4.7): the entry, locked -- a new empty locked entry if there was none,
    or a hole page locked with lock_page()."""
    while True:  # restart:
        mapping.tree_lock.lock(k)
        entry = get_unlocked_mapping_entry(k, mapping, index)
        if entry is None:
            mapping.tree_lock.unlock(k)  # radix_tree_preload()
            mapping.tree_lock.lock(k)
            lk = entry_lock(mapping, index)
            new = DaxEntry(None, locked=True)
            inserted, _old = mapping.insert(k, index, new, "radix_tree_insert (empty locked entry)",
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


def dax_unlock_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> None:
    """dax_unlock_mapping_entry(): clear the lock bit under tree_lock, then wake one waiter."""
    mapping.tree_lock.lock(k)
    lk = entry_lock(mapping, index)
    old, _new = mapping.modify(k, index, _unlocked, "unlock_slot", more=((lk, WRITE),))
    assert isinstance(lk, BitLock)
    if isinstance(old, DaxEntry) and old.locked:
        lk.drop(k)
    else:
        k.lock_bad_release(lk, "W", "dax_unlock_mapping_entry of an entry that is not locked")
    index = mapping.entry_index(index)  # a PMD entry's waiters wait on its first index (4.9+)
    mapping.tree_lock.unlock(k)
    dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=False)


def put_locked_mapping_entry(k: Kernel, mapping: AddressSpace, index: int, entry: Entry) -> None:
    if isinstance(entry, Page):
        unlock_page(k, entry)
        put_page(k, entry)
    else:
        dax_unlock_mapping_entry(k, mapping, index)


def put_unlocked_mapping_entry(k: Kernel, mapping: AddressSpace, index: int, entry: Entry | None) -> None:
    """"We have to wake up next waiter": hand on a wake-up this thread did not use."""
    if isinstance(entry, DaxEntry):
        if entry.pmd:
            index &= ~(PMD_PAGES - 1)
        dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=False)


def dax_delete_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> None:
    """dax_delete_mapping_entry() (truncate): wait out a fault holding the entry, delete, wake all."""
    mapping.tree_lock.lock(k)
    entry = get_unlocked_mapping_entry(k, mapping, index)
    if isinstance(entry, DaxEntry):
        mapping.delete(k, index, entry, "radix_tree_delete (dax entry)")
    mapping.tree_lock.unlock(k)
    dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=True)


def dax_entry_handed_to_page(k: Kernel, mapping: AddressSpace, index: int) -> Lock:
    """In page_cache_tree_insert(), as a hole page takes the place of this fault's locked empty
    entry: the entry's lock is now the page's lock.  Returns the entry lock."""
    lk = entry_lock(mapping, index)
    assert isinstance(lk, BitLock)
    lk.drop(k)
    return lk


def dax_insert_mapping_entry(k: Kernel, mapping: AddressSpace, index: int, entry: Entry, block: int,
                             write: bool) -> DaxEntry:
    """dax_insert_mapping_entry() (4.7): a hole page is unmapped and deleted first (its page lock
    keeps it from being faulted back in); the new block entry stays locked; DIRTY on a write."""
    new = DaxEntry(block, locked=True)
    if isinstance(entry, DaxEntry) and entry.pmd and entry.block is not None:
        # 4.10: "If a normal PTE or PMD entry is already in the tree, we leave it alone" -- a
        # PTE fault under a PMD entry (possible only from 4.10, which has PMD entries) dirties it.
        mapping.tree_lock.lock(k)
        if write:
            mapping.tag_dirty(k, index)
        mapping.tree_lock.unlock(k)
        return entry
    if isinstance(entry, Page):
        unmap_mapping_range(k, mapping, index << PAGE_SHIFT, PAGE_SIZE, even_cows=False)
        mapping.tree_lock.lock(k)
        __delete_from_page_cache(k, entry)
        put_page(k, entry)  # the page cache's reference
        lk = entry_lock(mapping, index)
        inserted, _old = mapping.insert(k, index, new, "radix_tree_insert (dax entry)", more=((lk, WRITE),))
        assert inserted and isinstance(lk, BitLock)
        lk.seize(k, mapping.tree_lock, entry.lock)  # the hole page's lock becomes the entry lock
        if write:
            mapping.tag_dirty(k, index)
        mapping.tree_lock.unlock(k)
        unlock_page(k, entry)
        put_page(k, entry)
        return new
    mapping.tree_lock.lock(k)
    mapping.modify(k, index, lambda _e: new, "radix_tree_replace_slot")
    if write:
        mapping.tag_dirty(k, index)
    mapping.tree_lock.unlock(k)
    return new


def dax_invalidate_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> bool:
    """What invalidate_inode_pages2_range() does with a DAX entry in 4.7: leave it (returns
    whether to look at the index again)."""
    return False


# -- fsync ---------------------------------------------------------------------------------------------
def dax_writeback_mapping_range(k: Kernel, mapping: AddressSpace) -> int:
    """dax_writeback_mapping_range() (4.5 9973c98ecfda, as in 4.7-4.9; WB_SYNC_ALL):
    tag_pages_for_writeback() turns the DIRTY tags into TOWRITE (here: the DIRTY indices as they
    are now); dax_writeback_one() flushes each entry's block under no entry lock; DIRTY is never
    cleared, so every fsync flushes every entry ever dirtied (4.10 cleans, 4b4bb46d00b3); then
    wmb_pmem().  The TOWRITE short cut for a concurrent fsync is not modelled (it flushes again)."""
    for index in mapping.tagged_dirty(k):
        if dax_writeback_one(k, mapping, index):
            k.count("dax_flushes")
    k.pmem.fence(k, "wmb_pmem")
    return 0


def dax_writeback_one(k: Kernel, mapping: AddressSpace, index: int) -> bool:
    """dax_writeback_one() (4.7): under tree_lock, the entry must still be a block entry (not
    punched out, not empty or a hole); then, without tree_lock, wb_cache_pmem() of its block."""
    mapping.tree_lock.lock(k)
    entry = mapping.lookup(k, index, "__radix_tree_lookup")
    mapping.tree_lock.unlock(k)
    if not isinstance(entry, DaxEntry) or entry.block is None:
        return False
    k.pmem.flush(k, entry.block, "wb_cache_pmem")
    return True


# -- the fault handler ------------------------------------------------------------------------------------
def __dax_fault(k: Kernel, vmf: VmFault, get_block: GetBlock) -> int:
    """__dax_fault() (4.7): one i_size check ("Caller is supposed to hold locks serializing us with
    truncate"), then everything under the entry lock."""
    inode = vmf.vma.file
    mapping = inode.mapping
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return VM_FAULT_SIGBUS
    entry = grab_mapping_entry(k, mapping, vmf.pgoff)
    ext, new, error = get_block(k, inode, vmf.pgoff, False)
    if error:
        put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
        return dax_fault_return(error, 0)
    if vmf.cow_page is not None:
        return dax_cow_fault(k, vmf, ext, entry)
    major = 0
    if ext is None:
        if not vmf.write:
            return dax_load_hole(k, mapping, entry, vmf)
        ext, new, error = get_block(k, inode, vmf.pgoff, True)
        major = VM_FAULT_MAJOR
        if error or ext is None:
            put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
            return dax_fault_return(error or EIO, major)
    entry = dax_insert_mapping_entry(k, mapping, vmf.pgoff, entry, ext.block, vmf.write)
    error = vm_insert_mixed(k, vmf.vma, vmf.address, ext.block)
    put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
    return dax_fault_return(error, major)


def dax_cow_fault(k: Kernel, vmf: VmFault, ext: Extent | None, entry: Entry) -> int:
    """The COW branch of __dax_fault (inline in 4.7): copy into cow_page and hand the lock to
    do_cow_fault: a hole page's as VM_FAULT_LOCKED, the entry's as VM_FAULT_DAX_LOCKED."""
    new_page = vmf.cow_page
    assert new_page is not None
    if buffer_written(ext):
        assert ext is not None
        k.pmem.copy_to_page(k, ext.block, new_page, "copy_user_bh")
        k.count("bytes_copied", PAGE_SIZE)
    else:
        clear_page(k, new_page, "clear_user_highpage")
        k.count("pages_zeroed")
    if isinstance(entry, Page):
        vmf.page = entry
        return VM_FAULT_LOCKED
    vmf.entry = entry
    return VM_FAULT_DAX_LOCKED


def dax_load_hole(k: Kernel, mapping: AddressSpace, entry: Entry, vmf: VmFault) -> int:
    """dax_load_hole() (4.7): a hole page replaces the locked empty entry (page_cache_tree_insert
    wakes the entry's waiters); no i_size re-check, the fs lock serialises with truncate."""
    if isinstance(entry, Page):
        vmf.page = entry
        return VM_FAULT_LOCKED
    page = find_or_create_page(k, mapping, vmf.pgoff)
    if page is None:
        put_locked_mapping_entry(k, mapping, vmf.pgoff, entry)
        return VM_FAULT_OOM
    vmf.page = page
    return VM_FAULT_LOCKED


def dax_pfn_mkwrite(k: Kernel, vmf: VmFault) -> int:
    """dax_pfn_mkwrite() (4.7): tag the entry DIRTY (waiting for it to be unlocked) and return
    NOPAGE; the generic code makes the PTE writable -- not atomically with the tag (4.10 fixes it)."""
    mapping = vmf.vma.file.mapping
    mapping.tree_lock.lock(k)
    entry = get_unlocked_mapping_entry(k, mapping, vmf.pgoff)
    if isinstance(entry, DaxEntry):
        mapping.tag_dirty(k, vmf.pgoff)
    put_unlocked_mapping_entry(k, mapping, vmf.pgoff, entry)
    mapping.tree_lock.unlock(k)
    return VM_FAULT_NOPAGE


def dax_io_write(k: Kernel, inode: Inode, pos: int, data: bytes, get_block: GetBlock) -> int:
    """dax_do_io() for writes (4.7): the block comes zeroed from the file system (no zeroing
    here any more); a hole page over a new block is invalidated; the copy is non-temporal
    (copy_from_iter_pmem) and dax_do_io() fences it with wmb_pmem() before it returns (4.8 dropped
    that fence, leaving it to fsync's flush: not modelled, it only makes a write durable earlier);
    i_size grows at the end."""
    written = 0
    while written < len(data):
        index = pos >> PAGE_SHIFT
        off = pos & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - off, len(data) - written)
        ext, new, err = get_block(k, inode, index, True)
        if err or ext is None:
            return written if written else err
        if new:
            invalidate_inode_pages2_range(k, inode.mapping, index, index)
        chunk = data[written : written + n]
        k.pmem.write(k, ext.block, off, chunk, "copy_from_iter_pmem", how="nt")
        k.events.emit("store_done", kind="write", inode=inode, offset=pos, data=chunk)
        written += n
        pos += n
    k.pmem.fence(k, "wmb_pmem")
    if pos > inode.i_size_read(k):
        inode.i_size_write(k, pos)
    inode.file_update_time(k)
    return written


# -- ext4 ---------------------------------------------------------------------------------------------------
def ext4_dax_get_block(k: Kernel, inode: Inode, index: int, create: bool) -> tuple[Extent | None, bool, int]:
    """ext4_dax_get_block() (4.7): a hole gets a block under i_data_sem, zeroed before it is
    reachable and mapped written (EXT4_GET_BLOCKS_CREATE_ZERO)."""
    ext = inode.lookup_extent(k, index)
    if ext is not None or not create:
        return ext, False, 0
    inode.i_data_sem.down_write(k)
    ext = inode.lookup_extent(k, index)
    if ext is not None:
        inode.i_data_sem.up_write(k)
        return ext, False, 0
    block = k.pmem.alloc(k)
    if block is None:
        inode.i_data_sem.up_write(k)
        return None, False, -28
    k.count("blocks_allocated")
    k.events.emit("block_alloc", inode=inode, index=index, block=block)
    # sb_issue_zeroout() -> pmem_make_request(): write_pmem() (non-temporal) then wmb_pmem(), one step
    clear_pmem(k, block, "ext4_issue_zeroout", how="durable")
    ext = Extent(block)
    inode.set_extent(k, index, ext, "ext4_ext_map_blocks")
    inode.i_data_sem.up_write(k)
    return ext, True, 0


def ext4_dax_fault(k: Kernel, vmf: VmFault) -> int:
    """ext4_dax_fault() (4.7): file_update_time on writes; i_mmap_sem for read around the DAX fault
    -- dropped before do_cow_fault installs the PTE, which is why the COW page needs the entry lock."""
    inode = vmf.vma.file
    if vmf.write:
        inode.file_update_time(k)
    inode.i_mmap_sem.down_read(k)
    ret = __dax_fault(k, vmf, ext4_dax_get_block)
    inode.i_mmap_sem.up_read(k)
    return ret


def ext4_dax_mkwrite(k: Kernel, vmf: VmFault) -> int:
    """ext4_dax_vm_ops.page_mkwrite = ext4_dax_fault: a write to a hole page re-enters the fault."""
    vmf.flags |= FAULT_FLAG_WRITE
    vmf.write = True
    vmf.page = None
    return ext4_dax_fault(k, vmf)


def ext4_dax_pfn_mkwrite(k: Kernel, vmf: VmFault) -> int:
    """ext4_dax_pfn_mkwrite(): under i_mmap_sem, re-check i_size, then dax_pfn_mkwrite()."""
    inode = vmf.vma.file
    inode.file_update_time(k)
    inode.i_mmap_sem.down_read(k)
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        ret = VM_FAULT_SIGBUS
    else:
        ret = dax_pfn_mkwrite(k, vmf)
    inode.i_mmap_sem.up_read(k)
    return ret


def ext4_dax_setattr(k: Kernel, inode: Inode, newsize: int) -> None:
    """ext4_setattr() (4.7) on a DAX file: i_size first; then, under i_mmap_sem for write, the page
    cache and DAX entries (dax_delete_mapping_entry waits for faults holding an entry), the partial
    block zeroed, the blocks freed."""
    oldsize = inode.i_size_read(k)
    inode.i_size_write(k, newsize)
    if newsize >= oldsize:
        return
    inode.i_mmap_sem.down_write(k)
    truncate_pagecache(k, inode, newsize)
    dax_truncate_page(k, inode, newsize, ext4_dax_get_block)
    dax_free_blocks(k, inode, newsize)
    inode.i_mmap_sem.up_write(k)


def ext4_dax_read(k: Kernel, inode: Inode, pos: int, count: int) -> bytes:
    return dax_do_io_read(k, inode, pos, count, ext4_dax_get_block)


def ext4_dax_write(k: Kernel, inode: Inode, pos: int, data: bytes) -> int:
    inode.i_rwsem.lock(k)
    ret = dax_io_write(k, inode, pos, data, ext4_dax_get_block)
    inode.i_rwsem.unlock(k)
    return ret


def ext4_dax_fsync(k: Kernel, inode: Inode) -> int:
    """ext4_sync_file() -> filemap_write_and_wait_range() -> dax_writeback_mapping_range() (4.5),
    then jbd2_complete_transaction() commits the block map and i_size."""
    ret = dax_writeback_mapping_range(k, inode.mapping)
    jbd2_complete_transaction(k, inode)
    return ret


def ext4_dax_mmap(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    return ext4_dax_vm_ops, VM_MIXEDMAP


ext4_dax_vm_ops = VmOperations("ext4_dax_vm_ops", fault=ext4_dax_fault, page_mkwrite=ext4_dax_mkwrite,
                               pfn_mkwrite=ext4_dax_pfn_mkwrite)

FS = FileSystemType(
    "ext4 (dax)",
    dax=True,
    disk=True,
    i_op=InodeOperations("ext4_file_inode_operations", setattr=ext4_dax_setattr),
    f_op=FileOperations("ext4_dax_file_operations", read_iter=ext4_dax_read, write_iter=ext4_dax_write,
                        fsync=ext4_dax_fsync, mmap=ext4_dax_mmap),
    a_ops=AddressSpaceOperations("ext4_dax_aops"),
)

__all__ = ["FS", "VM_FAULT_DAX_LOCKED"]
