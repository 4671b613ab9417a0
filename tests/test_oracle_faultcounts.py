"""Fault counts, model vs the kernel's own numbers (issue 4).

Each test runs one scenario sequentially on the model and on a real kernel (host tmpfs, host ext4,
or the DAX VM) and asserts that every observable the model claims (docs/fidelity.md; the data is
``faultlab.oracle.compare``) is equal: outcomes, minor and major faults per op, final files. The
assertions never hard-code a fault count: the kernel provides the numbers. A few sanity checks
only make sure the scenario exercises what its name says (fault-around happened, and so on).

Host tests skip when no C compiler can build the probe; the DAX tests (marked ``vm``) run in one
VM boot and skip when the VM cannot be obtained.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest

from faultlab.designs import get_design
from faultlab.execution import ModelExecution
from faultlab.oracle.build import build_probe
from faultlab.oracle.compare import (
    DEFAULT_DESIGNS,
    Comparison,
    claims_for,
    compare,
    describe_differences,
    run_kernel,
    run_model,
    run_oracle,
)
from faultlab.oracle.errors import CompilerNotFoundError, ProbeBuildError
from faultlab.results import RunRecord
from faultlab.scenario import ScenarioBuilder
from faultlab.scenario.model import Outcome, Scenario
from faultlab.sched import SequentialChooser

P = 4096
PAGE_CACHE = ["tmpfs", "ext4"]


@pytest.fixture(scope="module", autouse=True)
def probe() -> None:
    try:
        build_probe()
    except CompilerNotFoundError as exc:
        pytest.skip(str(exc))


def scenario(fs: str, title: str, files: dict[str, tuple[str | int, str | None]], *ops: str) -> Scenario:
    b = ScenarioBuilder(title, fs=fs)
    for name, (size, fill) in files.items():
        b.file(name, size=size, fill=fill)
    return b.thread("t", *ops).build()


def oracle(fs: str, title: str, files: dict[str, tuple[str | int, str | None]], *ops: str,
           design: str | None = None) -> Comparison:
    """The scenario on the kernel of its fs, against ``design`` (default: that kernel's design)."""
    [(_, c)] = run_oracle([scenario(fs, title, files, *ops)], design=design)
    return c


def assert_agrees(c: Comparison, *, faults_claimed: Iterable[int] | None = None) -> None:
    """Every claimed observable is equal, and no waiver withdrew the fault counts of the ops this
    test is about: those at the indices ``faults_claimed`` (default: every op)."""
    assert c.ok, describe_differences(c)
    wanted = set(range(len(c.rows)) if faults_claimed is None else faults_claimed)
    unclaimed = [
        r.op for r in c.rows if r.index in wanted and not {"minflt", "majflt"} <= r.claim.observables
    ]
    assert not unclaimed, f"fault counts not claimed for {unclaimed}"


def kernel_faults(c: Comparison) -> list[int]:
    return [r.kernel.minflt + r.kernel.majflt for r in c.rows if r.kernel is not None]


def loads(first: int, count: int) -> list[str]:
    return [f"load m {i}p" for i in range(first, first + count)]


# -- page cache: tmpfs and ext4 ------------------------------------------------------------------------


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_private_write_first(fs: str) -> None:
    c = oracle(fs, "private write-first", {"f": ("8p", "A")},
               "m = mmap f 0 8p private rw",
               "store m 0 X",
               "store m 1p Y",  # write faults never fault-around
               "load m 0 2",
               "load m 2p")  # fmt: skip
    assert_agrees(c)
    assert kernel_faults(c)[1] > 0 and kernel_faults(c)[2] > 0
    assert c.files[0].kernel is not None and c.files[0].kernel.contents == b"A" * 8 * P


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_private_read_then_write(fs: str) -> None:
    c = oracle(fs, "private read then write", {"f": ("8p", "A")},
               "m = mmap f 0 8p private rw",
               "load m 3p",
               "store m 3p Z",
               "load m 4p")  # fmt: skip
    assert_agrees(c)
    assert kernel_faults(c)[1] > 0 and kernel_faults(c)[2] > 0


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_shared_write_first(fs: str) -> None:
    c = oracle(fs, "shared write-first", {"f": ("8p", "A")},
               "m = mmap f 0 8p shared rw",
               "store m 1p+5 S",
               "store m 2p T",
               "load m 1p+4 3")  # fmt: skip
    assert_agrees(c)
    assert kernel_faults(c)[1] > 0
    assert c.rows[3].kernel is not None and c.rows[3].kernel.outcome == Outcome.of_data(b"ASA")


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_fault_around_window_of_a_mapping_at_file_offset_5_pages(fs: str) -> None:
    """The 16-page window is aligned on the virtual address, not the file offset, and clipped to
    the VMA (40 pages here)."""
    c = oracle(fs, "fault-around from file page 5", {"f": ("64p", "A")},
               "m = mmap f 5p 40p private r", *loads(0, 40))  # fmt: skip
    assert_agrees(c)
    assert 0 < sum(kernel_faults(c)) < 40  # fault-around mapped neighbours


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_fault_around_64_page_sequential_read(fs: str) -> None:
    c = oracle(
        fs, "64-page sequential read", {"f": ("64p", "A")}, "m = mmap f 0 64p private r", *loads(0, 64)
    )
    assert_agrees(c)
    assert 0 < sum(kernel_faults(c)) < 64


def test_fault_around_maps_cached_pages_only_tmpfs() -> None:
    """A hole file with only page 3 in the cache: the first fault maps page 3 around it, not the
    holes; each hole page then faults on its own."""
    c = oracle("tmpfs", "fault-around skips uncached pages", {"f": ("8p", "hole")},
               "write f 3p Q",
               "m = mmap f 0 8p shared r",
               "load m 0",
               "load m 3p",
               "load m 1p",
               "load m 2p")  # fmt: skip
    assert_agrees(c)
    assert kernel_faults(c)[3] == 0 < kernel_faults(c)[4]


def test_fault_around_maps_cached_pages_only_ext4() -> None:
    """Pages 4-7 leave the cache with a truncate down and up; a fault on page 0 maps 0-3 only."""
    c = oracle("ext4", "fault-around skips uncached pages", {"f": ("8p", "A")},
               "truncate f 4p",
               "truncate f 8p",
               "m = mmap f 0 8p private r",
               "load m 0",
               "load m 3p",
               "load m 2p")  # fmt: skip
    assert_agrees(c)
    assert kernel_faults(c)[4] == 0


def shared_neighbour_store(fs: str) -> Comparison:
    return oracle(fs, "store to a page mapped by fault-around", {"f": ("8p", "A")},
                  "m = mmap f 0 8p shared rw",
                  "load m 0",
                  "store m 2p N",  # mapped by the fault-around of the load
                  "store m 0 W")  # fmt: skip


def test_fault_around_pages_of_a_shared_mapping_writable_on_tmpfs_read_only_on_ext4() -> None:
    tmpfs, ext4 = shared_neighbour_store("tmpfs"), shared_neighbour_store("ext4")
    assert_agrees(tmpfs)
    assert_agrees(ext4)
    # the case is exercised: ext4's stores take a (page_mkwrite) fault that tmpfs' do not
    assert kernel_faults(tmpfs)[2] < kernel_faults(ext4)[2]
    assert kernel_faults(tmpfs)[3] < kernel_faults(ext4)[3]


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_truncate_cow_page_beyond_eof_sigbus_then_zeros(fs: str) -> None:
    c = oracle(fs, "truncate zaps a private COW page beyond the new EOF", {"f": ("2p", "A")},
               "m = mmap f 0 2p private rw",
               "store m 1p B",
               "load m 1p",
               "truncate f 1p",
               "load m 1p",
               "truncate f 2p",
               "load m 1p",
               "read f 0 2")  # fmt: skip
    # ext4: page 1 left the cache with the truncate, so readahead waives the counts after it
    assert_agrees(c, faults_claimed=range(6) if fs == "ext4" else None)
    kernel = [r.kernel.outcome for r in c.rows if r.kernel is not None]
    assert kernel[4] == Outcome.signal("SIGBUS") and kernel[6] == Outcome.of_data(b"\0")


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_partial_truncate_bytes_past_eof_read_as_zero(fs: str) -> None:
    c = oracle(fs, "partial truncate of a mapped page", {"f": ("2p", "A")},
               "m = mmap f 0 2p shared rw",
               "load m 1p",
               "truncate f 1p+100",
               "load m 1p+100 100",
               "load m 1p+99 1")  # fmt: skip
    assert_agrees(c)


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_bytes_past_eof_in_the_last_page_of_a_written_file_read_as_zero(fs: str) -> None:
    """A file of 4196 bytes written with write(): bytes 4196..8191 of its mapping read as zero."""
    c = oracle(fs, "bytes past EOF in the last page", {"f": ("1p+100", "A")},
               "m = mmap f 0 2p shared r",
               "load m 1p+100 100",
               "load m 1p 100")  # fmt: skip
    assert_agrees(c)


def test_fault_past_eof_faults_around_a_single_cached_page_below_eof_on_tmpfs() -> None:
    c = oracle("tmpfs", "SIGBUS fault, then the page before EOF", {"f": ("2p", "A")},
               "m = mmap f 1p 2p private r",
               "load m 1p",  # file page 2: past EOF, SIGBUS; the window is file pages 1-2
               "load m 0")  # fmt: skip
    assert_agrees(c)


FAULT_PAST_EOF = ("ext4", "SIGBUS fault, then the page before EOF", {"f": ("2p", "A")},
                  "m = mmap f 1p 2p private r", "load m 1p", "load m 0")


def test_ext4_fault_past_eof_maps_nothing_around_in_6_18() -> None:
    """Linux 6.18 maps nothing around this fault on ext4 (no PTEs beyond i_size), so the next load
    faults: v6.18, the host's default design, agrees with every count claimed."""
    c = oracle(*FAULT_PAST_EOF)
    assert c.design == "v6.18"
    assert_agrees(c)
    assert c.rows[2].kernel is not None and c.rows[2].kernel.minflt == 1


def test_ext4_fault_past_eof_is_an_era_difference_for_the_4x_designs() -> None:
    """The 4.x model maps the cached page below EOF around that fault (the waiver
    ext4-fault-past-eof): the counts are not claimed for v4.10, the outcomes still are."""
    c = oracle(*FAULT_PAST_EOF, design="v4.10")
    assert c.ok
    last = c.rows[2]
    assert last.kernel is not None and last.model is not None
    assert "ext4-fault-past-eof" in last.claim.waived
    assert (last.kernel.minflt, last.model.minflt) == (1, 0)  # the kernel's fault the model does not take
    assert last.kernel.outcome == last.model.outcome == Outcome.of_data(b"A")


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_fault_past_eof_faults_around_the_cached_pages_below_eof(fs: str) -> None:
    c = oracle(fs, "SIGBUS fault, then the pages before EOF", {"f": ("3p", "A")},
               "m = mmap f 1p 3p private r",
               "load m 2p",  # file page 3: past EOF; the window is file pages 1-3
               "load m 0",
               "load m 1p")  # fmt: skip
    assert_agrees(c)
    assert c.rows[1].kernel is not None and c.rows[1].kernel.outcome == Outcome.signal("SIGBUS")


# -- DAX, in one VM boot ----------------------------------------------------------------------------------

DAX_SCENARIOS: dict[str, tuple[dict[str, tuple[str | int, str | None]], tuple[str, ...]]] = {
    "no-fault-around": ({"f": ("64p", "A")}, ("m = mmap f 0 64p private r", *loads(0, 64))),
    "shared-store-hole": ({"f": ("4p", "hole")},
                          ("m = mmap f 0 4p shared rw", "store m 1p S", "load m 1p", "read f 1p 1")),
    "private-store-hole": ({"f": ("4p", "hole")},
                           ("m = mmap f 0 4p private rw", "store m 1p P", "load m 1p", "read f 1p 1")),
    "shared-write-first": ({"f": ("4p", "A")}, ("m = mmap f 0 4p shared rw", "store m 1p S", "load m 1p")),
    "shared-read-then-write": ({"f": ("4p", "A")},
                               ("m = mmap f 0 4p shared rw", "load m 1p", "store m 1p S")),
    "truncate-unmaps": ({"f": ("4p", "A")},
                        ("m = mmap f 0 4p shared r", "load m 0", "truncate f 3p", "load m 0")),
}  # fmt: skip


@pytest.fixture(scope="module")
def dax_kernel() -> list[tuple[Scenario, RunRecord, tuple[str, ...]]]:
    """The DAX scenarios in one boot of the VM: each one's kernel record and notes."""
    from faultlab.oracle.vm import VmUnavailableError

    scenarios = [scenario("dax", name, files, *ops) for name, (files, ops) in DAX_SCENARIOS.items()]
    try:
        build_probe(static=True)
        records = run_kernel(scenarios, "dax-vm")
    except (VmUnavailableError, CompilerNotFoundError) as e:
        pytest.skip(f"DAX VM unavailable: {e}")
    except ProbeBuildError as e:
        pytest.skip(f"cannot build the static probe for the VM: {e}")
    return [(s, rec, notes) for s, (rec, notes) in zip(scenarios, records, strict=True)]


def _against(runs: list[tuple[Scenario, RunRecord, tuple[str, ...]]], name: str) -> dict[str, Comparison]:
    design = get_design(name)
    out = {}
    for sc, kernel, notes in runs:
        model, error = run_model(sc, design)
        c = compare(model, kernel, claims_for(sc, "dax-vm", design.version), design=design.name)
        out[sc.title] = replace(c, notes=notes, model_error=error)
    return out


@pytest.fixture(scope="module")
def dax(dax_kernel: list[tuple[Scenario, RunRecord, tuple[str, ...]]]) -> dict[str, Comparison]:
    """The DAX scenarios against the VM's own design, v6.1."""
    return _against(dax_kernel, DEFAULT_DESIGNS["dax-vm"])


@pytest.fixture(scope="module")
def dax_4x(dax_kernel: list[tuple[Scenario, RunRecord, tuple[str, ...]]]) -> dict[str, Comparison]:
    """The same kernel runs against v4.10: the era differences the waivers describe."""
    return _against(dax_kernel, "v4.10")


def model_counter(name: str, counter: str) -> int:
    files, ops = DAX_SCENARIOS[name]
    result = ModelExecution(scenario("dax", name, files, *ops), get_design("v6.1")).run(SequentialChooser())
    return result.counters[counter]


@pytest.mark.vm
def test_dax_reported_active_in_every_job(dax: dict[str, Comparison]) -> None:
    assert all("DAX active (statx STATX_ATTR_DAX)" in c.notes for c in dax.values())


@pytest.mark.vm
def test_dax_has_no_fault_around(dax: dict[str, Comparison]) -> None:
    c = dax["no-fault-around"]
    assert_agrees(c)
    assert kernel_faults(c)[1:] == [1] * 64  # the case is exercised: one fault per page


@pytest.mark.vm
def test_dax_shared_store_into_a_hole_is_a_major_fault_that_allocates(dax: dict[str, Comparison]) -> None:
    c = dax["shared-store-hole"]
    assert_agrees(c, faults_claimed=())
    store = c.rows[1]
    assert "majflt" in store.claim.observables and store.kernel is not None and store.kernel.majflt > 0
    kernel_file = c.files[0].kernel
    assert kernel_file is not None and kernel_file.contents is not None
    assert kernel_file.contents[P : P + 1] == b"S"
    assert model_counter("shared-store-hole", "blocks_allocated") == 1


@pytest.mark.vm
def test_dax_private_store_into_a_hole_allocates_nothing(dax: dict[str, Comparison]) -> None:
    c = dax["private-store-hole"]
    assert_agrees(c)
    store = c.rows[1]
    assert store.kernel is not None and store.kernel.majflt == 0  # no block allocated
    assert c.files[0].kernel is not None and c.files[0].kernel.contents == bytes(4 * P)
    assert model_counter("private-store-hole", "blocks_allocated") == 0


@pytest.mark.vm
def test_dax_v6_1_agrees_on_the_era_differences(dax: dict[str, Comparison]) -> None:
    """v6.1 maps a shared write writable at once and unmaps the whole file on truncate, as the VM's
    kernel does: every fault count is claimed and equal."""
    assert {c.design for c in dax.values()} == {"v6.1"}
    for name in ("shared-write-first", "shared-read-then-write", "truncate-unmaps"):
        assert_agrees(dax[name])


@pytest.mark.vm
def test_dax_shared_write_fault_costs_the_4x_model_one_more_minor_fault(dax_4x: dict[str, Comparison]) -> None:
    """Era difference (waiver dax-shared-write-notify): 4.x maps the pfn read-only first, then takes
    a write-protect fault; 6.1 maps it writable at once. Once mapped read-only, both take one."""
    dax = dax_4x
    first = dax["shared-write-first"]
    assert_agrees(first, faults_claimed=())
    store = first.rows[1]
    assert "dax-shared-write-notify" in store.claim.waived
    assert store.model is not None and store.kernel is not None
    assert (store.model.minflt, store.model.majflt) == (store.kernel.minflt + 1, store.kernel.majflt)
    after_read = dax["shared-read-then-write"].rows[2]
    assert after_read.model is not None and after_read.kernel is not None
    assert after_read.model.minflt == after_read.kernel.minflt


@pytest.mark.vm
def test_dax_truncate_unmaps_every_page_in_6_1(dax_4x: dict[str, Comparison]) -> None:
    """Era difference (waiver dax-truncate-unmaps): 6.1 unmaps the whole file on truncate
    (dax_layout_busy_page), 4.x only past the new EOF, so the reload refaults only in 6.1."""
    c = dax_4x["truncate-unmaps"]
    assert_agrees(c, faults_claimed=())
    reload = c.rows[3]
    assert "dax-truncate-unmaps" in reload.claim.waived
    assert reload.model is not None and reload.kernel is not None
    assert reload.model.minflt + 1 == reload.kernel.minflt
