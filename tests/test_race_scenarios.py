"""The race scenarios that need threads sharing one mm ([setup] maps, cross-thread maps) and hole
punching: the designs explore them clean, and a design that breaks the protocol is caught."""

from __future__ import annotations

from typing import Any

import pytest

from faultlab.designs import DESIGNS, get_design
from faultlab.exploring import explore_design
from faultlab.kernel.eras import v4_10 as era
from faultlab.kernel.eras.v4_10 import (  # the replacement runs in eras/v4_10's namespace: its names
    ERROR_NOPAGE_RETRY,
    PAGE_SIZE,
    VM_FAULT_DONE_COW,
    VM_FAULT_OOM,
    SetPageUptodate,
    __do_fault,
    alloc_cow_page,
    copy_page,
    finish_fault,
    put_page,
    unlock_page,
)
from faultlab.oracle.concurrent import model_outcomes
from faultlab.scenario import load_scenario

RACES = "scenarios/races"
PAGE_CACHE_DESIGNS = ("v4.0", "v4.10")  # page-cache code differs only at 4.5 (ext4 i_mmap_sem)


def do_cow_fault_mapping_first(k: Any, vmf: Any) -> int:
    """do_cow_fault() that maps the COW page before it copies into it: another thread of the mm
    can load through the new PTE and see the uninitialised page."""
    k.count("fault.cow")
    new_page = alloc_cow_page(k)
    if new_page is None:
        return VM_FAULT_OOM
    vmf.cow_page = new_page
    ret = __do_fault(k, vmf)
    if ret & ERROR_NOPAGE_RETRY:
        put_page(k, new_page)
        return ret
    if ret & VM_FAULT_DONE_COW:
        return ret
    fault_page = vmf.page
    SetPageUptodate(k, new_page)
    ret |= finish_fault(k, vmf)
    copy_page(k, new_page, fault_page)
    k.count("bytes_copied", PAGE_SIZE)
    unlock_page(k, fault_page)
    put_page(k, fault_page)
    if ret & ERROR_NOPAGE_RETRY:
        put_page(k, new_page)
    return ret


def test_a_cow_page_mapped_before_it_is_filled_is_caught_by_another_threads_load() -> None:
    scenario = load_scenario(f"{RACES}/private-write-faults-one-page.toml")
    design = get_design("v4.10").variant("v4.10-map-then-copy", "do_cow_fault maps the copy before filling it",
                                         "a test", {era.do_cow_fault: do_cow_fault_mapping_first})
    verdict = explore_design(scenario, design)
    assert verdict.violation_ids == ["expected-outcome", "coherence"], verdict.result.summary()
    assert "load m 2' gave \"\\x00\", expected \"A\"" in verdict.counterexamples[0].message
    assert explore_design(scenario, get_design("v4.10")).clean


@pytest.mark.parametrize(("name", "design"), [
    ("punch-vs-private-fault-tmpfs", "v4.0"),
    ("punch-vs-private-fault-ext4", "v4.10"),
    ("generic-437-tmpfs", "v4.10"),
    ("generic-503-dax", "v4.10"),
    ("holetest-2-neighbours", "v4.0"),
    ("fault-around-vs-truncate-ext4", "v4.0"),
])
def test_race_scenarios_explore_clean(name: str, design: str) -> None:
    verdict = explore_design(load_scenario(f"{RACES}/{name}.toml"), get_design(design))
    assert verdict.clean and verdict.result.complete, (name, verdict.result.summary())


def test_punch_vs_fault_outcomes() -> None:
    """A shared store racing a punch of its page: the store lands in the file's page (which the
    punch then zeroes out) or in a new page after the punch (B stays); the load after the store
    sees B, or zeros when the punch came between."""
    model = model_outcomes(load_scenario(f"{RACES}/punch-vs-fault-ext4.toml"), DESIGNS["v4.10"])
    assert model.complete and not model.violations
    assert {o.ops[2][2] for o in model.outcomes} == {'"B"', '"\\x00"'}
    page1 = {o.files[0][2][PAGE_SIZE:PAGE_SIZE + 1] for o in model.outcomes if o.files[0][2] is not None}
    assert page1 == {b"\0", b"B"}


def test_a_private_copy_made_before_a_punch_survives_it() -> None:
    model = model_outcomes(load_scenario(f"{RACES}/punch-vs-private-fault-ext4.toml"), DESIGNS["v4.10"])
    assert {o.ops[2][2] for o in model.outcomes} == {'"A"', '"\\x00"'}
    assert {o.files[0][2] for o in model.outcomes} == {b"A" * PAGE_SIZE + bytes(PAGE_SIZE)}


def test_holetest_on_one_page_loses_a_store_before_the_47_entry_locks() -> None:
    """Two shared write faults on one hole through one PTE: 4.0 zeroes the new block after the
    other fault stored into it (fixed by the 4.7 entry locks)."""
    verdict = explore_design(load_scenario(f"{RACES}/holetest-2-one-page.toml"), get_design("v4.0"))
    assert verdict.violation_ids == ["lost-write"]


PAGE_CACHE_TRUNCATE_RACES = [
    ("private-store-vs-truncate-ext4", "v4.0"),  # ext4 before 4.5: no i_mmap_sem, so filemap_fault's
    ("shared-store-vs-truncate-ext4", "v4.0"),   # re-check under the page lock is what holds
    ("hole-fault-vs-truncate-tmpfs", "v4.10"),
    ("private-store-vs-truncate-tmpfs", "v4.10"),
    ("shared-store-vs-truncate-tmpfs", "v4.10"),
    ("fault-around-vs-truncate", "v4.10"),
    ("mkwrite-vs-truncate", "v4.10"),
]


@pytest.mark.parametrize(("name", "design"), PAGE_CACHE_TRUNCATE_RACES)
def test_page_cache_truncate_races_explore_clean(name: str, design: str) -> None:
    """The i_size re-check under the page lock in filemap_fault, shmem_fault's second check and
    filemap_page_mkwrite's truncation check are each needed by one of these: removing one makes
    its scenario report a violation.  (ext4 before 4.5 is explored up to the retry bound: a fault
    and truncate can chase each other, see docs/designs.md.)"""
    verdict = explore_design(load_scenario(f"{RACES}/{name}.toml"), get_design(design))
    assert verdict.clean, (name, verdict.result.summary())
    assert verdict.result.complete or verdict.result.stop_reason == "exhausted", verdict.result.summary()


def test_holetest_with_three_writers_on_one_page_at_preemption_bound_1() -> None:
    """Three shared write faults on one DAX hole: v4.10 keeps all three markers in every schedule
    with at most one preemption (the full search: bench/bench_holetest.py, docs/designs.md)."""
    verdict = explore_design(load_scenario(f"{RACES}/holetest-3-one-page.toml"), get_design("v4.10"), bound=1)
    assert verdict.clean and verdict.result.stop_reason == "exhausted", verdict.result.summary()
    assert verdict.result.final_state_count == 1


def spinning_cow_fault(k: Any, vmf: Any) -> int:
    while True:
        vmf.vma.file.i_size_read(k)


def test_a_design_that_never_returns_is_the_runs_livelock() -> None:
    """Past the scheduler's step limit a run ends with a livelock violation (exit status 1 from
    the command line), not an exception out of faultlab."""
    from faultlab.execution import ModelExecution
    from faultlab.sched import SequentialChooser

    design = get_design("v4.10").variant("v4.10-spin", "a COW fault that never returns", "a test",
                                         {era.do_cow_fault: spinning_cow_fault})
    result = ModelExecution(load_scenario("scenarios/seed/cow-vs-truncate.toml"), design).run(SequentialChooser())
    assert [v.id for v in result.violations] == ["livelock"]
    assert "steps" in result.violations[0].message
