"""PCT and random walk: seeded, deterministic, and they find the toy bugs."""

from __future__ import annotations

import random

import pytest

from faultlab.errors import UserError
from faultlab.explore import toys
from faultlab.explore.explorer import explore
from faultlab.explore.pct import PCTChooser
from faultlab.explore.replay import replay


def test_pct_finds_the_depth_two_bug() -> None:
    # A lost update (depth 2: t1's read must fall between t0's read and write) behind 6 steps of
    # padding per thread.  PCT's bound: probability >= 1/(n k^(d-1)) = 1/(2*18) per run.
    prog = toys.counter(2, padding=6)
    r = explore(prog, "pct", seed=7, depth=2, max_schedules=300)
    assert r.violation_ids == ["lost-update"]
    assert r.seed == 7 and not r.complete and r.stop_reason == "violation"
    found = r.violations[0]
    assert found.preemptions == 1
    assert [v.id for v in replay(prog, found.found_schedule).violations] == ["lost-update"]
    assert [v.id for v in replay(prog, found.schedule).violations] == ["lost-update"]


def test_pct_finds_the_depth_three_bug() -> None:
    r = explore(toys.ordering(), "pct", seed=3, depth=3, max_schedules=1000)
    assert r.violation_ids == ["bad-order"]
    assert r.violations[0].preemptions == 2


def test_random_walk_finds_bugs() -> None:
    for prog, vid in ((toys.counter(2, padding=3), "lost-update"), (toys.two_locks(), "deadlock")):
        r = explore(prog, "random", seed=1, max_schedules=500)
        assert r.violation_ids == [vid]
        assert [v.id for v in replay(prog, r.violations[0].found_schedule).violations] == [vid]


@pytest.mark.parametrize("strategy", ["pct", "random"])
def test_sampling_is_deterministic_per_seed(strategy: str) -> None:
    prog = toys.counter(3, locked=True)
    a = explore(prog, strategy, seed=11, max_schedules=50, keep_schedules=True)
    b = explore(prog, strategy, seed=11, max_schedules=50, keep_schedules=True)
    c = explore(prog, strategy, seed=12, max_schedules=50, keep_schedules=True)
    assert a.schedules_list == b.schedules_list
    assert a.summary() == b.summary()
    assert a.schedules_list != c.schedules_list
    assert a.schedules == 50 and a.stop_reason == "max-schedules" and not a.complete
    assert a.violations == []


def test_sampling_does_not_touch_the_global_rng() -> None:
    random.seed(5)
    expected = random.random()
    random.seed(5)
    explore(toys.counter(3), "random", seed=1, max_schedules=20, stop_on_first=False)
    explore(toys.counter(3), "pct", seed=1, max_schedules=20, stop_on_first=False)
    assert random.random() == expected


def test_pct_chooser_priorities_and_change_points() -> None:
    chooser = PCTChooser(random.Random(0), depth=3, k=10)
    chooser._start(4)
    assert sorted(chooser.prio) == [3, 4, 5, 6]  # distinct initial priorities d .. d+n-1
    assert sorted(chooser.changes.values()) == [1, 2]  # d-1 change points, below every initial one
    assert all(1 <= step <= 10 for step in chooser.changes)
    with pytest.raises(UserError):
        explore(toys.counter(), "pct", depth=0)
