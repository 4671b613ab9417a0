"""Lock-order checking (lockdep): dependencies collected across runs, cycles reported in lockdep's
words with both chains."""

from __future__ import annotations

from faultlab.checks.lockdep import LockDep


def test_a_cycle_across_two_runs_is_reported_with_both_chains() -> None:
    dep = LockDep()
    assert dep.add("&mapping->i_mmap_rwsem", "page lock", "truncator at step 12") is None
    report = dep.add("page lock", "&mapping->i_mmap_rwsem", "faulter at step 30")
    assert report is not None
    assert report.splitlines()[0] == "WARNING: possible circular locking dependency detected"
    assert "trying to acquire lock (&mapping->i_mmap_rwsem) while holding (page lock);" in report
    assert "(page lock) taken while holding (&mapping->i_mmap_rwsem), truncator at step 12" in report
    assert "(&mapping->i_mmap_rwsem) taken while holding (page lock), faulter at step 30" in report
    assert " *** DEADLOCK ***" in report
    assert dep.reports == [report]


def test_a_longer_cycle_and_no_duplicate_reports() -> None:
    dep = LockDep()
    dep.add("a", "b", "t1")
    dep.add("b", "c", "t2")
    report = dep.add("c", "a", "t3")
    assert report is not None
    assert "(b) taken while holding (a), t1" in report
    assert "(c) taken while holding (b), t2" in report
    assert dep.add("c", "a", "t4") is None  # already known
    assert len(dep.reports) == 1


def test_consistent_order_is_not_a_cycle() -> None:
    dep = LockDep()
    for where in ("t1", "t2", "t3"):
        assert dep.add("&mm->mmap_sem", "ptlock", where) is None
    assert dep.add("&mm->mmap_sem", "&mm->mmap_sem", "recursive read") is None
    assert dep.reports == []
