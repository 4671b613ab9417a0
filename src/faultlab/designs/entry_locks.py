"""DAX radix-tree entry locking, Linux 4.7 fs/dax.c (ac401cc78242 "dax: New fault locking"),
as used by the ``v4.7`` and ``v4.10`` designs.

An exceptional entry carries a lock bit; waiters sleep exclusively on a per-(mapping, index) wait
queue.  A DAX *hole page* in the page cache stands in for an entry, its page lock for the lock
bit.  ``page_cache_tree_insert`` replaces a locked empty entry with the hole page and wakes the
entry's waiters: one of them in 4.7 as released, all of them after 965d004af540.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.fs import AddressSpace, DaxEntry
from faultlab.kernel.locking import BitLock
from faultlab.kernel.memory import i_mmap_lock_read, i_mmap_unlock_read, pte_read, set_pte_at
from faultlab.kernel.mm import Pte
from faultlab.kernel.page import Page, lock_page, unlock_page
from faultlab.sched import Access

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

Entry = DaxEntry | Page


def entry_lock(mapping: AddressSpace, index: int) -> BitLock:
    """The lock bit of slot ``index``, as a lock object the checks can follow."""
    locks: dict[int, BitLock] = mapping.__dict__.setdefault("entry_locks", {})
    lk = locks.get(index)
    if lk is None:
        lk = BitLock("dax entry lock", f"{mapping.host.name}[{index}]")
        locks[index] = lk
    return lk


def lock_slot(k: Kernel, mapping: AddressSpace, index: int, entry: DaxEntry) -> None:
    entry.locked = True
    entry.owner = k.tid()
    lk = entry_lock(mapping, index)
    lk.owner = k.tid()
    k.lock_acquired(lk, "W", trylock=True)  # set under tree_lock once seen unlocked: never blocks


def unlock_slot(k: Kernel, mapping: AddressSpace, index: int, entry: DaxEntry) -> None:
    lk = entry_lock(mapping, index)
    if lk.owner != k.tid():
        k.lock_bad_release(lk, "W", "unlock of a DAX entry this thread has not locked")
    entry.locked = False
    entry.owner = None
    lk.owner = None
    k.lock_released(lk, "W")


def dax_wake_mapping_entry_waiter(k: Kernel, mapping: AddressSpace, index: int, wake_all: bool) -> None:
    wq = mapping.entry_waitqueue(index)
    k.sched.point(wq, Access.WRITE, f"wake {'all' if wake_all else 'one'} on dax entry {index}")
    k.sched.wake_up(wq, 0 if wake_all else 1)


def get_unlocked_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> Entry | None:
    """Called and returns with tree_lock held: the entry at ``index`` once it is not locked
    (a page is returned without waiting on its page lock)."""
    wq = mapping.entry_waitqueue(index)
    while True:
        # The lookup may go on to queue us on the entry's wait queue (prepare_to_wait_exclusive).
        k.sched.point(mapping.slot(index), Access.READ, f"lookup dax entry {index}", more=((wq, Access.WRITE),))
        entry = mapping.page_tree.get(index)
        if entry is None or isinstance(entry, Page) or not entry.locked:
            return entry
        k.sched.prepare_to_wait(wq, exclusive=True)
        mapping.tree_lock.unlock(k)
        k.sched.schedule(f"sleep on locked dax entry {index}")
        k.sched.finish_wait(wq)
        mapping.tree_lock.lock(k)


def grab_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> Entry:
    """grab_mapping_entry() (4.7): return the entry locked -- a new empty locked entry if there
    was none, or a hole page locked with lock_page()."""
    while True:  # restart:
        mapping.tree_lock.lock(k)
        entry = get_unlocked_mapping_entry(k, mapping, index)
        if entry is None:
            mapping.tree_lock.unlock(k)  # radix_tree_preload()
            mapping.tree_lock.lock(k)
            k.sched.point(mapping.slot(index), Access.WRITE, f"insert empty locked entry {index}")
            if index in mapping.page_tree:
                mapping.tree_lock.unlock(k)
                continue  # -EEXIST: restart
            new = DaxEntry(block=None)
            mapping.page_tree[index] = new
            lock_slot(k, mapping, index, new)
            mapping.tree_lock.unlock(k)
            return new
        if isinstance(entry, Page):
            k.alloc.get_page(entry)
            mapping.tree_lock.unlock(k)
            lock_page(k, entry)
            if entry.mapping is not mapping:
                unlock_page(k, entry)
                k.alloc.put_page(k, entry)
                continue
            return entry
        k.sched.point(mapping.slot(index), Access.WRITE, f"lock dax entry {index}")
        lock_slot(k, mapping, index, entry)
        mapping.tree_lock.unlock(k)
        return entry


def dax_unlock_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> None:
    mapping.tree_lock.lock(k)
    k.sched.point(mapping.slot(index), Access.WRITE, f"unlock dax entry {index}")
    entry = mapping.page_tree.get(index)
    if isinstance(entry, DaxEntry) and entry.locked:
        unlock_slot(k, mapping, index, entry)
    else:
        k.lock_bad_release(entry_lock(mapping, index), "W", "dax_unlock_mapping_entry of an entry that is not locked")
    mapping.tree_lock.unlock(k)
    dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=False)


def put_locked_mapping_entry(k: Kernel, mapping: AddressSpace, index: int, entry: Entry) -> None:
    if isinstance(entry, Page):
        unlock_page(k, entry)
        k.alloc.put_page(k, entry)
    else:
        dax_unlock_mapping_entry(k, mapping, index)


def put_unlocked_mapping_entry(k: Kernel, mapping: AddressSpace, index: int, entry: Entry | None) -> None:
    """"We have to wake up next waiter": hand on a wake-up we did not use."""
    if isinstance(entry, DaxEntry):
        dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=False)


def dax_delete_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> None:
    """dax_delete_mapping_entry() (truncate): wait out a fault holding the entry, delete, wake all."""
    mapping.tree_lock.lock(k)
    entry = get_unlocked_mapping_entry(k, mapping, index)
    if isinstance(entry, DaxEntry):
        k.sched.point(mapping.slot(index), Access.WRITE, f"delete dax entry {index}")
        del mapping.page_tree[index]
    mapping.tree_lock.unlock(k)
    dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=True)


def empty_entry_replaced_by_page(k: Kernel, mapping: AddressSpace, index: int, entry: DaxEntry,
                                 wake_all: bool) -> None:
    """page_cache_tree_insert() (4.7 mm/filemap.c): "DAX can replace empty locked entry with a
    hole"; the lock bit is handed over to the new page's lock, and the entry's waiters are woken --
    one of them before 965d004af540, all of them after."""
    unlock_slot(k, mapping, index, entry)
    dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=wake_all)


def dax_insert_mapping_entry(k: Kernel, mapping: AddressSpace, index: int, entry: Entry, block: int,
                             write: bool) -> DaxEntry:
    """dax_insert_mapping_entry() (4.7): a hole page is unmapped and deleted first (its page lock
    keeps it from being faulted back); the new block entry stays locked; DIRTY on a write."""
    from faultlab.kernel.filemap import delete_from_page_cache
    from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE
    from faultlab.kernel.memory import unmap_mapping_range

    if isinstance(entry, Page):
        unmap_mapping_range(k, mapping, index << PAGE_SHIFT, PAGE_SIZE, even_cows=False)
        mapping.tree_lock.lock(k)
        delete_from_page_cache(k, entry)
        new = DaxEntry(block=block, dirty=write)
        k.sched.point(mapping.slot(index), Access.WRITE, f"insert dax entry {index} -> block {block}")
        mapping.page_tree[index] = new
        lock_slot(k, mapping, index, new)
        mapping.tree_lock.unlock(k)
        unlock_page(k, entry)
        k.alloc.put_page(k, entry)
        return new
    mapping.tree_lock.lock(k)
    k.sched.point(mapping.slot(index), Access.WRITE, f"set dax entry {index} -> block {block}")
    entry.block = block
    entry.dirty = entry.dirty or write
    mapping.tree_lock.unlock(k)
    return entry


def dax_writeback_mapping_range(k: Kernel, mapping: AddressSpace) -> None:
    """dax_writeback_mapping_range() (WB_SYNC_ALL): for each DIRTY entry, lock it, write-protect
    every PTE of its pfn (dax_mapping_entry_mkclean, under i_mmap read), flush, clear DIRTY."""
    for index in sorted(i for i, e in mapping.page_tree.items() if isinstance(e, DaxEntry) and e.dirty):
        mapping.tree_lock.lock(k)
        entry = get_unlocked_mapping_entry(k, mapping, index)
        if not isinstance(entry, DaxEntry) or not entry.dirty or entry.block is None:
            mapping.tree_lock.unlock(k)
            put_unlocked_mapping_entry(k, mapping, index, entry)
            continue
        lock_slot(k, mapping, index, entry)
        mapping.tree_lock.unlock(k)
        i_mmap_lock_read(k, mapping)
        for vma in list(mapping.i_mmap):
            if not vma.shared or not (vma.pgoff <= index < vma.pgoff + ((vma.end - vma.start) >> 12)):
                continue
            address = vma.address_of(index)
            ptl = vma.mm.pte_lockptr(address)
            ptl.lock(k)
            pte = pte_read(k, vma.mm, address)
            if pte is not None and pte.block == entry.block and pte.write:
                set_pte_at(k, vma, address, Pte(None, pte.block, False, False))
                k.events.emit("pte_wrprotect", mm=vma.mm, addr=address)
            ptl.unlock(k)
        i_mmap_unlock_read(k, mapping)
        k.count("dax_flushes")
        entry.dirty = False
        dax_unlock_mapping_entry(k, mapping, index)


def dax_invalidate_wait(k: Kernel, mapping: AddressSpace, index: int) -> None:
    """What invalidate_inode_pages2_range() does with a DAX entry once the 4.12 fix is in: wait
    for a fault that holds it (it may be about to map a hole page), then let the caller re-look."""
    mapping.tree_lock.lock(k)
    entry = get_unlocked_mapping_entry(k, mapping, index)
    mapping.tree_lock.unlock(k)
    put_unlocked_mapping_entry(k, mapping, index, entry)

