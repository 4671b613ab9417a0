"""fork: the op and its bad-input errors, the child's copy of its parent's mm in each era, and the
fork race scenarios (explored clean, and a design that breaks copy-on-write or dup_mmap's order is
caught)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from faultlab.cli import main
from faultlab.designs import DESIGNS, get_design
from faultlab.execution import ModelExecution
from faultlab.exploring import explore_design
from faultlab.kernel import fork
from faultlab.kernel.eras import v6_1
from faultlab.kernel.eras.v6_1 import (  # the replacement runs in eras/v6_1's namespace: its names
    PageAnon,
    get_page,
    pte_unmap_unlock,
    vm_normal_page,
    wp_page_copy,
    wp_page_reuse,
    wp_page_shared,
    wp_pfn_shared,
)
from faultlab.kernel.fork import Vma, era, i_mmap_lock_write, i_mmap_unlock_write
from faultlab.oracle.concurrent import model_outcomes
from faultlab.scenario import ScenarioBuilder, load_scenario
from faultlab.scenario.model import Scenario
from faultlab.sched import SequentialChooser

RACES = "scenarios/races"
HEAD = 'title = "t"\nfs = "tmpfs"\n[files.f]\nsize = "1p"\n'


def threads(**ops: list[str]) -> str:
    return "".join(f"[threads.{name}]\nops = [{', '.join(repr(o).replace(chr(39), chr(34)) for o in lines)}]\n"
                   for name, lines in ops.items())


BAD_FORKS = [
    ("no child", HEAD + threads(a=["fork"]), 6, "fork takes CHILD (1 argument), got 0"),
    ("two children", HEAD + threads(a=["fork b c"], b=[]), 6, "fork takes CHILD (1 argument), got 2"),
    ("bad name", HEAD + threads(a=["fork 9b"], b=[]), 6, "bad thread name '9b'"),
    ("unknown child", HEAD + threads(a=["fork zz"], b=[]), 6, "unknown thread 'zz' to fork"),
    ("itself", HEAD + threads(a=["fork a"]), 6, "thread 'a' cannot fork itself"),
    ("in setup", HEAD + '[setup]\nops = ["fork a"]\n' + threads(a=[]), 6, "fork in [setup]"),
    ("twice", HEAD + threads(a=["fork b", "fork b"], b=[]), 6, "thread 'b' is forked twice"),
    ("from a child", HEAD + threads(a=["fork b"], b=["fork c"], c=[]), 8, "thread 'b' is a forked child"),
    ("a signal", HEAD + threads(a=["fork b -> SIGBUS"], b=[]), 6, "fork cannot raise SIGBUS"),
    ("assigned", HEAD + threads(a=["x = fork b"], b=[]), 6, "only mmap assigns a variable"),
    ("a map made after the fork", HEAD + threads(a=["fork b", "m = mmap f 0 1p shared r"], b=["load m 0"]), 8,
     "unknown map 'm': no earlier 'm = mmap ...' in thread 'b' (a forked child has the maps its parent 'a'"),
    ("a child's map elsewhere", HEAD + threads(a=["fork b"], b=["m = mmap f 0 1p shared r"], c=["load m 0"]), 10,
     "(a forked child is a process of its own"),
    ("setup maps per-thread", 'mm = "per-thread"\n' + HEAD + '[setup]\nops = ["m = mmap f 0 1p shared r"]\n'
     + threads(a=["fork b"], b=["load m 0"]), 11, "unknown map 'm'"),
]


@pytest.mark.parametrize(("text", "line", "words"), [c[1:] for c in BAD_FORKS], ids=[c[0] for c in BAD_FORKS])
def test_bad_fork_is_a_one_line_error(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    res = CliRunner().invoke(main, ["run", str(path)])
    assert res.exit_code == 2, res.output
    assert res.stdout == "" and "Traceback" not in res.stderr
    assert res.stderr.splitlines() == [res.stderr.strip()]
    assert res.stderr.startswith(f"faultlab: {path}:{line}: ") and words in res.stderr, res.stderr


def run(sc: Scenario, design: str) -> tuple[list[str], Any]:
    result = ModelExecution(sc, DESIGNS[design]).run(SequentialChooser())
    assert result.violations == [], result.violations
    return [str(r.outcome) for r in result.record.ops], result


@pytest.mark.parametrize("design", ["v4.10", "v6.1"])
def test_private_pages_are_shared_copy_on_write(design: str) -> None:
    """After the fork the parent's COW page is mapped twice: the parent's store copies it (4.10:
    mapcount 2; 6.1: refcount 2, not exclusive), the child's then reuses what is left, and the
    child's mm is torn down at its end (no page leaks: the refcount check is clean)."""
    sc = load_scenario(f"{RACES}/fork-cow-both-store-tmpfs.toml")
    outcomes, result = run(sc, design)
    assert outcomes == ["ok", "ok", "ok", "ok", '"PQ"', '"PA"', "ok", '"PC"', '"AA"']
    assert (result.counters["fault.wp-copy"], result.counters["fault.wp-reuse"]) == (1, 1)


@pytest.mark.parametrize(("fs", "child_faults"), [("tmpfs", 1), ("dax", 0)])
def test_a_shared_mapping_is_refaulted_unless_it_is_dax(fs: str, child_faults: int) -> None:
    """copy_page_range() skips a shared page-cache VMA (no anon_vma: the child refaults) but copies
    a VM_MIXEDMAP one (DAX); either way the child sees the parent's store, and its own reaches the
    file."""
    sc = (ScenarioBuilder("t", fs=fs).file("f", "1p", "A")
          .thread("p", "m = mmap f 0 1p shared rw", "store m 0 X", "fork c")
          .thread("c", "load m 0", "store m 1 Y", "read f 0 2").build())
    result = ModelExecution(sc, DESIGNS["v4.10"]).run(SequentialChooser())
    assert result.violations == []
    assert [str(r.outcome) for r in result.record.ops][3:] == ['"X"', "ok", '"XY"']
    assert result.record.ops[3].minflt == child_faults


def test_the_child_of_a_per_thread_process_keeps_an_unmapped_variable_unmapped() -> None:
    sc = (ScenarioBuilder("t", fs="tmpfs", mm="per-thread").file("f", "1p", "A")
          .thread("p", "m = mmap f 0 1p private rw", "n = mmap f 0 1p private r", "munmap n", "fork c")
          .thread("c", "load m 0", "load n 0", "munmap n").build())
    outcomes, _ = run(sc, "v4.10")
    assert outcomes[4:] == ['"A"', "SIGSEGV", "ok"]


def test_the_writer_and_the_child_each_see_their_own_page() -> None:
    """fork-vs-private-write-fault: the child's load of page 1 sees the writer's COW fault or not
    (fork's mmap_sem orders them), nothing in between."""
    model = model_outcomes(load_scenario(f"{RACES}/fork-vs-private-write-fault.toml"), DESIGNS["v6.1"])
    assert model.complete and not model.violations
    child_load = {o.ops[i][2] for o in model.outcomes for i, op in enumerate(o.ops)
                  if op[0] == "child" and op[1] == "load m 1p"}
    assert child_load == {'"A"', '"W"'}


@pytest.mark.parametrize(("name", "design"), [
    ("fork-cow-both-store-tmpfs", "v6.1"),
    ("fork-cow-both-store-dax", "v4.7"),
    ("fork-vs-private-write-fault", "v4.10"),
])
def test_fork_races_explore_clean(name: str, design: str) -> None:
    verdict = explore_design(load_scenario(f"{RACES}/{name}.toml"), get_design(design))
    assert verdict.clean and verdict.result.complete, (name, verdict.result.summary())


def test_fork_vs_truncate_at_preemption_bound_1() -> None:
    """The full search is some 8,000 schedules per design (docs/designs.md)."""
    verdict = explore_design(load_scenario(f"{RACES}/fork-vs-truncate.toml"), get_design("v4.10"), bound=1)
    assert verdict.clean and verdict.result.stop_reason == "exhausted", verdict.result.summary()


def do_wp_page_reusing_every_anon_page(k: Any, vmf: Any) -> int:
    """6.1's do_wp_page without the PageAnonExclusive and refcount tests: a page fork shares is
    written in place, under the other process's feet."""
    vma = vmf.vma
    page = vm_normal_page(vma, vmf.orig_pte)
    if vma.shared:
        return wp_pfn_shared(k, vmf) if page is None else wp_page_shared(k, vmf, page)
    if page is not None and PageAnon(k, page):
        return wp_page_reuse(k, vmf, page, page_mkwrite=False, dirty_shared=False)
    if page is not None:
        get_page(k, page)
    pte_unmap_unlock(k, vmf)
    return wp_page_copy(k, vmf, page)


def test_reusing_a_page_fork_shares_is_caught() -> None:
    design = get_design("v6.1").variant("v6.1-reuse-shared-anon", "do_wp_page reuses any anonymous page",
                                        "a test", {v6_1.do_wp_page: do_wp_page_reusing_every_anon_page})
    verdict = explore_design(load_scenario(f"{RACES}/fork-vs-private-write-fault.toml"), design)
    assert verdict.violation_ids == ["expected-outcome", "coherence"]
    assert "writer: 'load m 0 2' gave \"CS\", expected \"XS\"" in verdict.counterexamples[0].message


def dup_mmap_copying_before_linking(k: Any, mm: Any, oldmm: Any) -> dict[Any, Any]:
    """dup_mmap() that copies the page table before it links the child's VMA into i_mmap: a
    truncate in between zaps the parent's entries and never sees the child's."""
    oldmm.mmap_sem.down_write(k)
    mm.mmap_sem.down_write(k)
    copies = {}
    for mpnt in oldmm.vmas(k):
        tmp = Vma(mm, mpnt.start, mpnt.end, mpnt.pgoff, mpnt.file, mpnt.flags, mpnt.vm_ops)
        object.__setattr__(tmp, "anon_vma", mpnt.anon_vma)
        mm.set_vmas(k, (*mm.vmas(k), tmp), "__vma_link_rb")
        copies[mpnt] = tmp
        era.copy_page_range(k, tmp, mpnt)
        i_mmap_lock_write(k, mpnt.file.mapping)
        mpnt.file.mapping.vma_link(k, tmp)
        i_mmap_unlock_write(k, mpnt.file.mapping)
    mm.mmap_sem.up_write(k)
    oldmm.mmap_sem.up_write(k)
    return copies


def test_a_fork_that_copies_before_linking_leaves_a_pte_past_eof() -> None:
    design = get_design("v4.10").variant("v4.10-copy-then-link", "dup_mmap links the child's VMA last",
                                         "a test", {fork.dup_mmap: dup_mmap_copying_before_linking})
    verdict = explore_design(load_scenario(f"{RACES}/fork-vs-truncate.toml"), design, bound=1)
    assert verdict.violation_ids == ["stale-pte-after-truncate", "coherence"]  # the child loads B past EOF
    assert "page 1 of f, EOF at 4096) still maps" in verdict.counterexamples[0].message
