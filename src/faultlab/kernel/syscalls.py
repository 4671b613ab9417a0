"""The user side: system calls and loads/stores through mappings, with the arch fault handler.

A load or store is what the CPU does: walk the PTE and touch the page (one atomic step), or take a
page fault (``do_page_fault``: mmap_sem for read, find_vma, access check, handle_mm_fault) and try
again.  Faults are accounted per operation the way getrusage() sees them (mm_account_fault(),
5.9+: a fault that returns an error or VM_FAULT_RETRY is not counted; MAJOR goes to majflt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from faultlab.kernel import dax_common as dax
from faultlab.kernel.filemap import generic_file_read, generic_perform_write, lock_page, unlock_page
from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE, VM_FAULT_ERROR, FaultFlag, VmFault, VmFlag
from faultlab.kernel.fs import DaxEntry, Inode
from faultlab.kernel.memory import (
    handle_mm_fault,
    i_mmap_lock_read,
    i_mmap_lock_write,
    i_mmap_unlock_read,
    i_mmap_unlock_write,
    pte_read,
    set_pte_at,
    zap_pte_range,
)
from faultlab.kernel.mm import Pte, Vma, VmOps
from faultlab.kernel.page import Page
from faultlab.kernel.truncate import pagecache_setattr_size, zero_tail_of_last_page
from faultlab.scenario.model import Outcome
from faultlab.sched import Access

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel

EINVAL = "EINVAL"


@dataclass(slots=True)
class FaultTally:
    """Faults one operation took, as getrusage() would count them."""

    minflt: int = 0
    majflt: int = 0


def page_cache_vm_ops(fs: str) -> VmOps:
    from faultlab.kernel.filemap import filemap_fault, filemap_map_pages, filemap_page_mkwrite, shmem_fault

    if fs == "tmpfs":
        return VmOps("shmem_vm_ops", fault=shmem_fault, map_pages=filemap_map_pages)
    return VmOps("ext4_file_vm_ops", fault=filemap_fault, map_pages=filemap_map_pages,
                 page_mkwrite=filemap_page_mkwrite)


# -- mmap, munmap, madvise ---------------------------------------------------------------------------
def sys_mmap(k: Kernel, inode: Inode, offset: int, length: int, shared: bool, writable: bool) -> Vma | str:
    """mmap(2) of a file opened O_RDWR, at the next 2 MiB-aligned address."""
    if length <= 0 or offset & (PAGE_SIZE - 1):
        return EINVAL
    mm = k.mm
    span = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    start = k.map_slot(span)
    flags = VmFlag.READ | VmFlag.MAYREAD | VmFlag.MAYWRITE
    if writable:
        flags |= VmFlag.WRITE
    if shared:
        flags |= VmFlag.SHARED | VmFlag.MAYSHARE
    if inode.fs == "dax":
        vm_ops = k.design.dax_vm_ops()
        flags |= VmFlag.MIXEDMAP
    else:
        vm_ops = page_cache_vm_ops(inode.fs)
    vma = Vma(mm, start, start + span, offset >> PAGE_SHIFT, inode, flags, vm_ops)
    mm.mmap_sem.down_write(k)
    i_mmap_lock_write(k, inode.mapping)
    inode.mapping.i_mmap.append(vma)
    i_mmap_unlock_write(k, inode.mapping)
    mm.vmas.append(vma)
    mm.mmap_sem.up_write(k)
    return vma


def sys_munmap(k: Kernel, vma: Vma) -> Outcome:
    mm = k.mm
    mm.mmap_sem.down_write(k)
    if vma not in mm.vmas:
        mm.mmap_sem.up_write(k)
        return Outcome.ok()
    zap_pte_range(k, vma, vma.start, vma.end, None)
    mapping = vma.file.mapping
    i_mmap_lock_write(k, mapping)
    mapping.i_mmap.remove(vma)
    i_mmap_unlock_write(k, mapping)
    mm.vmas.remove(vma)
    mm.mmap_sem.up_write(k)
    return Outcome.ok()


def sys_madvise_dontneed(k: Kernel, vma: Vma) -> Outcome:
    """madvise(MADV_DONTNEED): zap_page_range() over the mapping, private copies included."""
    mm = k.mm
    mm.mmap_sem.down_read(k)
    if vma not in mm.vmas:
        mm.mmap_sem.up_read(k)
        return Outcome.errno("ENOMEM")  # "addresses in the range are not currently mapped"
    zap_pte_range(k, vma, vma.start, vma.end, None)
    mm.mmap_sem.up_read(k)
    return Outcome.ok()


# -- loads and stores ----------------------------------------------------------------------------------
def do_page_fault(k: Kernel, address: int, write: bool, tally: FaultTally) -> VmFault:
    """__do_page_fault() (x86): mmap_sem for read, find_vma, access_error, handle_mm_fault."""
    mm = k.mm
    mm.mmap_sem.down_read(k)
    vma = mm.find_vma(address)
    if vma is None:
        mm.mmap_sem.up_read(k)
        return VmFault.SIGSEGV
    if write and not vma.flags & VmFlag.WRITE:
        mm.mmap_sem.up_read(k)
        return VmFault.SIGSEGV
    flags = FaultFlag.USER | (FaultFlag.WRITE if write else FaultFlag.NONE)
    ret = handle_mm_fault(k, vma, address & ~(PAGE_SIZE - 1), flags)
    mm.mmap_sem.up_read(k)
    if ret & VmFault.RETRY:
        k.count("fault.retries")
    elif not ret & VM_FAULT_ERROR:
        if ret & VmFault.MAJOR:
            tally.majflt += 1
            k.count("faults.major")
        else:
            tally.minflt += 1
    return ret


def _target(pte: Pte) -> object:
    return pte.page if pte.page is not None else ("block", pte.block)


def _access_once(k: Kernel, vma: Vma, page_addr: int, off: int, n: int, data: bytes | None) -> bytes | None:
    """The CPU's access: one atomic step reading the PTE and touching what it maps.  Returns the
    bytes (a store returns b""), or None when the PTE does not allow the access."""
    mm = k.mm
    write = data is not None
    peek = mm.ptes.get(page_addr)
    obj2 = _target(peek) if peek is not None else None
    label = f"{'store' if write else 'load'} {page_addr + off:#x}"
    access = Access.WRITE if write else Access.READ  # a store may set the dirty bit
    k.sched.point(("pte", mm, page_addr), access, label, more=() if obj2 is None else ((obj2, access),))
    pte = mm.ptes.get(page_addr)
    if pte is None or pte != peek or (write and not pte.write):
        return None
    if write:
        assert data is not None
        if not pte.dirty:
            mm.ptes[page_addr] = Pte(pte.page, pte.block, pte.write, True)  # the CPU sets the dirty bit
        _store(k, vma, pte, page_addr, off, data)
        return b""
    return _load(k, vma, pte, page_addr, off, n)


def _load(k: Kernel, vma: Vma, pte: Pte, page_addr: int, off: int, n: int) -> bytes:
    if pte.page is not None:
        k.events.emit("page_access", page=pte.page, write=False)
        return pte.page.read(off, n)
    assert pte.block is not None
    k.events.emit("block_access", block=pte.block, write=False, user=True)
    index = vma.linear_page_index(page_addr)
    return k.pmem.read(pte.block, off, n, dax.initial_block_contents(vma.file, pte.block, index))


def _store(k: Kernel, vma: Vma, pte: Pte, page_addr: int, off: int, data: bytes) -> None:
    index = vma.linear_page_index(page_addr)
    if pte.page is not None:
        k.events.emit("page_access", page=pte.page, write=True)
        pte.page.write(off, data)
    else:
        assert pte.block is not None
        k.events.emit("block_access", block=pte.block, write=True, user=True)
        k.pmem.write(pte.block, off, data, dax.initial_block_contents(vma.file, pte.block, index))
    k.events.emit("store_done", kind="shared-map" if vma.shared else "private-map", inode=vma.file,
                  offset=(index << PAGE_SHIFT) + off, data=data, pte=pte, vma=vma)


def user_access(k: Kernel, vma: Vma, offset: int, length: int, data: bytes | None,
                tally: FaultTally) -> Outcome:
    """A load of ``length`` bytes (data None) or a store of ``data`` at ``offset`` in the mapping."""
    addr = vma.start + offset
    end = addr + (len(data) if data is not None else length)
    out = bytearray()
    done = 0
    while addr < end:
        page_addr = addr & ~(PAGE_SIZE - 1)
        off = addr - page_addr
        n = min(PAGE_SIZE - off, end - addr)
        chunk = None if data is None else data[done : done + n]
        while True:
            got = _access_once(k, vma, page_addr, off, n, chunk)
            if got is not None:
                out += got
                break
            ret = do_page_fault(k, addr, chunk is not None, tally)
            if ret & VmFault.SIGSEGV:
                return Outcome.signal("SIGSEGV")
            if ret & (VmFault.SIGBUS | VmFault.HWPOISON):
                return Outcome.signal("SIGBUS")
            if ret & VmFault.OOM:
                return Outcome.signal("SIGKILL")
        addr += n
        done += n
    return Outcome.ok() if data is not None else Outcome.of_data(bytes(out))


# -- read(2), write(2), ftruncate(2), fsync(2), msync(2) ----------------------------------------------------
def sys_read(k: Kernel, inode: Inode, pos: int, count: int) -> Outcome:
    if inode.fs == "dax":
        return Outcome.of_data(k.design.dax_read(k, inode, pos, count))
    return Outcome.of_data(generic_file_read(k, inode, pos, count))


def sys_write(k: Kernel, inode: Inode, pos: int, data: bytes) -> Outcome:
    """pwrite(2): i_rwsem held across the write, as generic_file_write_iter() does."""
    inode.i_rwsem.lock(k)
    if inode.fs == "dax":
        ret = k.design.dax_write(k, inode, pos, data)
    else:
        if pos > inode.i_size and inode.fs == "ext4":
            zero_tail_of_last_page(k, inode, inode.i_size)
        ret = generic_perform_write(k, inode, pos, data)
    inode.i_rwsem.unlock(k)
    if ret == -28:
        return Outcome.errno("ENOSPC")
    if ret == -12:
        return Outcome.errno("ENOMEM")
    return Outcome.ok()


def sys_ftruncate(k: Kernel, inode: Inode, size: int) -> Outcome:
    """do_truncate() -> notify_change() -> ->setattr, with i_rwsem held."""
    inode.i_rwsem.lock(k)
    k.events.emit("truncate_begin", inode=inode, size=size)
    if inode.fs == "dax":
        k.design.dax_setattr_size(k, inode, size)
    else:
        pagecache_setattr_size(k, inode, size)
    inode.file_update_time(k)
    k.events.emit("truncate_end", inode=inode, size=size)
    inode.i_rwsem.unlock(k)
    return Outcome.ok()


def page_mkclean(k: Kernel, inode: Inode, page: Page) -> None:
    """page_mkclean(): write-protect and clean every shared PTE of the page (under i_mmap read)."""
    mapping = inode.mapping
    i_mmap_lock_read(k, mapping)
    for vma in list(mapping.i_mmap):
        if not vma.shared:
            continue
        npages = (vma.end - vma.start) >> PAGE_SHIFT
        if not vma.pgoff <= page.index < vma.pgoff + npages:
            continue
        address = vma.address_of(page.index)
        ptl = vma.mm.pte_lockptr(address)
        ptl.lock(k)
        pte = pte_read(k, vma.mm, address)
        if pte is not None and pte.page is page and (pte.write or pte.dirty):
            if pte.dirty:
                page.dirty = True
            set_pte_at(k, vma, address, Pte(page, None, False, False))
            k.events.emit("pte_wrprotect", mm=vma.mm, addr=address)
        ptl.unlock(k)
    i_mmap_unlock_read(k, mapping)


def filemap_write_and_wait(k: Kernel, inode: Inode) -> None:
    """write_cache_pages() for WB_SYNC_ALL on ext4: lock each page, clear_page_dirty_for_io()
    (page_mkclean: the next store write-faults again), write it, unlock."""
    mapping = inode.mapping
    for index in sorted(i for i, p in mapping.page_tree.items() if isinstance(p, Page)):
        page = mapping.page_tree.get(index)
        if not isinstance(page, Page):
            continue
        k.alloc.get_page(page)
        lock_page(k, page)
        if page.mapping is mapping:
            page_mkclean(k, inode, page)
            if page.dirty:
                page.dirty = False
                k.count("pages_written_back")
        unlock_page(k, page)
        k.alloc.put_page(k, page)


def sys_fsync(k: Kernel, inode: Inode) -> Outcome:
    if inode.fs == "dax":
        k.design.dax_fsync(k, inode)
    elif inode.fs == "ext4":
        filemap_write_and_wait(k, inode)
    return Outcome.ok()


def sys_msync(k: Kernel, vma: Vma) -> Outcome:
    """msync(MS_SYNC): vfs_fsync_range() on the file of a shared mapping; nothing for private."""
    mm = k.mm
    mm.mmap_sem.down_read(k)
    mapped = vma in mm.vmas
    mm.mmap_sem.up_read(k)
    if not mapped:
        return Outcome.errno("ENOMEM")
    if vma.shared:
        return sys_fsync(k, vma.file)
    return Outcome.ok()


SNAPSHOT_LIMIT = 64 << 20


def file_snapshot(k: Kernel, inode: Inode) -> bytes | None:
    """The file's contents as read(2) would return them, read without scheduling (for reports
    and checks once the run is over); None for a file larger than SNAPSHOT_LIMIT, which would not
    fit in a report (the model itself keeps only what was touched)."""
    if inode.i_size > SNAPSHOT_LIMIT:
        return None
    out = bytearray()
    for index in range((inode.i_size + PAGE_SIZE - 1) >> PAGE_SHIFT):
        n = min(PAGE_SIZE, inode.i_size - (index << PAGE_SHIFT))
        out += backing_bytes(k, inode, index)[:n]
    return bytes(out)


def backing_bytes(k: Kernel, inode: Inode, index: int) -> bytes:
    """What the file holds at page ``index`` right now (page cache, or pmem for DAX)."""
    if inode.fs == "dax":
        ext = dax.lookup_extent(inode, index)
        if ext is None or ext.unwritten:
            return bytes(PAGE_SIZE)
        return k.pmem.read(ext.block, 0, PAGE_SIZE, dax.initial_block_contents(inode, ext.block, index))
    entry = inode.mapping.page_tree.get(index)
    if isinstance(entry, Page):
        return entry.read(0, PAGE_SIZE)
    if isinstance(entry, DaxEntry):
        return bytes(PAGE_SIZE)
    return inode.initial_contents(index) or bytes(PAGE_SIZE)
