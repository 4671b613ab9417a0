"""DPOR checked against plain search on the model itself: generated scenarios with mmap, loads and
stores, read/write, truncate, msync, fsync, madvise, crash and fork (a child process using its copy
of a map), maps made in [setup] or by the threads, on every file kind, with 2 and 3 threads (and a
forked child), under every design and known bug.

Plain search tries every interleaving up to a preemption bound (small enough that it completes
within the bound); DPOR searches them all, with its reduction.  Every end state and every
violation plain search reaches must be one DPOR reaches; when the bound pruned nothing, plain
search saw everything and the two must agree exactly.  A bug in an announced access (an access a
step makes but does not announce) shows here as an end state only plain search finds.

The number of examples: ``FAULTLAB_PROPERTY_EXAMPLES`` (CI runs the default; e.g. 3000 for a long
run: ``FAULTLAB_PROPERTY_EXAMPLES=3000 python -m pytest tests/test_explore_dpor_vs_plain.py``)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultlab.designs import ALL_DESIGNS
from faultlab.execution import ModelExecution
from faultlab.explore.explorer import explore
from faultlab.exploring import DEFAULT_RETRY_BOUND
from faultlab.scenario import ScenarioBuilder
from faultlab.scenario.model import Scenario

EXAMPLES = int(os.environ.get("FAULTLAB_PROPERTY_EXAMPLES", "150"))
PLAIN_BOUND = 1
DPOR_CAP = 4000  # schedules; an example DPOR cannot finish within it is skipped (see below)
PLAIN_CAP = 20000
STEP_CAP = 100_000  # steps of DPOR's search (an example past it is skipped too)

DESIGN_NAMES = sorted(ALL_DESIGNS)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Scenario, str]:
    fs = draw(st.sampled_from(["tmpfs", "ext4", "dax"]))
    pages = draw(st.integers(min_value=1, max_value=2))
    fill = draw(st.sampled_from(["A", "hole"]))
    b = ScenarioBuilder("generated", fs=fs).file("f", size=f"{pages}p", fill=fill)
    nthreads = draw(st.sampled_from([2, 2, 2, 3]))
    premapped = nthreads == 2 and draw(st.sampled_from([False, False, False, True]))
    if premapped:  # a map of the threads' process made in [setup], maybe with a private copy already
        share = draw(st.sampled_from(["shared", "private"]))
        b = b.setup(f"m = mmap f 0 {pages}p {share} rw", *draw(st.sampled_from([[], ["store m 0 S"]])))
    budget = 2 if nthreads == 3 else 3  # ops per thread, mmap included
    forks = nthreads == 2 and draw(st.sampled_from([False, False, False, True]))  # t0 forks a child process
    forked = False
    for t in range(nthreads):
        ops: list[str] = []
        mapped = premapped
        for _ in range(draw(st.integers(min_value=1, max_value=budget))):
            off = f"{draw(st.integers(min_value=0, max_value=pages - 1))}p+{draw(st.sampled_from([0, 8]))}"
            kind = draw(st.sampled_from(["mmap", "access", "access", "read", "write", "truncate", "msync",
                                         "madvise", "fsync", "crash"]))
            if kind == "mmap" or (kind in ("access", "msync", "madvise") and not mapped):
                if mapped:
                    continue
                share = draw(st.sampled_from(["shared", "private"]))
                ops.append(f"m = mmap f 0 {pages}p {share} rw")
                mapped = True
            elif kind == "access":
                ops.append(draw(st.sampled_from([f"load m {off} 1", f"store m {off} {chr(65 + 20 + t)}"])))
            elif kind == "read":
                ops.append(f"read f {off} 2")
            elif kind == "write":
                ops.append(f"write f {off} {chr(97 + t)}")
            elif kind == "truncate":
                ops.append(f"truncate f {draw(st.sampled_from(['0', '1p', '1p+100', '2p']))}")
            elif kind == "msync":
                ops.append("msync m")
            elif kind == "fsync":
                ops.append("fsync f")
            elif kind == "crash":  # a power failure: dependent with every step, and ends them all
                ops.append("crash")
            else:
                ops.append("madvise m dontneed")
        if t == 0 and forks and mapped:  # (after its own mmap, if it made one)
            ops.insert(draw(st.integers(min_value=0, max_value=len(ops))) if premapped else len(ops), "fork c")
            forked = True
        b = b.thread(f"t{t}", *(ops or ["read f 0 1"]))
    if forked:
        off = f"{draw(st.integers(min_value=0, max_value=pages - 1))}p"
        b = b.thread("c", draw(st.sampled_from([f"load m {off} 1", f"store m {off} Z"])),
                     *draw(st.sampled_from([[], ["load m 0 1"], ["madvise m dontneed"]])))
    return b.build(), draw(st.sampled_from(DESIGN_NAMES))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(scenarios())
def test_dpor_reaches_every_end_state_and_violation_plain_search_does(case: tuple[Scenario, str]) -> None:
    scenario, name = case
    design = ALL_DESIGNS[name]

    def program() -> ModelExecution:  # (retry loops bounded as explore bounds them: two retries chasing
        return ModelExecution(scenario, design, record_steps=False, retry_bound=DEFAULT_RETRY_BOUND)  # each other)

    dpor = explore(program, "dpor", stop_on_first=False, minimise=False, max_schedules=DPOR_CAP, max_steps=STEP_CAP)
    if dpor.stop_reason in ("max-schedules", "max-steps"):
        return  # too big to check here: the long run (FAULTLAB_PROPERTY_EXAMPLES) raises the caps
    plain = explore(program, "dfs", bound=PLAIN_BOUND, stop_on_first=False, minimise=False,
                    max_schedules=PLAIN_CAP, max_steps=10 * STEP_CAP)
    what = f"{name} on {describe(scenario)}"
    assert plain.final_states <= dpor.final_states, (
        f"{what}: plain search reached end states DPOR did not: "
        f"{sorted(map(str, plain.final_states - dpor.final_states))}")
    assert set(plain.violation_ids) <= set(dpor.violation_ids), (
        f"{what}: plain search found {plain.violation_ids}, DPOR {dpor.violation_ids}; "
        f"plain's schedules: {[f.schedule for f in plain.violations]}")
    if plain.complete:  # the bound pruned nothing: plain search saw every interleaving
        assert plain.final_states == dpor.final_states, what
        assert set(plain.violation_ids) == set(dpor.violation_ids), what


def describe(scenario: Scenario) -> str:
    f = scenario.files[0]
    threads = "; ".join(f"{t.name}: " + ", ".join(op.text for op in t.ops) for t in scenario.threads)
    return f"{scenario.fs} file {f.size} bytes {'hole' if f.hole else 'filled'}; {threads}"
