"""Property tests on random small toy programs (2-3 threads, a few steps on a few variables, locks
and an event): DPOR must reach exactly the end states and violations of plain exhaustive search."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultlab.explore import toys
from faultlab.explore.explorer import explore
from faultlab.explore.replay import replay_traced
from faultlab.explore.split import split

MAX_STEPS = 10  # keeps plain DFS to a few thousand runs per program

KINDS = ["read", "write", "inc", "lock", "unlock", "signal", "wait", "racy", "check", "update", "move", "scan",
         "add"]
WEIGHTS = {"read": 2, "write": 2, "check": 2}  # more data steps than synchronisation
KINDS = [k for k in KINDS for _ in range(WEIGHTS.get(k, 1))]


@st.composite
def programs(draw: st.DrawFn) -> toys.ToyProgram:
    threads: list[tuple[toys.Op, ...]] = []
    steps = 0
    for t in range(draw(st.integers(min_value=2, max_value=3))):
        ops: list[toys.Op] = []
        held: list[str] = []
        for i in range(draw(st.integers(min_value=1, max_value=3))):
            kind = draw(st.sampled_from(KINDS))
            var = draw(st.sampled_from(["x", "y"]))
            if kind == "read":
                ops.append(toys.Read(var))
            elif kind == "write":
                ops.append(toys.Write(var, 10 * t + i + 1))
            elif kind == "inc":
                ops.append(toys.Write(var))
            elif kind == "lock":
                free = [name for name in ("A", "B") if name not in held]
                if free:
                    name = draw(st.sampled_from(free))
                    held.append(name)
                    ops.append(toys.Lock(name))
            elif kind == "unlock":
                if held:
                    name = draw(st.sampled_from(held))
                    held.remove(name)
                    ops.append(toys.Unlock(name))
            elif kind == "update":
                ops.append(toys.Inc(var))
            elif kind == "move":
                ops.append(toys.Move(var, "y" if var == "x" else "x"))
            elif kind == "scan":
                ops.append(toys.Scan("S"))
            elif kind == "add":
                ops.append(toys.Add("S", draw(st.sampled_from([1, 2]))))
            elif kind == "signal":
                ops.append(toys.Signal("E"))
            elif kind == "wait":
                ops.append(toys.Wait("E"))
            elif kind == "racy":
                ops.append(toys.WaitRacy("E"))
            else:
                ops.append(toys.Check(var, draw(st.sampled_from([0, 1, 11])), "check"))
        if draw(st.booleans()):
            ops.extend(toys.Unlock(name) for name in reversed(held))
        if not ops:
            ops.append(toys.Read("x"))
        steps += 1 + sum(2 if isinstance(op, toys.WaitRacy | toys.Wait) else 1 for op in ops)
        threads.append(tuple(ops))
    if steps > MAX_STEPS:
        # Too big for plain DFS in a unit test: keep the first two threads, trimmed.
        threads = [th[:2] for th in threads[:2]]
    return toys.ToyProgram(tuple(threads))


COMMON = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@COMMON
@given(programs())
def test_dpor_reaches_the_end_states_of_plain_dfs(prog: toys.ToyProgram) -> None:
    _dpor_matches_plain(prog)


def _dpor_matches_plain(prog: toys.ToyProgram) -> None:
    plain = explore(prog, "dfs", stop_on_first=False, minimise=False)
    dpor = explore(prog, "dpor", stop_on_first=False, minimise=False)
    assert plain.complete and dpor.complete
    assert dpor.final_states == plain.final_states
    assert sorted(dpor.violation_ids) == sorted(plain.violation_ids)
    assert dpor.schedules - dpor.sleep_blocked <= plain.schedules


@settings(COMMON, max_examples=80)
@given(programs(), st.integers(min_value=0, max_value=2))
def test_bounded_dpor_covers_bounded_plain_dfs(prog: toys.ToyProgram, bound: int) -> None:
    plain = explore(prog, "dfs", bound=bound, stop_on_first=False, minimise=False)
    dpor = explore(prog, "dpor", bound=bound, stop_on_first=False, minimise=False, keep_schedules=True)
    assert plain.final_states <= dpor.final_states
    assert set(plain.violation_ids) <= set(dpor.violation_ids)
    # Every schedule bounded DPOR ran stays within the bound ...
    assert dpor.schedules_list is not None
    for tids in dpor.schedules_list:
        assert len(replay_traced(prog, tids).preemption_points) <= bound
    # ... and when the bound pruned nothing, the bounded searches are the unbounded ones.
    if not plain.pruned_by_bound:
        unbounded = explore(prog, "dfs", stop_on_first=False, minimise=False)
        assert plain.schedules == unbounded.schedules
        assert dpor.final_states == unbounded.final_states


@settings(COMMON, max_examples=50)
@given(programs(), st.integers(min_value=1, max_value=4))
def test_split_dpor_equals_unsplit(prog: toys.ToyProgram, depth: int) -> None:
    whole = explore(prog, "dpor", stop_on_first=False, minimise=False)
    parts = [explore(prog, "dpor", prefix=p, stop_on_first=False, minimise=False) for p in split(prog, depth)]
    assert frozenset().union(*(r.final_states for r in parts)) == whole.final_states
    assert set().union(*(r.violation_ids for r in parts)) == set(whole.violation_ids)


@st.composite
def lock_programs(draw: st.DrawFn) -> toys.ToyProgram:
    """2-3 threads made mostly of critical sections (on A, or B, or B nested in A) around reads,
    writes, checks and increments, with some unlocked steps and an event: the races DPOR reverses
    at a lock's acquire rather than at its release (faultlab.explore.dfs._acquires_instead)."""
    threads: list[tuple[toys.Op, ...]] = []
    for t in range(draw(st.integers(min_value=2, max_value=3))):
        ops: list[toys.Op] = []
        for _ in range(draw(st.integers(min_value=1, max_value=2))):
            kind = draw(st.sampled_from(["cs", "cs", "data", "signal", "wait"]))
            var = draw(st.sampled_from(["x", "y"]))
            if kind == "cs":
                name = draw(st.sampled_from(["A", "B"]))
                ops.append(toys.Lock(name))
                for _ in range(draw(st.integers(min_value=0, max_value=2))):
                    ops.append(draw(st.sampled_from([toys.Read(var), toys.Write(var, 10 * t + len(ops)),
                                                     toys.Check(var, 11, "check"), toys.Inc(var)])))
                if name == "A" and draw(st.booleans()):
                    ops += [toys.Lock("B"), toys.Write("y", 7), toys.Unlock("B")]
                ops.append(toys.Unlock(name))
            elif kind == "data":
                ops.append(draw(st.sampled_from([toys.Read(var), toys.Write(var, 5 + t),
                                                 toys.Check(var, 11, "check")])))
            elif kind == "signal":
                ops.append(toys.Signal("E"))
            else:
                ops.append(toys.Wait("E"))
        threads.append(tuple(ops))
    if sum(len(th) + 1 for th in threads) > 13:  # plain DFS stays at a few thousand runs
        threads = [th[:4] for th in threads[:2]]
    return toys.ToyProgram(tuple(threads))


@settings(COMMON, max_examples=120)
@given(lock_programs())
def test_dpor_reaches_the_end_states_of_plain_dfs_on_critical_sections(prog: toys.ToyProgram) -> None:
    _dpor_matches_plain(prog)
