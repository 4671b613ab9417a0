"""Today's kernels as designs: ``v6.1`` (the DAX VM's kernel) and ``v6.18`` (this machine's).

The fault counts below are the kernels' own, measured with the oracle (docs/fidelity.md, "Measured
in the DAX VM", and the host probe); the 4.x design differs exactly where an era-difference waiver
says it does.  Then the locks 6.1 depends on: without the invalidate_lock around the DAX fault, or
without filemap_fault's i_size re-check under the page lock, the explorer finds the stale PTE.
"""

from __future__ import annotations

import pytest

from faultlab.designs import get_design
from faultlab.designs.base import Design
from faultlab.execution import ModelExecution
from faultlab.exploring import explore_design
from faultlab.fs.dax import v6_1 as dax
from faultlab.kernel import filemap_folio
from faultlab.kernel.filemap_folio import (  # the replacement runs in filemap_folio's namespace
    VM_FAULT_LOCKED,
    VM_FAULT_SIGBUS,
    filemap_create_folio,
    find_get_page,
    lock_page,
    page_mapping,
    put_page,
    size_in_pages,
    unlock_page,
)
from faultlab.kernel.kernel import Kernel
from faultlab.kernel.mm import VmFault
from faultlab.oracle.compare import DEFAULT_DESIGNS, WAIVERS
from faultlab.scenario import ScenarioBuilder, load_scenario
from faultlab.scenario.model import Scenario
from faultlab.sched import SequentialChooser

V61, V618, V410 = get_design("v6.1"), get_design("v6.18"), get_design("v4.10")


def scenario(fs: str, files: dict[str, tuple[str, str]], *ops: str) -> Scenario:
    b = ScenarioBuilder("v6", fs=fs)
    for name, (size, fill) in files.items():
        b.file(name, size=size, fill=fill)
    return b.thread("t", *ops).build()


def faults(sc: Scenario, design: Design) -> list[str]:
    """minflt/majflt of every op but the mmaps."""
    r = ModelExecution(sc, design).run(SequentialChooser())
    assert not r.violations
    return [f"{o.minflt}/{o.majflt}" for o in r.record.ops if not o.op.startswith("m =")]


# (files, ops, the 6.1 kernel's counts, the 4.x model's, the waiver that covers the difference)
DAX_CASES = {
    "shared write-first": ({"f": ("4p", "A")}, ("m = mmap f 0 4p shared rw", "store m 1p S"),
                           ["1/0"], ["2/0"], "dax-shared-write-notify"),
    "shared store into a hole": ({"f": ("4p", "hole")}, ("m = mmap f 0 4p shared rw", "store m 1p S"),
                                 ["0/1"], ["1/1"], "dax-shared-write-notify"),
    "shared read of a hole, then store": ({"f": ("4p", "hole")},
                                          ("m = mmap f 0 4p shared rw", "load m 1p", "store m 1p S"),
                                          ["1/0", "0/1"], ["1/0", "1/1"], "dax-shared-write-notify"),
    "truncate down unmaps the whole file": ({"f": ("4p", "A")},
                                            ("m = mmap f 0 4p shared r", "load m 0", "truncate f 3p", "load m 0"),
                                            ["1/0", "0/0", "1/0"], ["1/0", "0/0", "0/0"], "dax-truncate-unmaps"),
    "truncate up unmaps the whole file": ({"f": ("4p", "A")},
                                          ("m = mmap f 0 4p private r", "load m 0", "truncate f 5p", "load m 0"),
                                          ["1/0", "0/0", "1/0"], ["1/0", "0/0", "0/0"], "dax-truncate-unmaps"),
    "a private COW copy survives truncate": ({"f": ("4p", "A")},
                                             ("m = mmap f 0 4p private rw", "store m 0 X", "truncate f 3p", "load m 0"),
                                             ["1/0", "0/0", "0/0"], ["1/0", "0/0", "0/0"], None),
    "write(2) over a zero-page hole": ({"f": ("4p", "hole")},
                                       ("m = mmap f 0 4p shared r", "load m 1p", "write f 1p W", "load m 1p"),
                                       ["1/0", "0/0", "1/0"], ["1/0", "0/0", "1/0"], None),
}  # fmt: skip


@pytest.mark.parametrize("case", DAX_CASES)
def test_v6_1_takes_the_dax_faults_the_6_1_kernel_takes(case: str) -> None:
    files, ops, kernel, model_4x, waiver = DAX_CASES[case]
    sc = scenario("dax", files, *ops)
    assert faults(sc, V61) == kernel
    assert faults(sc, V410) == model_4x
    if waiver is not None:
        assert model_4x != kernel and WAIVERS[waiver].until is not None and V410.version < WAIVERS[waiver].until
        assert not V61.version < WAIVERS[waiver].until  # claimed for v6.1


def test_a_dax_hole_is_the_zero_page_in_6_1_and_a_page_cache_page_in_4_x() -> None:
    sc = scenario("dax", {"f": ("4p", "hole")}, "m = mmap f 0 4p private r", "load m 1p")
    for design, zeroed in ((V61, 0), (V410, 1)):
        r = ModelExecution(sc, design).run(SequentialChooser())
        assert r.record.ops[1].outcome.data == b"\0"
        assert r.counters["pages_zeroed"] == zeroed, design.name


@pytest.mark.parametrize("fs, v6_18", [("ext4", "1/0"), ("tmpfs", "0/0")])
def test_v6_18_maps_nothing_around_a_fault_past_eof_on_ext4(fs: str, v6_18: str) -> None:
    """6.18's filemap_map_pages installs no page table when the first page of the window is the
    file's last and the file is not shmem: the next load faults (measured on this machine)."""
    sc = scenario(fs, {"f": ("2p", "A")}, "m = mmap f 1p 2p private r", "load m 1p", "load m 0")
    assert faults(sc, V618) == ["0/0", v6_18]
    assert faults(sc, V61) == faults(sc, V410) == ["0/0", "0/0"]


def test_the_oracle_defaults_to_the_kernels_own_design() -> None:
    assert {k: get_design(d).version for k, d in DEFAULT_DESIGNS.items()} == {
        "host-tmpfs": (6, 18), "host-ext4": (6, 18), "dax-vm": (6, 1)}


# -- the locks 6.1 depends on ------------------------------------------------------------------------------
def ext4_dax_fault_without_invalidate_lock(k: Kernel, vmf: VmFault) -> int:
    return dax.dax_iomap_pte_fault(k, vmf)


def filemap_fault_without_isize_recheck(k: Kernel, vmf: VmFault) -> int:
    """6.1's filemap_fault without "We must recheck i_size under page lock"."""
    inode = vmf.vma.file
    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):
        return VM_FAULT_SIGBUS
    while True:
        page = find_get_page(k, inode.mapping, vmf.pgoff)
        if page is None:
            inode.invalidate_lock.down_read(k)
            filemap_create_folio(k, inode, vmf.pgoff)
            inode.invalidate_lock.up_read(k)
            k.retry("filemap_fault")
            continue
        lock_page(k, page)
        if page_mapping(k, page) is inode.mapping:
            break
        unlock_page(k, page)
        put_page(k, page)
        k.retry("filemap_fault")
    vmf.page = page
    return VM_FAULT_LOCKED


@pytest.mark.parametrize("scenario_path, variant", [
    ("scenarios/seed/cow-vs-truncate.toml",
     V61.variant("v6.1-no-invalidate-lock", "experiment", "ext4_dax_huge_fault without filemap_invalidate_lock_shared",
                 {dax.ext4_dax_fault: ext4_dax_fault_without_invalidate_lock})),
    ("scenarios/races/private-store-vs-truncate-ext4.toml",
     V61.variant("v6.1-no-isize-recheck", "experiment", "filemap_fault without the i_size re-check",
                 {filemap_folio.filemap_fault: filemap_fault_without_isize_recheck})),
])  # fmt: skip
def test_without_the_lock_6_1_relies_on_the_race_is_found(scenario_path: str, variant: Design) -> None:
    sc = load_scenario(scenario_path)
    assert explore_design(sc, V61).clean
    broken = explore_design(sc, variant)
    assert [c.id for c in broken.counterexamples] == ["stale-pte-after-truncate"]
