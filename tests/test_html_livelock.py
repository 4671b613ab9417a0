"""A livelock in the HTML report: the lanes show the loop the run ended in once, say how many times
it ran and which steps are left out, instead of thousands of identical rows."""

from __future__ import annotations

import re
from typing import Any

import pytest

from faultlab import limits
from faultlab.designs import get_design
from faultlab.exploring import DesignVerdict, explore_design
from faultlab.kernel.eras import v4_10 as era
from faultlab.report.cycles import Cycle, find_cycle
from faultlab.report.html import explore_html
from faultlab.report.html_lanes import build_lanes, cut_cycle
from faultlab.report.swimlanes import lane_rows
from faultlab.scenario import load_scenario

SEED = "scenarios/seed/cow-vs-truncate.toml"


@pytest.mark.parametrize(("rows", "cycle"), [
    ("xyabababab", Cycle(2, 2, 4)),
    ("xyzbabababa", Cycle(3, 2, 4)),  # the partial run at the front stays with the rows before
    ("baaabaaabaaa", Cycle(0, 4, 3)),  # not the "aaa" at the end: the loop that covers most rows
    ("qaaaaaa", Cycle(1, 1, 6)),
    ("abcabcab", None),  # the end does not run a whole loop three times
    ("abcd", None),
    ("", None),
])
def test_find_cycle(rows: str, cycle: Cycle | None) -> None:
    assert find_cycle(list(rows)) == cycle


def test_find_cycle_looks_for_loops_up_to_its_longest_period() -> None:
    rows = list("s" + "abcdefgh" * 5)
    assert find_cycle(rows) == Cycle(1, 8, 5)
    assert find_cycle(rows, max_period=7) is None


def spin_under_i_mmap(k: Any, vmf: Any) -> int:
    """A COW fault that retries for ever: i_mmap_rwsem for read, i_size, unlock, again."""
    mapping = vmf.vma.file.mapping
    while True:
        mapping.i_mmap_rwsem.down_read(k)
        vmf.vma.file.i_size_read(k)
        mapping.i_mmap_rwsem.up_read(k)


@pytest.fixture(scope="module")
def livelock() -> DesignVerdict:
    design = get_design("v4.10").variant("v4.10-spin", "a COW fault that never returns", "a test",
                                         {era.do_cow_fault: spin_under_i_mmap})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(limits, "STEPS_PER_RUN", 2000)  # a few thousand steps: enough loops, little time
        verdict = explore_design(load_scenario(SEED), design, max_schedules=1)
    assert verdict.violation_ids == ["livelock"]
    return verdict


def test_the_lanes_of_a_livelock_show_its_loop_once(livelock: DesignVerdict) -> None:
    run = livelock.counterexamples[0].run
    everything = lane_rows(run.steps, run.events, None)
    lanes = build_lanes(run)
    assert lanes.cycle is not None and lanes.cycle.period == 3
    cycle = lanes.cycle
    assert cycle.repeats > 500 and cycle.end == len(everything)  # the loop runs to the end of the run
    cut = [r for r in lanes.rows if r.cut]
    assert len(cut) == 1 and lanes.rows.index(cut[0]) == cycle.start
    assert len(lanes.rows) == cycle.start + 1 + cycle.period
    first, last_hidden = everything[cycle.start], everything[cycle.end - cycle.period - 1]
    assert cut[0].label == (f"the loop of 3 rows below ran {cycle.repeats} times from step {first.step}: its first "
                            f"{cycle.repeats - 1} runs (steps {first.step}-{last_hidden.step}, "
                            f"{last_hidden.step - first.step + 1} steps) are not shown")
    loop = lanes.rows[cycle.start + 1:]
    assert [r.label for r in loop] == [r.label for r in everything[-3:]]
    assert [r.step for r in loop] == [r.step for r in everything[-3:]]
    assert loop[0].func == "spin_under_i_mmap"  # named again after the cut
    assert loop[-1].violations and loop[-1].violations[0][0] == "livelock"
    # Each i_mmap_rwsem bar of the hidden runs is gone; the ones shown touch a row that is shown.
    i_mmap = [b for b in lanes.bars if b.cls == "&mapping->i_mmap_rwsem" and b.mode == "R"]
    assert 1 <= len(i_mmap) <= 3
    shown = {r.step for r in lanes.rows}
    assert all(b.start_step in shown or (b.end_step is not None and b.end_step in shown) for b in i_mmap)


def test_the_html_of_a_livelock_is_short_and_says_how_often_the_loop_ran(livelock: DesignVerdict) -> None:
    page = explore_html(load_scenario(SEED), "dfs", [livelock])
    assert page == explore_html(load_scenario(SEED), "dfs", [livelock])  # the same bytes
    cells = re.findall(r'<div class="cell [^"]*"', page)
    assert len(cells) < 25, len(cells)  # not the thousands of steps the run took
    assert page.count('<div class="cell cut"') == 1 and page.count('class="band cut"') == 1
    assert re.search(r"the loop of 3 rows below ran \d+ times from step \d+: its first \d+ runs", page)
    assert page.count('class="callout"') == 1 and "invariant broken: livelock" in page


def test_lanes_that_do_not_end_in_a_loop_are_not_cut(livelock: DesignVerdict) -> None:
    verdict = explore_design(load_scenario(SEED), get_design("xip"))
    lanes = build_lanes(verdict.counterexamples[0].run)
    assert lanes.cycle is None and not any(r.cut for r in lanes.rows)
    rows = build_lanes(livelock.counterexamples[0].run).rows
    head = [r for r in rows[:8] if not r.cut]
    assert cut_cycle(head) == (head, None)
    loop = rows[-3:]  # the loop of 3 rows, run 10 times (27 rows hidden) or 11 times (30)
    assert cut_cycle(head + 10 * loop) == (head + 10 * loop, None)
    cut, cycle = cut_cycle(head + 11 * loop)
    assert cycle is not None and cycle.repeats == 11 and len(cut) == len(head) + 1 + 3
