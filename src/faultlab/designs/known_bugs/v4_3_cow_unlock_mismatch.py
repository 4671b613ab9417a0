"""0f90cc6609c7 "mm, dax: fix DAX deadlocks" (4.3) left do_cow_fault calling i_mmap_unlock_write()
while the DAX handler took i_mmap_lock_read(); fixed by 0df9d41ab5d4 (4.4)."""

from __future__ import annotations

from faultlab.designs.v4_0 import DESIGN as V40
from faultlab.kernel.eras import v4_0
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.memory import i_mmap_unlock_write
from faultlab.kernel.mm import VmFault
from faultlab.kernel.state.page import put_page, unlock_page


def release_fault_page(k: Kernel, vmf: VmFault) -> None:
    """do_cow_fault's release as 0f90cc6609c7 left it: the write side of i_mmap."""
    if vmf.page is not None:
        unlock_page(k, vmf.page)
        put_page(k, vmf.page)
    else:
        i_mmap_unlock_write(k, vmf.vma.file.mapping)


DESIGN = V40.variant(
    "v4.3-cow-unlock-mismatch",
    "known bug: 4.3 do_cow_fault releases i_mmap_rwsem for write; the handler took it for read",
    "Linux 4.3 0f90cc6609c7, fixed by 0df9d41ab5d4 (4.4); scenario: races/cow-unlock-mismatch",
    {v4_0.release_fault_page: release_fault_page},
    scenario="scenarios/races/cow-unlock-mismatch.toml", fixed_by="v4.0", expected_violation="lock-pairing",
)
