"""The [setup] section, maps shared between the threads of one mm, mmap placement and mprotect."""

from __future__ import annotations

import pytest

from faultlab.designs import DESIGNS
from faultlab.errors import ScenarioError
from faultlab.execution import ModelExecution
from faultlab.oracle.concurrent import model_outcomes
from faultlab.scenario import ScenarioBuilder, parse_scenario
from faultlab.scenario.model import SETUP, Scenario
from faultlab.sched import SequentialChooser


def run(sc: Scenario, design: str = "v4.10") -> list[tuple[str, str, str]]:
    result = ModelExecution(sc, DESIGNS[design]).run(SequentialChooser())
    assert result.violations == [], result.violations
    return [(r.thread, r.op, str(r.outcome)) for r in result.record.ops]


def test_setup_runs_first_and_its_maps_are_every_threads() -> None:
    sc = (ScenarioBuilder("t", fs="tmpfs").file("data", "1p", "A")
          .setup("m = mmap data 0 1p shared rw", "store m 0 S")
          .thread("a", "load m 0").thread("b", "store m 1 B", "load m 0 2").build())
    assert sc.setup is not None and sc.setup.name == SETUP
    assert [op.owner for op in sc.threads[0].ops] == [SETUP]
    ops = run(sc)
    assert ops[:2] == [(SETUP, "m = mmap data 0 1p shared rw", "ok"), (SETUP, "store m 0 S", "ok")]
    assert ops[2] == ("a", "load m 0", '"S"')
    assert ops[4] == ("b", "load m 0 2", '"SB"')


def test_setup_takes_no_scheduling_steps() -> None:
    """The set-up runs before the threads: exploring a scenario costs what its threads cost."""
    with_setup = (ScenarioBuilder("t", fs="tmpfs").file("data", "1p", "A")
                  .setup("m = mmap data 0 1p shared rw", "write data 0 W")
                  .thread("a", "read data 0 1").thread("b", "read data 0 1").build())
    result = ModelExecution(with_setup, DESIGNS["v4.10"]).run(SequentialChooser())
    assert {s.tid for s in result.steps} == {0, 1}


def test_a_map_of_another_thread_before_its_mmap_returned_is_sigsegv() -> None:
    """mm = "shared": thread b may name a's map; before a's mmap returns the variable holds no
    address, and the load is a SIGSEGV; after, it sees the file."""
    sc = (ScenarioBuilder("t", fs="tmpfs").file("data", "1p", "A")
          .thread("a", "m = mmap data 0 1p shared r").thread("b", "load m 0", "msync m").build())
    assert sc.threads[1].ops[0].owner == "a"
    seen = {tuple(r for t, _, r in o.ops if t == "b") for o in model_outcomes(sc, DESIGNS["v4.10"]).outcomes}
    assert seen == {("SIGSEGV", "EINVAL"), ("SIGSEGV", "ok"), ('"A"', "ok")}


def test_maps_are_not_shared_between_processes() -> None:
    with pytest.raises(ScenarioError, match=r"unknown map 'm'.*mm = \"shared\""):
        (ScenarioBuilder("t", fs="tmpfs", mm="per-thread").file("data", "1p")
         .thread("a", "m = mmap data 0 1p shared r").thread("b", "load m 0").build())


def test_setup_errors_are_located_in_the_section() -> None:
    text = 'title = "t"\nfs = "tmpfs"\n[files.f]\nsize = 1\n[setup]\nops = [\n  "store q 0 A",\n]\n' \
           '[threads.t]\nops = []\n'
    with pytest.raises(ScenarioError) as e:
        parse_scenario(text, "s.toml")
    assert e.value.where == "s.toml:7" and "[setup]" in e.value.message
    with pytest.raises(ScenarioError) as e:
        ScenarioBuilder("t", fs="tmpfs").file("f", 1).setup("load q 0").thread("t").build()
    assert e.value.where == "<builder>:setup op 1"


def test_the_digest_covers_the_setup() -> None:
    base = ScenarioBuilder("t", fs="tmpfs").file("f", "1p").thread("t", "read f 0 1")
    plain = base.build()
    assert plain.digest() != base.setup("write f 0 A").build().digest()


def test_an_unaligned_mapping_clips_fault_around_to_the_vma_and_the_page_table() -> None:
    """Three pages below a 2 MiB boundary: a read fault on page 1 maps pages 0-2 only (the window
    starts at the VMA, and stops at the end of the page table), not the 16 pages around it."""
    def around(placement: str) -> int:
        sc = (ScenarioBuilder("t", fs="tmpfs").file("data", "32p", "A")
              .thread("t", f"m = mmap data 0 32p shared r{placement}", "load m 1p").build())
        result = ModelExecution(sc, DESIGNS["v4.10"]).run(SequentialChooser())
        return result.counters["fault_around_pages"]

    assert around("") == 15
    assert around(" unaligned") == 2
    assert around(" at 0x7f0000ffd000") == 2
    assert around(" at 0x7f0000fe0000") == 15


def test_mmap_at_an_address() -> None:
    sc = (ScenarioBuilder("t", fs="tmpfs").file("data", "1p", "A")
          .thread("t", "m = mmap data 0 1p shared r at 0x50000000", "n = mmap data 0 1p shared r at 0x50000000",
                  "o = mmap data 0 1p shared r at 0x50000800", "load m 0").build())
    assert [r for _, _, r in run(sc)] == ["ok", "EEXIST", "EINVAL", '"A"']


@pytest.mark.parametrize("fs", ["tmpfs", "ext4", "dax"])
def test_mprotect_read_only_then_writable_again(fs: str) -> None:
    sc = (ScenarioBuilder("t", fs=fs).file("data", "1p", "A")
          .thread("t", "m = mmap data 0 1p shared rw", "store m 0 B", "mprotect m r", "store m 0 C",
                  "load m 0", "mprotect m rw", "store m 0 D", "read data 0 1", "munmap m", "mprotect m r")
          .build())
    outcomes = [r for _, _, r in run(sc)]
    assert outcomes == ["ok", "ok", "ok", "SIGSEGV", '"B"', "ok", "ok", '"D"', "ok", "ENOMEM"]


def test_mprotect_write_protects_a_private_copy() -> None:
    """After mprotect r, a store to a COWed page is a SIGSEGV; after rw, the anonymous page is
    reused by the write fault (no second copy)."""
    sc = (ScenarioBuilder("t", fs="tmpfs").file("data", "1p", "A")
          .thread("t", "m = mmap data 0 1p private rw", "store m 0 B", "mprotect m r", "store m 0 C",
                  "mprotect m rw", "store m 1 D", "load m 0 2").build())
    result = ModelExecution(sc, DESIGNS["v4.10"]).run(SequentialChooser())
    assert [str(r.outcome) for r in result.record.ops] == ["ok", "ok", "ok", "SIGSEGV", "ok", "ok", '"BD"']
    assert result.counters["fault.cow"] == 1
