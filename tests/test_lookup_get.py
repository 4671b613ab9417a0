"""The page-cache look-up in one step (AddressSpace.lookup_get) against Linux's three.

find_get_entry() and filemap_map_pages() read the slot, take a reference unless the count is zero
(page_cache_get_speculative) and read the slot again ("Has the page moved?"), going round again
when either check fails.  The model does all that in one step.  Here the same designs run with
Linux's three steps instead, the speculative get a WRITE of the count (it depends on its value),
and both are explored in full: every end state and every violation must be the same."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from test_explore_dpor_vs_plain import describe, scenarios

from faultlab.designs import get_design
from faultlab.designs.base import Design
from faultlab.execution import ModelExecution
from faultlab.explore.explorer import explore
from faultlab.kernel import filemap
from faultlab.kernel.filemap import (  # the replacements run in filemap's namespace: these are its names
    Page,
    PageHWPoison,
    PageUptodate,
    VmFault,
    do_set_pte,
    page_mapping,
    pte_read,
    put_page,
    size_in_pages,
    trylock_page,
    unlock_page,
)
from faultlab.scenario import parse_scenario
from faultlab.scenario.model import Scenario
from faultlab.sched.core import Access


def page_cache_get_speculative(k: Any, page: Any) -> bool:
    """get_page_unless_zero(): depends on the count, so a WRITE of it."""
    k.sched.point(page.ref, Access.WRITE, "page_cache_get_speculative " + page.name)
    if page._count == 0:
        return False
    page._count += 1
    return True


def find_get_entry(k: Any, mapping: Any, index: int) -> Any:
    """4.x find_get_entry(), step by step."""
    while True:
        entry = mapping.lookup(k, index, "radix_tree_lookup_slot")
        if not isinstance(entry, Page):
            return entry
        if not page_cache_get_speculative(k, entry):
            continue
        if mapping.lookup(k, index, "radix_tree_deref_slot (has the page moved?)") is not entry:
            put_page(k, entry)
            continue
        return entry


def filemap_map_pages(k: Any, vmf: Any, start_pgoff: int, end_pgoff: int) -> None:
    """3.15 filemap_map_pages(), its look-up step by step."""
    vma = vmf.vma
    inode = vma.file
    mapping = inode.mapping
    for index in range(start_pgoff, end_pgoff + 1):
        while True:  # repeat:
            page = mapping.lookup(k, index, "radix_tree_for_each_slot")
            if not isinstance(page, Page):
                break
            if not page_cache_get_speculative(k, page):
                continue
            if mapping.lookup(k, index, "radix_tree_deref_slot (has the page moved?)") is not page:
                put_page(k, page)
                continue
            break
        if not isinstance(page, Page):
            continue
        if not PageUptodate(k, page) or PageHWPoison(k, page) or not trylock_page(k, page):
            put_page(k, page)
            continue
        if (page_mapping(k, page) is not mapping or not PageUptodate(k, page)
                or index >= size_in_pages(inode.i_size_read(k))):
            unlock_page(k, page)
            put_page(k, page)
            continue
        address = vma.address_of(index)
        if pte_read(k, vma, address) is not None:
            unlock_page(k, page)
            put_page(k, page)
            continue
        if address != vmf.address:
            k.count("fault_around_pages")
        do_set_pte(k, VmFault(vma, address, index, vmf.flags), page, write=False, anon=False)
        unlock_page(k, page)


def three_steps(design: Design) -> Design:
    return design.variant(design.name + "-three-step-lookup", "Linux's look-up, step by step", "a test",
                          {filemap.find_get_entry: find_get_entry, filemap.filemap_map_pages: filemap_map_pages})


def both(scenario: Scenario, name: str, cap: int | None = None) -> tuple[Any, Any]:
    one, three = get_design(name), three_steps(get_design(name))
    return tuple(explore(lambda d=d: ModelExecution(scenario, d, record_steps=False), "dpor", stop_on_first=False,
                         minimise=False, max_schedules=cap) for d in (one, three))  # type: ignore[misc]


def assert_same(one: Any, three: Any, what: str) -> None:
    assert one.final_states == three.final_states, (
        f"{what}: only in one step {sorted(map(str, one.final_states - three.final_states))}, only in three "
        f"{sorted(map(str, three.final_states - one.final_states))}")
    assert set(one.violation_ids) == set(three.violation_ids), what


TWO_PAGES = """
title = "faults and fault-around race a truncate and a write"
fs = "tmpfs"
[files.data]
size = "2p"
fill = "A"
[threads.faulter]
ops = ["m = mmap data 0 2p shared rw", "load m 0 1"]
[threads.truncator]
ops = ["truncate data 1p"]
[threads.writer]
ops = ["write data 1p B"]
"""


@pytest.mark.parametrize("name", ["v4.10", "v4.0", "xip"])
def test_fault_around_and_truncate_reach_the_same_states(name: str) -> None:
    one, three = both(parse_scenario(TWO_PAGES, "<two-pages>"), name)
    assert one.complete and three.complete
    assert three.schedules > one.schedules  # the three steps do race where one step cannot
    assert_same(one, three, name)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(scenarios().filter(lambda case: case[0].fs != "dax"))
def test_generated_scenarios_reach_the_same_states(case: tuple[Scenario, str]) -> None:
    scenario, name = case
    one, three = both(scenario, name, cap=3000)
    if one.complete and three.complete:
        assert_same(one, three, f"{name} on {describe(scenario)}")
