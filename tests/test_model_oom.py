"""The page allocator's memory-cgroup-like limit: an allocation past it fails the fault with
VM_FAULT_OOM, which the faulting task sees as being killed."""

from __future__ import annotations

from faultlab.designs import get_design
from faultlab.execution import ModelExecution
from faultlab.scenario import ScenarioBuilder
from faultlab.sched import SequentialChooser


def _run(limit: str) -> list[str]:
    scenario = (ScenarioBuilder("cow under a memory limit", fs="tmpfs", memory_limit=limit)
                .file("data", size="4p", fill="A")
                .thread("t", "m = mmap data 0 4p private rw", "store m 0 X", "store m 1p Y", "load m 0")
                .build())
    result = ModelExecution(scenario, get_design("v4.10")).run(SequentialChooser())
    assert not [v for v in result.violations if v.id != "expected-outcome"]
    return [str(r.outcome) for r in result.record.ops]


def test_cow_fault_past_the_limit_is_oom() -> None:
    # page 0 (cache) + its COW copy fill 2 pages; page 1 (cache) is the 3rd; its COW copy fails
    assert _run("3p") == ["ok", "ok", "SIGKILL", '"X"']


def test_the_same_faults_within_the_limit_succeed() -> None:
    assert _run("4p") == ["ok", "ok", "ok", '"X"']
