"""Audit mode: shared state reached outside an announced access fails at once, naming the function
and the object (docs/architecture.md, "Shared state announces itself").

Each test puts back one of the unannounced accesses the model once had, as a design variant, and
checks that the audit stops the run there.  The whole test suite runs audited (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import faultlab.execution
from faultlab.cli import main
from faultlab.designs import get_design
from faultlab.designs.base import Design
from faultlab.execution import ModelExecution
from faultlab.kernel import memory, syscalls, truncate
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.mm import Vma
from faultlab.kernel.state.pagecache import AddressSpace
from faultlab.scenario import ScenarioBuilder, load_scenario
from faultlab.sched import SequentialChooser
from faultlab.sched.core import AuditError

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "scenarios/seed/cow-vs-truncate.toml")


def run_audited(design: Design, scenario: str = SEED) -> None:
    ModelExecution(load_scenario(scenario), design, audit=True).run(SequentialChooser())


def test_the_suite_runs_audited() -> None:
    assert faultlab.execution.AUDIT


def test_a_zap_that_lists_ptes_before_taking_the_lock_is_caught() -> None:
    original = memory.zap_pte_range

    def zap_pte_range(k: Kernel, vma: Vma, start: int, end: int, check_mapping: AddressSpace | None) -> None:
        listed = sorted(a for a in vma.mm.pt.ptes if start <= a < end)  # no lock, nothing announced
        del listed
        original(k, vma, start, end, check_mapping)

    bad = get_design("v4.0").variant("zap-lists-early", "", "", {memory.zap_pte_range: zap_pte_range})
    with pytest.raises(AuditError, match=r"zap_pte_range\(\) .* reads mm page table \(mm\.ptes\)"):
        run_audited(bad)


def test_a_truncate_that_walks_the_tree_without_a_scheduling_point_is_caught() -> None:
    original = truncate.truncate_inode_pages_range

    def truncate_inode_pages_range(k: Kernel, mapping: AddressSpace, lstart: int) -> None:
        walked = [i for i in mapping.pages if i >= lstart >> 12]  # the old walk: no scheduling point
        del walked
        original(k, mapping, lstart)

    bad = get_design("v4.10").variant("walk-unannounced", "", "", {
        truncate.truncate_inode_pages_range: truncate_inode_pages_range})
    scenario = (ScenarioBuilder("a cached page, then truncate", fs="tmpfs").file("f", size="2p", fill="A")
                .thread("t", "m = mmap f 0 2p shared r", "load m 1p", "truncate f 1p").build())
    with pytest.raises(AuditError, match=r"truncate_inode_pages_range\(\) .* reads f page cache \(f\.i_pages\)"):
        ModelExecution(scenario, bad, audit=True).run(SequentialChooser())


def test_a_cpu_access_that_reads_the_pte_before_announcing_is_caught() -> None:
    original = syscalls._access_once

    def _access_once(k: Kernel, vma: Vma, page_addr: int, off: int, n: int, data: bytes | None) -> bytes | None:
        peek = vma.mm.pt.ptes.get(page_addr)  # looked at before the access is announced
        del peek
        return original(k, vma, page_addr, off, n, data)

    bad = get_design("v4.0").variant("cpu-peeks", "", "", {syscalls._access_once: _access_once})
    with pytest.raises(AuditError, match=r"_access_once\(\) .* reads mm page table\[0x40001000\]"):
        run_audited(bad)


def test_a_page_field_read_outside_its_step_is_caught() -> None:
    from faultlab.kernel.eras import v4_0

    original = v4_0.release_fault_page

    def release_fault_page(k: Kernel, vmf: object) -> None:
        page = getattr(vmf, "cow_page", None)
        if page is not None:
            assert page._count >= 0  # a refcount read with no announcement
        original(k, vmf)  # type: ignore[arg-type]

    bad = get_design("v4.0").variant("reads-refcount", "", "", {v4_0.release_fault_page: release_fault_page})
    with pytest.raises(AuditError, match=r"release_fault_page\(\) .* reads page#t0\.1\(anon\)\.count"):
        run_audited(bad)


def test_the_unchanged_designs_pass_the_audit_sequentially() -> None:
    for name in ("xip", "v7", "v7-insert", "v4.0", "v4.7", "v4.10"):
        run_audited(get_design(name))


def test_run_and_explore_audit_a_design_file_and_report_a_failure_in_one_line(tmp_path: Path) -> None:
    design = tmp_path / "peeks.py"
    design.write_text(
        "from faultlab.designs.v4_0 import DESIGN as V40\n"
        "from faultlab.kernel import syscalls\n"
        "original = syscalls._access_once\n"
        "def _access_once(k, vma, page_addr, off, n, data):\n"
        "    vma.mm.pt.ptes.get(page_addr)\n"
        "    return original(k, vma, page_addr, off, n, data)\n"
        "DESIGN = V40.variant('peeks', 'peeks at the PTE', 'a test', {syscalls._access_once: _access_once})\n")
    try:
        for cmd in (["run", SEED], ["explore", SEED, "--quiet"], ["explore", SEED, "--quiet", "--jobs", "2"]):
            for flags in ([], ["--audit"]):  # a design file's code is audited with or without --audit
                faultlab.execution.AUDIT = False
                res = CliRunner().invoke(main, [*cmd, "--design", str(design), *flags])
                assert res.exit_code == 1, res.output
                lines = res.output.strip().splitlines()
                assert lines[-1].startswith(f"faultlab: audit: _access_once() ({design}:5) reads mm page table"), \
                    res.output
                assert "Traceback" not in res.output
    finally:
        faultlab.execution.AUDIT = True


def test_only_designs_with_code_from_outside_faultlab_are_audited_without_the_flag() -> None:
    from faultlab.designs import ALL_DESIGNS
    from faultlab.kernel.eras import v4_0

    for design in ALL_DESIGNS.values():  # the shipped designs and known bugs: audited by the test suite
        assert design.user_code == [], design.name

    def release_fault_page(k: Kernel, vmf: object) -> None:
        v4_0.release_fault_page(k, vmf)  # type: ignore[arg-type]

    mine = get_design("v4.0").variant("mine", "", "", {v4_0.release_fault_page: release_fault_page})
    assert mine.user_code == [__name__]
    try:
        faultlab.execution.AUDIT = False
        scenario = load_scenario(SEED)
        assert ModelExecution(scenario, mine).audit
        assert not ModelExecution(scenario, get_design("v4.0")).audit
        assert not ModelExecution(scenario, mine, audit=False).audit  # an explicit choice stands
    finally:
        faultlab.execution.AUDIT = True


def test_a_lock_model_that_says_it_holds_a_lock_it_does_not_guard_is_caught() -> None:
    # DPOR reverses a lock's races at its acquire, counting on Scheduler.took(): while a thread
    # holds the lock, no other thread's blocking step on it can move.  A lock whose readiness
    # ignores its holder breaks that, and the audit stops the run at the first scheduling point
    # where it shows.
    from faultlab.sched.core import Access, Scheduler

    lock = ("lock", "L")
    sched = Scheduler(_Alternate(), audit=True)  # type: ignore[arg-type]

    def body() -> None:
        sched.point(lock, Access.WRITE, "lock L", ready=lambda: True)  # never waits: wrong
        sched.took(lock)
        sched.point(("var", "x"), Access.WRITE, "write x")
        sched.point(lock, Access.WRITE, "unlock L")
        sched.dropped(lock)

    sched.spawn("a", body)
    sched.spawn("b", body)
    with pytest.raises(AuditError, match=r"b's blocking step 'lock L' .* can move while a holds it"):
        sched.run()


class _Alternate:
    """Thread a twice (its start and its acquire), then b as long as it can move."""

    def __init__(self) -> None:
        self.n = 0

    def choose(self, sched: object, ready: list) -> object:  # type: ignore[type-arg]
        self.n += 1
        return ready[0] if self.n <= 2 or len(ready) == 1 else ready[-1]


def test_a_dax_entry_unlocked_without_tree_lock_is_caught() -> None:
    """A DAX entry look-up announces the entry's wait queue only if it will wait there, by the
    entry's lock bit as the look-up is announced: sound because the bit changes only under
    tree_lock, which the look-up holds.  An unlock that does not take tree_lock breaks that, and
    the look-up that finds the bit changed stops the run."""
    from faultlab.explore.explorer import explore
    from faultlab.fs.dax import v4_7
    from faultlab.kernel.state.cell import WRITE

    def dax_unlock_mapping_entry(k: Kernel, mapping: AddressSpace, index: int) -> None:
        lk = v4_7.entry_lock(mapping, index)
        mapping.modify(k, index, v4_7._unlocked, "unlock_slot", more=((lk, WRITE),))  # no tree_lock
        lk.drop(k)  # type: ignore[attr-defined]
        v4_7.dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=False)

    bad = get_design("v4.7").variant("unlock-without-tree-lock", "", "",
                                     {v4_7.dax_unlock_mapping_entry: dax_unlock_mapping_entry})
    scenario = load_scenario(str(ROOT / "scenarios/races/hole-double-zero.toml"))
    with pytest.raises(AuditError, match="changed without tree_lock held"):
        explore(lambda: ModelExecution(scenario, bad), "dpor", stop_on_first=False, minimise=False,
                max_schedules=3000)
