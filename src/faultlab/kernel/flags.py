"""Fault return codes, fault flags and VMA flags: plain ints with the names and values of
include/linux/mm.h (4.x), so the fault path does int arithmetic, not enum arithmetic."""

from __future__ import annotations

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)
PTRS_PER_PTE = 512
PMD_SIZE = PAGE_SIZE * PTRS_PER_PTE
FAULT_AROUND_BYTES = 65536  # rounddown_pow_of_two(65536), mm/memory.c since 3.16

# -- VM_FAULT_*: what a fault handler returns ---------------------------------------------------------
VM_FAULT_OOM = 0x0001
VM_FAULT_SIGBUS = 0x0002
VM_FAULT_MAJOR = 0x0004
VM_FAULT_WRITE = 0x0008
VM_FAULT_HWPOISON = 0x0010
VM_FAULT_HWPOISON_LARGE = 0x0020
VM_FAULT_SIGSEGV = 0x0040
VM_FAULT_COWED = 0x0080  # the seed patch (v7): ->fault did the COW; never merged
VM_FAULT_NOPAGE = 0x0100
VM_FAULT_LOCKED = 0x0200
VM_FAULT_RETRY = 0x0400
VM_FAULT_FALLBACK = 0x0800
VM_FAULT_DAX_LOCKED = 0x1000  # 4.7-4.9: ->fault returns with the DAX entry locked
VM_FAULT_DONE_COW = 0x2000  # 4.10: ->fault has fully handled the COW (0x1000 once DAX_LOCKED went)
VM_FAULT_NEEDDSYNC = 0x4000  # 4.15: MAP_SYNC fault must fsync before the PTE goes in

VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE
ERROR_NOPAGE_RETRY = VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY

_FAULT_NAMES = (
    (VM_FAULT_OOM, "OOM"), (VM_FAULT_SIGBUS, "SIGBUS"), (VM_FAULT_MAJOR, "MAJOR"), (VM_FAULT_WRITE, "WRITE"),
    (VM_FAULT_HWPOISON, "HWPOISON"), (VM_FAULT_HWPOISON_LARGE, "HWPOISON_LARGE"), (VM_FAULT_SIGSEGV, "SIGSEGV"),
    (VM_FAULT_COWED, "COWED"), (VM_FAULT_NOPAGE, "NOPAGE"), (VM_FAULT_LOCKED, "LOCKED"),
    (VM_FAULT_RETRY, "RETRY"), (VM_FAULT_FALLBACK, "FALLBACK"), (VM_FAULT_DAX_LOCKED, "DAX_LOCKED"),
    (VM_FAULT_DONE_COW, "DONE_COW"), (VM_FAULT_NEEDDSYNC, "NEEDDSYNC"),
)


def vm_fault_names(ret: int) -> str:
    """``VM_FAULT_NOPAGE|VM_FAULT_MAJOR`` for reports; ``0`` for none."""
    names = [f"VM_FAULT_{name}" for bit, name in _FAULT_NAMES if ret & bit]
    return "|".join(names) or "0"


# -- FAULT_FLAG_*: what the fault is ----------------------------------------------------------------
FAULT_FLAG_WRITE = 0x01
FAULT_FLAG_MKWRITE = 0x02
FAULT_FLAG_ALLOW_RETRY = 0x04
FAULT_FLAG_RETRY_NOWAIT = 0x08
FAULT_FLAG_KILLABLE = 0x10
FAULT_FLAG_TRIED = 0x20
FAULT_FLAG_USER = 0x40

# -- vm_area_struct->vm_flags -----------------------------------------------------------------------
VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010
VM_MAYWRITE = 0x00000020
VM_MAYSHARE = 0x00000080
VM_SYNC = 0x00800000  # 4.15: MAP_SYNC, synchronous page faults (DAX)
MAP_SYNC = 0x80000  # mmap(2) flag (4.15), with MAP_SHARED_VALIDATE; file_operations.mmap_supported_flags
VM_MIXEDMAP = 0x10000000


def size_in_pages(i_size: int) -> int:
    """DIV_ROUND_UP(i_size, PAGE_SIZE): the fault-side EOF bound (pgoff >= this -> SIGBUS)."""
    return (i_size + PAGE_SIZE - 1) >> PAGE_SHIFT
