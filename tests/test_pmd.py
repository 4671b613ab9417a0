"""PMD (2 MiB) DAX faults: the PMD level of the page table, the fault paths of 4.10 and 6.1, the
huge zero page, zapping and write-protecting huge PMDs, and ``pmem_align``."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultlab.designs import get_design
from faultlab.errors import ScenarioError
from faultlab.execution import ModelExecution, ModelRunResult
from faultlab.kernel.state.pagetable import HugePmd
from faultlab.report.summary import counters_json
from faultlab.scenario import load_scenario, parse_scenario
from faultlab.sched import SequentialChooser

ROOT = Path(__file__).resolve().parent.parent
PMD = ROOT / "scenarios/pmd"
PMD_DESIGNS = ("v4.10", "v6.1", "v6.18")


def run(text_or_path: str | Path, design: str) -> ModelRunResult:
    scenario = load_scenario(str(text_or_path)) if isinstance(text_or_path, Path) else parse_scenario(
        text_or_path, "t.toml")
    return ModelExecution(scenario, get_design(design), record_events=True).run(SequentialChooser())


def faults(result: ModelRunResult) -> dict[str, int]:
    return counters_json(result.counters, result.lock_counts)["faults"]


def outcomes(result: ModelRunResult) -> list[str]:
    return [str(r.outcome) for r in result.record.ops]


def hugepmds(result: ModelRunResult) -> list[HugePmd]:
    """The huge PMDs at the end of the run, from the pmd_set / pmd_clear events."""
    live: dict[tuple[str, int], HugePmd] = {}
    for ev in result.events:
        if ev.kind == "pmd_set":
            live[ev.data["mm"].name, ev.data["addr"]] = ev.data["pmd"]
        elif ev.kind == "pmd_clear":
            live.pop((ev.data["mm"].name, ev.data["addr"]), None)
    return list(live.values())


@pytest.mark.parametrize("design", PMD_DESIGNS)
def test_an_aligned_read_fault_maps_one_pmd(design: str) -> None:
    result = run(PMD / "read-2m.toml", design)
    assert not result.violations
    assert faults(result)["total"] == 1 and faults(result)["pmd"] == 1 and faults(result)["pmd-fallback"] == 0
    [pmd] = hugepmds(result)
    assert pmd.block == 0 and not pmd.write  # a read fault of a write-notify VMA: read-only
    assert result.record.ops[2].minflt == 0  # the load 1 MiB on goes through the PMD


@pytest.mark.parametrize("design", ["v4.7", "v4.0", "xip"])
def test_designs_before_the_pmd_fault_map_ptes(design: str) -> None:
    result = run(PMD / "read-2m.toml", design)
    assert not result.violations
    assert faults(result)["total"] == 2 and "pmd" not in faults(result)
    assert not hugepmds(result)


@pytest.mark.parametrize("design", ["v4.10", "v6.1"])
def test_a_write_to_the_huge_zero_page_allocates_2m_and_maps_it_with_one_pmd(design: str) -> None:
    result = run(PMD / "hole-read-then-write.toml", design)
    assert not result.violations, result.violations
    f = faults(result)
    assert (f["total"], f["pmd"], f["pmd-fallback"]) == (2, 2, 0)
    assert [r.minflt for r in result.record.ops] == [0, 1, 1, 0, 0]  # as the DAX VM counts them
    [pmd] = hugepmds(result)
    assert pmd.block == 0 and pmd.write and pmd.dirty  # the zero page gave way to the new 2 MiB
    assert result.counters["blocks_allocated"] == 512


@pytest.mark.parametrize("design", ["v4.10", "v6.1"])
def test_a_write_to_the_huge_zero_page_falls_back_to_ptes_without_an_aligned_extent(design: str) -> None:
    result = run(PMD / "hole-write-no-room.toml", design)
    assert not result.violations, result.violations
    f = faults(result)
    assert (f["pmd"], f["pmd-fallback"]) == (1, 1)
    assert not hugepmds(result)  # split: the zero PMD is gone, the PTEs took over
    assert result.counters["blocks_allocated"] == 1  # one 4 KiB block


@pytest.mark.parametrize("design", ["v4.10", "v6.1"])
def test_a_private_write_splits_the_pmd_and_cows_one_page(design: str) -> None:
    result = run(PMD / "private-read-then-cow.toml", design)
    assert not result.violations, result.violations
    assert faults(result)["cow"] == 1 and faults(result)["pmd"] == 1
    assert not hugepmds(result)
    assert not any(ev.kind == "block_access" and ev.data["write"] for ev in result.events)  # the file is untouched


SHARED = """
title = "t"
fs = "dax"
pmem_align = "2m"
[files.data]
size = "2m"
fill = "A"
[threads.t]
ops = [{ops}]
"""


def shared(*ops: str) -> str:
    return SHARED.replace("{ops}", ", ".join(f'"{o}"' for o in ("m = mmap data 0 2m shared rw -> ok", *ops)))


@pytest.mark.parametrize("design", ["v4.10", "v6.1"])
def test_a_shared_write_makes_the_pmd_writable_and_msync_write_protects_and_flushes_it(design: str) -> None:
    result = run(shared("load m 0 -> A", "store m 5p B -> ok", "msync m -> ok", "load m 5p -> B"), design)
    assert not result.violations, result.violations
    [pmd] = hugepmds(result)
    assert not pmd.write and not pmd.dirty  # dax_writeback_one write-protected and cleaned it
    assert result.counters["fault.pmd"] == 2  # the read, then the write (wp_huge_pmd -> ->huge_fault)
    assert result.counters["dax_flushes"] == 1  # one PMD entry written back


@pytest.mark.parametrize("op, outcome", [("madvise m dontneed", "ok"), ("munmap m", "ok")])
def test_zapping_clears_the_huge_pmd(op: str, outcome: str) -> None:
    result = run(shared("load m 0 -> A", f"{op} -> {outcome}"), "v6.1")
    assert not result.violations
    assert not hugepmds(result)


def test_mprotect_read_only_makes_a_store_through_the_pmd_fault() -> None:
    result = run(shared("store m 0 B -> ok", "mprotect m r -> ok", "store m 0 C -> SIGSEGV"), "v6.1")
    assert not result.violations
    [pmd] = hugepmds(result)
    assert not pmd.write


def test_pmem_align_places_each_file_on_a_2m_boundary() -> None:
    text = shared("load m 0 -> A").replace('[files.data]', '[files.small]\nsize = "1p"\n[files.data]')
    result = run(text, "v6.1")
    [pmd] = hugepmds(result)
    assert pmd.block == 512  # "small" took block 0; "data" starts on the next 2 MiB
    assert faults(result)["pmd"] == 1


def test_an_unaligned_mapping_falls_back() -> None:
    result = run(shared("load m 0 -> A").replace("shared rw", "shared rw unaligned"), "v6.1")
    assert not result.violations
    assert faults(result)["pmd"] == 0 and faults(result)["pmd-fallback"] == 1 and not hugepmds(result)


@pytest.mark.parametrize("text, message", [
    ('pmem_align = "1m"', "pmem_align must be one of '4k', '2m', got '1m'"),
    ("pmem_align = 2", "pmem_align must be one of '4k', '2m', got 2"),
])
def test_bad_pmem_align(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(shared("load m 0").replace('pmem_align = "2m"', text), "s.toml")
    assert str(e.value) == f"s.toml:4: {message}"


def test_pmem_align_needs_a_dax_file_system() -> None:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(shared("load m 0").replace('fs = "dax"', 'fs = "tmpfs"'), "s.toml")
    assert str(e.value) == "s.toml:4: pmem_align = '2m' needs fs = \"dax\", got fs = 'tmpfs'"


def test_aligned_files_must_fit_the_device() -> None:
    text = shared("load m 0").replace('pmem_align = "2m"', 'pmem_align = "2m"\npmem_size = "3m"')
    text = text.replace("[files.data]", '[files.small]\nsize = "1p"\n[files.data]')
    with pytest.raises(ScenarioError, match="expected a pmem_size of at least 4194304"):
        parse_scenario(text, "s.toml")


# -- v4.10's PMD fault against the 4.10 text (and the 4.12 stable fixes the design carries) ------
def labels(result: ModelRunResult) -> list[str]:
    return [s.label for s in result.steps]


def test_the_v4_10_pmd_fault_locks_its_entry_before_iomap_begin() -> None:
    """fd96b8da68d3's order: i_size, the PMD entry, the PTE-table re-check, then ->iomap_begin."""
    steps = labels(run(PMD / "read-2m.toml", "v4.10"))
    i_size = steps.index("i_size_read")
    entry = steps.index("__radix_tree_insert (empty locked PMD entry)", i_size)
    recheck = steps.index("!pmd_none && !pmd_trans_huge && !pmd_devmap", entry)
    assert steps.index("map blocks", i_size) > recheck


def test_the_4_10_release_order_maps_blocks_before_it_takes_the_pmd_entry() -> None:
    steps = labels(run(PMD / "read-2m.toml", "v4.10-iomap-first"))
    i_size = steps.index("i_size_read")
    assert steps.index("map blocks", i_size) < steps.index("__radix_tree_insert (empty locked PMD entry)", i_size)


def test_the_pmd_downgrade_deletes_and_inserts_in_one_tree_lock_section() -> None:
    steps = labels(run(PMD / "hole-write-no-room.toml", "v4.10"))
    delete = steps.index("radix_tree_delete (pmd downgrade)")
    insert = steps.index("__radix_tree_insert (empty locked entry)", delete)
    assert "spin_unlock &mapping->tree_lock" not in steps[delete:insert]


def write_over_zero_pmd(at: str) -> str:
    ops = ("m = mmap data 0 2m shared r -> ok", "load m 0 -> \\\\0", f"write data {at} HELLO -> ok",
           f"load m {at} -> H", "load m 0 -> \\\\0" if at != "0" else "load m 1p -> \\\\0")
    return SHARED.replace('fill = "A"', 'fill = "hole"').replace("{ops}", ", ".join(f'"{o}"' for o in ops))


@pytest.mark.parametrize("design", PMD_DESIGNS)
@pytest.mark.parametrize("at", ["0", "5p"])
def test_write_over_the_huge_zero_page_unmaps_it(design: str, at: str) -> None:
    """cd656375f946 (4.12, stable): invalidate_inode_pages2_range finds the zero PMD entry from the
    written page (page 0, or inside its 2 MiB), deletes the clean entry and unmaps it; the next
    load falls back to PTEs (the range now has a 4 KiB block)."""
    result = run(write_over_zero_pmd(at), design)
    assert not result.violations, result.violations
    assert outcomes(result) == ["ok", '"\\x00"', "ok", '"H"', '"\\x00"']
    assert [op.minflt for op in result.record.ops] == [0, 1, 0, 1, 1]
    assert faults(result)["pmd"] == 1 and faults(result)["pmd-fallback"] == 1 and not hugepmds(result)


def test_a_pmd_read_fault_racing_write_maps_the_zero_page_over_data_in_the_release_order() -> None:
    """fd96b8da68d3's race, as the explorer found it under the release order: ->iomap_begin sees
    the hole, write(2) fills page 0, the fault maps the huge zero page over it."""
    from faultlab.exploring import replay_design

    scenario = load_scenario(str(ROOT / "scenarios/races/pmd-read-fault-vs-write.toml"))
    schedule = "fl1:9de3abbb8b92570d:v4.10-iomap-first:0x19.1"
    result = replay_design(scenario, get_design("v4.10-iomap-first"), schedule)
    assert [v.id for v in result.violations] == ["stale-read"]
    assert "the huge zero page mapped at" in result.violations[0].message
    sequential = run(ROOT / "scenarios/races/pmd-read-fault-vs-write.toml", "v4.10")
    assert not sequential.violations  # the same two threads one after the other: the write unmaps it


# -- truncate inside a PMD entry ---------------------------------------------------------------------
@pytest.mark.parametrize("design", PMD_DESIGNS)
def test_truncate_inside_a_pmd_clears_it_and_deletes_its_2m_entry(design: str) -> None:
    """The kernel's fault counts (the DAX VM's too, tests/test_oracle_pmd.py): the read's PMD
    fault; the load past EOF and the load below it each try a PMD, fall back (the PMD would pass
    EOF), and take a PTE fault (SIGBUS, not counted; a mapped page); the last load a PTE fault."""
    result = run(PMD / "truncate-inside-pmd.toml", design)
    assert not result.violations, result.violations
    assert outcomes(result) == ["ok", '"A"', "ok", "SIGBUS", '"A"', '"A"']
    assert [op.minflt for op in result.record.ops] == [0, 1, 0, 0, 1, 1]
    assert faults(result)["pmd"] == 1 and faults(result)["pmd-fallback"] == 2 and faults(result)["total"] == 4
    assert not hugepmds(result)
    steps = labels(result)
    truncate = steps.index("i_size_write")
    # truncate_inode_pages_range's look-up from page 256 finds the PMD entry at 0 and deletes it,
    # so the later PTE faults insert PTE entries (no PTE fault works under a stale 2 MiB entry)
    delete = steps.index("radix_tree_delete (dax entry)", truncate)
    assert steps[delete:].count("__radix_tree_insert (empty locked entry)") == 2
