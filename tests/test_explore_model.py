"""The explorer on the model: the seed scenario, every known bug, the DPOR/plain cross-check and
determinism across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from faultlab.designs import KNOWN_BUGS, get_design
from faultlab.execution import ModelExecution
from faultlab.explore.explorer import explore
from faultlab.explore.schedule import decode
from faultlab.exploring import explore_design, replay_design
from faultlab.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "scenarios/seed/cow-vs-truncate.toml"

# The race scenarios are explored at this preemption bound: complete within the bound, a few
# seconds each (unbounded, three threads faulting on one DAX entry run to millions of schedules).
RACE_BOUND = {"three-hole-readers.toml": 2, "hole-double-zero.toml": 2, "pmd-pte-collision-private.toml": 2}


@pytest.mark.parametrize("design", ["v4.0", "v4.7", "v4.10", "v7"])
def test_seed_explores_clean_and_complete(design: str) -> None:
    verdict = explore_design(load_scenario(str(SEED)), get_design(design))
    assert verdict.clean
    assert verdict.result.complete
    assert verdict.result.stop_reason == "exhausted"
    assert 1 < verdict.result.schedules < 200
    # both orders of the race happen: the store lands (ok) or comes after the truncate (SIGBUS)
    assert verdict.result.final_state_count == 2


@pytest.mark.parametrize("design", ["xip", "v4.0-no-isize-recheck"])
def test_seed_counterexample_is_minimal_and_replays(design: str) -> None:
    scenario = load_scenario(str(SEED))
    verdict = explore_design(scenario, get_design(design))
    # The stale PTE is the headline.  Under xip it maps a pmem block that truncate then frees, so the
    # same run is also a use-after-free.
    assert verdict.counterexamples[0].id == "stale-pte-after-truncate"
    assert {c.id for c in verdict.counterexamples} <= {"stale-pte-after-truncate", "use-after-free"}
    cx = verdict.counterexamples[0]
    assert cx.preemptions == 1  # the race needs exactly one switch away from a running thread
    # the printed schedule string replays to the same violation, in a fresh run
    replayed = replay_design(scenario, get_design(design), cx.schedule)
    assert "stale-pte-after-truncate" in [v.id for v in replayed.violations]
    digest, recorded, _tids = decode(cx.schedule)
    assert (digest, recorded) == (scenario.digest(), design)
    assert f"--design {design} --schedule {cx.schedule}" in cx.replay_command


def test_v7_insert_breaks_cow_accounting_without_any_preemption() -> None:
    verdict = explore_design(load_scenario(str(SEED)), get_design("v7-insert"))
    assert [c.id for c in verdict.counterexamples] == ["cow-accounting"]
    assert verdict.counterexamples[0].preemptions == 0


def _scenario_of(bug: type) -> str:
    return str(ROOT / bug.scenario)  # type: ignore[attr-defined]


@pytest.mark.parametrize("bug", KNOWN_BUGS, ids=lambda b: b.name)
def test_known_bug_caught_by_dfs(bug: type) -> None:
    path = _scenario_of(bug)
    verdict = explore_design(load_scenario(path), bug, bound=RACE_BOUND.get(Path(path).name))
    assert bug.expected_violation in [c.id for c in verdict.counterexamples]  # type: ignore[attr-defined]


@pytest.mark.parametrize("bug", KNOWN_BUGS, ids=lambda b: b.name)
def test_known_bug_caught_by_pct_default_depth(bug: type) -> None:
    verdict = explore_design(load_scenario(_scenario_of(bug)), bug, strategy="pct", seed=1, max_schedules=3000)
    assert bug.expected_violation in [c.id for c in verdict.counterexamples]  # type: ignore[attr-defined]


@pytest.mark.parametrize("bug", KNOWN_BUGS, ids=lambda b: b.name)
def test_correct_design_explores_clean_on_the_bug_scenario(bug: type) -> None:
    path = _scenario_of(bug)
    correct = get_design(bug.fixed_by)  # type: ignore[attr-defined]
    verdict = explore_design(load_scenario(path), correct, bound=RACE_BOUND.get(Path(path).name))
    assert verdict.clean, [c.message for c in verdict.counterexamples]
    assert verdict.result.stop_reason == "exhausted"


def test_v40_itself_loses_a_write_on_two_hole_faults() -> None:
    """4.0 had the two-write-faults-on-a-hole race (fixed by the 4.7 entry locks): so does v4.0."""
    verdict = explore_design(load_scenario(str(ROOT / "scenarios/races/hole-double-zero.toml")),
                             get_design("v4.0"), bound=2)
    assert [c.id for c in verdict.counterexamples] == ["lost-write"]


CROSS_CHECK = {
    "reader-vs-writer": """
title = "a reader races a writer"
fs = "tmpfs"
[files.data]
size = 100
fill = "A"
[threads.reader]
ops = ["read data 0 1"]
[threads.writer]
ops = ["write data 0 B"]
""",
    "reader-vs-truncate": """
title = "a reader races a truncate"
fs = "ext4"
[files.data]
size = 100
fill = "A"
[threads.reader]
ops = ["read data 0 1"]
[threads.truncator]
ops = ["truncate data 0"]
""",
    "two-readers": """
title = "two readers of one page"
fs = "tmpfs"
[files.data]
size = 100
fill = "A"
[threads.a]
ops = ["read data 0 1"]
[threads.b]
ops = ["read data 0 1"]
""",
    "three-readers-of-a-hole": """
title = "three readers of an empty tmpfs file"
fs = "tmpfs"
[files.data]
size = 0
[threads.a]
ops = ["read data 0 1"]
[threads.b]
ops = ["read data 0 1"]
[threads.c]
ops = ["read data 0 1"]
""",
}


EXACT = {"two-readers", "three-readers-of-a-hole"}
"""Small enough for plain search to try every interleaving (a few thousand); the others are checked
against plain search within two preemptions (every interleaving of these is ~10^5)."""


@pytest.mark.parametrize("name", sorted(CROSS_CHECK))
def test_dpor_and_plain_search_agree(name: str) -> None:
    scenario = parse_scenario(CROSS_CHECK[name], f"<{name}>")
    design = get_design("v4.10")

    def program() -> ModelExecution:
        return ModelExecution(scenario, design)

    dpor = explore(program, "dpor", stop_on_first=False, minimise=False)
    assert dpor.complete
    if name in EXACT:
        plain = explore(program, "dfs", stop_on_first=False, minimise=False)
        assert plain.complete
        assert dpor.violation_ids == plain.violation_ids
        assert dpor.final_states == plain.final_states
        assert dpor.schedules < plain.schedules
    else:
        plain = explore(program, "dfs", bound=2, stop_on_first=False, minimise=False)
        assert set(plain.violation_ids) <= set(dpor.violation_ids)
        assert plain.final_states <= dpor.final_states
        assert dpor.schedules < plain.schedules


def test_replay_refuses_a_schedule_naming_a_missing_thread() -> None:
    scenario = load_scenario(str(SEED))
    schedule = f"fl1:{scenario.digest()}:v4.0:5"
    proc = subprocess.run([sys.executable, "-m", "faultlab", "replay", str(SEED), "--schedule", schedule],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "faultlab: schedule step 0 names thread 5, which does not exist (there are 2)"
    ]


def _explore_output(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run(
        [sys.executable, "-m", "faultlab", "explore", str(SEED.relative_to(ROOT)), "--design", "all"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    return proc.stdout


def test_explore_output_is_byte_identical_across_processes() -> None:
    first = _explore_output("1")
    assert first == _explore_output("4242")
    assert "stale-pte-after-truncate" in first
