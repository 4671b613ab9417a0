"""MAP_SYNC (4.15): the mmap flag per era, the synchronous DAX fault that commits a new block's
allocation before mapping it, the user-space persist op, and the journal that makes the difference
at a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from faultlab.cli import main
from faultlab.designs import get_design
from faultlab.execution import ModelExecution, ModelRunResult
from faultlab.exploring import explore_design
from faultlab.kernel.state.cachelines import LINE, Cachelines
from faultlab.scenario import ScenarioBuilder, load_scenario
from faultlab.sched import SequentialChooser

ROOT = Path(__file__).resolve().parent.parent
HOLE_STORE = ROOT / "scenarios/crash/map-sync-hole-store.toml"
P = 4096


def run(*ops: str, design: str = "v6.1", fs: str = "dax", fill: str | None = "hole", size: str = "1p",
        pmem_align: str | None = None, threads: dict[str, tuple[str, ...]] | None = None,
        crash: bool = False) -> ModelRunResult:
    b = ScenarioBuilder("map-sync", fs=fs, pmem_align=pmem_align).file("f", size=size, fill=fill)
    for name, tops in (threads or {"t": ops}).items():
        b = b.thread(name, *tops)
    return ModelExecution(b.build(), get_design(design), crash=crash).run(SequentialChooser())


def outcomes(r: ModelRunResult) -> list[str]:
    return [str(o.outcome) for o in r.record.ops]


def ids(r: ModelRunResult) -> list[str]:
    return [v.id for v in r.violations]


# -- the mmap flag ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("design", "fs", "want"), [
    ("v6.1", "dax", "ok"), ("v6.18", "dax", "ok"),
    ("v6.1", "ext4", "EOPNOTSUPP"),  # ext4_file_mmap: VM_SYNC on a file that is not DAX
    ("v6.1", "tmpfs", "EOPNOTSUPP"),  # do_mmap: shmem has no mmap_supported_flags
    ("v4.10", "dax", "EINVAL"), ("v4.7", "dax", "EINVAL"), ("v4.0", "dax", "EINVAL"), ("xip", "dax", "EINVAL"),
])
def test_mmap_sync_errno_per_era(design: str, fs: str, want: str) -> None:
    r = run("m = mmap f 0 1p shared rw sync", design=design, fs=fs, fill="A")
    assert outcomes(r)[0] == want


def test_sync_on_a_private_mapping_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('title = "x"\nfs = "dax"\n[files.f]\nsize = "1p"\n[threads.t]\nops = [\n'
                    '  "m = mmap f 0 1p private rw sync",\n]\n')
    res = CliRunner().invoke(main, ["run", str(path)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"faultlab: {path}:7: sync needs a shared mapping")


# -- the synchronous fault and the journal ---------------------------------------------------------------
def test_sync_fault_commits_before_mapping_and_the_store_survives_a_crash() -> None:
    r = run("m = mmap f 0 1p shared rw sync", "store m 8 B", "persist m 0 1p", "crash")
    assert outcomes(r)[:3] == ["ok", "ok", "ok"]
    assert ids(r) == []
    # dax_finish_sync_fault's result replaces the fault's VM_FAULT_MAJOR (as in ext4_dax_huge_fault)
    assert (r.record.ops[1].minflt, r.record.ops[1].majflt) == (1, 0)


def test_known_bug_no_sync_fault_loses_the_persisted_store() -> None:
    scenario = load_scenario(str(HOLE_STORE))
    design = get_design("v6.1-no-sync-fault")
    assert design.fixed_by == "v6.1" and design.expected_violation == "durability"
    for crash in (False, True):
        v = explore_design(scenario, design, crash=crash)
        assert v.violation_ids == ["durability"]
        message = v.counterexamples[0].message
        assert "persist of f offsets 0-4095 (a MAP_SYNC mapping)" in message
        assert "lost line: pmem block" in message and "not in the committed block map" in message
    for fixed in ("v6.1", "v6.18"):
        for crash in (False, True):
            assert explore_design(scenario, get_design(fixed), crash=crash).clean


def test_an_fsync_commits_what_the_buggy_fault_did_not() -> None:
    r = run("m = mmap f 0 1p shared rw sync", "store m 8 B", "persist m 0 1p", "fsync f", "crash",
            design="v6.1-no-sync-fault")
    assert ids(r) == []


def test_a_block_allocated_at_set_up_needs_no_sync_fault() -> None:
    # The file's blocks are committed from the start: IOMAP_F_DIRTY is clear, the buggy fault is
    # as good as the real one.
    r = run("m = mmap f 0 1p shared rw sync", "store m 8 B", "persist m 0 1p", "crash", fill="A",
            design="v6.1-no-sync-fault")
    assert ids(r) == []


def test_without_map_sync_persist_promises_nothing(tmp_path: Path) -> None:
    text = HOLE_STORE.read_text()
    assert " shared rw sync" in text
    path = tmp_path / "map-nosync.toml"
    path.write_text(text.replace(" shared rw sync", " shared rw"))
    scenario = load_scenario(str(path))
    for design in ("v6.1", "v6.1-no-sync-fault"):
        assert explore_design(scenario, get_design(design), crash=True).clean


def test_pmd_sync_fault_commits_the_2m_extent() -> None:
    ops = ("m = mmap f 0 2m shared rw sync", "store m 1p B", "persist m 1p 64", "crash")
    good = run(*ops, size="2m", pmem_align="2m")
    assert outcomes(good)[:3] == ["ok", "ok", "ok"] and ids(good) == []
    assert good.counters["thp_fault_fallback"] == 0
    bad = run(*ops, size="2m", pmem_align="2m", design="v6.1-no-sync-fault")
    assert ids(bad) == ["durability"]


def test_persist_covers_only_stores_completed_before_it_began() -> None:
    # Two threads: the store may complete before, during or after the persist; only the first is
    # covered, and then the clwb has flushed it.  Every crash point of every schedule is clean.
    scenario = (ScenarioBuilder("race", fs="dax").file("f", size="1p", fill="A")
                .setup("m = mmap f 0 1p shared rw sync")
                .thread("a", "store m 8 B")
                .thread("b", "persist m 0 1p")
                .build())
    v = explore_design(scenario, get_design("v6.1"), crash=True)
    assert v.clean and v.result.schedules > 1


def test_a_clwb_of_a_line_another_thread_has_in_flight_persists_it_at_this_threads_fence() -> None:
    c = Cachelines()
    old, new = bytes(P), b"\x01" * P
    c.stored(3, 0, 1, old)
    assert c.flush(7, 3, new, 0, LINE) == 1  # thread 7's clwb: in flight for 7, clean
    assert c.flush(8, 3, new, 0, LINE) == 0  # thread 8's clwb of the clean line: nothing was dirty...
    c.fence(8)  # ...but its sfence persists the line (x86: a flush is of the line, not of a thread)
    st = c.state(3, 0)
    assert st is not None and st.media == new[:LINE] and 7 in st.inflight


def test_fsync_racing_with_a_persist_of_the_same_line_is_durable() -> None:
    # The persist's clwb takes the line in flight; the fsync's dax_flush of the same (clean) line
    # and its flush request must persist it although the persisting thread has not fenced yet.
    scenario = (ScenarioBuilder("race", fs="dax").file("f", size="1p", fill="hole")
                .setup("m = mmap f 0 1p shared rw sync")
                .thread("a", "store m 8 B", "persist m 0 64")
                .thread("b", "fsync f")
                .build())
    v = explore_design(scenario, get_design("v6.1"), crash=True)
    assert v.clean and v.result.stop_reason == "exhausted"
    assert explore_design(scenario, get_design("v6.1-no-sync-fault"), crash=True).violation_ids == ["durability"]
