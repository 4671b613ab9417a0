"""Counterexample minimisation: fewest preemptions (known exactly for the toys), then fewest steps,
then a schedule cut after its last non-default choice."""

from __future__ import annotations

import pytest

from faultlab.errors import UserError
from faultlab.explore import toys
from faultlab.explore.explorer import explore
from faultlab.explore.minimise import minimise
from faultlab.explore.replay import replay_traced


def _preemptions(prog: toys.ToyProgram, tids: list[int], vid: str) -> int:
    rp = replay_traced(prog, tids)
    v = next(v for v in rp.result.violations if v.id == vid)
    return rp.preemptions_until(v.step)


def test_ordering_needs_exactly_two_preemptions() -> None:
    prog = toys.ordering()
    # A violating schedule with extra switches (found by a random walk).
    noisy = [1, 2, 0, 0, 1, 0, 1, 2, 1]
    assert _preemptions(prog, noisy, "bad-order") > 2
    m = minimise(prog, noisy, "bad-order")
    assert m.preemptions == 2
    assert m.violation.id == "bad-order"
    # t0 starts and writes a=1; t1 (preempting t0) starts, reads a and writes b=2; t2 (preempting
    # t1) starts and checks b: the check is step 6.
    assert m.schedule == [0, 0, 1, 1, 1, 2]
    assert m.steps == 7 and m.violation.step == 6
    assert _preemptions(prog, m.schedule, "bad-order") == 2
    assert m.replayed.trace[: len(m.schedule)] == m.schedule


def test_every_strategy_reports_the_minimum() -> None:
    cases = [(toys.ordering(), 2), (toys.two_locks(), 1), (toys.counter(3), 1), (toys.lost_wakeup(), 1)]
    for prog, fewest in cases:
        for strategy in ("dpor", "dfs", "random", "pct"):
            r = explore(prog, strategy, seed=4, depth=3)
            assert len(r.violations) == 1, (prog.name, strategy)
            assert r.violations[0].preemptions == fewest, (prog.name, strategy)


def test_schedule_is_cut_after_the_last_non_default_choice() -> None:
    prog = toys.counter(2, padding=4)
    m = minimise(prog, [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], "lost-update")
    assert m.preemptions == 1
    rp = replay_traced(prog, m.schedule)
    assert rp.nondefault and rp.nondefault[-1] == len(m.schedule) - 1
    assert [v.id for v in rp.result.violations] == ["lost-update"]


def test_without_bound_search_local_edits_still_help() -> None:
    prog = toys.ordering()
    noisy = [1, 2, 0, 0, 1, 0, 1, 2, 1]
    assert _preemptions(prog, noisy, "bad-order") == 5
    m = minimise(prog, noisy, "bad-order", bound_search=False)
    assert m.violation.id == "bad-order"
    # Local edits alone drop two of the five preemptions (the bound search finds the last one, see
    # test_ordering_needs_exactly_two_preemptions) and cut the schedule after its last choice.
    assert m.preemptions == 3
    assert m.schedule == [1, 0, 0, 1, 1, 2]
    assert _preemptions(prog, m.schedule, "bad-order") == 3
    assert m.schedules < 40


def test_a_schedule_that_does_not_reproduce_is_refused() -> None:
    with pytest.raises(UserError, match="does not reproduce violation 'lost-update'"):
        minimise(toys.counter(), [0, 0, 0, 1], "lost-update")


def test_minimise_false_keeps_the_found_schedule() -> None:
    r = explore(toys.ordering(), "random", seed=0, minimise=False)
    found = r.violations[0]
    assert found.schedule == found.found_schedule
    assert [v.id for v in found.run.violations] == ["bad-order"]
