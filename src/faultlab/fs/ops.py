"""The records through which generic code reaches a filesystem, as in Linux.

A file system type carries its inode, file and address-space operations; ``->mmap`` picks the
``vm_operations_struct`` of a mapping.  Generic code (mm, the VFS, truncate) calls only through
these records and never asks which file system it is dealing with.  Every field is a plain
function taking the :class:`~faultlab.kernel.kernel.Kernel` first; None means the operation is not
provided (as a NULL pointer in the kernel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.mm import VmFault
    from faultlab.kernel.state.inode import Inode
    from faultlab.kernel.state.page import Page

FaultFn = Callable[["Kernel", "VmFault"], int]
MapPagesFn = Callable[["Kernel", "VmFault", int, int], "int | None"]  # 5.12+ returns a vm_fault_t


@dataclass(frozen=True)
class VmOperations:
    """vm_operations_struct."""

    name: str
    fault: FaultFn | None = None
    map_pages: MapPagesFn | None = None
    page_mkwrite: FaultFn | None = None
    pfn_mkwrite: FaultFn | None = None
    huge_fault: Callable[..., int] | None = None


@dataclass(frozen=True)
class AddressSpaceOperations:
    """address_space_operations: ``readpage`` fills a locked, new page-cache page from the disk
    (a hole reads as zeros)."""

    name: str
    readpage: Callable[[Kernel, Inode, Page], int] | None = None


@dataclass(frozen=True)
class InodeOperations:
    """inode_operations: ``setattr`` for ATTR_SIZE (truncate), called with i_rwsem held."""

    name: str
    setattr: Callable[[Kernel, Inode, int], None]


@dataclass(frozen=True)
class FileOperations:
    """file_operations: read(2)/write(2) (``read_iter``/``write_iter``; write_iter takes i_rwsem
    itself, as generic_file_write_iter does), ``fsync`` (fsync(2) and msync(MS_SYNC)),
    ``fallocate`` (mode, offset, length; punch hole), ``mmap`` (returns the mapping's vm_ops and
    the vm_flags it adds), ``mmap_supported_flags`` (4.15: the MAP_SHARED_VALIDATE flags the file
    accepts, MAP_SYNC for ext4)."""

    name: str
    read_iter: Callable[[Kernel, Inode, int, int], bytes]
    write_iter: Callable[[Kernel, Inode, int, bytes], int]
    fsync: Callable[[Kernel, Inode], int]
    mmap: Callable[[Kernel, Inode], tuple[VmOperations, int]]
    fallocate: Callable[[Kernel, Inode, str, int, int], int] | None = None
    mmap_supported_flags: int = 0


@dataclass(frozen=True)
class FileSystemType:
    """struct file_system_type, with what the model needs to create the scenario's files:
    ``dax`` says file data lives on pmem (reached by pfn, no page cache); ``disk`` that pages not
    in the cache are read back from a disk (ext4) rather than being lost (tmpfs has no backing)."""

    name: str
    dax: bool
    disk: bool
    i_op: InodeOperations
    f_op: FileOperations
    a_ops: AddressSpaceOperations
    extra: tuple[tuple[str, Any], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        """A file-system-specific setting (for example how ext4 of an era allocates for DAX)."""
        for k, v in self.extra:
            if k == key:
                return v
        return default


OPS_RECORDS = (VmOperations, AddressSpaceOperations, InodeOperations, FileOperations, FileSystemType)
"""The record types a design links: their function fields are relinked with the design's code."""
