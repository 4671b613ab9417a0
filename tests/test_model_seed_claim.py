"""The seed's claim: letting the DAX fault handler perform the COW makes a first write to a private
DAX page one fault with one copy, where 3.14 XIP took two faults.

Scenario: a DAX file whose blocks exist (filled), mapped MAP_PRIVATE, and a first store to a page
that is not mapped yet.
"""

from __future__ import annotations

import pytest

from faultlab.designs import DESIGNS, get_design
from faultlab.execution import ModelExecution, ModelRunResult
from faultlab.scenario import Outcome, ScenarioBuilder
from faultlab.sched import SequentialChooser

P = 4096


def first_private_write(design: str, store_at: str = "1p") -> ModelRunResult:
    sc = (ScenarioBuilder("first write to a private DAX page", fs="dax")
          .file("data", size="2p", fill="A")
          .thread("t", "m = mmap data 0 2p private rw", f"store m {store_at} B", f"load m {store_at} 2",
                  "read data 1p 2")
          .build())
    return ModelExecution(sc, get_design(design)).run(SequentialChooser(None))


def check_cow_result(r: ModelRunResult) -> None:
    """Whatever the design: the writer sees its byte over the file's data, the file is unchanged,
    no block is allocated or zeroed."""
    outs = [o.outcome for o in r.record.ops]
    assert outs[1] == Outcome.ok()
    assert outs[2] == Outcome.of_data(b"BA")
    assert outs[3] == Outcome.of_data(b"AA")
    assert r.record.files["data"].contents == b"A" * 2 * P
    assert r.counters["blocks_allocated"] == 0


def test_the_designs_in_historical_order() -> None:
    assert list(DESIGNS) == ["xip", "v7", "v7-insert", "v4.0", "v4.7", "v4.10", "v6.1", "v6.18"]


def test_xip_takes_two_faults_cow_then_wp_copy() -> None:
    """3.14 XIP: do_cow_fault's ->fault (xip_file_fault) maps the pmem pfn read-only and returns
    NOPAGE; the store retries and do_wp_page copies: 2 faults, one copy."""
    r = first_private_write("xip")
    check_cow_result(r)
    assert r.violations == []
    store = r.record.ops[1]
    assert (store.minflt, store.majflt) == (2, 0)
    assert r.counters["faults"] == 2
    assert r.counters["fault.cow"] == 1
    assert r.counters["fault.wp-copy"] == 1
    assert r.counters["bytes_copied"] == P


@pytest.mark.parametrize("design", ["v7", "v4.0", "v4.7", "v4.10"])
def test_handler_performs_the_cow_in_one_fault(design: str) -> None:
    """v7 (VM_FAULT_COWED), 4.0 (VM_FAULT_LOCKED with a NULL page), 4.7 (VM_FAULT_DAX_LOCKED) and
    4.10 (VM_FAULT_DONE_COW): the handler copies pmem into vmf->cow_page and it is mapped as an
    anonymous writable page in the same fault: 1 fault, 1 copy, nothing after."""
    r = first_private_write(design)
    check_cow_result(r)
    assert r.violations == []
    store = r.record.ops[1]
    assert (store.minflt, store.majflt) == (1, 0)
    assert r.counters["faults"] == 1
    assert r.counters["fault.cow"] == 1
    assert r.counters["fault.wp-copy"] == 0
    assert r.counters["bytes_copied"] == P
    load = r.record.ops[2]
    assert (load.minflt, load.majflt) == (0, 0)


def test_v7_insert_takes_two_faults_two_copies_and_breaks_cow_accounting() -> None:
    """v7-insert, Jan Kara's review suggestion taken literally: the handler installs the COW page
    with vm_insert_page() and returns VM_FAULT_NOPAGE.  vm_insert_page maps with vma->vm_page_prot,
    which has no write permission in a MAP_PRIVATE mapping (write access there is only ever granted
    by a COW), and maps the page as a *file* page (page_add_file_rmap, MM_FILEPAGES), never as an
    anonymous one.  So the store retries, finds a read-only PTE and do_wp_page copies the page a
    second time (2 faults, 2 copies), and the first COW page was accounted as a file page: the
    model's cow-accounting invariant reports it.  (Jan Kara's 2016 changelog, docs/designs.md "Why the cow page
    has to go through generic code".)"""
    r = first_private_write("v7-insert")
    check_cow_result(r)
    store = r.record.ops[1]
    assert (store.minflt, store.majflt) == (2, 0)
    assert r.counters["faults"] == 2
    assert r.counters["fault.cow"] == 1
    assert r.counters["fault.wp-copy"] == 1
    assert r.counters["bytes_copied"] == 2 * P
    assert [v.id for v in r.violations] == ["cow-accounting"]
    assert "file page" in r.violations[0].message


@pytest.mark.parametrize("design", ["v7", "v4.0", "v4.7", "v4.10"])
def test_one_fault_per_page_for_every_page(design: str) -> None:
    """The claim holds page by page: two first writes are two faults and two copies."""
    sc = (ScenarioBuilder("two pages", fs="dax").file("data", size="2p", fill="A")
          .thread("t", "m = mmap data 0 2p private rw", "store m 0 B", "store m 1p C", "load m 0 1",
                  "load m 1p 1").build())
    r = ModelExecution(sc, get_design(design)).run(SequentialChooser(None))
    assert r.violations == []
    assert [(o.minflt, o.majflt) for o in r.record.ops[1:3]] == [(1, 0), (1, 0)]
    assert [o.outcome for o in r.record.ops[3:]] == [Outcome.of_data(b"B"), Outcome.of_data(b"C")]
    assert r.counters["bytes_copied"] == 2 * P
