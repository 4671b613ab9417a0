"""The 4.10 release's order (9f141d6ef625): ->iomap_begin before the entry lock, so a read fault
can see a hole, lose the race with write(2), and map the hole page after write(2) has filled the
block (fixed by 13e451fdc1af, 4.12)."""

from __future__ import annotations

from faultlab.designs.v4_10 import DESIGN as V410
from faultlab.fs.dax import v4_10 as dax
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


DESIGN = V410.variant(
    "v4.10-iomap-first",
    "known bug: read fault vs write(2) leaves a hole page mapped over written data before 4.12",
    "Linux 4.10 9f141d6ef625; fixed by 13e451fdc1af (4.12, stable); scenario: races/read-fault-vs-write",
    {dax.dax_fault_lookup: dax_fault_lookup},
    scenario="scenarios/races/read-fault-vs-write.toml", fixed_by="v4.10", expected_violation="stale-read",
)
