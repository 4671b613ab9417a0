"""The model against the semantic rules of docs/rules.md (R1-R16), one group per rule.

Each test runs a small scenario sequentially on the model and asserts what Linux does: values,
signals, file contents and fault counts.  Page-cache rules run on tmpfs and ext4 with the counts
measured on this machine's kernel (docs/fidelity.md, "Measured on this machine with the probe").
DAX rules run under the designs that reached Linux (v4.0, v4.7, v4.10); where the 4.x kernels
these designs model differ from the 6.x kernel measured under qemu, the test says why.

Rules not here: R7 (truncate vs fault atomicity) needs the explorer, R15 (MAP_SYNC) and R17 (PMD
faults) are not modelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from faultlab.designs import get_design
from faultlab.execution import ModelExecution, ModelRunResult
from faultlab.explore.replay import ReplayChooser
from faultlab.scenario import Outcome, ScenarioBuilder
from faultlab.sched import Chooser, SequentialChooser

P = 4096
PAGE_CACHE = ["tmpfs", "ext4"]
DAX_DESIGNS = ["v4.0", "v4.7", "v4.10"]
# Every file kind, with a design: page-cache files behave the same under every design.
KINDS = [("tmpfs", "v4.10"), ("ext4", "v4.10")] + [("dax", d) for d in DAX_DESIGNS]
KIND_IDS = [f"{fs}-{d}" if fs == "dax" else fs for fs, d in KINDS]


Files = Mapping[str, tuple[int | str, str | None]]


def run(fs: str, files: Files, threads: Mapping[str, Sequence[str]], design: str = "v4.10",
        order: list[int] | None = None, chooser: Chooser | None = None) -> ModelRunResult:
    b = ScenarioBuilder("rule", fs=fs)
    for name, (size, fill) in files.items():
        b = b.file(name, size=size, fill=fill)
    for name, ops in threads.items():
        b = b.thread(name, *ops)
    return ModelExecution(b.build(), get_design(design)).run(chooser or SequentialChooser(order))


def run1(fs: str, size: int | str, fill: str | None, *ops: str, design: str = "v4.10") -> ModelRunResult:
    """One file ``f``, one thread ``t``."""
    return run(fs, {"f": (size, fill)}, {"t": ops}, design=design)


def outcomes(r: ModelRunResult) -> list[Outcome]:
    return [o.outcome for o in r.record.ops]


def data(r: ModelRunResult, i: int) -> bytes:
    o = r.record.ops[i].outcome
    assert o.kind == "data", f"op {i} ({r.record.ops[i].op}) gave {o}"
    return o.data


def flt(r: ModelRunResult, i: int) -> tuple[int, int]:
    """(minflt, majflt) of op ``i``."""
    o = r.record.ops[i]
    return o.minflt, o.majflt


def clean(r: ModelRunResult) -> None:
    assert r.violations == [], [f"{v.id}: {v.message}" for v in r.violations]


SIGBUS = Outcome.signal("SIGBUS")
OK = Outcome.ok()


# -- R1: MAP_PRIVATE write = COW -----------------------------------------------------------------------------
@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r1_private_write_is_cow_invisible_to_file_and_other_mappings(fs: str, design: str) -> None:
    """R1: the writer sees its data; the file, read(2), a shared mapping and another private
    mapping that has not COWed do not."""
    r = run1(fs, "2p", "A",
             "s = mmap f 0 2p shared r",
             "o = mmap f 0 2p private r",
             "load o 0",                       # 2: the other private mapping maps the file page
             "m = mmap f 0 2p private rw",
             "store m 1 BC",                   # 4
             "load m 0 4",                     # 5
             "read f 0 4",                     # 6
             "load s 0 4",                     # 7
             "load o 0 4",                     # 8
             design=design)
    clean(r)
    assert data(r, 5) == b"ABCA"
    assert data(r, 6) == b"AAAA"
    assert data(r, 7) == b"AAAA"
    assert data(r, 8) == b"AAAA"
    assert r.record.files["f"].contents == b"A" * 2 * P
    assert r.counters["fault.cow"] == 1
    assert r.counters["bytes_copied"] == P  # exactly one copy of the file page


# -- R2: fault counts on private mappings --------------------------------------------------------------------
@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r2_private_write_first_is_one_fault_per_page(fs: str, design: str) -> None:
    """R2: a write to a not-present private page is exactly one (cow) fault, and write faults
    never fault around: the next page's write is one more (measured: docs/fidelity.md: 1, 1)."""
    r = run1(fs, "64p", "A", "m = mmap f 0 64p private rw", "store m 0 B", "store m 1p C", "load m 0 2",
             "load m 1p 2", design=design)
    clean(r)
    assert flt(r, 1) == (1, 0)
    assert flt(r, 2) == (1, 0)
    assert flt(r, 3) == flt(r, 4) == (0, 0)
    assert data(r, 3) == b"BA" and data(r, 4) == b"CA"
    assert r.counters["fault.cow"] == 2
    assert r.counters["fault.wp-copy"] == 0
    assert r.counters["fault_around_pages"] == 0


@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r2_private_read_then_write_is_two_faults(fs: str, design: str) -> None:
    """R2: read-then-write is 1 + 1: a read fault maps the page read-only, the write is a
    do_wp_page copy (measured: docs/fidelity.md; DAX under qemu: 1 + 1, pfn -> anon page)."""
    r = run1(fs, "64p", "A", "m = mmap f 0 64p private rw", "load m 0", "store m 0 B", "load m 0 2",
             "read f 0 2", design=design)
    clean(r)
    assert flt(r, 1) == (1, 0)
    assert flt(r, 2) == (1, 0)
    assert data(r, 3) == b"BA"
    assert data(r, 4) == b"AA"
    assert r.counters["fault.read"] == 1
    assert r.counters["fault.wp-copy"] == 1
    assert r.counters["fault.cow"] == 0
    assert r.counters["bytes_copied"] == P


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_r2_page_cache_neighbour_mapped_by_fault_around_costs_one_wp_fault(fs: str) -> None:
    """R2 with fault-around: a write to a neighbour the first read mapped read-only is one
    do_wp_page fault with no read fault before it; a read in the same window after that is free
    (measured: docs/fidelity.md: 1 and 0 on tmpfs and ext4)."""
    r = run1(fs, "64p", "A", "m = mmap f 0 64p private rw", "load m 0", "store m 5p B", "load m 9p",
             "load m 5p 2")
    clean(r)
    assert flt(r, 1) == (1, 0)
    assert flt(r, 2) == (1, 0)
    assert flt(r, 3) == (0, 0)
    assert data(r, 4) == b"BA"
    assert r.counters["fault.wp-copy"] == 1
    assert r.counters["fault.cow"] == 0


@pytest.mark.parametrize("design", DAX_DESIGNS)
def test_r2_dax_neighbour_write_after_read_is_a_cow_fault(design: str) -> None:
    """R2 on DAX: no fault-around, so a write to the page next to one that was read is a cow
    fault on a not-present page, not a write-protect fault."""
    r = run1("dax", "4p", "A", "m = mmap f 0 4p private rw", "load m 0", "store m 1p B", "load m 1p 2",
             design=design)
    clean(r)
    assert flt(r, 2) == (1, 0)
    assert data(r, 3) == b"BA"
    assert r.counters["fault.cow"] == 1
    assert r.counters["fault.wp-copy"] == 0


# -- R3: MAP_SHARED ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r3_shared_store_visible_to_read_shared_and_uncowed_private(fs: str, design: str) -> None:
    """R3: a shared store is immediately visible to read(2), another shared mapping and a private
    mapping that has not COWed that page; a private page already COWed keeps its copy."""
    r = run1(fs, "2p", "A",
             "p = mmap f 0 2p private rw",
             "load p 0",                       # 1: maps the file page (pfn), not COWed
             "store p 1p C",                   # 2: page 1 is COWed
             "s = mmap f 0 2p shared rw",
             "t = mmap f 0 2p shared r",
             "store s 2 XY",                   # 5
             "store s 1p+2 XY",                # 6
             "read f 0 5",                     # 7
             "load t 0 5",                     # 8
             "load p 0 5",                     # 9
             "load p 1p 5",                    # 10
             design=design)
    clean(r)
    assert data(r, 7) == b"AAXYA"
    assert data(r, 8) == b"AAXYA"
    assert data(r, 9) == b"AAXYA"
    assert data(r, 10) == b"CAAAA"
    assert r.record.files["f"].contents[P : P + 5] == b"AAXYA"


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_r3_shared_write_first_is_one_fault(fs: str) -> None:
    """R3/R8: MAP_SHARED write-first is one fault on tmpfs and ext4 (measured: docs/fidelity.md)."""
    r = run1(fs, "64p", "A", "m = mmap f 0 64p shared rw", "store m 0 B", "store m 1p C", "read f 0 1")
    clean(r)
    assert flt(r, 1) == (1, 0)
    assert flt(r, 2) == (1, 0)
    assert r.counters["fault.shared"] == 2
    assert data(r, 3) == b"B"


@pytest.mark.parametrize("design", DAX_DESIGNS)
def test_r3_dax_shared_write_first_takes_a_second_write_protect_fault_in_4x(design: str) -> None:
    """R3 on DAX as 4.0-4.14 do it: ->fault inserts the pfn with vm_page_prot, which is read-only
    in a shared mapping whose vm_ops have ->page_mkwrite/->pfn_mkwrite (vma_wants_writenotify), so
    the store retries and takes a write-protect fault that makes the entry writable.  4.15
    (vm_insert_mixed_mkwrite, b2770da64254) inserts it writable: the 6.x kernel measured under
    qemu takes 1 fault (measured in the DAX VM, docs/fidelity.md).  No block is allocated: the file has its blocks."""
    r = run1("dax", "2p", "A", "m = mmap f 0 2p shared rw", "store m 0 B", "store m 1 C", "read f 0 3",
             design=design)
    clean(r)
    assert flt(r, 1) == (2, 0)
    assert flt(r, 2) == (0, 0)
    assert r.counters["fault.shared"] == 1
    assert r.counters["fault.wp-reuse"] == 1
    assert r.counters["blocks_allocated"] == 0
    assert data(r, 3) == b"BCA"


# -- R4: beyond EOF ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shared", ["shared", "private"])
@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r4_access_to_page_wholly_past_eof_is_sigbus(fs: str, design: str, shared: str) -> None:
    """R4: a load or store at or past DIV_ROUND_UP(i_size, PAGE_SIZE) pages raises SIGBUS, even
    inside the mapping (LTP mmap13); inside the last partial page it does not."""
    r = run1(fs, 6000, "A", f"m = mmap f 0 4p {shared} rw", "load m 2p", "store m 2p B", "load m 3p+7",
             "store m 1p+1904 B", "load m 1p+1903 2", design=design)
    clean(r)
    assert outcomes(r)[1:4] == [SIGBUS, SIGBUS, SIGBUS]
    assert outcomes(r)[4] == OK
    assert data(r, 5) == b"AB"
    assert r.record.files["f"].size == 6000
    assert r.record.files["f"].contents == b"A" * 6000
    assert r.counters["blocks_allocated"] == 0


@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r4_tail_of_last_page_reads_zero_and_stores_there_are_not_persisted(fs: str, design: str) -> None:
    """R4 (LTP mmap01, generic/029): bytes past EOF in the last page read zero; a store there is
    not in the file (read(2) stops at EOF), and after truncate down + extend that range reads
    zero again.  The file is created with write(2), as LTP does."""
    r = run1(fs, 0, None,
             'write f 0 "hello world\\n"',
             "m = mmap f 0 1p shared rw",
             "load m 0 16",                    # 2
             "store m 12 XYZ",                 # 3
             "msync m",                        # 4
             "read f 0 1p",                    # 5
             "truncate f 10",                  # 6
             "truncate f 20",                  # 7
             "read f 0 1p",                    # 8
             "load m 8 12",                    # 9
             design=design)
    clean(r)
    assert data(r, 2) == b"hello world\n\0\0\0\0"
    assert outcomes(r)[3] == OK
    assert data(r, 5) == b"hello world\n"
    assert data(r, 8) == b"hello worl" + b"\0" * 10
    assert data(r, 9) == b"rl" + b"\0" * 10
    assert r.record.files["f"].size == 20


@pytest.mark.parametrize(("fs", "design"), [("tmpfs", "v4.10"), ("ext4", "v4.10"), ("dax", "v4.10")],
                         ids=["tmpfs", "ext4", "dax"])
def test_r4_fill_stops_at_eof(fs: str, design: str) -> None:
    """R4 with a ``fill``ed file: `fill = "hello world\\n"`, size 12 is LTP mmap01's file, and the
    rest of its page reads zero through a mapping (and through read(2) after an extend)."""
    r = run1(fs, 12, "hello world\n", "m = mmap f 0 1p shared r", "load m 0 16", "truncate f 20",
             "read f 0 20", design=design)
    assert data(r, 1) == b"hello world\n\0\0\0\0"
    assert data(r, 3) == b"hello world\n" + b"\0" * 8


# -- R5: truncate --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r5_truncate_zaps_private_cow_pages_beyond_eof(fs: str, design: str) -> None:
    """R5 (even_cows=1): a private COWed page wholly beyond the new EOF is unmapped, so the next
    access is SIGBUS; after re-extending, the page reads zeros: the COW data is lost
    (measured, docs/fidelity.md 'Truncate and EOF', the same on tmpfs, ext4 and DAX)."""
    r = run1(fs, "2p", "A",
             "m = mmap f 0 2p private rw",
             "store m 1p B",                   # 1
             "load m 1p 2",                    # 2
             "truncate f 1p",                  # 3
             "load m 1p",                      # 4
             "store m 1p C",                   # 5
             "truncate f 2p",                  # 6
             "load m 1p 2",                    # 7
             "read f 0 2",                     # 8
             "read f 1p 2",                    # 9
             design=design)
    clean(r)
    assert data(r, 2) == b"BA"
    assert outcomes(r)[4] == SIGBUS
    assert outcomes(r)[5] == SIGBUS
    assert data(r, 7) == b"\0\0"
    assert data(r, 8) == b"AA"
    assert data(r, 9) == b"\0\0"


@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r5_truncate_unmaps_read_mapped_private_and_shared_pages(fs: str, design: str) -> None:
    """R5: after truncate, any access in the removed range is SIGBUS, whether the page was
    read-mapped in a private mapping (not COWed) or written through a shared one."""
    r = run1(fs, "2p", "A",
             "p = mmap f 0 2p private rw",
             "s = mmap f 0 2p shared rw",
             "load p 1p",                      # 2
             "store s 1p S",                   # 3
             "truncate f 1p",                  # 4
             "store p 1p B",                   # 5
             "load s 1p",                      # 6
             "load p 0 2",                     # 7
             design=design)
    clean(r)
    assert data(r, 2) == b"A"
    assert outcomes(r)[5] == SIGBUS
    assert outcomes(r)[6] == SIGBUS
    assert data(r, 7) == b"AA"
    assert r.record.files["f"].size == P


@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r5_partial_truncate_keeps_a_cow_copy_of_the_last_page(fs: str, design: str) -> None:
    """R5: only pages wholly beyond round_up(EOF) are zapped: a private page COWed before a
    partial truncate to 4196 stays mapped and keeps its old data past the new EOF
    (measured, docs/fidelity.md 'Truncate and EOF': 'stays mapped, same PFN, keeps old data')."""
    r = run1(fs, "2p", "A", "m = mmap f 0 2p private rw", "store m 1p+200 B", "truncate f 4196",
             "load m 1p+99 3", "load m 1p+200 2", design=design)
    clean(r)
    assert data(r, 3) == b"AAA"
    assert data(r, 4) == b"BA"
    assert r.record.files["f"].contents == b"A" * 4196


@pytest.mark.parametrize("fs", ["tmpfs", "ext4", "dax"])
def test_r5_write_invalidation_keeps_private_copies(fs: str) -> None:
    """R5, the contrast: invalidation after write(2) (invalidate_inode_pages2, even_cows=0, "don't
    throw away private data") keeps a private mapping's COWed page; write(2) is visible only to
    pages that are not COWed.  On DAX the page is a hole, so write(2) allocates and must tear
    down the hole page."""
    r = run1(fs, "2p", "hole" if fs == "dax" else None,
             "p = mmap f 0 2p private rw",
             "q = mmap f 0 2p private r",
             "store p 0 P",                    # 2: COW of page 0
             "load q 0",                       # 3: page 0 mapped read-only, not COWed
             "write f 0 WW",                   # 4
             "load p 0 3",                     # 5
             "load q 0 3",                     # 6
             )
    clean(r)
    assert data(r, 5) == b"P\0\0"
    assert data(r, 6) == b"WW\0"
    assert r.record.files["f"].contents[:3] == b"WW\0"


# -- R6: partial-page zeroing on truncate --------------------------------------------------------------------
@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r6_partial_truncate_zeroes_the_tail_of_the_last_page_in_place(fs: str, design: str) -> None:
    """R6: a partial truncate to 4196 zeroes bytes >= 4196 of the last page at once: shared and
    not-COWed private mappings read zeros there with no signal, and after extending the file
    read(2) returns zeros (measured, docs/fidelity.md 'Truncate and EOF')."""
    r = run1(fs, "2p", "A",
             "s = mmap f 0 2p shared rw",
             "p = mmap f 0 2p private r",
             "load s 1p",                      # 2
             "load p 1p",                      # 3
             "truncate f 4196",                # 4
             "load s 1p+98 4",                 # 5
             "load p 1p+98 4",                 # 6
             "load s 1p+4095",                 # 7
             "truncate f 2p",                  # 8
             "read f 1p+98 4",                 # 9
             "load s 1p+98 4",                 # 10
             design=design)
    clean(r)
    assert data(r, 5) == b"AA\0\0"
    assert data(r, 6) == b"AA\0\0"
    assert data(r, 7) == b"\0"
    assert data(r, 9) == b"AA\0\0"
    assert data(r, 10) == b"AA\0\0"
    assert r.record.files["f"].contents == b"A" * 4196 + b"\0" * (2 * P - 4196)


# -- R8: shared write notification (page_mkwrite) ------------------------------------------------------------
@pytest.mark.parametrize(("fs", "write_faults"), [("tmpfs", 0), ("ext4", 1)])
def test_r8_shared_read_then_write(fs: str, write_faults: int) -> None:
    """R8: ext4 has ->page_mkwrite, so a store to a page mapped by a read fault takes a
    write-protect fault (1 + 1); tmpfs has no write notification and maps it writable (1 + 0)
    (measured: docs/fidelity.md)."""
    r = run1(fs, "64p", "A", "m = mmap f 0 64p shared rw", "load m 0", "store m 0 B", "read f 0 2")
    clean(r)
    assert flt(r, 1) == (1, 0)
    assert flt(r, 2) == (write_faults, 0)
    assert r.counters["fault.wp-reuse"] == write_faults
    assert r.counters["fault.wp-copy"] == 0
    assert data(r, 3) == b"BA"


@pytest.mark.parametrize(("fs", "write_faults"), [("tmpfs", 0), ("ext4", 1)])
def test_r8_shared_write_to_neighbour_mapped_by_fault_around(fs: str, write_faults: int) -> None:
    """R8 + R9: the pages fault-around maps in a shared mapping are writable on tmpfs (0 faults to
    write) and read-only on ext4 (1 fault each, page_mkwrite) (measured: docs/fidelity.md)."""
    r = run1(fs, "64p", "A", "m = mmap f 0 64p shared rw", "load m 0", "store m 7p B", "store m 15p C",
             "read f 7p 1", "read f 15p 1")
    clean(r)
    assert flt(r, 2) == (write_faults, 0)
    assert flt(r, 3) == (write_faults, 0)
    assert data(r, 4) == b"B" and data(r, 5) == b"C"


@pytest.mark.parametrize("design", DAX_DESIGNS)
def test_r8_dax_first_write_to_read_only_pfn_is_one_write_protect_fault(design: str) -> None:
    """R8 on DAX: a store to a pfn mapped by a read fault is one write-protect fault (4.1+:
    ->pfn_mkwrite; 4.0: do_wp_page makes a shared pfn writable), no copy (DAX under qemu: 1 + 1)."""
    r = run1("dax", "2p", "A", "m = mmap f 0 2p shared rw", "load m 0", "store m 0 B", "store m 1 C",
             "read f 0 3", design=design)
    clean(r)
    assert flt(r, 1) == (1, 0)
    assert flt(r, 2) == (1, 0)
    assert flt(r, 3) == (0, 0)
    assert r.counters["fault.wp-reuse"] == 1
    assert r.counters["bytes_copied"] == 0
    assert data(r, 4) == b"BCA"


# -- R9: fault-around ----------------------------------------------------------------------------------------
def faulted_pages(r: ModelRunResult, first_load: int = 1) -> list[int]:
    return [i for i, o in enumerate(r.record.ops[first_load:]) if o.minflt or o.majflt]


@pytest.mark.parametrize("shared", ["private", "shared"])
@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_r9_sequential_read_of_64_pages_faults_at_0_16_32_48(fs: str, shared: str) -> None:
    """R9: a read fault maps the 16-page window aligned on the virtual address (mappings start
    2 MiB-aligned): 64 sequential page reads fault at pages 0, 16, 32 and 48 (measured: docs/fidelity.md)."""
    r = run1(fs, "64p", "A", f"m = mmap f 0 64p {shared} r", *[f"load m {i}p" for i in range(64)])
    clean(r)
    assert faulted_pages(r) == [0, 16, 32, 48]
    assert r.counters["faults"] == 4
    assert r.counters["fault_around_pages"] == 60
    assert all(data(r, i) == b"A" for i in range(1, 65))


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_r9_windows_follow_the_virtual_address_not_the_file_offset(fs: str) -> None:
    """R9: mapping 40 pages from file offset 5 pages still faults at 0, 16, 32 of the mapping
    (docs/fidelity.md, measured), and the window is clipped to the VMA."""
    r = run1(fs, "64p", "A", "m = mmap f 5p 40p private r", *[f"load m {i}p" for i in range(40)])
    clean(r)
    assert faulted_pages(r) == [0, 16, 32]
    assert r.counters["fault_around_pages"] == 37


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_r9_fault_around_stops_at_eof(fs: str) -> None:
    """R9: fault-around maps only pages below EOF: past EOF is still SIGBUS."""
    r = run1(fs, "20p", "A", "m = mmap f 0 32p private r", "load m 0", "load m 17p", "load m 19p",
             "load m 20p", "load m 31p")
    clean(r)
    assert flt(r, 2) == (1, 0)
    assert flt(r, 3) == (0, 0)
    assert outcomes(r)[4:] == [SIGBUS, SIGBUS]
    assert r.counters["fault_around_pages"] == 15 + 3


def test_r9_holes_are_not_faulted_around_on_tmpfs() -> None:
    """R9: only pages already in the cache are mapped around; a sparse tmpfs file is one fault per
    page (measured: docs/fidelity.md: 64).  (ext4 holes go through readahead, not modelled.)"""
    r = run1("tmpfs", "64p", "hole", "m = mmap f 0 64p private r", *[f"load m {i}p" for i in range(64)])
    clean(r)
    assert faulted_pages(r) == list(range(64))
    assert r.counters["fault_around_pages"] == 0


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_r9_write_faults_never_fault_around(fs: str) -> None:
    """R9: sequential write-first of 64 pages is 64 faults, private or shared (measured: docs/fidelity.md)."""
    for shared in ("private", "shared"):
        r = run1(fs, "64p", "A", f"m = mmap f 0 64p {shared} rw", *[f"store m {i}p B" for i in range(64)])
        clean(r)
        assert r.counters["faults"] == 64
        assert r.counters["fault_around_pages"] == 0


@pytest.mark.parametrize("design", DAX_DESIGNS)
def test_r9_dax_has_no_fault_around(design: str) -> None:
    """R9: DAX vm_ops have no ->map_pages: 64 sequential reads are 64 faults (DAX under qemu)."""
    r = run1("dax", "64p", "A", "m = mmap f 0 64p private r", *[f"load m {i}p" for i in range(64)],
             design=design)
    clean(r)
    assert faulted_pages(r) == list(range(64))
    assert r.counters["fault_around_pages"] == 0


# -- R10: DAX hole reads -------------------------------------------------------------------------------------
@pytest.mark.parametrize("design", DAX_DESIGNS)
def test_r10_dax_hole_read_allocates_nothing_and_a_later_write_replaces_it_everywhere(design: str) -> None:
    """R10: reading a hole maps a zero (hole) page read-only and never allocates; a later shared
    write allocates one block and every mapping that had the hole mapped (shared, and private not
    COWed) then sees the new data, not the stale zero page."""
    r = run1("dax", "2p", "hole",
             "m = mmap f 0 2p shared rw",
             "n = mmap f 0 2p shared r",
             "p = mmap f 0 2p private r",
             "load m 0 8",                     # 3
             "load n 0",                       # 4
             "load p 0",                       # 5
             "load p 1p",                      # 6
             "store m 3 W",                    # 7
             "load n 0 4",                     # 8
             "load p 0 4",                     # 9
             "read f 0 4",                     # 10
             design=design)
    clean(r)
    assert data(r, 3) == b"\0" * 8
    assert [flt(r, i) for i in (3, 4, 5)] == [(1, 0)] * 3
    assert r.counters["blocks_allocated"] == 1  # only the write allocated
    assert flt(r, 7)[1] == 1
    assert data(r, 8) == data(r, 9) == data(r, 10) == b"\0\0\0W"


@pytest.mark.parametrize("design", DAX_DESIGNS)
def test_r10_dax_hole_reads_only(design: str) -> None:
    """R10: reads of holes, through private and shared mappings and read(2), allocate nothing."""
    r = run1("dax", "4p", "hole", "m = mmap f 0 4p shared r", "p = mmap f 0 4p private r",
             *[f"load m {i}p" for i in range(4)], *[f"load p {i}p" for i in range(4)], "read f 0 4p",
             design=design)
    clean(r)
    assert r.counters["blocks_allocated"] == 0
    assert data(r, 10) == b"\0" * 4 * P
    assert r.counters["faults"] == 8


# -- R11: DAX write to a hole --------------------------------------------------------------------------------
@pytest.mark.parametrize("design", DAX_DESIGNS)
def test_r11_dax_shared_store_to_hole_allocates_zeroed_block_major_fault(design: str) -> None:
    """R11: a shared store into a hole allocates one block, zeroed before any PTE maps it, and is a
    MAJOR fault (DAX under qemu: '0 minor + 1 major, block allocated').  The 4.x designs also take
    the minor write-protect fault of their read-only pfn insert (see the R3 test above).  4.0 zeroes
    the block twice: ext2's get_block before ext2_splice_branch(), and dax_insert_mapping() again
    for a buffer_new block; from 4.7 only the file system zeroes it."""
    r = run1("dax", "2p", "hole", "m = mmap f 0 2p shared rw", "store m 1p+5 B", "load m 1p 8",
             "read f 1p 8", "store m 1p+6 C", design=design)
    clean(r)
    assert flt(r, 1) == (1, 1)
    assert r.counters["faults.major"] == 1
    assert r.counters["blocks_allocated"] == 1
    assert r.counters["pages_zeroed"] == (2 if design == "v4.0" else 1)
    assert data(r, 2) == data(r, 3) == b"\0" * 5 + b"B\0\0"
    assert flt(r, 4) == (0, 0)
    assert r.record.files["f"].contents == b"\0" * (P + 5) + b"BC" + b"\0" * (P - 7)


@pytest.mark.parametrize("fs", PAGE_CACHE)
def test_r11_page_cache_store_to_hole(fs: str) -> None:
    """R11's page-cache counterpart: a shared store to a hole is one fault, minor on tmpfs and
    MAJOR on ext4 (the page is read in) (measured: docs/fidelity.md)."""
    r = run1(fs, "2p", "hole", "m = mmap f 0 2p shared rw", "store m 1p B", "read f 1p 2")
    clean(r)
    assert flt(r, 1) == ((1, 0) if fs == "tmpfs" else (0, 1))
    assert data(r, 2) == b"B\0"


# -- R12: racing faults on the same page ---------------------------------------------------------------------
R12_KINDS = [("tmpfs", "v4.10"), ("ext4", "v4.10")] + [("dax", d) for d in DAX_DESIGNS]


def r12_scenario(fs: str) -> tuple[Files, dict[str, list[str]]]:
    """holetest's shape: two threads each store a marker at its own offset of the same page of a
    hole-backed file through MAP_SHARED mappings, then read the page back."""
    files: Files = {"f": ("1p", "hole")}
    threads = {
        "a": ["m = mmap f 0 1p shared rw", "store m 0 AA", "load m 0 16"],
        "b": ["m = mmap f 0 1p shared rw", "store m 8 BB", "load m 0 16"],
    }
    return files, threads


def check_r12(r: ModelRunResult, fs: str) -> None:
    clean(r)
    assert [o.outcome.kind for o in r.record.ops] == ["ok", "ok", "data"] * 2
    a_load, b_load = data(r, 2), data(r, 5)
    assert a_load[:2] == b"AA" and b_load[8:10] == b"BB"
    assert r.record.files["f"].contents[:16] == b"AA" + b"\0" * 6 + b"BB" + b"\0" * 6
    if fs == "dax":
        assert r.counters["blocks_allocated"] == 1


@pytest.mark.parametrize("order", [[0, 1], [1, 0]], ids=["a,b", "b,a"])
@pytest.mark.parametrize(("fs", "design"), R12_KINDS, ids=[f"{f}-{d}" for f, d in R12_KINDS])
def test_r12_two_threads_fault_the_same_page_in_either_order(fs: str, design: str, order: list[int]) -> None:
    """R12 with --schedule orders: whichever thread faults first, there is one page (one block on
    DAX) and the thread that runs second sees both markers."""
    files, threads = r12_scenario(fs)
    r = run(fs, files, threads, design=design, order=order)
    check_r12(r, fs)
    second_load = data(r, 5) if order == [0, 1] else data(r, 2)
    assert second_load == b"AA" + b"\0" * 6 + b"BB" + b"\0" * 6


@pytest.mark.parametrize(("fs", "design"), R12_KINDS, ids=[f"{f}-{d}" for f, d in R12_KINDS])
def test_r12_racing_faults_at_every_preemption_point(fs: str, design: str) -> None:
    """R12, really racing: one thread runs k scheduling steps, then the other runs to completion,
    then the first finishes, for every k and both ways round; so each thread's fault lands at
    every point inside the other's.  Every run ends with one page/block holding both markers."""
    files, threads = r12_scenario(fs)
    steps = len(run(fs, files, threads, design=design).steps)
    assert steps > 10
    for first, second in ((0, 1), (1, 0)):
        for k in range(steps + 1):
            chooser = ReplayChooser([first] * k + [second] * steps, lenient=True)
            check_r12(run(fs, files, threads, design=design, chooser=chooser), fs)


def test_r12_v40_two_write_faults_on_a_hole_can_lose_a_write() -> None:
    """R12 does not hold in 4.0-4.6, and the v4.0 design reproduces why: docs/designs.md (known bugs)
    bug 3 (843172978bb9, fixed for good by the 4.7 entry lock): both write faults on a hole see a
    new block and zero it, so "the loser overwrite[s] their store with zeroes".  It needs two
    preemptions, so the sequential and single-preemption runs above do not show it."""
    files, threads = r12_scenario("dax")
    n = len(run("dax", files, threads, design="v4.0").steps)
    for i in range(n):
        for j in range(1, n):
            chooser = ReplayChooser([0] * i + [1] * j + [0] * n, lenient=True)
            r = run("dax", files, threads, design="v4.0", chooser=chooser)
            if r.violations:
                assert [v.id for v in r.violations] == ["lost-write", "coherence"]  # and a load sees the zeros
                assert r.record.files["f"].contents[:10] in (b"\0" * 8 + b"BB", b"AA" + b"\0" * 8)
                assert r.counters["blocks_allocated"] == 1
                return
    pytest.fail("no interleaving with two preemptions lost a write")


# -- R13: write(2), then a read through the mapping ----------------------------------------------------------
@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r13_write_after_read_fault_on_hole_shows_through_mappings(fs: str, design: str) -> None:
    """R13 (generic/428): after a read fault maps a hole (zero page / hole page), pwrite to that
    range must show through shared and private (not COWed) mappings: no stale zero mapping."""
    r = run1(fs, 0, None,
             "truncate f 2p",
             "m = mmap f 1p 1p shared r",
             "p = mmap f 0 2p private r",
             "load m 0",                       # 3
             "load p 1p",                      # 4
             'write f 1p "HELLO WORLD!"',      # 5
             "load m 0 12",                    # 6
             "load p 1p 12",                   # 7
             design=design)
    clean(r)
    assert data(r, 3) == b"\0" and data(r, 4) == b"\0"
    assert outcomes(r)[5] == OK
    assert data(r, 6) == b"HELLO WORLD!"
    assert data(r, 7) == b"HELLO WORLD!"


@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_r13_write_over_mapped_data_shows_through_mappings(fs: str, design: str) -> None:
    """R13: write(2) over a page that is already mapped (file data, not a hole) is seen at once."""
    r = run1(fs, "2p", "A", "m = mmap f 0 2p shared r", "p = mmap f 0 2p private r", "load m 0", "load p 0",
             "write f 1 XY", "load m 0 4", "load p 0 4", design=design)
    clean(r)
    assert data(r, 5) == data(r, 6) == b"AXYA"


# -- R14: msync/fsync ----------------------------------------------------------------------------------------
R14_STORE_FAULTS = {"v4.0": 0, "v4.7": 0, "v4.10": 1}


@pytest.mark.parametrize("sync", ["fsync f", "msync m"])
@pytest.mark.parametrize("design", DAX_DESIGNS)
def test_r14_dax_fsync_write_protects_dirty_entries_from_4_5(design: str, sync: str) -> None:
    """R14: from 4.5 write faults tag the entry DIRTY and fsync/msync (WB_SYNC_ALL) flush it; from
    4.10 (4b4bb46d00b3) writeback also write-protects and cleans it, so the next store write-faults
    again (v4.10); 4.5-4.9 never clean the entry (v4.7: no new fault, every fsync flushes it again);
    4.0 tracks nothing: no new fault."""
    r = run1("dax", "2p", "A", "m = mmap f 0 2p shared rw", "store m 0 B", "store m 1 C", sync,
             "store m 2 D", "store m 3 E", "read f 0 5", design=design)
    clean(r)
    assert flt(r, 2) == (0, 0)
    assert flt(r, 4) == (R14_STORE_FAULTS[design], 0)
    assert flt(r, 5) == (0, 0)
    assert data(r, 6) == b"BCDEA"


@pytest.mark.parametrize(("fs", "store_faults"), [("tmpfs", 0), ("ext4", 1)])
@pytest.mark.parametrize("sync", ["fsync f", "msync m"])
def test_r14_page_cache_msync_cleans_ext4_pages(fs: str, store_faults: int, sync: str) -> None:
    """R14, page cache: on ext4 writeback cleans and write-protects the page (page_mkclean), so a
    shared store after msync/fsync faults again (page_mkwrite); tmpfs writes nothing back."""
    r = run1(fs, "2p", "A", "m = mmap f 0 2p shared rw", "store m 0 B", sync, "store m 1 C", "store m 2 D",
             "read f 0 4")
    clean(r)
    assert flt(r, 1) == (1, 0)
    assert flt(r, 3) == (store_faults, 0)
    assert flt(r, 4) == (0, 0)
    assert data(r, 5) == b"BCDA"


# -- R16: holes vs COW ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("design", DAX_DESIGNS)
def test_r16_private_dax_store_to_hole_allocates_nothing(design: str) -> None:
    """R16: a private store to a hole is one fault that gives a zeroed anonymous page with the
    stored byte; no file block is allocated and the file still reads zeros (DAX under qemu:
    '1 minor, no allocation (st_blocks = 0)')."""
    r = run1("dax", "2p", "hole", "m = mmap f 0 2p private rw", "store m 1p+1 B", "load m 1p 4",
             "read f 1p 4", design=design)
    clean(r)
    assert flt(r, 1) == (1, 0)
    assert data(r, 2) == b"\0B\0\0"
    assert data(r, 3) == b"\0\0\0\0"
    assert r.counters["blocks_allocated"] == 0
    assert r.counters["bytes_copied"] == 0
    assert r.record.files["f"].contents == b"\0" * 2 * P


@pytest.mark.parametrize("design", DAX_DESIGNS)
def test_r16_private_dax_read_then_write_of_hole_allocates_nothing(design: str) -> None:
    """R16 after R10: read a hole (zero/hole page), then write it privately: 1 + 1 faults, still no
    block allocated."""
    r = run1("dax", "2p", "hole", "m = mmap f 0 2p private rw", "load m 0", "store m 0 B", "load m 0 2",
             design=design)
    clean(r)
    assert flt(r, 1) == (1, 0)
    assert flt(r, 2) == (1, 0)
    assert data(r, 3) == b"B\0"
    assert r.counters["blocks_allocated"] == 0
    assert r.record.files["f"].contents == b"\0" * 2 * P


# -- Beyond the rules: system-call edge cases a sequential run shows -----------------------------------------
@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_access_after_munmap_and_to_read_only_mapping_is_sigsegv(fs: str, design: str) -> None:
    """A store through a PROT_READ mapping and any access after munmap are SIGSEGV; msync of the
    unmapped range is ENOMEM; an unaligned mmap offset is EINVAL."""
    r = run1(fs, "1p", "A", "m = mmap f 0 1p shared r", "store m 0 B", "munmap m", "load m 0", "msync m",
             "n = mmap f 1 1p shared r", design=design)
    clean(r)
    segv = Outcome.signal("SIGSEGV")
    assert outcomes(r)[1:] == [segv, OK, segv, Outcome.errno("ENOMEM"), Outcome.errno("EINVAL")]
    assert r.record.files["f"].contents == b"A" * P


@pytest.mark.parametrize(("fs", "design"), KINDS, ids=KIND_IDS)
def test_madvise_dontneed_drops_private_copies(fs: str, design: str) -> None:
    """MADV_DONTNEED zaps private COW copies too: the next load reads the file again."""
    r = run1(fs, "1p", "A", "m = mmap f 0 1p private rw", "store m 0 B", "madvise m dontneed", "load m 0 2",
             design=design)
    clean(r)
    assert outcomes(r)[2] == OK
    assert data(r, 3) == b"AA"
    assert flt(r, 3) == (1, 0)


@pytest.mark.parametrize("fs", ["tmpfs", "dax"])
def test_madvise_after_munmap_is_enomem(fs: str) -> None:
    r = run1(fs, "1p", "A", "m = mmap f 0 1p shared rw", "munmap m", "madvise m dontneed")
    assert outcomes(r)[2] == Outcome.errno("ENOMEM")


@pytest.mark.parametrize("op", ["store m 0 A", "load m 0", "write f 0 A"])
def test_xip_allocates_a_hole_without_crashing(op: str) -> None:
    """3.14 XIP (xip_file_fault / __xip_file_write) allocates a block for a hole on a shared-writable
    fault, even a read one (VM_WRITE|VM_MAYWRITE and VM_SHARED), and on write(2), and then
    unmaps the sparse zero page at that offset with __xip_unmap()."""
    r = run1("dax", "1p", "hole", "m = mmap f 0 1p shared rw", op, "read f 0 1", design="xip")
    clean(r)
    assert len(r.record.ops) == 3
    assert r.counters["blocks_allocated"] == 1
