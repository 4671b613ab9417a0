"""Tests that bite: each fails when one check of the model, of its invariants or of the explorer
is dropped (``python tools/mutants.py`` breaks them on purpose, one at a time; docs/testing.md,
"Mutation testing").

The page-cache races of ``scenarios/races/`` are explored exhaustively under the designs whose
code differs (v4.0: 3.15-4.7's generic fault code and filemap.c; v4.10: finish_fault and ext4's
i_mmap_sem) and must be clean: a fault, fault-around or page_mkwrite that missed a truncate would
leave a PTE past EOF (``stale-pte-after-truncate``) or map a freed page (``use-after-free``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faultlab.checks.lockdep import LockDep
from faultlab.designs import get_design
from faultlab.designs.v4_0 import DESIGN as V40
from faultlab.execution import ModelExecution
from faultlab.exploring import explore_design
from faultlab.fs import ext4
from faultlab.kernel import memory
from faultlab.kernel.events import Event
from faultlab.kernel.filemap import generic_perform_write
from faultlab.kernel.flags import VM_WRITE
from faultlab.kernel.locking import Mutex
from faultlab.kernel.state.page import Page, put_page
from faultlab.kernel.state.pagetable import Pte, install_pte
from faultlab.oracle.concurrent import model_outcomes
from faultlab.scenario import ScenarioBuilder, load_scenario
from faultlab.scenario.model import Scenario
from faultlab.sched import SequentialChooser

ROOT = Path(__file__).resolve().parent.parent
RACES = ROOT / "scenarios/races"
PAGE_CACHE_DESIGNS = ("v4.0", "v4.10")


def _explore_clean(scenario: Scenario, design: str, bound: int | None = None) -> None:
    v = explore_design(scenario, get_design(design), max_schedules=3000, bound=bound)
    found = [(c.id, c.message) for c in v.counterexamples]
    assert v.clean, found
    assert v.result.stop_reason == "exhausted"  # the whole tree (up to the retry bound), not a sample


@pytest.mark.parametrize("design", PAGE_CACHE_DESIGNS)
@pytest.mark.parametrize("name", ["shared-store-vs-truncate-ext4", "shared-store-vs-truncate-tmpfs",
                                  "private-store-vs-truncate-ext4", "fault-around-vs-truncate",
                                  "mkwrite-vs-truncate"])
def test_page_cache_races_with_truncate_explore_clean(name: str, design: str) -> None:
    """Kills: filemap_fault without its i_size re-check under the page lock (ext4 reads the page
    back in past EOF), page_mkwrite ignoring truncation."""
    _explore_clean(load_scenario(str(RACES / f"{name}.toml")), design)


@pytest.mark.parametrize("design", PAGE_CACHE_DESIGNS)
def test_a_tmpfs_hole_faulted_in_while_truncate_runs_is_not_left_mapped(design: str) -> None:
    """shared-store-vs-truncate-tmpfs on a hole: the fault finds no page, passes the i_size check,
    allocates one; truncate runs in between.  Only shmem_getpage_gfp's second check ("Perhaps the
    file has been truncated since we checked") keeps the new page from being mapped past EOF."""
    scenario = (ScenarioBuilder("a tmpfs hole faulted in while truncate runs", fs="tmpfs")
                .file("data", size="2p", fill="hole")
                .thread("faulter", "m = mmap data 0 2p shared rw -> ok", "store m 1p B", "load m 1p")
                .thread("truncator", "truncate data 1p -> ok").build())
    _explore_clean(scenario, design)


@pytest.mark.parametrize(("design", "fs"), [("v4.0", "ext4"), ("v4.0", "tmpfs"), ("v4.10", "ext4")])
def test_a_private_store_copies_the_rest_of_the_page(design: str, fs: str) -> None:
    """A COW fault copies the file's page into the private one (do_cow_fault: copy_user_highpage),
    so the bytes the store did not touch still read as the file's."""
    scenario = (ScenarioBuilder("private store, then load the next byte", fs=fs).file("d", size="1p", fill="AC")
                .thread("t", "m = mmap d 0 1p private rw", "store m 0 B", "load m 0 4 -> BCAC",
                        "read d 0 2 -> AC").build())
    result = ModelExecution(scenario, get_design(design)).run(SequentialChooser())
    assert result.violations == [], result.violations
    assert result.counters["bytes_copied"] == 4096


@pytest.mark.parametrize(("design", "mkwrite"), [("v4.0", "filemap_page_mkwrite"), ("v4.10", "ext4_page_mkwrite")])
def test_a_write_fault_on_a_shared_mapping_calls_page_mkwrite(design: str, mkwrite: str) -> None:
    """do_shared_fault(): ->fault, then ->page_mkwrite with the page unlocked (do_page_mkwrite),
    which locks it again and dirties it: the page lock is taken twice, and the mkwrite runs."""
    scenario = (ScenarioBuilder("a shared store", fs="ext4").file("d", size="1p", fill="A")
                .thread("t", "m = mmap d 0 1p shared rw", "store m 0 B").build())
    result = ModelExecution(scenario, get_design(design), record_events=True).run(SequentialChooser())
    assert result.violations == []
    called = [ev.data["name"] for ev in result.events if ev.kind == "func_enter"]
    assert "do_shared_fault" in called
    assert mkwrite in called[called.index("do_shared_fault"):]
    assert result.lock_counts["page lock"] == 2


def test_lockdep_listener_reports_a_cycle_between_two_lock_attempts() -> None:
    """The per-run listener feeds every ``lock_attempt`` to lockdep (execution.py subscribes it)."""
    a, b = Mutex("A", "a"), Mutex("B", "b")
    reports: list[str] = []
    on_event = LockDep().listener(lambda tid: f"t{tid}", reports.append)
    on_event(Event("lock_attempt", 0, 3, {"lock": b, "cls": "B", "mode": "W", "held": [(a, "W")]}))
    assert reports == []
    on_event(Event("lock_attempt", 1, 7, {"lock": a, "cls": "A", "mode": "W", "held": [(b, "W")]}))
    assert len(reports) == 1
    assert "t0 at step 4" in reports[0] and "t1 at step 8" in reports[0], reports[0]


def _no_unmap(k: object, mapping: object, holebegin: int, holelen: int, even_cows: bool) -> None:
    """unmap_mapping_range() that unmaps nothing."""


def test_a_pte_left_past_eof_when_truncate_returns_is_reported() -> None:
    """A truncate that does not unmap leaves the PTE of a page it cut off: the check at
    truncate's end sees it (no PTE is set afterwards, so no other check would)."""
    design = V40.variant("no-unmap", "truncate without unmapping", "a test", {memory.unmap_mapping_range: _no_unmap})
    scenario = (ScenarioBuilder("load, then truncate", fs="tmpfs").file("d", size="2p", fill="A")
                .thread("t", "m = mmap d 0 2p shared r", "load m 1p -> A", "truncate d 1p").build())
    result = ModelExecution(scenario, design).run(SequentialChooser())
    stale = [v for v in result.violations if v.id == "stale-pte-after-truncate"]
    assert stale and stale[0].message.startswith("when truncate returned, "), result.violations
    assert not ModelExecution(scenario, V40).run(SequentialChooser()).violations


@pytest.mark.parametrize("design", PAGE_CACHE_DESIGNS)
def test_a_fault_waiting_for_a_page_truncate_removes_does_not_map_it(design: str) -> None:
    """The fault finds page 1, waits for its lock while truncate removes it, and truncate then
    extends the file again: only find_lock_page's re-check of page->mapping sends the fault
    round again; otherwise it maps the orphan page, and the store is lost to the file."""
    scenario = (ScenarioBuilder("truncate down and up under a waiting fault", fs="tmpfs")
                .file("data", size="2p", fill="A")
                .thread("faulter", "m = mmap data 0 2p shared rw -> ok", "store m 1p B")
                .thread("truncator", "truncate data 1p -> ok", "truncate data 2p -> ok").build())
    _explore_clean(scenario, design)


@pytest.mark.parametrize("design", PAGE_CACHE_DESIGNS)
def test_fault_around_does_not_map_a_page_left_in_the_cache_past_eof(design: str) -> None:
    """A read fault that loses its race with truncate reads the page back in past EOF before its
    re-check under the page lock says SIGBUS (filemap_fault; ext4 reads it from the disk, and the
    read leaves it uptodate): the page stays in the cache.  A later fault-around over it must skip
    it, by filemap_map_pages' own i_size check."""
    scenario = (ScenarioBuilder("a page left past EOF, then fault-around over it", fs="ext4")
                .file("data", size="2p", fill="A")
                .thread("faulter", "a = mmap data 1p 1p shared r -> ok", "load a 0",
                        "b = mmap data 0 2p shared r -> ok", "load b 0 -> A")
                .thread("truncator", "truncate data 1p -> ok").build())
    _explore_clean(scenario, design, bound=2)  # (the race needs one preemption; all of them: 4,000 schedules)


# -- the survivors of the first mutation run -------------------------------------------------------------


def test_a_cow_fault_waiting_on_a_page_truncate_removes_and_restores_does_not_copy_it() -> None:
    """scenarios/races/truncate-down-up-vs-private-fault-ext4.toml under v4.0 (ext4 without
    i_mmap_sem): the COW fault holds a reference to page 1 while truncate removes it and extends
    the file again.  The i_size re-check under the page lock passes; only filemap_fault's re-check
    of page->mapping ("Did it get truncated?") keeps it from copying the orphan's A into the
    private page after truncate has zapped the mapping for the last time."""
    _explore_clean(load_scenario(str(RACES / "truncate-down-up-vs-private-fault-ext4.toml")), "v4.0", bound=2)


def test_truncate_zaps_cow_copies_before_the_page_cache_pages() -> None:
    """scenarios/races/truncate-vs-cow-and-shared-loads-tmpfs.toml: truncate_pagecache()'s first
    unmap (even_cows) walks i_mmap in mapping order, so the private mapping's COW copy goes before
    the shared mapping's PTE, and a SIGBUS through the shared mapping is never followed by the COW
    copy's B.  Without the first unmap, truncate_inode_page() unmaps only the page's own PTEs and
    the copy lasts until the second unmap."""
    model = model_outcomes(load_scenario(str(RACES / "truncate-vs-cow-and-shared-loads-tmpfs.toml")),
                           get_design("v4.10"))
    assert model.complete and not model.violations
    loads = {tuple(outcome for thread, _op, outcome in o.ops if thread == "observer") for o in model.outcomes}
    assert loads == {('"A"', '"B"'), ('"A"', "SIGBUS"), ("SIGBUS", "SIGBUS")}


def test_a_dirty_pte_zapped_dirties_its_page() -> None:
    """tmpfs has no ->page_mkwrite, so a read fault on a shared writable mapping maps the page
    writable and a store sets only the PTE's dirty bit (the CPU's, without a fault).  munmap's
    zap_pte_range() must move that bit to the page (set_page_dirty), or the store is clean in the
    page cache: reclaim could drop it, writeback would skip it."""
    scenario = (ScenarioBuilder("load, store without a fault, munmap", fs="tmpfs").file("d", size="1p", fill="A")
                .thread("t", "m = mmap d 0 1p shared rw", "load m 0 -> A", "store m 0 B -> ok", "munmap m -> ok")
                .build())
    result = ModelExecution(scenario, V40, record_events=True).run(SequentialChooser())
    assert result.violations == []
    assert result.counters["fault.read"] == 1 and result.counters["faults"] == 1  # the store took no fault
    cleared = [ev.data["pte"] for ev in result.events if ev.kind == "pte_clear"]
    assert len(cleared) == 1 and cleared[0].dirty
    page = cleared[0].page
    assert isinstance(page, Page) and page._dirty


def test_two_threads_cow_faulting_one_page_install_one_copy() -> None:
    """scenarios/races/private-write-faults-one-page*.toml under v4.0: the fault that loses the race
    finds the PTE changed under the PTL (do_cow_fault's pte_same() re-check) and frees its copy;
    installing it anyway leaks the first copy (refcount, rss counters)."""
    for name in ("private-write-faults-one-page", "private-write-faults-one-page-ext4"):
        _explore_clean(load_scenario(str(RACES / f"{name}.toml")), "v4.0")


def test_a_shared_dax_store_racing_truncate_does_not_map_a_freed_block() -> None:
    """scenarios/races/shared-store-vs-truncate-dax.toml: under v4.0 the fault looks the block up
    before truncate and maps it after; dax_insert_mapping()'s i_size re-check under i_mmap_rwsem
    is what stops it (a later design has the DAX entry lock instead)."""
    for design in ("v4.0", "v4.10"):
        _explore_clean(load_scenario(str(RACES / "shared-store-vs-truncate-dax.toml")), design)


def _do_set_pte_dropping_its_reference(k: Any, vmf: Any, page: Any, write: bool, anon: bool,
                                       label: str = "do_set_pte") -> None:
    """do_set_pte() that puts the page before it maps it, instead of handing the reference over:
    the COW page is freed, then mapped.  (It runs in kernel/memory.py's namespace, where these
    names are the design's own.)"""
    put_page(k, page)
    vma = vmf.vma
    writable = (write and bool(vma.flags & VM_WRITE)) or (not anon and vma.page_prot_writable())
    install_pte(k, vma, vmf.address, Pte(page, None, writable, write), anon, label)


def test_a_pte_set_to_a_freed_page_is_reported_when_it_is_set() -> None:
    """The use-after-free check on every new PTE: it names the PTE at the step that sets it,
    before any access through it (which would be reported later, and only if one came)."""
    design = V40.variant("put-then-map", "do_set_pte puts the page first", "a test",
                         {memory.do_set_pte: _do_set_pte_dropping_its_reference})
    scenario = (ScenarioBuilder("a private store", fs="tmpfs").file("d", size="1p", fill="A")
                .thread("t", "m = mmap d 0 1p private rw", "store m 0 B").build())
    result = ModelExecution(scenario, design).run(SequentialChooser())
    uaf = [v for v in result.violations if v.id == "use-after-free"]
    assert len(uaf) == 1 and uaf[0].message.startswith("PTE 0x40000000 set to freed page"), result.violations
    assert not ModelExecution(scenario, V40).run(SequentialChooser()).violations


def _write_iter_keeping_i_rwsem(k: Any, inode: Any, pos: int, data: bytes) -> int:
    """ext4_file_write_iter() that returns with i_rwsem still held (in fs/ext4.py's namespace)."""
    inode.i_rwsem.lock(k)
    return generic_perform_write(k, inode, pos, data)


def test_a_thread_returning_to_user_space_with_a_lock_held_is_reported() -> None:
    """No release goes wrong (so no bad-release report): only the check at the end of the run,
    of what each finished thread still holds, sees the leaked i_rwsem."""
    design = V40.variant("write-keeps-i_rwsem", "write(2) returns holding i_rwsem", "a test",
                         {ext4.ext4_file_write_iter: _write_iter_keeping_i_rwsem})
    scenario = (ScenarioBuilder("a write", fs="ext4").file("d", size="1p", fill="A")
                .thread("t", "write d 0 B -> ok").build())
    result = ModelExecution(scenario, design).run(SequentialChooser())
    assert [(v.id, v.message) for v in result.violations] == [
        ("lock-pairing", "thread t finished holding &inode->i_rwsem (d.i_rwsem)")]
    assert not ModelExecution(scenario, V40).run(SequentialChooser()).violations
