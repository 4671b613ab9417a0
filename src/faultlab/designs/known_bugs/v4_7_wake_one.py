"""4.7 as released: a hole page replacing the locked empty entry woke only one waiter; any other
reader sleeping on that entry sleeps for ever (fixed by 965d004af540)."""

from __future__ import annotations

from faultlab.designs.v4_7 import DESIGN as V47
from faultlab.fs.dax import v4_7 as dax
from faultlab.kernel import filemap
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.state.page import Page
from faultlab.kernel.state.pagecache import AddressSpace


def page_cache_tree_insert(k: Kernel, mapping: AddressSpace, page: Page, index: int) -> int:
    """page_cache_tree_insert() (4.7, ac401cc78242): replacing the empty entry wakes one waiter."""
    inserted, old = mapping.insert(k, index, page, "page_cache_tree_insert", replaces=filemap._empty_locked_dax_entry)
    if not inserted:
        return filemap.EEXIST
    if old is not None:
        dax.dax_entry_handed_to_page(k, mapping, index)
        dax.dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=False)
    return 0


DESIGN = V47.variant(
    "v4.7-wake-one",
    "known bug: three read faults on one hole, only one waiter woken (deadlock) before 965d004af540",
    "Linux 4.7 mm/filemap.c page_cache_tree_insert (ac401cc78242); fixed by 965d004af540",
    {filemap.page_cache_tree_insert: page_cache_tree_insert},
    scenario="scenarios/races/three-hole-readers.toml", fixed_by="v4.7", expected_violation="deadlock",
)
