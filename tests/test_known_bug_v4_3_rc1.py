"""The 4.3-rc1 DAX fault locking (known bug ``v4.3-rc1``): what its two commits fixed and what they
broke, each on the scenario that shows it."""

from __future__ import annotations

from pathlib import Path

from faultlab.designs import get_design
from faultlab.exploring import explore_design, replay_design
from faultlab.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
RACES = ROOT / "scenarios/races"


def test_write_fault_takes_i_mmap_twice_around_the_hole_page_lock() -> None:
    scenario = load_scenario(str(RACES / "hole-read-vs-write-fault.toml"))
    verdict = explore_design(scenario, get_design("v4.3-rc1"))
    by_id = {c.id: c for c in verdict.counterexamples}
    assert set(by_id) == {"lock-order", "deadlock"}
    cx = by_id["lock-order"]
    # i_mmap_rwsem -> page lock (find_lock_page) closes a cycle with page lock -> i_mmap_rwsem
    # (unmap_mapping_range), both by the write fault, once the read fault's hole page is in.
    assert "trying to acquire lock (&mapping->i_mmap_rwsem) while holding (page lock)" in cx.message
    assert "(page lock) taken while holding (&mapping->i_mmap_rwsem), writer" in cx.message
    assert cx.preemptions == 1
    assert f"--design v4.3-rc1 --schedule {cx.schedule}" in cx.replay_command
    replayed = replay_design(scenario, get_design("v4.3-rc1"), cx.schedule)
    ids = [v.id for v in replayed.violations]
    assert "lock-order" in ids and "deadlock" in ids
    deadlock = next(v for v in replayed.violations if v.id == "deadlock")
    assert "writer (down_write (waits) &mapping->i_mmap_rwsem)" in deadlock.message


def test_i_mmap_for_write_around_get_block_fixed_the_lost_store() -> None:
    """843172978bb9's purpose: two write faults on one hole no longer both zero the block
    (v4.0 loses a store there, test_explore_model.test_v40_itself_loses_a_write_on_two_hole_faults)."""
    verdict = explore_design(load_scenario(str(RACES / "hole-double-zero.toml")), get_design("v4.3-rc1"), bound=2)
    assert verdict.clean, [c.message for c in verdict.counterexamples]
    assert verdict.result.stop_reason == "exhausted"


def test_read_fault_on_a_hole_page_releases_i_mmap_it_never_took() -> None:
    """A read fault that finds another reader's hole page skips i_mmap_lock_write() but still calls
    i_mmap_unlock_write() before dax_load_hole(): an unpaired up_write."""
    verdict = explore_design(load_scenario(str(RACES / "three-hole-readers.toml")), get_design("v4.3-rc1"), bound=2)
    assert [c.id for c in verdict.counterexamples] == ["lock-pairing"]
    assert "up_write of a rwsem this thread does not hold for write" in verdict.counterexamples[0].message
