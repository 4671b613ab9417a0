"""Proofs that hold (issue: every shared access is a scheduling point by construction).

Designs whose soundness depends on a lock the explorer must see: a fault that re-checks i_size
under the PTE lock (sound in Linux because zap_pte_range walks under the same lock), its broken
twin that checks before taking the lock, and v4.0 without i_mmap_rwsem in its COW branch.  DPOR
and plain search must both give the right answer; before the state layer announced itself, DPOR
called the last one "clean, complete"."""

from __future__ import annotations

from typing import Any

import pytest

from faultlab.designs import get_design
from faultlab.designs.base import Design
from faultlab.execution import ModelExecution
from faultlab.explore.explorer import explore
from faultlab.exploring import explore_design
from faultlab.fs.dax import v4_0 as dax
from faultlab.fs.dax.v4_0 import (  # the replacements run in fs/dax/v4_0's namespace: its names
    EBUSY,
    EIO,
    VM_FAULT_LOCKED,
    VM_FAULT_SIGBUS,
    buffer_written,
    clear_page,
    clear_pmem,
    size_in_pages,
)
from faultlab.kernel.eras import v4_0 as era
from faultlab.kernel.eras.v4_0 import ERROR_NOPAGE_RETRY, lock_fault_page, put_page, unlock_page
from faultlab.kernel.memory import Pte, __pte_alloc, i_mmap_lock_read, i_mmap_unlock_read, install_pte, pte_read
from faultlab.scenario import load_scenario, parse_scenario

SEED = "scenarios/seed/cow-vs-truncate.toml"

READ_VS_TRUNCATE = """
title = "a read fault on a written DAX block races with truncate"
fs = "dax"
[files.data]
size = "1p"
fill = "A"
[threads.faulter]
ops = ["m = mmap data 0 1p shared r", "load m 0 1"]
[threads.truncator]
ops = ["truncate data 0"]
"""


def insert_under_ptl(k: Any, inode: Any, ext: Any, new: bool, vmf: Any) -> int:
    """No i_mmap_rwsem: i_size re-checked under the PTE lock, the pfn installed in the same
    critical section (truncate writes i_size before zap_pte_range takes that lock)."""
    if ext.unwritten or new:
        clear_pmem(k, ext.block)
    __pte_alloc(k, vmf.vma, vmf.address)  # get_locked_pte()
    ptl = vmf.vma.mm.pt.ptl(vmf.address)
    ptl.lock(k)
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        ptl.unlock(k)
        return EIO
    if pte_read(k, vmf.vma, vmf.address) is not None:
        ptl.unlock(k)
        return EBUSY
    install_pte(k, vmf.vma, vmf.address, Pte(None, ext.block, vmf.vma.page_prot_writable(), False),
                anon=False, label="insert_pfn")
    ptl.unlock(k)
    return 0


def insert_checked_before_ptl(k: Any, inode: Any, ext: Any, new: bool, vmf: Any) -> int:
    """The same, with the i_size check made before the PTE lock is taken: racy."""
    if ext.unwritten or new:
        clear_pmem(k, ext.block)
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return EIO
    __pte_alloc(k, vmf.vma, vmf.address)
    ptl = vmf.vma.mm.pt.ptl(vmf.address)
    ptl.lock(k)
    if pte_read(k, vmf.vma, vmf.address) is not None:
        ptl.unlock(k)
        return EBUSY
    install_pte(k, vmf.vma, vmf.address, Pte(None, ext.block, vmf.vma.page_prot_writable(), False),
                anon=False, label="insert_pfn")
    ptl.unlock(k)
    return 0


def _variant(name: str, replacement: Any) -> Design:
    return get_design("v4.0").variant(name, name, "a test", {dax.dax_insert_mapping: replacement})


def _both(scenario: Any, design: Design) -> tuple[Any, Any]:
    def program() -> ModelExecution:
        return ModelExecution(scenario, design, record_steps=False)

    dpor = explore(program, "dpor", stop_on_first=False, minimise=False)
    plain = explore(program, "dfs", stop_on_first=False, minimise=False, bound=2)
    return dpor, plain


def test_the_ptl_recheck_design_is_clean_under_dpor_and_plain_search() -> None:
    ptl_recheck = _variant("ptl-recheck", insert_under_ptl)
    dpor, plain = _both(parse_scenario(READ_VS_TRUNCATE, "<read-vs-truncate>"), ptl_recheck)
    assert dpor.complete and dpor.violation_ids == []
    assert plain.violation_ids == []
    assert plain.final_states <= dpor.final_states


def test_its_twin_checking_before_the_ptl_is_caught_by_both() -> None:
    twin = _variant("check-before-ptl", insert_checked_before_ptl)
    dpor, plain = _both(parse_scenario(READ_VS_TRUNCATE, "<read-vs-truncate>"), twin)
    stale = {"stale-pte-after-truncate", "use-after-free"}  # a pfn PTE left over a freed block
    assert stale & set(dpor.violation_ids), dpor.violation_ids
    assert set(plain.violation_ids) <= set(dpor.violation_ids) and stale & set(plain.violation_ids)


def dax_cow_fault_without_i_mmap(k: Any, vmf: Any, ext: Any, page: Any) -> int:
    """4.0's COW branch re-checking i_size without taking i_mmap_rwsem."""
    new_page = vmf.cow_page
    if buffer_written(ext):
        k.pmem.copy_to_page(k, ext.block, new_page, "copy_user_bh")
    else:
        clear_page(k, new_page, "clear_user_highpage")
    vmf.page = page
    if page is None and vmf.pgoff >= size_in_pages(vmf.vma.file.i_size_read(k)):
        return VM_FAULT_SIGBUS
    return VM_FAULT_LOCKED


def release_without_i_mmap(k: Any, vmf: Any) -> None:
    if vmf.page is not None:
        unlock_page(k, vmf.page)
        put_page(k, vmf.page)


def test_v40_without_i_mmap_in_its_cow_branch_is_caught_by_dpor_on_the_seed() -> None:
    design = get_design("v4.0").variant("v4.0-no-i-mmap", "v4.0 without i_mmap_rwsem in the COW branch", "a test",
                                        {dax.dax_cow_fault: dax_cow_fault_without_i_mmap,
                                         era.release_fault_page: release_without_i_mmap})
    verdict = explore_design(load_scenario(SEED), design)
    assert "stale-pte-after-truncate" in [c.id for c in verdict.counterexamples], verdict.result.summary()
    assert explore_design(load_scenario(SEED), get_design("v4.0")).clean  # the lock is what makes v4.0 sound


def __do_fault(k: Any, vmf: Any) -> int:  # noqa: N807 - the kernel's name
    """4.0's __do_fault() holding i_mmap_rwsem for read across ->fault, whose COW branch takes it
    for read again."""
    mapping = vmf.vma.file.mapping
    i_mmap_lock_read(k, mapping)
    ret = vmf.vma.vm_ops.fault(k, vmf)
    i_mmap_unlock_read(k, mapping)
    if ret & ERROR_NOPAGE_RETRY or vmf.page is None:
        return ret
    return lock_fault_page(k, vmf, ret)


@pytest.fixture(scope="module")
def nested_read() -> Design:
    return get_design("v4.0").variant("nested-i-mmap-read", "i_mmap_rwsem read taken twice", "a test",
                                      {era.__do_fault: __do_fault})


def test_a_nested_down_read_deadlocks_once_a_writer_is_queued(nested_read: Design) -> None:
    verdict = explore_design(load_scenario(SEED), nested_read)
    ids = [c.id for c in verdict.counterexamples]
    assert "deadlock" in ids, verdict.result.summary()
    run = ModelExecution(load_scenario(SEED), nested_read).run(_sequential())
    assert not run.violations  # alone, with no writer queued, the nested read lock goes through


def _sequential() -> Any:
    from faultlab.sched import SequentialChooser

    return SequentialChooser()


HOLE_WRITE = "scenarios/races/hole-write-fault-vs-write.toml"
LOSES_THE_WRITE = {"xip": False, "v7": True, "v7-insert": True, "v4.0": True, "v4.7": False, "v4.10": False}
"""Who zeroes a new DAX block after it is reachable: 4.0's dax_insert_mapping() and dax_do_io()
zero a buffer_new block again once get_block() has spliced it in (removed in 4.7 by "dax: Remove
zeroing from dax_io()" and "dax: Remove dead zeroing code from fault handlers"); ext2's
get_block zeroes before ext2_splice_branch(), and XIP zeroes nothing after it."""


@pytest.mark.parametrize("name", sorted(LOSES_THE_WRITE))
def test_a_write_fault_on_a_hole_vs_write_to_the_other_half(name: str) -> None:
    verdict = explore_design(load_scenario(HOLE_WRITE), get_design(name))
    ids = [c.id for c in verdict.counterexamples]
    if LOSES_THE_WRITE[name]:
        assert ids == ["lost-write"], ids
    else:
        assert verdict.clean and verdict.result.complete, ids


# -- a lock inversion: lock-order with a replay command ----------------------------------------------------
def ext4_dax_setattr_taking_mmap_sem(k: Any, inode: Any, newsize: int) -> None:
    """4.7's ext4_dax_setattr that also takes mmap_sem for read under i_mmap_sem (write): the
    reverse of the fault path's mmap_sem -> i_mmap_sem."""
    from faultlab.fs.dax import v4_7

    inode.i_mmap_sem.down_write(k)
    k.mm.mmap_sem.down_read(k)
    k.mm.mmap_sem.up_read(k)
    inode.i_mmap_sem.up_write(k)
    v4_7.ext4_dax_setattr(k, inode, newsize)


def test_a_lock_inversion_is_lock_order_with_a_replay_that_reproduces_it() -> None:
    from faultlab.exploring import replay_design
    from faultlab.fs.dax import v4_7

    design = get_design("v4.7").variant("abba", "mmap_sem under i_mmap_sem in truncate", "a test",
                                        {v4_7.ext4_dax_setattr: ext4_dax_setattr_taking_mmap_sem})
    sc = load_scenario(SEED)
    verdict = explore_design(sc, design)
    [found] = [c for c in verdict.counterexamples if c.id == "lock-order"]
    assert "possible circular locking dependency" in found.message
    assert "mmap_sem" in found.message and "i_mmap_sem" in found.message
    assert found.replay_command.endswith(found.schedule) and "--design abba" in found.replay_command
    replayed = replay_design(sc, design, found.schedule)
    assert "lock-order" in [v.id for v in replayed.violations]
    assert not [c for c in explore_design(sc, get_design("v4.7")).counterexamples if c.id == "lock-order"]
