"""The 4.10 release's order (9f141d6ef625): ->iomap_begin before the entry lock, so a read fault
can see a hole, lose the race with write(2), and map the hole page after write(2) has filled the
block (fixed by 13e451fdc1af, 4.12, for the PTE fault, and by fd96b8da68d3, 4.12, for the PMD
fault, where the page mapped is the huge zero page)."""

from __future__ import annotations

from faultlab.designs.v4_10 import DESIGN as V410
from faultlab.fs.dax import v4_10 as dax
from faultlab.kernel.flags import PAGE_SHIFT, PMD_SIZE, VM_FAULT_FALLBACK, VM_FAULT_SIGBUS
from faultlab.kernel.flags import PTRS_PER_PTE as PMD_PAGES
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.inode import Extent
from faultlab.kernel.state.pagecache import Entry


def dax_fault_lookup(k: Kernel, vmf: VmFault) -> tuple[Entry | None, Extent | None, bool, int]:
    """9f141d6ef625 "dax: Call ->iomap_begin without entry lock during dax fault"."""
    ext, new, error = dax.ext4_iomap_begin(k, vmf)
    if error:
        return None, ext, new, error
    return dax.grab_mapping_entry(k, vmf.vma.file.mapping, vmf.pgoff), ext, new, 0


def dax_iomap_pmd_fault(k: Kernel, vmf: VmFault) -> int:
    """dax_iomap_pmd_fault() as the v4.10 release has it (9f141d6ef625; read: a copy of the v4.10
    fs/dax.c): after the COW, VMA and i_size checks, "error = ops->iomap_begin(inode, pos,
    PMD_SIZE, iomap_flags, &iomap); if (error) goto fallback; if (iomap.offset + iomap.length <
    pos + PMD_SIZE) goto finish_iomap;" and only then "entry = grab_mapping_entry(mapping, pgoff,
    RADIX_DAX_PMD); if (IS_ERR(entry)) goto finish_iomap;"; a hole under a write: "if
    (WARN_ON_ONCE(write)) goto unlock_entry;".  The 4.12 PTE-table re-check is kept (``v4.10``
    carries it; its absence is ``v4.10-pmd-pte-collision``)."""
    vma = vmf.vma
    inode = vma.file
    mapping = inode.mapping
    pmd_addr = vmf.address & ~(PMD_SIZE - 1)
    write = vmf.write
    result = VM_FAULT_FALLBACK
    if write and not vma.shared:
        return dax.dax_pmd_fallback(k, vmf, result)
    if pmd_addr < vma.start or pmd_addr + PMD_SIZE > vma.end:
        return dax.dax_pmd_fallback(k, vmf, result)
    pgoff = vma.linear_page_index(pmd_addr)
    max_pgoff = (inode.i_size_read(k) - 1) >> PAGE_SHIFT
    if pgoff > max_pgoff:
        return VM_FAULT_SIGBUS
    if pgoff | (PMD_PAGES - 1) > max_pgoff:
        return dax.dax_pmd_fallback(k, vmf, result)
    ext, length, _new = dax.ext4_iomap_begin_pmd(k, inode, pgoff, write)
    if length < PMD_PAGES:  # goto finish_iomap
        return dax.dax_pmd_fallback(k, vmf, result)
    entry = dax.grab_mapping_entry_pmd(k, mapping, pgoff)
    if entry is None:  # goto finish_iomap
        return dax.dax_pmd_fallback(k, vmf, result)
    if dax.dax_pmd_fault_raced_pte(k, vmf):
        result = 0
    elif ext is not None:
        result = dax.dax_pmd_insert_mapping(k, vmf, pgoff, ext.block, write, entry)
    elif not write:
        result = dax.dax_pmd_load_hole(k, vmf, pgoff, entry)
    dax.put_locked_mapping_entry(k, mapping, pgoff, entry)
    return dax.dax_pmd_fallback(k, vmf, result)


DESIGN = V410.variant(
    "v4.10-iomap-first",
    "known bug: a read fault vs write(2) leaves a hole page (a huge zero page) mapped over written data before 4.12",
    "Linux 4.10 9f141d6ef625; fixed by 13e451fdc1af and fd96b8da68d3 (4.12, stable); scenarios: "
    "races/read-fault-vs-write, races/pmd-read-fault-vs-write",
    {dax.dax_fault_lookup: dax_fault_lookup, dax.dax_iomap_pmd_fault: dax_iomap_pmd_fault},
    scenario="scenarios/races/read-fault-vs-write.toml", fixed_by="v4.10", expected_violation="stale-read",
)
