"""Fault return codes, fault flags and VMA flags, with the values of include/linux/mm.h (4.x)."""

from __future__ import annotations

import enum

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PTRS_PER_PTE = 512
PMD_SIZE = PAGE_SIZE * PTRS_PER_PTE
FAULT_AROUND_BYTES = 65536  # rounddown_pow_of_two(65536), mm/memory.c since 3.16


class VmFault(enum.IntFlag):
    """VM_FAULT_* (include/linux/mm.h).  COWED is the seed patch's (v7, never merged);
    DAX_LOCKED is 4.7-4.9; DONE_COW is 4.10 (0x2000 in the merge window that introduced it)."""

    NONE = 0
    OOM = 0x0001
    SIGBUS = 0x0002
    MAJOR = 0x0004
    WRITE = 0x0008
    HWPOISON = 0x0010
    HWPOISON_LARGE = 0x0020
    SIGSEGV = 0x0040
    COWED = 0x0080
    NOPAGE = 0x0100
    LOCKED = 0x0200
    RETRY = 0x0400
    FALLBACK = 0x0800
    DAX_LOCKED = 0x1000
    DONE_COW = 0x2000


VM_FAULT_ERROR = VmFault.OOM | VmFault.SIGBUS | VmFault.SIGSEGV | VmFault.HWPOISON | VmFault.HWPOISON_LARGE


class FaultFlag(enum.IntFlag):
    """FAULT_FLAG_* (include/linux/mm.h, 4.x)."""

    NONE = 0
    WRITE = 0x01
    MKWRITE = 0x02
    ALLOW_RETRY = 0x04
    RETRY_NOWAIT = 0x08
    KILLABLE = 0x10
    TRIED = 0x20
    USER = 0x40


class VmFlag(enum.IntFlag):
    """vm_area_struct->vm_flags bits used by the model."""

    NONE = 0
    READ = 0x00000001
    WRITE = 0x00000002
    SHARED = 0x00000008
    MAYREAD = 0x00000010
    MAYWRITE = 0x00000020
    MAYSHARE = 0x00000080
    MIXEDMAP = 0x10000000


def size_in_pages(i_size: int) -> int:
    """DIV_ROUND_UP(i_size, PAGE_SIZE): the fault-side EOF bound (pgoff >= this -> SIGBUS)."""
    return (i_size + PAGE_SIZE - 1) >> PAGE_SHIFT
