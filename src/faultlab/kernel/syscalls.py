"""The user side: system calls and loads/stores through mappings, with the arch fault handler.

System calls reach a file only through its file system's operations (``inode.fs.f_op``,
``i_op``).  A load or store is what the CPU does: walk the PTE and touch the page it maps (one
atomic step), or take a page fault (``do_page_fault``: mmap_sem for read, find_vma, access check,
the era's handle_mm_fault) and try again.  Faults are accounted per operation the way getrusage()
sees them: a fault that returns an error is not counted (x86 __do_page_fault returns before the
accounting in 4.x; mm_account_fault() skips it from 5.9), VM_FAULT_MAJOR goes to majflt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from faultlab.kernel.eras import v4_10 as era  # linked per design: its generic fault code
from faultlab.kernel.flags import (
    FAULT_FLAG_USER,
    FAULT_FLAG_WRITE,
    MAP_SYNC,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SIZE,
    VM_FAULT_ERROR,
    VM_FAULT_HWPOISON,
    VM_FAULT_MAJOR,
    VM_FAULT_OOM,
    VM_FAULT_RETRY,
    VM_FAULT_SIGBUS,
    VM_FAULT_SIGSEGV,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_READ,
    VM_SHARED,
    VM_SYNC,
    VM_WRITE,
)
from faultlab.kernel.fork import dup_mmap, exit_mmap
from faultlab.kernel.huge_memory import change_huge_pmd
from faultlab.kernel.memory import i_mmap_lock_write, i_mmap_unlock_write, pte_read, set_pte_at, zap_pte_range
from faultlab.kernel.mm import MmStruct, Vma
from faultlab.kernel.state.cell import WRITE
from faultlab.kernel.state.page import page_bytes, page_store
from faultlab.kernel.state.pagetable import Pte
from faultlab.scenario.model import Op, Outcome
from faultlab.sched.core import EVERYTHING

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode

EINVAL = "EINVAL"
ERRNO_NAMES = {-12: "ENOMEM", -28: "ENOSPC", -22: "EINVAL", -5: "EIO", -95: "EOPNOTSUPP"}


@dataclass(slots=True)
class FaultTally:
    """Faults one operation took, as getrusage() would count them."""

    minflt: int = 0
    majflt: int = 0


# -- mmap, munmap, madvise ---------------------------------------------------------------------------
def sys_mmap(k: Kernel, inode: Inode, offset: int, length: int, shared: bool, writable: bool,
             placement: str = "", addr: int = 0, sync: bool = False) -> Vma | str:
    """mmap(2) of a file opened O_RDWR: ->mmap picks the vm_operations_struct (and adds flags such
    as VM_MIXEDMAP for DAX).  Placed at the next 2 MiB-aligned address; ``placement`` ``"at"``:
    at ``addr`` with MAP_FIXED_NOREPLACE (EINVAL unaligned, EEXIST over another mapping);
    ``"unaligned"``: three pages below a 2 MiB boundary (see :func:`mmap_address`).  ``sync``:
    MAP_SHARED_VALIDATE|MAP_SYNC (see :func:`map_sync_check`)."""
    if length <= 0 or offset & (PAGE_SIZE - 1):
        return EINVAL
    mm = k.mm
    span = (length + PAGE_SIZE - 1) & PAGE_MASK
    start = mmap_address(k, span, placement, addr)
    if start is None:
        return EINVAL
    if sync:
        err = map_sync_check(inode)
        if err:
            return err
    flags = VM_READ | VM_MAYREAD | VM_MAYWRITE
    if writable:
        flags |= VM_WRITE
    if shared:
        flags |= VM_SHARED | VM_MAYSHARE
    if sync:
        flags |= VM_SYNC  # calc_vm_flag_bits(): _calc_vm_trans(flags, MAP_SYNC, VM_SYNC)
    vm_ops, extra = inode.fs.f_op.mmap(k, inode)
    vma = Vma(mm, start, start + span, offset >> PAGE_SHIFT, inode, flags | extra, vm_ops)
    mm.mmap_sem.down_write(k)
    if placement == "at" and any(v.start < vma.end and vma.start < v.end for v in mm.vmas(k)):
        mm.mmap_sem.up_write(k)
        return "EEXIST"  # MAP_FIXED_NOREPLACE
    i_mmap_lock_write(k, inode.mapping)
    inode.mapping.vma_link(k, vma)
    i_mmap_unlock_write(k, inode.mapping)
    mm.set_vmas(k, (*mm.vmas(k), vma), "insert_vm_struct")
    mm.mmap_sem.up_write(k)
    return vma


def map_sync_check(inode: Inode) -> str:
    """What mmap(MAP_SHARED_VALIDATE|MAP_SYNC) returns before mapping anything ("" for nothing):

    - before 4.15, do_mmap()'s ``switch (flags & MAP_TYPE)`` has no case for 0x03: EINVAL;
    - from 4.15, do_mmap()'s MAP_SHARED_VALIDATE case: a flag the file's
      ``f_op->mmap_supported_flags`` lacks is EOPNOTSUPP (tmpfs has none);
    - then ext4_file_mmap() (4.15 "ext4: Support for synchronous DAX faults"; 6.1 via
      ``daxdev_mapping_supported()``): VM_SYNC on a file that is not DAX is EOPNOTSUPP.  (The
      pmem device of the model is synchronous: ``dax_synchronous()`` holds.)"""
    if not getattr(era, "MAP_SHARED_VALIDATE", False):
        return EINVAL
    if not inode.fs.f_op.mmap_supported_flags & MAP_SYNC:
        return "EOPNOTSUPP"
    if not inode.fs.dax:
        return "EOPNOTSUPP"
    return ""


UNALIGNED_PAGES_BELOW_PMD = 3


def mmap_address(k: Kernel, span: int, placement: str, addr: int) -> int | None:
    """Where a mapping of ``span`` bytes goes (None: EINVAL).  ``unaligned`` starts it three pages
    below a 2 MiB boundary: a fault-around window in its first pages is clipped to the VMA's start
    (do_fault_around's max(address & mask, vm_start)) and then to the end of the page table."""
    if placement == "at":
        return None if addr & (PAGE_SIZE - 1) else addr
    if placement == "unaligned":
        return k.map_slot(span + PMD_SIZE) + PMD_SIZE - UNALIGNED_PAGES_BELOW_PMD * PAGE_SIZE
    return k.map_slot(span)


def sys_mprotect(k: Kernel, vma: Vma, writable: bool) -> Outcome:
    """mprotect(2) over the whole mapping (4.x mprotect_fixup() without a split or merge): the
    VMA's flags change in place under mmap_sem for write (vma->vm_flags, vma_set_page_prot), then
    change_protection() rewrites the present PTEs with the new vm_page_prot, keeping write on a
    dirty PTE where the VMA wants write notification (dirty_accountable)."""
    mm = k.mm
    mm.mmap_sem.down_write(k)
    if vma not in mm.vmas(k):
        mm.mmap_sem.up_write(k)
        return Outcome.errno("ENOMEM")
    flags = vma.flags | VM_WRITE if writable else vma.flags & ~VM_WRITE
    mm.set_vmas(k, mm.vmas(k), "mprotect_fixup")
    vma.mprotect_fixup(flags)
    change_protection(k, vma)
    mm.mmap_sem.up_write(k)
    return Outcome.ok()


def change_protection(k: Kernel, vma: Vma) -> None:
    """change_protection() -> change_pte_range() (4.x): under each table's PTL, every present PTE
    gets pte_modify(vm_page_prot); with dirty_accountable a dirty one stays writable."""
    pt = vma.mm.pt
    dirty_accountable = vma.writenotify
    for table in pt.huge_in(k, vma.start, vma.end):  # change_pmd_range() -> change_huge_pmd()
        change_huge_pmd(k, vma, table)
    for table in pt.tables_in(k, vma.start, vma.end):
        lo, hi = max(vma.start, table), min(vma.end, table + PMD_SIZE)
        ptl = pt.ptl(table)
        ptl.lock(k)
        for address in pt.scan(k, lo, hi):
            old = pte_read(k, vma, address)
            if old is None:
                continue
            write = vma.page_prot_writable() or (dirty_accountable and old.dirty)
            if write != old.write:
                set_pte_at(k, vma, address, old._replace(write=write), "change_pte_range")
        ptl.unlock(k)


def sys_munmap(k: Kernel, vma: Vma) -> Outcome:
    mm = k.mm
    mm.mmap_sem.down_write(k)
    vmas = mm.vmas(k)
    if vma not in vmas:
        mm.mmap_sem.up_write(k)
        return Outcome.ok()
    zap_pte_range(k, vma, vma.start, vma.end, None)
    mapping = vma.file.mapping
    i_mmap_lock_write(k, mapping)
    mapping.vma_unlink(k, vma)
    i_mmap_unlock_write(k, mapping)
    mm.set_vmas(k, tuple(v for v in vmas if v is not vma), "remove_vma")
    mm.mmap_sem.up_write(k)
    return Outcome.ok()


def sys_madvise_dontneed(k: Kernel, vma: Vma) -> Outcome:
    """madvise(MADV_DONTNEED): zap_page_range() over the mapping, private copies included."""
    mm = k.mm
    mm.mmap_sem.down_read(k)
    if vma not in mm.vmas(k):
        mm.mmap_sem.up_read(k)
        return Outcome.errno("ENOMEM")  # "addresses in the range are not currently mapped"
    zap_pte_range(k, vma, vma.start, vma.end, None)
    mm.mmap_sem.up_read(k)
    return Outcome.ok()


# -- loads and stores ----------------------------------------------------------------------------------
def do_page_fault(k: Kernel, address: int, write: bool, tally: FaultTally) -> int:
    """__do_page_fault() (x86): mmap_sem for read, find_vma, access_error, handle_mm_fault."""
    mm = k.mm
    mm.mmap_sem.down_read(k)
    vma = mm.find_vma(k, address)
    if vma is None or (write and not vma.flags & VM_WRITE):
        mm.mmap_sem.up_read(k)
        return VM_FAULT_SIGSEGV
    flags = FAULT_FLAG_USER | (FAULT_FLAG_WRITE if write else 0)
    ret = era.handle_mm_fault(k, vma, address & PAGE_MASK, flags)
    mm.mmap_sem.up_read(k)
    if ret & VM_FAULT_RETRY:
        k.count("fault.retries")
    elif not ret & VM_FAULT_ERROR:
        if ret & VM_FAULT_MAJOR:
            tally.majflt += 1
            k.count("faults.major")
        else:
            tally.minflt += 1
    return ret


def _access_once(k: Kernel, vma: Vma, page_addr: int, off: int, n: int, data: bytes | None) -> bytes | None:
    """The CPU's access (see PageTable.cpu_access): the bytes loaded (b"" for a store), or None
    when the PTE does not allow it (a page fault)."""
    pte = vma.mm.pt.cpu_access(k, page_addr, data is not None, k.pte_target)
    if pte is None:
        return None
    if data is None:
        return _load(k, pte, off, n)
    _store(k, vma, pte, page_addr, off, data)
    return b""


def _load(k: Kernel, pte: Pte, off: int, n: int) -> bytes:
    if pte.page is not None:
        k.events.emit("page_access", page=pte.page, write=False)
        return page_bytes(pte.page, off, n)
    assert pte.block is not None
    k.events.emit("block_access", block=pte.block, write=False, user=True)
    return k.pmem.raw_read(pte.block, off, n)


def _store(k: Kernel, vma: Vma, pte: Pte, page_addr: int, off: int, data: bytes) -> None:
    if pte.page is not None:
        k.events.emit("page_access", page=pte.page, write=True)
        page_store(pte.page, off, data)
    else:
        assert pte.block is not None
        k.events.emit("block_access", block=pte.block, write=True, user=True)
        k.pmem.raw_write(pte.block, off, data)
    index = vma.linear_page_index(page_addr)
    k.events.emit("store_done", kind="shared-map" if vma.shared else "private-map", inode=vma.file,
                  offset=(index << PAGE_SHIFT) + off, data=data, pte=pte, vma=vma)


def user_access(k: Kernel, vma: Vma, offset: int, length: int, data: bytes | None, tally: FaultTally) -> Outcome:
    """A load of ``length`` bytes (data None) or a store of ``data`` at ``offset`` in the mapping."""
    addr = vma.start + offset
    end = addr + (len(data) if data is not None else length)
    out = bytearray()
    done = 0
    while addr < end:
        page_addr = addr & PAGE_MASK
        off = addr - page_addr
        n = min(PAGE_SIZE - off, end - addr)
        chunk = None if data is None else data[done : done + n]
        while True:
            got = _access_once(k, vma, page_addr, off, n, chunk)
            if got is not None:
                out += got
                break
            ret = do_page_fault(k, addr, chunk is not None, tally)
            if ret & VM_FAULT_SIGSEGV:
                return Outcome.signal("SIGSEGV")
            if ret & (VM_FAULT_SIGBUS | VM_FAULT_HWPOISON):
                return Outcome.signal("SIGBUS")
            if ret & VM_FAULT_OOM:
                return Outcome.signal("SIGKILL")
        addr += n
        done += n
    return Outcome.ok() if data is not None else Outcome.of_data(bytes(out))


def user_persist(k: Kernel, vma: Vma, offset: int, length: int, tally: FaultTally) -> Outcome:
    """libpmem's pmem_persist() (pmem_flush(): clwb of every cache line of the range, then
    pmem_drain(): sfence), in user space: no kernel entry but the page faults a clwb of an
    unmapped address takes (as a load).  Each clwb is two steps here, the walk (a load's) and the
    flush of the lines of the block it found; the sfence makes them durable."""
    k.events.emit("persist_begin", vma=vma, offset=offset, length=length)
    addr = vma.start + offset
    end = addr + length
    while addr < end:
        page_addr = addr & PAGE_MASK
        off = addr - page_addr
        n = min(PAGE_SIZE - off, end - addr)
        while True:
            pte = vma.mm.pt.cpu_access(k, page_addr, False, k.pte_target)
            if pte is not None:
                break
            ret = do_page_fault(k, addr, False, tally)
            if ret & VM_FAULT_SIGSEGV:
                return Outcome.signal("SIGSEGV")
            if ret & (VM_FAULT_SIGBUS | VM_FAULT_HWPOISON):
                return Outcome.signal("SIGBUS")
            if ret & VM_FAULT_OOM:
                return Outcome.signal("SIGKILL")
        if pte.block is not None:  # a page-cache or anonymous page is DRAM: nothing to persist
            k.pmem.flush(k, pte.block, "clwb", off, n)
        addr += n
    k.pmem.fence(k, "sfence")
    k.events.emit("persist_end", vma=vma)
    return Outcome.ok()


# -- read(2), write(2), ftruncate(2), fsync(2), msync(2) ----------------------------------------------------
def _errno(ret: int) -> Outcome:
    return Outcome.errno(ERRNO_NAMES.get(ret, f"E{-ret}")) if ret < 0 else Outcome.ok()


def sys_read(k: Kernel, inode: Inode, pos: int, count: int) -> Outcome:
    return Outcome.of_data(inode.fs.f_op.read_iter(k, inode, pos, count))


def sys_write(k: Kernel, inode: Inode, pos: int, data: bytes) -> Outcome:
    """pwrite(2): ->write_iter, which takes i_rwsem itself (generic_file_write_iter)."""
    return _errno(inode.fs.f_op.write_iter(k, inode, pos, data))


def sys_ftruncate(k: Kernel, inode: Inode, size: int) -> Outcome:
    """do_truncate() -> notify_change() -> ->setattr, with i_rwsem held."""
    inode.i_rwsem.lock(k)
    k.events.emit("truncate_begin", inode=inode, size=size)
    inode.fs.i_op.setattr(k, inode, size)
    inode.file_update_time(k)
    k.events.emit("truncate_end", inode=inode, size=size)
    inode.i_rwsem.unlock(k)
    return Outcome.ok()


def sys_fallocate(k: Kernel, inode: Inode, mode: str, offset: int, length: int) -> Outcome:
    """fallocate(2) (vfs_fallocate): FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE goes to ->fallocate,
    which takes i_rwsem itself; EINVAL for a zero length, EOPNOTSUPP without ->fallocate."""
    if length <= 0:
        return Outcome.errno(EINVAL)
    fallocate = inode.fs.f_op.fallocate
    if fallocate is None:
        return Outcome.errno("EOPNOTSUPP")
    ret = fallocate(k, inode, mode, offset, length)
    k.events.emit("punch_end", inode=inode, offset=offset, length=length)
    return _errno(ret)


def sys_fsync(k: Kernel, inode: Inode, what: str = "fsync") -> Outcome:
    k.events.emit("sync_begin", inode=inode, what=what)
    ret = inode.fs.f_op.fsync(k, inode)
    k.events.emit("sync_end", inode=inode, ok=ret >= 0)
    return _errno(ret)


class PowerFailure(BaseException):
    """The ``crash`` op: the machine stops here (every thread with it); the run's crash checks
    look at what reached persistent memory."""


def sys_crash(k: Kernel) -> Outcome:
    """Power failure: one step dependent with every step of every thread (what survives is
    decided by every store, flush and fence before it, and it stops every other thread where it
    is), then the run ends."""
    k.sched.point(EVERYTHING, WRITE, "power failure")
    raise PowerFailure


def sys_fork(k: Kernel, child_mm: MmStruct) -> dict[Vma, Vma]:
    """fork(2) -> copy_process() -> copy_mm() -> dup_mm() -> dup_mmap(): the running thread's mm
    copied into the child's ``child_mm``; each of the parent's VMAs -> its copy."""
    return dup_mmap(k, child_mm, k.mm)


def sys_exit_mm(k: Kernel, mm: MmStruct) -> None:
    """do_exit() -> exit_mm() -> mmput(): the child's last thread is gone, exit_mmap()."""
    exit_mmap(k, mm)


def sys_msync(k: Kernel, vma: Vma) -> Outcome:
    """msync(MS_SYNC): vfs_fsync_range() on the file of a shared mapping; nothing for private."""
    mm = k.mm
    mm.mmap_sem.down_read(k)
    mapped = vma in mm.vmas(k)
    mm.mmap_sem.up_read(k)
    if not mapped:
        return Outcome.errno("ENOMEM")
    if vma.shared:
        return sys_fsync(k, vma.file, "msync")
    return Outcome.ok()


def run_op(k: Kernel, op: Op, maps: dict[str, Vma], tally: FaultTally) -> Outcome:
    """Carry out one scenario operation."""
    kind = op.kind
    if kind == "mmap":
        mapped = sys_mmap(k, k.inodes[op.file], op.offset, op.length, op.shared, op.writable, op.placement, op.addr,
                          op.sync)
        if isinstance(mapped, str):
            return Outcome.errno(mapped)
        maps[op.var] = mapped
        return Outcome.ok()
    if kind in ("munmap", "load", "store", "msync", "madvise", "mprotect", "persist"):
        vma = maps.get(op.map)
        if vma is None:
            return Outcome.signal("SIGSEGV") if kind in ("load", "store", "persist") else Outcome.errno(EINVAL)
        if kind == "persist":
            return user_persist(k, vma, op.offset, op.length, tally)
        if kind == "munmap":
            return sys_munmap(k, vma)
        if kind == "load":
            return user_access(k, vma, op.offset, op.length, None, tally)
        if kind == "store":
            return user_access(k, vma, op.offset, len(op.data), op.data, tally)
        if kind == "msync":
            return sys_msync(k, vma)
        if kind == "mprotect":
            return sys_mprotect(k, vma, op.writable)
        return sys_madvise_dontneed(k, vma)
    if kind == "crash":
        return sys_crash(k)
    inode = k.inodes[op.file]
    if kind == "read":
        return sys_read(k, inode, op.offset, op.length)
    if kind == "write":
        return sys_write(k, inode, op.offset, op.data)
    if kind == "truncate":
        return sys_ftruncate(k, inode, op.size)
    if kind == "fsync":
        return sys_fsync(k, inode)
    if kind == "fallocate":
        return sys_fallocate(k, inode, op.advice, op.offset, op.length)
    raise ValueError(f"unknown op kind {kind}")
