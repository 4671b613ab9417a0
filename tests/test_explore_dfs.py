"""Exhaustive search: DPOR against plain DFS on toy programs with known answers, bounds, limits,
splitting, determinism and the nondeterminism self-check."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from faultlab.errors import UserError
from faultlab.explore import toys
from faultlab.explore.explorer import explore
from faultlab.explore.program import NondeterminismError, RunResult, ScheduleError
from faultlab.explore.results import Stats
from faultlab.explore.split import split
from faultlab.sched.core import Access, Chooser, Scheduler

CATALOGUE = {
    "counter": (toys.counter(), ["lost-update"]),
    "counter-3": (toys.counter(3), ["lost-update"]),
    "counter-locked": (toys.counter(locked=True), []),
    "counter-3-locked": (toys.counter(3, locked=True), []),
    "two-locks": (toys.two_locks(), ["deadlock"]),
    "independent": (toys.independent(3, 1), []),
    "ordering": (toys.ordering(), ["bad-order"]),
    "lost-wakeup": (toys.lost_wakeup(), ["deadlock"]),
    "handoff": (toys.handoff(), []),
}


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_dpor_and_plain_dfs_agree(name: str) -> None:
    prog, expected = CATALOGUE[name]
    plain = explore(prog, "dfs", stop_on_first=False, minimise=False)
    dpor = explore(prog, "dpor", stop_on_first=False, minimise=False)
    assert plain.complete and dpor.complete
    assert plain.stop_reason == dpor.stop_reason == "exhausted"
    assert sorted(plain.violation_ids) == sorted(dpor.violation_ids) == expected
    assert plain.final_states == dpor.final_states
    assert dpor.schedules <= plain.schedules
    assert plain.sleep_blocked == 0


def test_dpor_runs_far_fewer_schedules_on_independent_steps() -> None:
    # Three threads: start, one private write, one write to the shared x.  Plain DFS runs every
    # interleaving of 3+3+3 steps (9!/(3!^3) = 1680); the only conflicts are the three writes to x,
    # so DPOR needs one run per order of them (3! = 6).
    prog = toys.independent(3, 1)
    plain = explore(prog, "dfs", minimise=False)
    dpor = explore(prog, "dpor", minimise=False)
    assert plain.schedules == 1680
    assert dpor.schedules - dpor.sleep_blocked == 6
    assert dpor.schedules < plain.schedules
    assert dpor.final_state_count == plain.final_state_count == 3


def test_deadlock_is_found_and_minimised() -> None:
    for strategy in ("dpor", "dfs"):
        r = explore(toys.two_locks(), strategy)
        assert r.violation_ids == ["deadlock"]
        found = r.violations[0]
        assert found.preemptions == 1
        assert "all unfinished threads are blocked" in found.violation.message
        assert [v.id for v in found.run.violations] == ["deadlock"]


def test_lost_wakeup_is_a_deadlock() -> None:
    r = explore(toys.lost_wakeup(), "dpor")
    assert r.violation_ids == ["deadlock"]
    assert r.violations[0].schedule == [0, 0, 1]  # t0 tests, t1 signals, t0 sleeps for ever


def test_preemption_bound() -> None:
    prog = toys.ordering()  # needs exactly two preemptions
    for strategy in ("dfs", "dpor"):
        for bound in (0, 1):
            r = explore(prog, strategy, bound=bound, stop_on_first=False)
            assert r.violations == []
            assert r.pruned_by_bound and not r.complete
        r = explore(prog, strategy, bound=2)
        assert r.violation_ids == ["bad-order"]
        assert r.violations[0].preemptions == 2
    # A bound that prunes nothing leaves the search complete.
    r = explore(toys.handoff(), "dfs", bound=5)
    assert r.complete and not r.pruned_by_bound
    with pytest.raises(UserError):
        explore(prog, "dfs", bound=-1)


def test_stop_on_first_and_limits() -> None:
    prog = toys.counter(3)
    full = explore(prog, "dfs", stop_on_first=False, minimise=False)
    first = explore(prog, "dfs", minimise=False)
    assert first.stop_reason == "violation" and not first.complete
    assert first.schedules < full.schedules
    assert first.violations[0].found_at == first.schedules
    capped = explore(prog, "dfs", max_schedules=10, stop_on_first=False, minimise=False)
    assert (capped.schedules, capped.stop_reason, capped.complete) == (10, "max-schedules", False)
    steps = explore(prog, "dfs", max_steps=50, stop_on_first=False, minimise=False)
    assert steps.stop_reason == "max-steps" and 50 <= steps.steps < 70
    timed = explore(prog, "dpor", budget_seconds=0.0, stop_on_first=False, minimise=False)
    assert (timed.schedules, timed.stop_reason, timed.complete) == (1, "time-budget", False)
    assert "time" not in timed.summary().replace("time-budget", "")


def test_collecting_every_violation() -> None:
    prog = toys.ToyProgram(
        (
            (toys.Write("x", 1), toys.Lock("A"), toys.Lock("B")),
            (toys.Check("x", 1, "saw-x"), toys.Lock("B"), toys.Lock("A")),
        )
    )
    r = explore(prog, "dpor", stop_on_first=False)
    assert sorted(r.violation_ids) == ["deadlock", "saw-x"]
    assert all(f.occurrences >= 1 for f in r.violations)
    assert r.complete


def test_progress_callback() -> None:
    seen: list[Stats] = []
    r = explore(toys.counter(3), "dpor", stop_on_first=False, progress=seen.append)
    assert [s.schedules for s in seen] == list(range(1, r.schedules + 1))
    assert seen[-1].final_states == r.final_state_count
    assert seen[-1].strategy == "dpor"


def test_determinism() -> None:
    for strategy in ("dpor", "dfs"):
        a = explore(toys.counter(3), strategy, stop_on_first=False, keep_schedules=True)
        b = explore(toys.counter(3), strategy, stop_on_first=False, keep_schedules=True)
        assert a.schedules_list == b.schedules_list
        assert a.summary() == b.summary()
        assert [f.schedule for f in a.violations] == [f.schedule for f in b.violations]


def test_summary_text() -> None:
    r = explore(toys.two_locks(), "dpor")
    text = r.summary()
    assert text.splitlines()[0].startswith("strategy dpor: ")
    assert "violation deadlock" in text and "1 preemption(s)" in text


def test_bad_arguments() -> None:
    with pytest.raises(UserError, match="unknown exploration strategy 'bfs'"):
        explore(toys.counter(), "bfs")
    with pytest.raises(UserError):
        explore(toys.counter(), "random", prefix=[0])
    with pytest.raises(UserError):
        explore(toys.counter(), "pct", bound=1)
    with pytest.raises(UserError):
        explore(toys.counter(), "dpor", max_schedules=0)
    with pytest.raises(ScheduleError, match="prefix step 1 names thread 5"):
        explore(toys.counter(), "dpor", prefix=[0, 5])


@pytest.mark.parametrize("name", ["ordering", "counter-3", "two-locks", "counter-3-locked"])
@pytest.mark.parametrize("depth", [1, 3, 6])
def test_split_covers_the_unsplit_search(name: str, depth: int) -> None:
    prog, _ = CATALOGUE[name]
    plain = explore(prog, "dfs", stop_on_first=False, minimise=False)
    prefixes = split(prog, depth, reduce=False)
    assert all(len(p) <= depth for p in prefixes)
    parts = [explore(prog, "dfs", prefix=p, stop_on_first=False, minimise=False) for p in prefixes]
    assert sum(r.schedules for r in parts) == plain.schedules
    assert frozenset().union(*(r.final_states for r in parts)) == plain.final_states
    assert set().union(*(r.violation_ids for r in parts)) == set(plain.violation_ids)
    assert all(r.complete for r in parts)

    dpor = explore(prog, "dpor", stop_on_first=False, minimise=False)
    dparts = [
        explore(prog, "dpor", prefix=p, stop_on_first=False, minimise=False) for p in split(prog, depth)
    ]
    assert frozenset().union(*(r.final_states for r in dparts)) == dpor.final_states == plain.final_states
    assert set().union(*(r.violation_ids for r in dparts)) == set(dpor.violation_ids)


def test_split_depth_zero_is_the_whole_tree() -> None:
    assert split(toys.counter(), 0) == [[]]
    with pytest.raises(UserError):
        split(toys.counter(), -1)


class _Drifting:
    """A program that is not deterministic: how many steps thread 0 takes depends on how often the
    program ran (state kept across runs)."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self) -> _Drifting:
        return self

    def run(self, chooser: Chooser) -> RunResult:
        self.runs += 1
        sched = Scheduler(chooser)
        writes = 2 if self.runs % 2 else 1

        def t0() -> None:
            for i in range(writes):
                sched.point("a", Access.WRITE, f"write a #{i}")

        def t1() -> None:
            sched.point("a", Access.WRITE, "write a")

        sched.spawn("t0", t0)
        sched.spawn("t1", t1)
        sched.run()
        final: Hashable = writes
        return RunResult(sched.steps, [], final, [t.name for t in sched.threads])


def test_nondeterminism_is_detected() -> None:
    for strategy in ("dfs", "dpor"):
        with pytest.raises(NondeterminismError, match="not deterministic"):
            explore(_Drifting(), strategy)


_SCRIPT = """
from faultlab.explore import explore, toys
for prog in (toys.counter(3), toys.ordering(), toys.two_locks(), toys.counter(3, locked=True)):
    for strategy in ("dpor", "dfs", "pct", "random"):
        r = explore(prog, strategy, seed=3, max_schedules=300, stop_on_first=False, keep_schedules=True)
        print(r.summary())
        print(r.schedules_list)
"""


def test_same_output_in_any_process() -> None:
    import os
    import subprocess
    import sys

    outputs = []
    for hashseed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        proc = subprocess.run(
            [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True, timeout=300
        )
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert "violation lost-update" in outputs[0]


def test_race_that_cannot_be_reversed_adds_every_thread_that_can_move() -> None:
    # FG05's conservative rule in DPOR (faultlab.explore.dfs.add_race): when none of the initials
    # of the reversed race can move at the racing step's state (the step released the lock or woke
    # the sleeper they wait for), every thread that can move there and is not asleep is added.
    from faultlab.explore.dfs import _Node, add_race

    node = _Node(enabled=0b1011, chosen=0, sleep=0b1000, backtrack=0, preempt=0, prev=-1)
    add_race(node, initials=0b0100, p=2, sleep_sets=True)  # thread 2 waits: not enabled here
    assert node.order == [0, 1]  # thread 1 added; thread 3 is asleep; thread 0 is explored already
    plain = _Node(enabled=0b1011, chosen=0, sleep=0b1000, backtrack=0, preempt=0, prev=-1)
    add_race(plain, initials=0b0100, p=2, sleep_sets=False)
    assert plain.order == [0, 1, 3]
    # An initial that can move is added alone (p first), and a covered race adds nothing.
    n2 = _Node(enabled=0b0111, chosen=0, sleep=0, backtrack=0, preempt=0, prev=-1)
    add_race(n2, initials=0b0110, p=2, sleep_sets=True)
    assert n2.order == [0, 2]
    add_race(n2, initials=0b0011, p=1, sleep_sets=True)
    assert n2.order == [0, 2]


def _critical_sections(n: int, inner: list[str]) -> toys.ToyProgram:
    """n threads, each: lock A, write each of ``inner`` ("own": a variable of its own), unlock A,
    read z."""
    threads = []
    for t in range(n):
        ops: list[toys.Op] = [toys.Lock("A")]
        ops.extend(toys.Write(v if v != "own" else f"v{t}", t + 1) for v in inner)
        ops += [toys.Unlock("A"), toys.Read("z")]
        threads.append(tuple(ops))
    return toys.ToyProgram(tuple(threads))


@pytest.mark.parametrize("inner", [[], ["x"], ["own"]])
@pytest.mark.parametrize("n", [2, 3])
def test_a_lock_race_is_reversed_at_the_acquire(n: int, inner: list[str]) -> None:
    # The acquire of A races with the release that let it go; it cannot move before that release
    # while A is held, so DPOR reverses the race before the holder's acquire
    # (_TreeChooser._acquires_instead): one run per order of the critical sections (n!), none
    # abandoned sleep-set blocked.  Reversed before the release, the branch walked the thread up
    # to the held lock and often ended blocked: 3 runs (1 blocked) for 2 threads, 10 (4) for 3.
    prog = _critical_sections(n, inner)
    plain = explore(prog, "dfs", stop_on_first=False, minimise=False)
    dpor = explore(prog, "dpor", stop_on_first=False, minimise=False)
    assert dpor.complete
    assert dpor.schedules == (2 if n == 2 else 6)
    assert dpor.sleep_blocked == 0
    assert dpor.final_states == plain.final_states
    assert dpor.final_state_count == (n if inner == ["x"] else 1)


def test_a_lock_race_the_acquirer_cannot_reverse_is_dropped() -> None:
    # t1 waits for t0's flag before it takes A, so its acquire happens after t0's acquire in every
    # run: the race with t0's release cannot be reversed, and DPOR adds no branch for it.
    prog = toys.ToyProgram((
        (toys.Lock("A"), toys.Signal("E"), toys.Write("x", 1), toys.Unlock("A")),
        (toys.Wait("E"), toys.Lock("A"), toys.Write("x", 2), toys.Unlock("A")),
    ))
    plain = explore(prog, "dfs", stop_on_first=False, minimise=False)
    dpor = explore(prog, "dpor", stop_on_first=False, minimise=False)
    assert dpor.final_states == plain.final_states
    assert dpor.final_state_count == 1
    assert dpor.sleep_blocked == 0
