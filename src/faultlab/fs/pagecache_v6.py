"""tmpfs and ext4 in the page cache as Linux 6.1 and 6.18 install them: the folio
``filemap_fault`` and ``filemap_map_pages`` (:mod:`faultlab.kernel.filemap_folio`), and ext4's
``mapping->invalidate_lock`` (5.15) where 4.5-5.14 had ``i_mmap_sem``.

From 5.15 ext4 no longer wraps ``filemap_fault``: the generic fault takes the invalidate_lock
itself when it brings a page in.  ``ext4_page_mkwrite`` and ``ext4_setattr`` take it as they took
i_mmap_sem.  tmpfs is 4.x's apart from the fault-around.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from faultlab.fs import ext4, shmem
from faultlab.fs.ops import FileSystemType, InodeOperations, VmOperations
from faultlab.kernel.filemap import filemap_page_mkwrite
from faultlab.kernel.filemap_folio import filemap_fault, filemap_map_pages, filemap_map_pages_6_18
from faultlab.kernel.flags import MAP_SYNC
from faultlab.kernel.mm import VmFault
from faultlab.kernel.truncate import truncate_pagecache

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.state.inode import Inode


def ext4_page_mkwrite(k: Kernel, vmf: VmFault) -> int:
    """ext4_page_mkwrite() (6.1): the write-notify step under invalidate_lock shared."""
    inode = vmf.vma.file
    inode.invalidate_lock.down_read(k)
    ret = filemap_page_mkwrite(k, vmf)
    inode.invalidate_lock.up_read(k)
    return ret


def ext4_setattr(k: Kernel, inode: Inode, newsize: int) -> None:
    """ext4_setattr() for ATTR_SIZE (6.1): under filemap_invalidate_lock() (ext4_break_layouts() has
    nothing to do for a page-cache file), i_size, then the page cache; growing zeroes the old tail
    first (pagecache_isize_extended)."""
    oldsize = inode.i_size_read(k)
    if newsize > oldsize:
        ext4.zero_tail_of_last_page(k, inode, oldsize)
    inode.invalidate_lock.down_write(k)
    inode.i_size_write(k, newsize)
    if newsize < oldsize:
        truncate_pagecache(k, inode, newsize)
    inode.invalidate_lock.up_write(k)


def ext4_fallocate(k: Kernel, inode: Inode, mode: str, offset: int, length: int) -> int:
    """ext4_fallocate() with FALLOC_FL_PUNCH_HOLE (6.1): ext4_punch_hole() under
    filemap_invalidate_lock()."""
    return ext4.ext4_punch_hole(k, inode, offset, length, inode.invalidate_lock)


def shmem_mmap_6_1(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    return shmem_vm_ops_6_1, 0


def shmem_mmap_6_18(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    return shmem_vm_ops_6_18, 0


def ext4_file_mmap_6_1(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    return ext4_file_vm_ops_6_1, 0


def ext4_file_mmap_6_18(k: Kernel, inode: Inode) -> tuple[VmOperations, int]:
    return ext4_file_vm_ops_6_18, 0


shmem_vm_ops_6_1 = VmOperations("shmem_vm_ops", fault=shmem.shmem_fault, map_pages=filemap_map_pages)
shmem_vm_ops_6_18 = VmOperations("shmem_vm_ops", fault=shmem.shmem_fault, map_pages=filemap_map_pages_6_18)
ext4_file_vm_ops_6_1 = VmOperations("ext4_file_vm_ops", fault=filemap_fault, map_pages=filemap_map_pages,
                                    page_mkwrite=ext4_page_mkwrite)
ext4_file_vm_ops_6_18 = VmOperations("ext4_file_vm_ops", fault=filemap_fault, map_pages=filemap_map_pages_6_18,
                                     page_mkwrite=ext4_page_mkwrite)

SHMEM_6_1: FileSystemType = replace(shmem.FS, f_op=replace(shmem.FS.f_op, mmap=shmem_mmap_6_1))
SHMEM_6_18: FileSystemType = replace(shmem.FS, f_op=replace(shmem.FS.f_op, mmap=shmem_mmap_6_18))
EXT4_6_1: FileSystemType = replace(ext4.FS, i_op=InodeOperations("ext4_file_inode_operations", setattr=ext4_setattr),
                                   f_op=replace(ext4.FS.f_op, mmap=ext4_file_mmap_6_1, fallocate=ext4_fallocate,
                                               mmap_supported_flags=MAP_SYNC))
EXT4_6_18: FileSystemType = replace(EXT4_6_1, f_op=replace(EXT4_6_1.f_op, mmap=ext4_file_mmap_6_18))
